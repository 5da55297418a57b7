//! Unit tests of the SecLang parser: every directive, target, operator and action form it
//! accepts, and the errors (with `file:line:column` and what was expected) for what it refuses.

use super::source::{glob_match, normalize, resolve_path};
use super::*;
use crate::ast::*;

fn parse_map(files: &[(&str, &str)], main: &str) -> Result<Vec<Directive>, ParseError> {
    let source = MapSource::new(files.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    parse(main, "/rules/main.conf", &source)
}

fn ok(text: &str) -> Vec<Directive> {
    parse_map(&[], text).unwrap_or_else(|e| panic!("{e}"))
}

fn one(text: &str) -> DirectiveKind {
    let mut d = ok(text);
    assert_eq!(d.len(), 1, "{d:?}");
    d.remove(0).kind
}

fn rule(text: &str) -> Rule {
    match one(text) {
        DirectiveKind::Rule(r) => r,
        other => panic!("not a rule: {other:?}"),
    }
}

fn actions(list: &str) -> Vec<Action> {
    match one(&format!("SecDefaultAction \"{list}\"")) {
        DirectiveKind::DefaultAction(actions) => actions,
        other => panic!("{other:?}"),
    }
}

fn action(a: &str) -> Action {
    let mut all = actions(a);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn err(text: &str) -> ParseError {
    match parse_map(&[], text) {
        Ok(d) => panic!("parsed, expected an error: {d:?}"),
        Err(e) => e,
    }
}

/// Asserts the error's `line:column` and that its message contains `needle`.
fn assert_err(text: &str, line: u32, column: u32, needle: &str) {
    let e = err(text);
    assert_eq!(
        (e.location.line, e.location.column),
        (line, column),
        "wrong place for: {e}"
    );
    assert_eq!(&*e.location.file, "/rules/main.conf");
    assert!(e.message.contains(needle), "`{needle}` not in: {e}");
}

fn var(collection: Collection, selector: Selector) -> Variable {
    Variable {
        collection,
        selector,
        count: false,
        exclude: false,
    }
}

// ---- configuration directives ----

#[test]
fn configuration_directives_parse_to_their_values() {
    use DirectiveKind::*;
    assert_eq!(one("SecRuleEngine On"), RuleEngine(EngineMode::On));
    assert_eq!(one("secruleengine off"), RuleEngine(EngineMode::Off));
    assert_eq!(
        one("SecRuleEngine DetectionOnly"),
        RuleEngine(EngineMode::DetectionOnly)
    );
    assert_eq!(one("SecRequestBodyAccess On"), RequestBodyAccess(true));
    assert_eq!(one("SecResponseBodyAccess Off"), ResponseBodyAccess(false));
    assert_eq!(
        one("SecRequestBodyLimit 13107200"),
        RequestBodyLimit(13107200)
    );
    assert_eq!(
        one("SecRequestBodyNoFilesLimit 131072"),
        RequestBodyNoFilesLimit(131072)
    );
    assert_eq!(
        one("SecRequestBodyLimitAction Reject"),
        RequestBodyLimitAction(BodyLimitAction::Reject)
    );
    assert_eq!(
        one("SecResponseBodyLimitAction ProcessPartial"),
        ResponseBodyLimitAction(BodyLimitAction::ProcessPartial)
    );
    assert_eq!(
        one("SecResponseBodyLimit 524288"),
        ResponseBodyLimit(524288)
    );
    assert_eq!(
        one("SecResponseBodyMimeType text/plain text/html"),
        ResponseBodyMimeType(vec!["text/plain".into(), "text/html".into()])
    );
    assert_eq!(one("SecArgumentSeparator ;"), ArgumentSeparator(b';'));
    assert_eq!(
        one("SecComponentSignature \"OWASP_CRS/3.3.4\""),
        ComponentSignature("OWASP_CRS/3.3.4".into())
    );
    assert_eq!(one("SecCollectionTimeout 600"), CollectionTimeout(600));
    assert_eq!(
        one("SecMarker \"END-REQUEST-910\""),
        Marker("END-REQUEST-910".into())
    );
    assert_eq!(
        one("SecMarker END_HOST_CHECK"),
        Marker("END_HOST_CHECK".into())
    );
    assert_eq!(
        one("SecDefaultAction \"phase:1,log,auditlog,pass\""),
        DefaultAction(vec![
            Action::Phase(1),
            Action::Log,
            Action::AuditLog,
            Action::Pass
        ])
    );
}

#[test]
fn configuration_directive_errors_say_what_was_expected() {
    assert_err(
        "SecRuleEngine Maybe",
        1,
        15,
        "expected On, Off or DetectionOnly, found `Maybe`",
    );
    assert_err("SecRequestBodyAccess yes", 1, 22, "expected On or Off");
    assert_err(
        "SecRequestBodyLimit 12k",
        1,
        21,
        "expected a number of bytes, found `12k`",
    );
    assert_err(
        "SecRequestBodyLimitAction Drop",
        1,
        27,
        "expected Reject or ProcessPartial",
    );
    assert_err(
        "SecArgumentSeparator &&",
        1,
        22,
        "expected a single character",
    );
    assert_err(
        "SecRuleEngine",
        1,
        14,
        "`SecRuleEngine` expects one argument",
    );
    assert_err("SecRuleEngine On Off", 1, 18, "found 2 argument(s)");
}

#[test]
fn unsupported_directive_is_an_error_naming_it() {
    assert_err(
        "\n  SecRuleScript /x.lua",
        2,
        3,
        "unsupported directive `SecRuleScript`",
    );
    assert_err("SecHashEngine On", 1, 1, "`SecHashEngine`");
}

#[test]
fn proxy_meaningless_directives_are_accepted_and_named() {
    assert_eq!(
        one("SecAuditLog /var/log/modsec_audit.log"),
        DirectiveKind::Accepted {
            name: "SecAuditLog".into(),
            args: vec!["/var/log/modsec_audit.log".into()]
        }
    );
    assert_eq!(
        one("sectmpdir /tmp/"),
        DirectiveKind::Accepted {
            name: "SecTmpDir".into(),
            args: vec!["/tmp/".into()]
        }
    );
    // Every listed name parses (with one dummy argument) to Accepted.
    for name in ACCEPTED_NO_OPS {
        assert!(
            matches!(one(&format!("{name} x")), DirectiveKind::Accepted { name: n, .. } if n == *name),
            "{name}"
        );
    }
}

#[test]
fn rule_removal_and_update_directives() {
    assert_eq!(
        one("SecRuleRemoveById 920100 920200-920299 \"1 2\""),
        DirectiveKind::RuleRemoveById(vec![
            IdRange {
                start: 920100,
                end: 920100
            },
            IdRange {
                start: 920200,
                end: 920299
            },
            IdRange { start: 1, end: 1 },
            IdRange { start: 2, end: 2 },
        ])
    );
    assert_eq!(
        one("SecRuleRemoveByTag \"attack-sqli\""),
        DirectiveKind::RuleRemoveByTag("attack-sqli".into())
    );
    assert_eq!(
        one("SecRuleRemoveByMsg \"^SQL\""),
        DirectiveKind::RuleRemoveByMsg("^SQL".into())
    );
    assert_eq!(
        one("SecRuleUpdateTargetById 942100 \"!ARGS:foo|!REQUEST_COOKIES:/^s/\""),
        DirectiveKind::RuleUpdateTargetById {
            ids: vec![IdRange {
                start: 942100,
                end: 942100
            }],
            targets: vec![
                Variable {
                    exclude: true,
                    ..var(Collection::Args, Selector::Key("foo".into()))
                },
                Variable {
                    exclude: true,
                    ..var(Collection::RequestCookies, Selector::Regex("^s".into()))
                },
            ],
            replacing: None,
        }
    );
    assert_eq!(
        one("SecRuleUpdateTargetByTag attack-xss ARGS:x REQUEST_URI"),
        DirectiveKind::RuleUpdateTargetByTag {
            tag: "attack-xss".into(),
            targets: vec![var(Collection::Args, Selector::Key("x".into()))],
            replacing: Some(var(Collection::RequestUri, Selector::All)),
        }
    );
    assert_eq!(
        one("SecRuleUpdateTargetByMsg \"SQL\" \"!ARGS:q\""),
        DirectiveKind::RuleUpdateTargetByMsg {
            msg: "SQL".into(),
            targets: vec![Variable {
                exclude: true,
                ..var(Collection::Args, Selector::Key("q".into()))
            }],
            replacing: None,
        }
    );
    assert_eq!(
        one("SecRuleUpdateActionById 949110 \"t:none,deny,status:403\""),
        DirectiveKind::RuleUpdateActionById {
            id: 949110,
            actions: vec![
                Action::Transform(TransformName::None),
                Action::Deny,
                Action::Status(403)
            ],
        }
    );
    assert_err(
        "SecRuleRemoveById 12 abc",
        1,
        22,
        "expected a rule id or an `A-B` range, found `abc`",
    );
    assert_err("SecRuleRemoveById 10-5", 1, 19, "found `10-5`");
    assert_err(
        "SecRuleUpdateTargetById 1 \"ARGS|NOPE\"",
        1,
        33,
        "unknown variable `NOPE`",
    );
}

// ---- SecRule, SecAction, chains ----

#[test]
fn sec_rule_has_targets_operator_and_actions() {
    let r = rule("SecRule ARGS|REQUEST_HEADERS:User-Agent \"@rx ^a\\d\" \"id:1,phase:2,deny\"");
    assert_eq!(
        r.variables,
        vec![
            var(Collection::Args, Selector::All),
            var(
                Collection::RequestHeaders,
                Selector::Key("User-Agent".into())
            )
        ]
    );
    assert_eq!(
        r.operator,
        Operator {
            name: OperatorName::Rx,
            negated: false,
            argument: "^a\\d".into()
        }
    );
    assert_eq!(
        r.actions,
        vec![Action::Id(1), Action::Phase(2), Action::Deny]
    );
    assert_eq!(r.id(), Some(1));
    assert_eq!((r.location.line, r.location.column), (1, 1));
    assert!(r.chained.is_none());
    // Without actions the grammar is fine, but like ModSecurity every rule needs an id.
    assert_err("SecRule ARGS \"@rx x\"", 1, 1, "rule has no `id` action");
    assert_err(
        "SecMarker A\n  SecAction \"pass\"",
        2,
        3,
        "rule has no `id` action",
    );
    assert_err(
        "SecAction \"id:5\"\nSecRule ARGS \"x\" \"id:5\"",
        2,
        1,
        "duplicate rule id 5 (first defined at /rules/main.conf:1:1)",
    );
    // Chain links need none.
    assert!(
        rule("SecRule ARGS \"x\" \"id:6,chain\"\nSecRule ARGS \"y\"")
            .chained
            .is_some()
    );
}

#[test]
fn sec_action_is_an_unconditional_rule_without_targets() {
    let r = rule("SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level=1\"");
    assert!(r.variables.is_empty());
    assert_eq!(r.operator.name, OperatorName::UnconditionalMatch);
    assert_eq!(r.actions.len(), 6);
    assert_err(
        "SecAction \"id:1,chain\"",
        1,
        1,
        "`SecAction` cannot start a chain",
    );
}

#[test]
fn chained_rules_nest_under_the_head() {
    let text = "SecRule ARGS \"@rx a\" \"id:1,phase:2,deny,chain\"\n\
                \tSecRule REQUEST_METHOD \"@streq POST\" \"chain\"\n\
                \t\tSecRule &ARGS \"@gt 2\" \"t:none\"\n\
                SecMarker END\n";
    let d = ok(text);
    assert_eq!(d.len(), 2);
    let DirectiveKind::Rule(head) = &d[0].kind else {
        panic!()
    };
    let second = head.chained.as_deref().expect("second link");
    let third = second.chained.as_deref().expect("third link");
    assert!(third.chained.is_none());
    assert_eq!(second.operator.name, OperatorName::Streq);
    assert!(third.variables[0].count);
    assert_eq!((second.location.line, second.location.column), (2, 2));
    assert_eq!((third.location.line, third.location.column), (3, 3));
    assert_eq!(d[1].kind, DirectiveKind::Marker("END".into()));
}

#[test]
fn links_walk_a_chain_head_first() {
    let r =
        rule("SecRule ARGS \"a\" \"id:1,chain\"\nSecRule ARGS \"b\" \"chain\"\nSecRule ARGS \"c\"");
    let args: Vec<_> = r.links().map(|l| l.operator.argument.as_str()).collect();
    assert_eq!(args, ["a", "b", "c"]);
    assert_eq!(rule("SecAction \"id:2\"").links().count(), 1);
}

#[test]
fn parse_file_reads_through_the_source() {
    let source = MapSource::new([
        ("/r/main.conf".to_string(), "Include sub/*.conf".to_string()),
        ("/r/sub/a.conf".to_string(), "SecMarker A".to_string()),
    ]);
    let d = parse_file("/r/main.conf", &source).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d[0].location.to_string(), "/r/sub/a.conf:1:1");
    let e = parse_file("/r/none.conf", &source).expect_err("missing");
    assert_eq!(e.location.to_string(), "/r/none.conf:1:1");
    assert!(e.message.contains("no embedded file `/r/none.conf`"), "{e}");
}

#[test]
fn an_unfinished_chain_is_an_error_at_its_head() {
    assert_err(
        "SecRule ARGS \"x\" \"id:1,chain\"\n",
        1,
        1,
        "expected a SecRule after the rule with `chain`",
    );
    assert_err(
        "SecRule ARGS \"x\" \"id:1,chain\"\nSecMarker FOO\n",
        2,
        1,
        "expected a SecRule continuing the chain started at /rules/main.conf:1:1, found `SecMarker`",
    );
}

#[test]
fn sec_rule_argument_errors() {
    assert_err("SecRule ARGS", 1, 13, "`SecRule` expects TARGETS");
    assert_err(
        "SecRule ARGS \"x\" \"id:1\" extra",
        1,
        25,
        "found an extra argument",
    );
    assert_err("SecRule ARGS \"@rx x", 1, 14, "expected a closing `\"`");
    assert_err("SecRule ARGS \"x\"y \"id:1\"", 1, 17, "expected whitespace");
}

// ---- lines, continuations, comments ----

#[test]
fn continuation_lines_join_and_errors_point_at_the_physical_line() {
    let text = "# a comment\n\
                SecRule ARGS \\\n\
                \x20   \"@rx a\" \\\n\
                \x20   \"id:1,\\\n\
                \x20   phase:2,\\\n\
                \x20   bogus\"\n";
    assert_err(text, 6, 5, "unsupported action `bogus`");
    let ok_text = text.replace("bogus", "pass");
    let r = rule(&ok_text);
    assert_eq!((r.location.line, r.location.column), (2, 1));
    assert_eq!(
        r.actions,
        vec![Action::Id(1), Action::Phase(2), Action::Pass]
    );
}

#[test]
fn crlf_line_ends_are_accepted() {
    let r = rule("SecRule ARGS \\\r\n  \"@rx a\" \\\r\n  \"id:7,pass\"\r\n");
    assert_eq!(r.operator.argument, "a");
    assert_eq!(r.actions, vec![Action::Id(7), Action::Pass]);
}

#[test]
fn comments_continue_only_as_modsecurity_continues_them() {
    // A commented-out SecRule/SecAction swallows its continuation lines (ModSecurity's COMMENT
    // state) ...
    let d = ok("#SecAction \\\n  \"id:1,pass\"\nSecMarker A\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, DirectiveKind::Marker("A".into()));
    // ... any other comment ends at its newline, even after a backslash.
    let d = ok("# see below \\\nSecMarker B\n");
    assert_eq!(d[0].kind, DirectiveKind::Marker("B".into()));
    // Indented comments and blank lines are skipped.
    assert_eq!(ok("   # x\n\n\t\nSecMarker C").len(), 1);
}

// ---- quoting ----

#[test]
fn operator_arguments_keep_backslashes_and_escaped_quotes_verbatim() {
    // ModSecurity v3 hands the quoted text to the operator as written: `\"` stays `\"` (PCRE
    // reads it as `"`), `\\` stays `\\`.
    let r = rule(r#"SecRule ARGS "@rx a\"b\\c\d" "id:1""#);
    assert_eq!(r.operator.argument, r#"a\"b\\c\d"#);
    let r = rule(r#"SecRule RESPONSE_BODY "@contains <h1 style=\"x\">" "id:2""#);
    assert_eq!(r.operator.name, OperatorName::Contains);
    assert_eq!(r.operator.argument, r#"<h1 style=\"x\">"#);
}

#[test]
fn quoted_action_values_may_hold_commas_and_escaped_quotes() {
    assert_eq!(
        actions("msg:'a, b',tag:'x\\'y',logdata:'%{MATCHED_VAR}'"),
        vec![
            Action::Msg("a, b".into()),
            Action::Tag("x\\'y".into()),
            Action::LogData("%{MATCHED_VAR}".into())
        ]
    );
    assert_eq!(action("id:'42'"), Action::Id(42));
    assert_err(
        "SecAction \"msg:'open\"",
        1,
        16,
        "expected a closing `'` for the value of `msg`",
    );
    assert_err(
        "SecAction \"msg:'a'b\"",
        1,
        19,
        "expected `,` or the end of the actions after `msg`",
    );
}

// ---- variables ----

fn targets(t: &str) -> Vec<Variable> {
    rule(&format!("SecRule {t} \"x\" \"id:1\"")).variables
}

#[test]
fn every_target_form_parses() {
    assert_eq!(
        targets("\"&ARGS|!ARGS:foo|REQUEST_COOKIES:/^__utm/|ARGS:'a b'|XML:/*|tx.Score|&!TX:x\""),
        vec![
            Variable {
                count: true,
                ..var(Collection::Args, Selector::All)
            },
            Variable {
                exclude: true,
                ..var(Collection::Args, Selector::Key("foo".into()))
            },
            var(Collection::RequestCookies, Selector::Regex("^__utm".into())),
            var(Collection::Args, Selector::Key("a b".into())),
            var(Collection::Xml, Selector::XPath("/*".into())),
            var(Collection::Tx, Selector::Key("Score".into())),
            Variable {
                count: true,
                exclude: true,
                ..var(Collection::Tx, Selector::Key("x".into()))
            },
        ]
    );
    // A `|` inside a key regex does not split targets; `\/` does not end it.
    assert_eq!(
        targets("ARGS_NAMES:/a|b\\/c/|REQUEST_URI"),
        vec![
            var(Collection::ArgsNames, Selector::Regex("a|b\\/c".into())),
            var(Collection::RequestUri, Selector::All)
        ]
    );
    // Quoted target lists, as some rule sets write them.
    assert_eq!(
        targets("\"REQUEST_HEADERS:Content-Type|REQUEST_METHOD\""),
        vec![
            var(
                Collection::RequestHeaders,
                Selector::Key("Content-Type".into())
            ),
            var(Collection::RequestMethod, Selector::All)
        ]
    );
}

#[test]
fn variable_names_are_case_insensitive_and_cover_crs() {
    for (name, c) in [
        ("args", Collection::Args),
        ("Request_Headers", Collection::RequestHeaders),
        ("REQBODY_PROCESSOR_ERROR", Collection::ReqbodyProcessorError),
        (
            "MULTIPART_SEMICOLON_MISSING",
            Collection::MultipartMissingSemicolon,
        ),
        ("FILES_TMP_CONTENT", Collection::FilesTmpContent),
        ("REQUEST_BASENAME", Collection::RequestBasename),
        ("TIME_WDAY", Collection::TimeWday),
        ("WEBSERVER_ERROR_LOG", Collection::Webserver),
        ("GEO", Collection::Geo),
        ("IP", Collection::Ip),
    ] {
        assert_eq!(targets(name), vec![var(c, Selector::All)], "{name}");
    }
}

#[test]
fn variable_errors_name_the_variable_and_the_place() {
    assert_err(
        "SecRule ARGS|BOGUS_VAR \"x\" \"id:1\"",
        1,
        14,
        "unknown variable `BOGUS_VAR`",
    );
    assert_err(
        "SecRule REQUEST_URI:x \"x\" \"id:1\"",
        1,
        9,
        "variable `REQUEST_URI` has no members",
    );
    assert_err(
        "SecRule ARGS:/abc \"x\" \"id:1\"",
        1,
        14,
        "expected a closing `/`",
    );
    assert_err(
        "SecRule ARGS:'abc \"x\" \"id:1\"",
        1,
        14,
        "expected a closing `'`",
    );
    assert_err(
        "SecRule ARGS| \"x\" \"id:1\"",
        1,
        14,
        "expected a variable name",
    );
    assert_err(
        "SecRule ARGS: \"x\" \"id:1\"",
        1,
        14,
        "expected a key after `ARGS:`",
    );
    assert_err(
        "SecRule ARGS:/a/b \"x\" \"id:1\"",
        1,
        17,
        "expected `|` or the end of the targets",
    );
}

// ---- operators ----

fn op(text: &str) -> Operator {
    rule(&format!("SecRule ARGS \"{text}\" \"id:1\"")).operator
}

#[test]
fn every_operator_name_maps() {
    let with_arg = [
        ("rx", OperatorName::Rx),
        ("pm", OperatorName::Pm),
        ("pmFromFile", OperatorName::PmFromFile),
        ("pmf", OperatorName::Pmf),
        ("validateByteRange", OperatorName::ValidateByteRange),
        ("within", OperatorName::Within),
        ("streq", OperatorName::Streq),
        ("beginsWith", OperatorName::BeginsWith),
        ("endsWith", OperatorName::EndsWith),
        ("contains", OperatorName::Contains),
        ("containsWord", OperatorName::ContainsWord),
        ("strmatch", OperatorName::StrMatch),
        ("eq", OperatorName::Eq),
        ("ge", OperatorName::Ge),
        ("gt", OperatorName::Gt),
        ("lt", OperatorName::Lt),
        ("le", OperatorName::Le),
        ("ipMatch", OperatorName::IpMatch),
        ("ipMatchFromFile", OperatorName::IpMatchFromFile),
        ("ipMatchF", OperatorName::IpMatchFromFile),
        ("rbl", OperatorName::Rbl),
    ];
    for (name, expected) in with_arg {
        let o = op(&format!("@{name} v w"));
        assert_eq!(
            (o.name, o.negated, o.argument.as_str()),
            (expected, false, "v w"),
            "{name}"
        );
        let upper = op(&format!("!@{} v", name.to_ascii_uppercase()));
        assert_eq!((upper.name, upper.negated), (expected, true), "{name}");
    }
    let without_arg = [
        ("detectSQLi", OperatorName::DetectSqli),
        ("detectXSS", OperatorName::DetectXss),
        ("validateUrlEncoding", OperatorName::ValidateUrlEncoding),
        ("validateUtf8Encoding", OperatorName::ValidateUtf8Encoding),
        ("unconditionalMatch", OperatorName::UnconditionalMatch),
        ("noMatch", OperatorName::NoMatch),
        ("geoLookup", OperatorName::GeoLookup),
    ];
    for (name, expected) in without_arg {
        let o = op(&format!("@{name}"));
        assert_eq!((o.name, o.argument.as_str()), (expected, ""), "{name}");
    }
}

#[test]
fn operator_argument_forms() {
    // No `@`: a regex; `!` alone negates it.
    assert_eq!(
        op("^foo$"),
        Operator {
            name: OperatorName::Rx,
            negated: false,
            argument: "^foo$".into()
        }
    );
    assert_eq!(
        op("!^foo$"),
        Operator {
            name: OperatorName::Rx,
            negated: true,
            argument: "^foo$".into()
        }
    );
    assert_eq!(
        op(""),
        Operator {
            name: OperatorName::Rx,
            negated: false,
            argument: "".into()
        }
    );
    // Exactly one space after the name is consumed; the rest is the argument.
    assert_eq!(op("@pm  a b").argument, " a b");
    assert_eq!(op("@rx").argument, "");
    // Unquoted, the parameter is the next word (ModSecurity's ENDS_WITH_SPACE mode).
    let r = rule("SecRule ARGS @streq admin \"id:3\"");
    assert_eq!(
        (r.operator.name, r.operator.argument.as_str()),
        (OperatorName::Streq, "admin")
    );
    assert_eq!(r.actions, vec![Action::Id(3)]);
    let r = rule("SecRule REQUEST_BODY @detectSQLi id:4,pass");
    assert_eq!(r.operator.name, OperatorName::DetectSqli);
    assert_eq!(r.actions, vec![Action::Id(4), Action::Pass]);
}

#[test]
fn operator_errors_name_the_operator() {
    assert_err(
        "SecRule ARGS \"@bogus x\" \"id:1\"",
        1,
        15,
        "unknown operator `@bogus`",
    );
    assert_err(
        "SecRule ARGS \"!@verifyCC x\" \"id:1\"",
        1,
        16,
        "unknown operator `@verifyCC`",
    );
    assert_err(
        "SecRule ARGS \"@detectSQLi x\" \"id:1\"",
        1,
        26,
        "operator `@detectSQLi` takes no argument",
    );
}

// ---- actions ----

#[test]
fn metadata_actions() {
    assert_eq!(
        actions("id:942100,phase:request,msg:'SQL Injection',logdata:'Matched %{MATCHED_VAR}',tag:'attack-sqli',ver:'OWASP_CRS/3.3.4',rev:'2',maturity:9,accuracy:8,severity:'CRITICAL'"),
        vec![
            Action::Id(942100),
            Action::Phase(2),
            Action::Msg("SQL Injection".into()),
            Action::LogData("Matched %{MATCHED_VAR}".into()),
            Action::Tag("attack-sqli".into()),
            Action::Ver("OWASP_CRS/3.3.4".into()),
            Action::Rev("2".into()),
            Action::Maturity(9),
            Action::Accuracy(8),
            Action::Severity(2),
        ]
    );
}

#[test]
fn phases_and_severities_by_number_and_name() {
    for (v, p) in [
        ("1", 1),
        ("5", 5),
        ("request", 2),
        ("RESPONSE", 4),
        ("logging", 5),
        ("'2'", 2),
    ] {
        assert_eq!(action(&format!("phase:{v}")), Action::Phase(p), "{v}");
    }
    let names = [
        "EMERGENCY",
        "ALERT",
        "CRITICAL",
        "ERROR",
        "WARNING",
        "NOTICE",
        "INFO",
        "DEBUG",
    ];
    for (n, name) in names.iter().enumerate() {
        let n = n as u8;
        assert_eq!(action(&format!("severity:{name}")), Action::Severity(n));
        assert_eq!(
            action(&format!("severity:{}", name.to_lowercase())),
            Action::Severity(n)
        );
        assert_eq!(action(&format!("severity:{n}")), Action::Severity(n));
    }
    assert_err(
        "SecAction \"phase:6\"",
        1,
        18,
        "expected a phase: 1-5, request, response or logging, found `6`",
    );
    assert_err("SecAction \"severity:8\"", 1, 21, "expected a severity");
    assert_err("SecAction \"severity:LOUD\"", 1, 21, "found `LOUD`");
}

#[test]
fn flow_and_disruptive_actions() {
    assert_eq!(
        actions("capture,multiMatch,pass,block,deny,drop,log,nolog,auditlog,noauditlog"),
        vec![
            Action::Capture,
            Action::MultiMatch,
            Action::Pass,
            Action::Block,
            Action::Deny,
            Action::Drop,
            Action::Log,
            Action::NoLog,
            Action::AuditLog,
            Action::NoAuditLog,
        ]
    );
    assert_eq!(action("skip:2"), Action::Skip(2));
    assert_eq!(
        action("skipAfter:END-REQUEST"),
        Action::SkipAfter("END-REQUEST".into())
    );
    assert_eq!(action("allow"), Action::Allow(AllowScope::Transaction));
    assert_eq!(action("allow:phase"), Action::Allow(AllowScope::Phase));
    assert_eq!(action("allow:REQUEST"), Action::Allow(AllowScope::Request));
    assert_eq!(action("status:403"), Action::Status(403));
    assert_eq!(
        action("redirect:'http://example.com/blocked?x=%{REQUEST_URI}'"),
        Action::Redirect("http://example.com/blocked?x=%{REQUEST_URI}".into())
    );
    assert_eq!(action("DENY"), Action::Deny);
    assert_err(
        "SecAction \"allow:forever\"",
        1,
        18,
        "expected `phase` or `request`",
    );
    assert_err(
        "SecAction \"status:9999\"",
        1,
        19,
        "expected an HTTP status",
    );
    assert_err(
        "SecAction \"skip:0\"",
        1,
        17,
        "expected a positive number of rules",
    );
    assert_err(
        "SecAction \"deny:now\"",
        1,
        17,
        "action `deny` takes no value",
    );
    assert_err("SecAction \"id\"", 1, 12, "action `id` expects a value");
    assert_err("SecAction \"id:1,\"", 1, 17, "expected an action after `,`");
}

#[test]
fn transformation_names_map_case_insensitively() {
    assert_eq!(
        actions("t:none,t:urlDecodeUni,t:LOWERCASE,t:normalisePath,t:utf8toUnicode,t:cmdLine,t:base64DecodeExt"),
        vec![
            Action::Transform(TransformName::None),
            Action::Transform(TransformName::UrlDecodeUni),
            Action::Transform(TransformName::Lowercase),
            Action::Transform(TransformName::NormalizePath),
            Action::Transform(TransformName::Utf8ToUnicode),
            Action::Transform(TransformName::CmdLine),
            Action::Transform(TransformName::Base64DecodeExt),
        ]
    );
    assert_err(
        "SecAction \"t:none,t:rot13\"",
        1,
        21,
        "unknown transformation `t:rot13`",
    );
}

#[test]
fn setvar_forms() {
    let sv = |collection: &str, name: &str, op: SetVarOp| Action::SetVar {
        collection: collection.into(),
        name: name.into(),
        op,
    };
    assert_eq!(
        actions("setvar:tx.a=1,setvar:'tx.anomaly_score_pl1=+%{tx.critical_anomaly_score}',setvar:TX.b=-2,setvar:!tx.c,setvar:ip.d,setvar:tx.%{rule.id}-X/Y=%{matched_var},setvar:tx.e="),
        vec![
            sv("tx", "a", SetVarOp::Set("1".into())),
            sv("tx", "anomaly_score_pl1", SetVarOp::Add("%{tx.critical_anomaly_score}".into())),
            sv("tx", "b", SetVarOp::Sub("2".into())),
            sv("tx", "c", SetVarOp::Delete),
            sv("ip", "d", SetVarOp::Set("1".into())),
            sv("tx", "%{rule.id}-X/Y", SetVarOp::Set("%{matched_var}".into())),
            sv("tx", "e", SetVarOp::Set("".into())),
        ]
    );
    assert_err(
        "SecAction \"setvar:score=1\"",
        1,
        19,
        "expected `collection.name`, found `score`",
    );
    assert_err(
        "SecAction \"setvar:!tx.a=1\"",
        1,
        19,
        "expected no `=value`",
    );
}

#[test]
fn ctl_forms() {
    let ctl = |c: Ctl| Action::Ctl(c);
    assert_eq!(
        actions("ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=920100,ctl:ruleRemoveById=1-9,ctl:ruleRemoveByTag=attack-xss,ctl:ruleRemoveTargetById=942100;ARGS:pwd,ctl:ruleRemoveTargetByTag=CRS;REQUEST_COOKIES:/^s/,ctl:requestBodyProcessor=json,ctl:requestBodyAccess=Off,ctl:forceRequestBodyVariable=On,ctl:requestBodyLimit=1000,ctl:auditEngine=Off,ctl:auditLogParts=+E"),
        vec![
            ctl(Ctl::RuleEngine(EngineMode::DetectionOnly)),
            ctl(Ctl::RuleRemoveById(IdRange { start: 920100, end: 920100 })),
            ctl(Ctl::RuleRemoveById(IdRange { start: 1, end: 9 })),
            ctl(Ctl::RuleRemoveByTag("attack-xss".into())),
            ctl(Ctl::RuleRemoveTargetById(
                IdRange { start: 942100, end: 942100 },
                var(Collection::Args, Selector::Key("pwd".into()))
            )),
            ctl(Ctl::RuleRemoveTargetByTag(
                "CRS".into(),
                var(Collection::RequestCookies, Selector::Regex("^s".into()))
            )),
            ctl(Ctl::RequestBodyProcessor("JSON".into())),
            ctl(Ctl::RequestBodyAccess(false)),
            ctl(Ctl::ForceRequestBodyVariable(true)),
            ctl(Ctl::RequestBodyLimit(1000)),
            ctl(Ctl::Audit("auditEngine=Off".into())),
            ctl(Ctl::Audit("auditLogParts=+E".into())),
        ]
    );
    assert_err(
        "SecAction \"ctl:debugLogLevel=9\"",
        1,
        16,
        "unsupported `ctl:debugLogLevel`",
    );
    assert_err(
        "SecAction \"ctl:ruleEngine=Sometimes\"",
        1,
        27,
        "expected On, Off or DetectionOnly",
    );
    assert_err(
        "SecAction \"ctl:requestBodyProcessor=YAML\"",
        1,
        37,
        "expected URLENCODED, MULTIPART, JSON or XML",
    );
    assert_err(
        "SecAction \"ctl:ruleRemoveTargetById=1;NOPE\"",
        1,
        39,
        "unknown variable `NOPE`",
    );
    assert_err(
        "SecAction \"ctl:ruleRemoveTargetById=1\"",
        1,
        37,
        "expected `ID;TARGET`",
    );
    assert_err(
        "SecAction \"ctl:ruleEngine\"",
        1,
        16,
        "expected `option=value`",
    );
}

#[test]
fn no_op_actions_are_accepted_and_named_unsupported_ones_are_errors() {
    assert_eq!(
        actions("expirevar:ip.x=60,initcol:ip=%{REMOTE_ADDR},setuid:%{ARGS.u},setsid:x,sanitiseArg:password,sanitisematched"),
        vec![
            Action::Accepted { name: "expirevar".into(), argument: Some("ip.x=60".into()) },
            Action::Accepted { name: "initcol".into(), argument: Some("ip=%{REMOTE_ADDR}".into()) },
            Action::Accepted { name: "setuid".into(), argument: Some("%{ARGS.u}".into()) },
            Action::Accepted { name: "setsid".into(), argument: Some("x".into()) },
            Action::Accepted { name: "sanitiseArg".into(), argument: Some("password".into()) },
            Action::Accepted { name: "sanitiseMatched".into(), argument: None },
        ]
    );
    assert_err(
        "SecAction \"id:1,exec:/bin/sh\"",
        1,
        17,
        "unsupported action `exec`",
    );
    assert_err(
        "SecAction \"id:1,setenv:A=1\"",
        1,
        17,
        "unsupported action `setenv`",
    );
}

// ---- Include, sources, globs ----

#[test]
fn includes_resolve_relative_to_the_including_file_and_glob_sorted() {
    let files = [
        (
            "/rules/crs/setup.conf",
            "SecMarker SETUP\nInclude rules/*.conf",
        ),
        ("/rules/crs/rules/B.conf", "SecMarker B"),
        ("/rules/crs/rules/A.conf", "SecMarker A"),
        ("/rules/crs/rules/A.data", "not rules"),
        ("/rules/crs/rules/sub/C.conf", "SecMarker C"),
        ("/rules/other.conf", "SecMarker OTHER"),
    ];
    let d = parse_map(
        &files,
        "Include crs/setup.conf\nInclude \"./crs/../other.conf\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let markers: Vec<_> = d
        .iter()
        .map(|d| match &d.kind {
            DirectiveKind::Marker(m) => format!("{m}@{}", d.location),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(
        markers,
        [
            "SETUP@/rules/crs/setup.conf:1:1".to_string(),
            "A@/rules/crs/rules/A.conf:1:1".into(),
            "B@/rules/crs/rules/B.conf:1:1".into(),
            "OTHER@/rules/other.conf:1:1".into(),
        ]
    );
}

#[test]
fn include_errors_have_a_location() {
    assert_err(
        "\nInclude missing/*.conf",
        2,
        9,
        "Include `missing/*.conf` matches no file",
    );
    assert_err(
        "Include nope.conf",
        1,
        9,
        "Include `nope.conf`: no embedded file `/rules/nope.conf`",
    );
    assert_err(
        "Include /a/*/b.conf",
        1,
        9,
        "only the last path component may hold wildcards",
    );
    // A cycle, through a glob and back.
    let files = [
        ("/rules/a.conf", "SecMarker A\nInclude b*.conf"),
        ("/rules/b1.conf", "Include a.conf"),
    ];
    let e = parse_map(&files, "Include a.conf").expect_err("cycle");
    assert_eq!(e.location.to_string(), "/rules/b1.conf:1:9");
    assert!(
        e.message.contains(
            "Include cycle: /rules/main.conf -> /rules/a.conf -> /rules/b1.conf -> /rules/a.conf"
        ),
        "{e}"
    );
    // Errors inside an included file name that file.
    let files = [("/rules/bad.conf", "\n\nSecRule ARGS \"@nope\" \"id:1\"")];
    let e = parse_map(&files, "Include bad.conf").expect_err("bad");
    assert_eq!(e.location.to_string(), "/rules/bad.conf:3:15");
}

#[test]
fn paths_resolve_and_normalize() {
    assert_eq!(
        resolve_path("/etc/a/main.conf", "rules/x.conf"),
        "/etc/a/rules/x.conf"
    );
    assert_eq!(
        resolve_path("/etc/a/main.conf", "/abs/x.conf"),
        "/abs/x.conf"
    );
    assert_eq!(
        resolve_path("/etc/a/main.conf", "../b/./x.conf"),
        "/etc/b/x.conf"
    );
    assert_eq!(resolve_path("main.conf", "x.conf"), "x.conf");
    assert_eq!(resolve_path("d/main.conf", "../../x.conf"), "../x.conf");
    assert_eq!(resolve_path("/m.conf", "@alias"), "@alias");
    assert_eq!(normalize("/a//b/../c/."), "/a/c");
    assert_eq!(normalize("/../x"), "/x");
}

#[test]
fn glob_matches_like_a_shell_on_one_component() {
    let yes = [
        ("*.conf", "REQUEST-901.conf"),
        ("*", "a"),
        ("REQUEST-9??-*.conf", "REQUEST-920-PROTOCOL.conf"),
        ("[AR]*.conf", "RESPONSE.conf"),
        ("[a-c]x", "bx"),
        ("[!a]x", "bx"),
        ("[^a]x", "bx"),
        ("a*b*c", "aXXbYYbc"),
        (".*", ".hidden"),
        ("[]]", "]"),
        ("a[", "a["),
    ];
    for (p, n) in yes {
        assert!(glob_match(p, n), "{p} should match {n}");
    }
    let no = [
        ("*.conf", "x.conf.example"),
        ("*.conf", ".hidden.conf"),
        ("?", "ab"),
        ("[a-c]x", "dx"),
        ("[!a]x", "ax"),
        ("a*b*c", "aXXbYY"),
        ("", "a"),
    ];
    for (p, n) in no {
        assert!(!glob_match(p, n), "{p} should not match {n}");
    }
}

#[test]
fn map_source_globs_one_directory_of_its_keys() {
    let s = MapSource::new([
        ("/r/b.conf".to_string(), String::new()),
        ("/r/./a.conf".to_string(), String::new()),
        ("/r/x/c.conf".to_string(), String::new()),
        ("/q/d.conf".to_string(), String::new()),
    ]);
    assert_eq!(s.glob("/r/*.conf").unwrap(), ["/r/a.conf", "/r/b.conf"]);
    assert_eq!(
        s.glob("/r/x/../*.conf").unwrap(),
        ["/r/a.conf", "/r/b.conf"]
    );
    assert!(s.glob("/none/*").unwrap().is_empty());
    assert_eq!(s.read("/r/../r/a.conf"), Ok(String::new()));
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
fn fs_source_reads_and_globs_the_file_system() {
    let dir = std::env::temp_dir().join(format!("portcullis-seclang-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("rules/sub.conf")).unwrap();
    std::fs::write(dir.join("rules/b.conf"), "SecMarker B\n").unwrap();
    std::fs::write(dir.join("rules/a.conf"), "SecMarker A\n").unwrap();
    std::fs::write(dir.join("rules/a.conf.example"), "SecMarker NO\n").unwrap();
    let main = dir.join("main.conf");
    std::fs::write(&main, "Include rules/*.conf\n").unwrap();
    let main = main.to_str().unwrap();
    let text = FsSource.read(main).unwrap();
    let d = parse(&text, main, &FsSource);
    std::fs::remove_dir_all(&dir).unwrap();
    let d = d.unwrap_or_else(|e| panic!("{e}"));
    // The directory named `sub.conf` is not a file: skipped.
    let kinds: Vec<_> = d.into_iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            DirectiveKind::Marker("A".into()),
            DirectiveKind::Marker("B".into())
        ]
    );
    assert!(FsSource
        .read("/nonexistent/x.conf")
        .unwrap_err()
        .contains("/nonexistent/x.conf"));
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_directive() {
    assert_eq!(
        one("\u{feff}SecMarker A"),
        DirectiveKind::Marker("A".into())
    );
}

// ---- robustness: configuration input never panics the parser ----

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that steer random text into the parser's deeper states.
    const PIECES: &[&str] = &[
        "SecRule ",
        "SecAction ",
        "SecMarker ",
        "SecDefaultAction ",
        "Include ",
        "SecRuleEngine ",
        "SecRuleUpdateTargetById ",
        "SecRuleRemoveById ",
        "ARGS",
        "REQUEST_HEADERS:",
        "XML:/*",
        "TX",
        "|",
        "!",
        "&",
        ":",
        "/",
        "'",
        "\"",
        "\\",
        "\\\n",
        "\n",
        "\r\n",
        " ",
        "\t",
        "@rx ",
        "!@pm ",
        "@detectSQLi",
        "id:",
        "1",
        "-",
        ",",
        "phase:",
        "chain",
        "t:",
        "none",
        "setvar:",
        "tx.a=+1",
        "ctl:",
        "ruleRemoveTargetById=1;ARGS:x",
        "msg:'",
        "#",
        "*",
        "é",
        "\u{feff}",
        "=",
        ";",
        "%{",
        "}",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(PIECES).prop_map(str::to_owned),
                any::<char>().prop_map(String::from),
            ],
            0..60,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn parse_returns_ok_or_a_located_error(t in text()) {
            let files = [("/rules/x.conf", "SecMarker X"), ("/rules/main.conf", "Include x.conf")];
            if let Err(e) = parse_map(&files, &t) {
                prop_assert!(e.location.line >= 1 && e.location.column >= 1);
                prop_assert!(!e.message.is_empty());
            }
        }
    }
}
