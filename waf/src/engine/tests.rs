//! Engine behaviour with hand-written rules: one test per feature (chains, setvar arithmetic,
//! macros, capture, skip/skipAfter, ctl, DetectionOnly, exclusions, rule updates, anomaly
//! scoring), so the crate's own tests fail without shared data.

use super::*;
use crate::seclang::{self, RuleSource};

struct NoIncludes;

impl RuleSource for NoIncludes {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!("{path}: no files in these tests"))
    }
    fn glob(&self, _pattern: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, _from: &str, name: &str) -> String {
        name.to_string()
    }
}

fn ruleset(text: &str) -> Ruleset {
    let directives = seclang::parse(text, "test.conf", &NoIncludes)
        .unwrap_or_else(|e| panic!("rules do not parse: {e}"));
    Ruleset::compile(directives, &NoIncludes).unwrap_or_else(|e| panic!("{e}"))
}

fn compile_error(text: &str) -> CompileError {
    let directives = seclang::parse(text, "test.conf", &NoIncludes)
        .unwrap_or_else(|e| panic!("rules do not parse: {e}"));
    Ruleset::compile(directives, &NoIncludes).expect_err("compiles")
}

fn get(uri: &str) -> Request {
    Request {
        method: "GET".into(),
        uri: uri.as_bytes().to_vec(),
        protocol: "HTTP/1.1".into(),
        headers: vec![
            (b"Host".to_vec(), b"localhost".to_vec()),
            (b"User-Agent".to_vec(), b"test-agent".to_vec()),
        ],
        remote_addr: "10.0.0.1".into(),
        remote_port: 40000,
        server_addr: "10.0.0.2".into(),
        server_port: 80,
        unique_id: "u1".into(),
    }
}

fn post(uri: &str, content_type: &str, body: &[u8]) -> (Request, Vec<u8>) {
    let mut r = get(uri);
    r.method = "POST".into();
    r.headers
        .push((b"Content-Type".to_vec(), content_type.as_bytes().to_vec()));
    r.headers.push((
        b"Content-Length".to_vec(),
        body.len().to_string().into_bytes(),
    ));
    (r, body.to_vec())
}

fn ids(tx: &Transaction) -> Vec<u64> {
    tx.matched_rules().iter().map(|m| m.id).collect()
}

fn run(rs: &Ruleset, req: Request, body: &[u8]) -> Transaction {
    let mut tx = rs.transaction(req);
    tx.process_request_headers();
    tx.append_request_body(body);
    tx.process_request_body();
    tx.process_logging();
    tx
}

#[test]
fn setvar_runs_once_per_matching_value_and_macros_expand() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecAction "id:1,phase:1,nolog,pass,setvar:tx.score=0,setvar:tx.limit=5"
SecRule ARGS "@rx attack" "id:2,phase:1,pass,log,msg:'hit in %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}',setvar:tx.score=+3"
SecRule TX:score "@ge %{tx.limit}" "id:3,phase:1,deny,status:403,msg:'score %{tx.score}'"
"#,
    );
    let mut tx = rs.transaction(get("/?a=attack&b=attack1&c=safe"));
    let iv = tx.process_request_headers().expect("denied");
    assert_eq!(iv.rule_id, 3);
    assert_eq!(iv.status, 403);
    assert_eq!(iv.action, DisruptiveAction::Deny);
    assert_eq!(iv.msg.as_deref(), Some("score 6"));
    assert_eq!(tx.tx_var("score").as_deref(), Some("6"));
    let m = &tx.matched_rules()[1];
    assert_eq!(m.id, 2);
    assert_eq!(m.msg.as_deref(), Some("hit in ARGS:b"));
    assert_eq!(m.logdata.as_deref(), Some("attack1"));
    assert_eq!(m.var_name, b"ARGS:b");
    // One benign argument: score 0, no decision.
    let mut tx = rs.transaction(get("/?a=fine"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(tx.tx_var("score").as_deref(), Some("0"));
    assert_eq!(ids(&tx), vec![1]);
}

#[test]
fn setvar_subtract_delete_and_non_numbers() {
    let rs = ruleset(
        r#"
SecAction "id:1,phase:1,pass,setvar:tx.a=10,setvar:tx.a=-4,setvar:tx.b=x,setvar:tx.b=+2,setvar:tx.c=1,setvar:!tx.c,setvar:tx.%{tx.a}=named"
"#,
    );
    let tx = run(&rs, get("/"), b"");
    assert_eq!(tx.tx_var("a").as_deref(), Some("6"));
    assert_eq!(tx.tx_var("b").as_deref(), Some("2"));
    assert_eq!(tx.tx_var("c"), None);
    assert_eq!(tx.tx_var("6").as_deref(), Some("named"));
}

#[test]
fn chain_matches_only_when_every_link_does() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule REQUEST_METHOD "@streq GET" "id:10,phase:1,deny,status:401,chain"
    SecRule ARGS:x "@rx ^1$" "setvar:tx.links=+1"
"#,
    );
    let mut tx = rs.transaction(get("/?x=1"));
    assert_eq!(tx.process_request_headers().map(|i| i.status), Some(401));
    assert_eq!(tx.tx_var("links").as_deref(), Some("1"));
    let mut tx = rs.transaction(get("/?x=2"));
    assert_eq!(tx.process_request_headers(), None);
    assert!(ids(&tx).is_empty());
    let mut tx = rs.transaction(get("/?X=1"));
    assert!(
        tx.process_request_headers().is_some(),
        "ARGS:x is case-insensitive"
    );
}

#[test]
fn skip_after_and_skip_jump_over_rules() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule ARGS:go "@streq skip" "id:20,phase:1,pass,nolog,skipAfter:END"
SecRule ARGS:go "@rx ." "id:21,phase:1,deny"
SecMarker END
SecRule ARGS:one "@streq 1" "id:22,phase:1,pass,skip:1"
SecRule ARGS:one "@rx ." "id:23,phase:1,deny"
SecRule ARGS:one "@rx ." "id:24,phase:1,pass"
"#,
    );
    let mut tx = rs.transaction(get("/?go=skip&one=1"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(ids(&tx), vec![20, 22, 24]);
    let mut tx = rs.transaction(get("/?go=x"));
    assert_eq!(tx.process_request_headers().map(|i| i.rule_id), Some(21));
}

#[test]
fn skip_after_carries_into_the_next_phase_when_the_marker_is_behind() {
    let rs = ruleset(
        r#"
SecRequestBodyAccess On
SecMarker EARLY
SecAction "id:30,phase:1,pass,skipAfter:EARLY"
SecAction "id:31,phase:1,pass"
SecAction "id:32,phase:2,pass"
"#,
    );
    // The marker stands before the rule in phase 1, so skipping goes on until phase 2's copy.
    let tx = run(&rs, get("/"), b"");
    assert_eq!(ids(&tx), vec![30, 32]);
}

#[test]
fn missing_marker_and_bad_regex_are_compile_errors() {
    let e = compile_error(r#"SecAction "id:40,phase:1,pass,skipAfter:NOWHERE""#);
    assert_eq!(e.rule_id, Some(40));
    assert!(e.message.contains("NOWHERE"), "{e}");
    assert_eq!(e.location.line, 1);
    let e = compile_error(r#"SecRule ARGS "@rx (unclosed" "id:41,phase:1,pass""#);
    assert_eq!(e.rule_id, Some(41));
    assert!(e.to_string().starts_with("rule 41 at test.conf:1:"), "{e}");
}

#[test]
fn capture_fills_tx_groups() {
    let rs = ruleset(
        r#"
SecRule ARGS "@rx (\d+)-(\d+)" "id:50,phase:1,pass,capture,setvar:tx.first=%{tx.1},setvar:tx.whole=%{TX.0}"
"#,
    );
    let tx = run(&rs, get("/?r=12-34"), b"");
    assert_eq!(tx.tx_var("first").as_deref(), Some("12"));
    assert_eq!(tx.tx_var("whole").as_deref(), Some("12-34"));
    assert_eq!(tx.tx_var("2").as_deref(), Some("34"));
}

#[test]
fn exclusions_counts_and_regex_selectors() {
    let rs = ruleset(
        r#"
SecRule ARGS|!ARGS:safe "@rx evil" "id:60,phase:1,pass"
SecRule &ARGS "@eq 3" "id:61,phase:1,pass"
SecRule ARGS:/^pre_/ "@rx evil" "id:62,phase:1,pass"
SecRule &REQUEST_HEADERS:X-Missing "@eq 0" "id:63,phase:1,pass"
SecRule REQUEST_HEADERS:user-agent "@streq test-agent" "id:64,phase:1,pass"
"#,
    );
    let tx = run(&rs, get("/?safe=evil&PRE_x=evil&other=1"), b"");
    assert_eq!(ids(&tx), vec![60, 61, 62, 63, 64]);
    assert_eq!(tx.matched_rules()[0].var_name, b"ARGS:PRE_x");
    let tx = run(&rs, get("/?safe=evil"), b"");
    assert_eq!(ids(&tx), vec![63, 64]);
}

#[test]
fn ctl_removes_rules_and_targets_for_this_transaction_only() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule REQUEST_FILENAME "@streq /admin" "id:70,phase:1,pass,nolog,ctl:ruleRemoveById=72,ctl:ruleRemoveTargetById=73;ARGS:q"
SecRule REQUEST_FILENAME "@streq /admin" "id:71,phase:1,pass,nolog,ctl:ruleRemoveByTag=noisy"
SecRule ARGS "@rx x" "id:72,phase:1,deny"
SecRule ARGS "@rx x" "id:73,phase:1,deny"
SecRule ARGS "@rx x" "id:74,phase:1,deny,tag:'noisy'"
"#,
    );
    let mut tx = rs.transaction(get("/admin?q=x"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(ids(&tx), vec![70, 71]);
    let mut tx = rs.transaction(get("/admin?q=x&r=x"));
    assert_eq!(tx.process_request_headers().map(|i| i.rule_id), Some(73));
    let mut tx = rs.transaction(get("/other?q=x"));
    assert_eq!(tx.process_request_headers().map(|i| i.rule_id), Some(72));
}

#[test]
fn detection_only_records_without_intervening() {
    let rs = ruleset(
        r#"
SecRuleEngine DetectionOnly
SecRule ARGS "@rx evil" "id:80,phase:1,deny,status:403,msg:'evil'"
SecRule ARGS "@rx evil" "id:81,phase:1,deny,status:406"
"#,
    );
    let mut tx = rs.transaction(get("/?a=evil"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(ids(&tx), vec![80, 81], "rules keep running");
    let d = tx.detected_intervention().expect("would have denied");
    assert_eq!((d.rule_id, d.status), (80, 403));
    assert_eq!(tx.intervention(), None);
    // ctl:ruleEngine switches a transaction to detection.
    let rs = ruleset(
        r#"
SecRuleEngine On
SecAction "id:82,phase:1,pass,nolog,ctl:ruleEngine=DetectionOnly"
SecRule ARGS "@rx evil" "id:83,phase:1,deny"
"#,
    );
    let mut tx = rs.transaction(get("/?a=evil"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(tx.engine_mode(), EngineMode::DetectionOnly);
    assert_eq!(tx.detected_intervention().map(|d| d.rule_id), Some(83));
}

#[test]
fn default_action_block_status_and_transformations() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecDefaultAction "phase:2,log,deny,status:418,t:lowercase"
SecRequestBodyAccess On
SecRule ARGS "@streq evil" "id:90,phase:2,block"
SecRule ARGS "@streq EVIL" "id:91,phase:2,pass,t:none"
"#,
    );
    let (req, body) = post("/", "application/x-www-form-urlencoded", b"a=EVIL");
    let mut tx = rs.transaction(req);
    assert_eq!(tx.process_request_headers(), None);
    tx.append_request_body(&body);
    let iv = tx.process_request_body().expect("blocked");
    assert_eq!((iv.rule_id, iv.status, iv.phase), (90, 418, 2));
    assert_eq!(tx.matched_rules()[0].var_name, b"ARGS:a");
    assert_eq!(tx.matched_rules()[0].var_value, b"evil");
    // With pass as the default action, block does nothing (CRS anomaly mode).
    let rs = ruleset(
        r#"
SecRuleEngine On
SecDefaultAction "phase:1,log,pass"
SecRule ARGS "@streq evil" "id:92,phase:1,block"
"#,
    );
    let mut tx = rs.transaction(get("/?a=evil"));
    assert_eq!(tx.process_request_headers(), None);
    assert_eq!(ids(&tx), vec![92]);
}

#[test]
fn rule_removal_and_updates_apply_wherever_written() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule ARGS "@rx evil" "id:100,phase:1,deny"
SecRule ARGS "@rx evil" "id:101,phase:1,deny,tag:'attack-x'"
SecRule ARGS "@rx evil" "id:102,phase:1,deny,msg:'old'"
SecRule REQUEST_FILENAME "@rx evil" "id:103,phase:1,deny"
SecRuleRemoveById 100
SecRuleRemoveByTag attack-x
SecRuleUpdateActionById 102 "pass,msg:'new'"
SecRuleUpdateTargetById 103 "ARGS:a"
"#,
    );
    assert_eq!(rs.report().rule_count, 2);
    assert_eq!(rs.report().removed_rule_count, 2);
    let mut tx = rs.transaction(get("/?a=evil"));
    let iv = tx
        .process_request_headers()
        .expect("103 matches ARGS:a now");
    assert_eq!(iv.rule_id, 103);
    assert_eq!(tx.matched_rules()[0].msg.as_deref(), Some("new"));
}

#[test]
fn urlencoded_and_json_bodies_become_args() {
    let rs = ruleset(
        r#"
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "^application/json" "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule ARGS_POST:b "@streq 2" "id:110,phase:2,pass"
SecRule REQBODY_PROCESSOR "@streq URLENCODED" "id:111,phase:2,pass"
SecRule ARGS_POST:json.k "@streq v" "id:112,phase:2,pass"
SecRule REQBODY_ERROR "!@eq 0" "id:113,phase:2,pass"
SecRule REQUEST_BODY "@contains b=2" "id:114,phase:2,pass"
"#,
    );
    let (req, body) = post("/", "application/x-www-form-urlencoded", b"a=1&b=2");
    assert_eq!(ids(&run(&rs, req, &body)), vec![110, 111, 114]);
    let (req, body) = post("/", "application/json", br#"{"k":"v"}"#);
    assert_eq!(ids(&run(&rs, req, &body)), vec![200001, 112]);
    let (req, body) = post("/", "application/json", b"{not json");
    assert_eq!(ids(&run(&rs, req, &body)), vec![200001, 113]);
}

#[test]
fn tx_keys_named_literally_and_built_by_macros_are_the_same_variables() {
    let rs = ruleset(
        r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.foo=1,setvar:tx.name=FOO"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.%{tx.name}=+5"
SecRule TX:foo "@eq 6" "id:3,phase:1,pass"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.bar=x,setvar:!tx.foo"
SecRule TX:bar "@streq x" "id:5,phase:1,pass"
SecRule &TX:foo "@eq 0" "id:6,phase:1,pass"
SecAction "id:7,phase:1,pass,nolog,setvar:tx.%{tx.name}=7"
SecRule TX:FOO "@eq 7" "id:8,phase:1,pass"
SecRule TX:/^fo/ "@eq 7" "id:9,phase:1,pass"
SecAction "id:10,phase:1,pass,nolog,setvar:tx.%{tx.bar}y=%{tx.foo}"
SecRule TX:xy "@eq 7" "id:11,phase:1,pass"
"#,
    );
    let tx = run(&rs, get("/"), b"");
    assert_eq!(ids(&tx), vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert_eq!(tx.tx_var("foo").as_deref(), Some("7"));
    assert_eq!(tx.tx_var("bar").as_deref(), Some("x"));
    // The next transaction starts with no TX (its buffers are reused).
    let tx = run(&rs, get("/"), b"");
    assert_eq!(tx.tx_var("xy").as_deref(), Some("7"));
}

#[test]
fn rule_msg_is_the_msg_of_the_rule_being_evaluated() {
    let rs = ruleset(
        r#"
SecRule ARGS:a "@streq x" "id:50,phase:1,pass,nolog,msg:'Hello there',chain"
    SecRule ARGS:a "@streq x" "setvar:tx.m=%{rule.msg}"
SecAction "id:51,phase:1,pass,nolog,msg:'Other',setvar:tx.n=%{rule.msg}"
SecAction "id:52,phase:1,pass,nolog,setvar:tx.o=<%{rule.msg}>"
"#,
    );
    let tx = run(&rs, get("/?a=x"), b"");
    assert_eq!(ids(&tx), vec![50, 51, 52]);
    assert_eq!(tx.tx_var("m").as_deref(), Some("Hello there"));
    assert_eq!(tx.tx_var("n").as_deref(), Some("Other"));
    assert_eq!(tx.tx_var("o").as_deref(), Some("<>"));
}

#[test]
fn tx_regex_selectors_pick_named_and_macro_built_keys_in_tx_order() {
    // `pick_a` and `pick_c` are named in the rules (numbered when the plan is built);
    // `pick_dyn_b` is built by a macro at run time, between them.
    let rs = ruleset(
        r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.name=dyn_b"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.pick_a=1"
SecAction "id:3,phase:1,pass,nolog,setvar:tx.pick_%{tx.name}=2"
SecAction "id:4,phase:1,pass,nolog,setvar:tx.pick_c=3,setvar:tx.other=9"
SecRule TX:/^pick_/ "@ge 0" "id:5,phase:1,pass,msg:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule &TX:/^pick_/ "@eq 3" "id:6,phase:1,pass"
SecRule TX:/pick_.*b/ "@eq 2" "id:7,phase:1,pass,msg:'%{MATCHED_VAR_NAME}'"
SecRule TX:/^pick_/ "@lt 3" "id:8,phase:1,pass,msg:'%{MATCHED_VARS_NAMES}'"
"#,
    );
    let tx = run(&rs, get("/"), b"");
    assert_eq!(ids(&tx), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let msg = |id: u64| {
        tx.matched_rules()
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.msg.clone())
    };
    // The last value in TX order matched last.
    assert_eq!(msg(5).as_deref(), Some("TX:pick_c=3"));
    assert_eq!(msg(7).as_deref(), Some("TX:pick_dyn_b"));
    assert_eq!(
        msg(8).as_deref(),
        Some("TX:pick_a"),
        "the first of MATCHED_VARS_NAMES"
    );
}

#[test]
fn request_body_is_empty_under_the_xml_processor_as_in_modsecurity_2() {
    let rs = ruleset(
        r#"
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:200000,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:200001,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_BODY "@contains java.lang" "id:120,phase:2,pass"
SecRule XML:/* "@contains java.lang" "id:121,phase:2,pass"
SecRule REQUEST_BODY_LENGTH "@gt 0" "id:122,phase:2,pass"
SecRule &REQUEST_BODY "@eq 1" "id:123,phase:2,pass"
"#,
    );
    // An element name is markup: nothing sees it (CRS 944100-11).
    let (req, body) = post(
        "/",
        "application/xml",
        b"<a><java.lang.Runtime>v</java.lang.Runtime></a>",
    );
    assert_eq!(ids(&run(&rs, req, &body)), vec![200000, 122, 123]);
    // Text is data: XML:/* sees it.
    let (req, body) = post("/", "application/xml", b"<a>java.lang.Runtime</a>");
    assert_eq!(ids(&run(&rs, req, &body)), vec![200000, 121, 122, 123]);
    // Other bodies keep the raw REQUEST_BODY (ModSecurity v3).
    let (req, body) = post("/", "application/json", br#"{"java.lang.Runtime":1}"#);
    assert_eq!(ids(&run(&rs, req, &body)), vec![200001, 120, 122, 123]);
    let (req, body) = post("/", "text/plain", b"java.lang.Runtime");
    assert_eq!(ids(&run(&rs, req, &body)), vec![120, 122, 123]);
}

#[test]
fn request_variables_are_modsecuritys() {
    let rs = ruleset(
        r#"
SecRule REQUEST_FILENAME "@streq /a b/c.php" "id:120,phase:1,pass"
SecRule REQUEST_BASENAME "@streq c.php" "id:121,phase:1,pass"
SecRule QUERY_STRING "@streq x=%41" "id:122,phase:1,pass"
SecRule REQUEST_LINE "@streq GET /a%20b/c.php?x=%41 HTTP/1.1" "id:123,phase:1,pass"
SecRule ARGS_GET:x "@streq A" "id:124,phase:1,pass"
SecRule REQUEST_URI_RAW "@streq /a%20b/c.php?x=%41" "id:125,phase:1,pass"
SecRule REQUEST_URI "@streq /a b/c.php?x=A" "id:126,phase:1,pass"
SecRule REMOTE_ADDR "@streq 10.0.0.1" "id:127,phase:1,pass"
SecRule UNIQUE_ID "@streq u1" "id:128,phase:1,pass"
SecRule REQUEST_HEADERS_NAMES "@streq User-Agent" "id:129,phase:1,pass"
"#,
    );
    assert_eq!(
        ids(&run(&rs, get("/a%20b/c.php?x=%41"), b"")),
        (120..=129).collect::<Vec<_>>()
    );
}

#[test]
fn allow_stops_the_remaining_rules() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REMOTE_ADDR "@ipMatch 10.0.0.0/8" "id:130,phase:1,allow,nolog"
SecRule ARGS "@rx ." "id:131,phase:1,deny"
SecRule ARGS "@rx ." "id:132,phase:2,deny"
"#,
    );
    let tx = run(&rs, get("/?a=1"), b"");
    assert_eq!(tx.intervention(), None);
    assert_eq!(ids(&tx), vec![130]);
}

#[test]
fn mini_crs_anomaly_scoring() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRequestBodyAccess On
SecDefaultAction "phase:1,log,auditlog,pass"
SecDefaultAction "phase:2,log,auditlog,pass"
SecAction "id:901100,phase:1,nolog,pass,setvar:tx.critical_anomaly_score=5,setvar:tx.inbound_anomaly_score_threshold=5,setvar:tx.anomaly_score=0"
SecRule ARGS "@rx (?i)union\s+select" "id:942100,phase:2,block,capture,msg:'SQLi',logdata:'Matched Data: %{TX.0} found within %{MATCHED_VAR_NAME}: %{MATCHED_VAR}',setvar:'tx.anomaly_score=+%{tx.critical_anomaly_score}'"
SecRule TX:ANOMALY_SCORE "@ge %{tx.inbound_anomaly_score_threshold}" "id:949110,phase:2,deny,t:none,log,msg:'Inbound Anomaly Score Exceeded (Total Score: %{TX.ANOMALY_SCORE})',setvar:'tx.inbound_anomaly_score=%{tx.anomaly_score}'"
"#,
    );
    let mut tx = rs.transaction(get("/?q=1%20UNION%20SELECT%20x"));
    assert_eq!(tx.process_request_headers(), None);
    let iv = tx.process_request_body().expect("denied at phase 2");
    assert_eq!(iv.rule_id, 949110);
    assert_eq!(
        iv.msg.as_deref(),
        Some("Inbound Anomaly Score Exceeded (Total Score: 5)")
    );
    assert_eq!(tx.inbound_anomaly_score(), 5);
    assert_eq!(ids(&tx), vec![901100, 942100, 949110]);
    assert_eq!(
        tx.matched_rules()[1].logdata.as_deref(),
        Some("Matched Data: UNION SELECT found within ARGS:q: 1 UNION SELECT x")
    );
    let mut tx = rs.transaction(get("/?q=hello"));
    tx.process_request_headers();
    assert_eq!(tx.process_request_body(), None);
    assert_eq!(tx.inbound_anomaly_score(), 0);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Rules reading every kind of variable, through every body processor, with macros,
    /// captures and counts: whatever the request, evaluation must not panic.
    const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecRule REQUEST_HEADERS:Content-Type "@rx json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQUEST_HEADERS:Content-Type "@rx xml" "id:2,phase:1,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule ARGS|ARGS_NAMES|REQUEST_COOKIES|REQUEST_COOKIES_NAMES|REQUEST_HEADERS|REQUEST_HEADERS_NAMES|REQUEST_URI|REQUEST_URI_RAW|REQUEST_FILENAME|REQUEST_BASENAME|QUERY_STRING|REQUEST_LINE|REQUEST_METHOD|REQUEST_PROTOCOL "@rx (a+)(b*)" "id:10,phase:1,pass,capture,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,setvar:tx.s=+%{tx.1},setvar:'tx.%{tx.0}=%{MATCHED_VAR_NAME}'"
SecRule &ARGS "@gt 2" "id:11,phase:2,pass,setvar:tx.n=%{ARGS_COMBINED_SIZE}"
SecRule ARGS_POST|XML:/*|XML://@*|FILES|FILES_NAMES|MULTIPART_PART_HEADERS|REQUEST_BODY|REQBODY_ERROR_MSG "@rx x" "id:12,phase:2,pass,multiMatch,t:removeWhitespace,t:base64Decode"
SecRule MULTIPART_STRICT_ERROR|REQBODY_ERROR|FILES_COMBINED_SIZE|MATCHED_VARS "!@eq 0" "id:13,phase:2,pass"
SecRule TX:/^s/ "@ge %{tx.n}" "id:14,phase:2,pass,msg:'%{MATCHED_VAR} %{REQUEST_HEADERS.host} %{rule.id}'"
"#;

    fn header() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            prop_oneof![
                Just(b"Content-Type".to_vec()),
                Just(b"Cookie".to_vec()),
                Just(b"Host".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..12),
            ],
            prop_oneof![
                Just(b"application/json".to_vec()),
                Just(b"text/xml".to_vec()),
                Just(b"multipart/form-data; boundary=x".to_vec()),
                Just(b"application/x-www-form-urlencoded".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..40),
            ],
        )
    }

    proptest! {
        #[test]
        fn any_request_evaluates_without_panicking(
            method in "[A-Z]{0,8}",
            uri in proptest::collection::vec(any::<u8>(), 0..80),
            headers in proptest::collection::vec(header(), 0..6),
            body in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let rs = ruleset(RULES);
            let req = Request {
                method,
                uri,
                protocol: "HTTP/1.1".into(),
                headers,
                ..Request::default()
            };
            let mut tx = rs.transaction(req);
            tx.process_request_headers();
            tx.append_request_body(&body);
            tx.process_request_body();
            tx.process_response_headers(200, vec![(b"Content-Type".to_vec(), b"text/html".to_vec())]);
            tx.append_response_body(&body);
            tx.process_response_body();
            tx.process_logging();
            prop_assert!(tx.runtime_errors().is_empty(), "{:?}", tx.runtime_errors());
        }
    }
}

/// The literal prefilter is exact: it reads the TRANSFORMED value, ignores case, keeps
/// negation, and skips only values where the regex cannot match.
#[test]
fn literal_prefilter_skips_only_values_that_cannot_match() {
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule ARGS "@rx (?i)union\s+select" "id:1,phase:1,pass,t:none,t:urlDecodeUni,t:lowercase"
SecRule ARGS "!@rx ^abc" "id:2,phase:1,pass,t:none"
SecRule ARGS "@rx select$" "id:3,phase:1,pass,t:none,t:uppercase"
"#,
    );
    let link = &rs.plan.rules[0].links[0];
    assert!(link.prefilter.is_some(), "rule 1 has required literals");
    // Encoded twice: only the transformed value holds the literal.
    let tx = run(&rs, get("/?a=UNI%254FN%2520SeLeCt"), b"");
    assert_eq!(ids(&tx), vec![1, 2]);
    let tx = run(&rs, get("/?a=abcdef"), b"");
    assert_eq!(ids(&tx), Vec::<u64>::new());
    // `select` only after t:uppercase (SELECT): a case-sensitive regex whose literal is
    // checked ignoring case must still not match, and must not be skipped wrongly when it does.
    let tx = run(&rs, get("/?a=xselect"), b"");
    assert_eq!(ids(&tx), vec![2]);
    let rs = ruleset(
        r#"
SecRuleEngine On
SecRule ARGS "@rx SELECT$" "id:3,phase:1,pass,t:none,t:uppercase"
"#,
    );
    let tx = run(&rs, get("/?a=xselect"), b"");
    assert_eq!(ids(&tx), vec![3]);
}

/// A transaction reuses the buffers of one that ended (TX, matched rules, caches): nothing of
/// the earlier request may show in the next.
#[test]
fn a_transaction_starts_clean_after_another_on_the_same_ruleset() {
    let rs = ruleset(
        r#"SecRule ARGS "@rx attack" "id:1,phase:1,pass,capture,setvar:tx.hits=+1,setvar:'tx.seen_%{tx.0}=%{MATCHED_VAR_NAME}'"
SecRule &TX:hits "@eq 0" "id:2,phase:1,pass,setvar:tx.clean=1"
SecRule ARGS "@rx macro:%{tx.hits}" "id:3,phase:1,pass""#,
    );
    for _ in 0..3 {
        let mut tx = rs.transaction(get("/?a=attack&b=macro:1"));
        tx.process_request_headers();
        let ids: Vec<u64> = tx.matched_rules().iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(tx.tx_var("hits").as_deref(), Some("1"));
        assert_eq!(tx.tx_var("seen_attack").as_deref(), Some("ARGS:a"));
        assert_eq!(tx.tx_var("clean"), None);

        let mut tx = rs.transaction(get("/?b=macro:"));
        tx.process_request_headers();
        let ids: Vec<u64> = tx.matched_rules().iter().map(|m| m.id).collect();
        assert_eq!(ids, [2, 3]);
        assert_eq!(tx.tx_var("hits"), None);
        assert_eq!(tx.tx_var("seen_attack"), None);
        assert_eq!(tx.tx_var("clean").as_deref(), Some("1"));
    }
}

#[test]
fn literal_key_selectors_agree_with_their_regex() {
    use super::variables::KeyLiteral;
    let patterns = ["^header_name_", "^id$", "abc$", "^a.*", "^x-y"];
    let keys = [
        "",
        "__utm",
        "__UTMz",
        "x__utma",
        "header_name_host",
        "HEADER_NAME_",
        "a_header_name_",
        "rfi_parameter_x",
        "RFI_PARAMETER_",
        "id",
        "ID",
        "idx",
        "xid",
        "abc",
        "xABC",
        "abcd",
        "a",
        "ba",
        "x-y",
        "xx-yy",
        "\n",
        "a\nb",
    ];
    for p in patterns {
        let lit = KeyLiteral::parse(p).unwrap_or_else(|| panic!("{p} has a literal form"));
        let re = regex::bytes::RegexBuilder::new(p)
            .case_insensitive(true)
            .build()
            .unwrap();
        for k in keys {
            let sel = super::variables::Selector::Regex(re.clone(), Some(lit.clone()));
            assert_eq!(
                sel.selects(Some(k.as_bytes())),
                re.is_match(k.as_bytes()),
                "/{p}/ on {k:?}"
            );
        }
    }
    for p in [
        "S?DW[a-f0-9]+",
        "a|b",
        "^$",
        "",
        "a.b",
        "MULTIPART_*",
        "__utm",
        "x.*",
    ] {
        assert_eq!(KeyLiteral::parse(p), None, "{p}");
    }
}

fn unfolded(text: &str) -> Ruleset {
    let directives = seclang::parse(text, "test.conf", &NoIncludes)
        .unwrap_or_else(|e| panic!("rules do not parse: {e}"));
    Ruleset::compile_unfolded(directives, &NoIncludes).unwrap_or_else(|e| panic!("{e}"))
}

/// Everything a transaction recorded, to compare a folded plan with an unfolded one.
fn outcome(tx: &Transaction, vars: &[&str]) -> String {
    let vars: Vec<Option<String>> = vars.iter().map(|v| tx.tx_var(v)).collect();
    format!(
        "{:?} {:?} {:?} {vars:?}",
        tx.matched_rules(),
        tx.intervention(),
        tx.runtime_errors()
    )
}

#[test]
fn folded_prologue_replays_matches_skips_and_ctl_in_order() {
    // 1-3 are pure (TX only); 4 is transparent (reads the request, no TX, no flow); 5 and
    // 6 are pure after it; 7 reads ARGS and TX: it ends the prologue. 20 is decided from
    // frozen TX. A `ctl:ruleRemoveById` in a folded rule still removes 21 per request, and
    // a skip in a folded rule still skips 8.
    let text = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecAction "id:1,phase:1,pass,nolog,setvar:tx.level=2,setvar:tx.limit=5"
SecRule &TX:level "@eq 0" "id:2,phase:1,pass,nolog,setvar:tx.level=1"
SecRule TX:level "@ge 2" "id:3,phase:1,pass,log,msg:'level %{tx.level}',ctl:ruleRemoveById=21"
SecRule REQUEST_HEADERS:User-Agent "@rx ^(.*)$" "id:4,phase:1,pass,nolog,setvar:tx.agent=%{MATCHED_VAR}"
SecRule TX:limit "@lt 10" "id:5,phase:1,pass,nolog,skip:1"
SecAction "id:8,phase:1,pass,log,setvar:tx.level=9"
SecAction "id:6,phase:1,pass,nolog,setvar:tx.after=1"
SecRule ARGS|TX:level "@rx ^(\d+)$" "id:7,phase:1,pass,log,msg:'%{MATCHED_VAR_NAME}'"
SecRule TX:level "@lt 3" "id:20,phase:2,pass,log,skipAfter:END"
SecRule ARGS "@rx ." "id:21,phase:2,pass,log"
SecRule ARGS "@rx ." "id:22,phase:2,pass,log"
SecMarker END
SecRule ARGS "@rx ." "id:23,phase:2,pass,log"
"#;
    let folded = ruleset(text);
    let plain = unfolded(text);
    let report = folded.report();
    // 1, 2, 3, 5, 6 (8 is skipped: it never runs, its setvar writes nothing); then 20.
    assert_eq!(report.folded_prologue_rule_count, 5, "{report:?}");
    assert_eq!(report.folded_rule_count, 6, "{report:?}");
    let vars = ["level", "limit", "agent", "after"];
    for uri in ["/?a=1", "/?a=x&b=22", "/"] {
        let (a, b) = (run(&folded, get(uri), b""), run(&plain, get(uri), b""));
        assert_eq!(outcome(&a, &vars), outcome(&b, &vars), "{uri}");
    }
    let tx = run(&folded, get("/?a=1"), b"");
    assert_eq!(ids(&tx), vec![1, 3, 4, 5, 6, 7, 20, 23]);
    assert_eq!(tx.tx_var("agent").as_deref(), Some("test-agent"));
    assert_eq!(tx.matched_rules()[1].msg.as_deref(), Some("level 2"));
}

#[test]
fn folding_stops_where_a_transparent_write_could_be_listed() {
    // 2 writes TX:hdr_x from the request; `TX:/^hdr_/` in 4 lists TX keys in their order, so
    // 2 is not transparent: the prologue ends there and 3 runs per request.
    let text = r#"
SecAction "id:1,phase:1,pass,nolog,setvar:tx.hdr_a=1"
SecRule REQUEST_HEADERS:User-Agent "@rx ." "id:2,phase:1,pass,nolog,setvar:tx.hdr_x=1"
SecAction "id:3,phase:1,pass,nolog,setvar:tx.hdr_b=1"
SecRule TX:/^hdr_/ "@rx ." "id:4,phase:1,pass,log,msg:'%{MATCHED_VAR_NAME}'"
"#;
    let folded = ruleset(text);
    assert_eq!(folded.report().folded_prologue_rule_count, 1);
    let tx = run(&folded, get("/"), b"");
    let plain = run(&unfolded(text), get("/"), b"");
    assert_eq!(outcome(&tx, &[]), outcome(&plain, &[]));
    assert_eq!(
        tx.matched_rules().last().and_then(|m| m.msg.as_deref()),
        Some("TX:hdr_b")
    );
}
