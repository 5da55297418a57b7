//! Hand-written vectors per operator (ModSecurity's secrules-language-tests and Coraza's
//! operator testdata were read as references for the cases worth pinning).

use super::*;
use std::collections::HashMap;

/// Data files from a map, paths joined to the rule file's directory.
struct MapSource(HashMap<String, String>);

impl RuleSource for MapSource {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file: {path}"))
    }
    fn glob(&self, _: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, from: &str, name: &str) -> String {
        if name.starts_with('/') {
            return name.to_string();
        }
        match from.rfind('/') {
            Some(i) => format!("{}/{name}", &from[..i]),
            None => name.to_string(),
        }
    }
}

fn no_files() -> MapSource {
    MapSource(HashMap::new())
}

fn op(name: OperatorName, argument: &str) -> CompiledOperator {
    CompiledOperator::compile(name, argument, &no_files(), "/rules/test.conf")
        .unwrap_or_else(|e| panic!("@{} {argument:?}: {e}", name.as_str()))
}

fn check(name: OperatorName, argument: &str, cases: &[(&[u8], bool)]) {
    let compiled = op(name, argument);
    for (input, expected) in cases {
        assert_eq!(
            compiled.matches(input, None),
            *expected,
            "@{} {argument:?} on {:?}",
            name.as_str(),
            String::from_utf8_lossy(input)
        );
        // The captures path decides the same.
        let mut captures = Captures::default();
        assert_eq!(compiled.matches(input, Some(&mut captures)), *expected);
    }
}

fn captured(compiled: &CompiledOperator, input: &[u8]) -> Vec<Option<String>> {
    let mut captures = Captures {
        groups: vec![Some(b"stale".to_vec())],
    };
    assert!(compiled.matches(input, Some(&mut captures)));
    captures
        .groups
        .into_iter()
        .map(|g| g.map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn names_round_trip_case_insensitively() {
    for (name, text) in NAMES {
        assert_eq!(OperatorName::from_name(text), Some(*name));
        assert_eq!(OperatorName::from_name(&text.to_uppercase()), Some(*name));
        assert_eq!(name.as_str(), *text);
    }
    assert_eq!(
        OperatorName::from_name("ipmatchf"),
        Some(OperatorName::IpMatchFromFile)
    );
    assert_eq!(OperatorName::from_name("inspectFile"), None);
    assert_eq!(OperatorName::from_name(""), None);
}

#[test]
fn rx_is_dotall_and_multiline_like_modsecurity() {
    check(
        OperatorName::Rx,
        "^b$",
        &[(b"a\nb\nc", true), (b"b\n", true), (b"ab", false)],
    );
    check(
        OperatorName::Rx,
        "a.c",
        &[(b"a\nc", true), (b"a\x00c", true), (b"a\xffc", true)],
    );
}

#[test]
fn rx_start_of_line_does_not_match_after_a_final_newline() {
    // PCRE2 multi-line `^` never matches at the end of the subject after its last newline.
    check(
        OperatorName::Rx,
        "^$",
        &[
            (b"", true),
            (b"\n", true),
            (b"x\n", false),
            (b"x\n\ny", true),
            (b"x", false),
        ],
    );
    check(OperatorName::Rx, "\n^", &[(b"a\n", false), (b"a\nb", true)]);
    check(OperatorName::Rx, "^a", &[(b"x\na\n", true), (b"a", true)]);
    let compiled = op(OperatorName::Rx, "^(.*)$");
    // DOTALL: `.*` takes the newline too, as in PCRE.
    assert_eq!(captured(&compiled, b"ab\n"), vec![s("ab\n"), s("ab\n")]);
    // The same in a pattern on the fallback engine.
    check(
        OperatorName::Rx,
        "(?<!z)^$",
        &[(b"x\n", false), (b"\n", true)],
    );
}

#[test]
fn rx_classes_are_ascii_as_pcre_without_ucp() {
    check(
        OperatorName::Rx,
        "^\\w+$",
        &[(b"abc_09", true), ("é".as_bytes(), false), (b"\xe9", false)],
    );
    check(
        OperatorName::Rx,
        "\\s",
        &[(b"\x0b", true), (b"\xa0", false), (b"x", false)],
    );
    check(
        OperatorName::Rx,
        "\\d",
        &[("٣".as_bytes(), false), (b"3", true)],
    );
    check(
        OperatorName::Rx,
        "^[^a]$",
        &[(b"\xff", true), (b"a", false)],
    );
    check(
        OperatorName::Rx,
        "\\bor\\b",
        &[(b"1 or 1", true), (b"color", false)],
    );
}

#[test]
fn rx_case_folding_is_ascii_only() {
    check(
        OperatorName::Rx,
        "(?i)select",
        &[(b"SeLeCt", true), (b"selec", false)],
    );
    // A negated class folds before it negates (CRS 941330's `(?i:...[^a-z0-9~_:' ]...)`).
    check(
        OperatorName::Rx,
        "(?i)^[^a-z]$",
        &[(b"A", false), (b"a", false), (b"1", true)],
    );
    check(
        OperatorName::Rx,
        "(?i)^[^\\W]$",
        &[(b"A", true), (b"-", false)],
    );
    // PCRE's C-locale tables do not fold Latin-1 bytes.
    check(
        OperatorName::Rx,
        "(?i)\\xe9",
        &[(b"\xe9", true), (b"\xc9", false)],
    );
}

#[test]
fn rx_pcre_syntax_that_rust_reads_differently() {
    check(
        OperatorName::Rx,
        "\\<script\\>",
        &[(b"<script>", true), (b"script", false)],
    );
    check(
        OperatorName::Rx,
        "a{,2}",
        &[(b"a{,2}", true), (b"aa", false)],
    );
    check(
        OperatorName::Rx,
        "\\v",
        &[(b"\n", true), (b"\r", true), (b"\x0b", true), (b"x", false)],
    );
    check(
        OperatorName::Rx,
        "[[a]",
        &[(b"[", true), (b"a", true), (b"b", false)],
    );
    check(
        OperatorName::Rx,
        "é+",
        &[("é".as_bytes(), true), (b"\xc3\xa9\xa9", true)],
    );
    check(
        OperatorName::Rx,
        "[\\x{e9}]",
        &[(b"\xe9", true), ("é".as_bytes(), false)],
    );
}

#[test]
fn rx_four_backslashes_are_one_literal_backslash_as_crs_3_meant() {
    // CRS 3.3.4's 920460 as written: a backslash escape not preceded by another backslash.
    check(
        OperatorName::Rx,
        r"(?:^|[^\\\\])\\\\[cdeghijklmpqwxyz123456789]",
        &[
            (br"file=\c", true),
            (br"cat /etc/pa\ssw\d", true),
            (br"file=\\c", false),
            (br"file=\\\c", false),
            (b"file=c", false),
        ],
    );
    // Two backslashes stay one literal backslash (930110's `[\\/]`: a backslash or a slash).
    check(
        OperatorName::Rx,
        r"(?:^|[\\/])\.\.(?:[\\/]|$)",
        &[(br"..\x", true), (b"../x", true), (b"..x", false)],
    );
    assert_eq!(crs_backslashes(r"a\\\\b"), r"a\\b");
    assert_eq!(crs_backslashes(r"a\\b\x5c"), r"a\\b\x5c");
}

#[test]
fn rx_empty_pattern_matches_everything_without_captures() {
    let compiled = op(OperatorName::Rx, "");
    assert!(compiled.matches(b"", None));
    assert!(compiled.matches(b"anything", None));
    assert_eq!(captured(&compiled, b"x"), Vec::<Option<String>>::new());
}

#[test]
fn rx_captures_groups_of_the_first_match() {
    let compiled = op(OperatorName::Rx, "(a+)(x)?(b)");
    assert_eq!(
        captured(&compiled, b"zzaab aaaxb"),
        vec![s("aab"), s("aa"), None, s("b")]
    );
    let mut captures = Captures {
        groups: vec![Some(b"stale".to_vec())],
    };
    assert!(!compiled.matches(b"none", Some(&mut captures)));
    assert!(
        captures.groups.is_empty(),
        "a failed match leaves no stale groups"
    );
}

#[test]
fn rx_captures_stop_at_tx9() {
    let compiled = op(OperatorName::Rx, "(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)");
    let groups = captured(&compiled, b"abcdefghijk");
    assert_eq!(groups.len(), 10);
    assert_eq!(groups[9], s("i"));
}

#[test]
fn rx_pcre_only_patterns_fall_back_with_the_same_answers() {
    let lookbehind = op(OperatorName::Rx, "(?<!a)b");
    assert!(lookbehind.uses_fallback_regex());
    assert!(lookbehind.matches(b"cb", None));
    assert!(!lookbehind.matches(b"ab", None));
    let backref = op(OperatorName::Rx, "([\"'])x\\1");
    assert!(backref.uses_fallback_regex());
    assert!(backref.matches(b"'x'", None));
    assert!(!backref.matches(b"'x\"", None));
    assert_eq!(captured(&backref, b"..\"x\".."), vec![s("\"x\""), s("\"")]);
    let lookahead = op(OperatorName::Rx, "<\\?(?!xml)");
    assert!(lookahead.matches(b"<?php", None));
    assert!(!lookahead.matches(b"<?xml", None));
    let possessive = op(OperatorName::Rx, "^a*+a");
    assert!(possessive.uses_fallback_regex());
    assert!(!possessive.matches(b"aaa", None));
    // Bytes >= 0x80 and non-UTF-8 input work in the fallback too.
    let bytes = op(OperatorName::Rx, "(?<!\\xff)\\xe9");
    assert!(bytes.matches(b"\x00\xe9", None));
    assert!(!bytes.matches(b"\xff\xe9", None));
    assert!(!op(OperatorName::Rx, "a+b").uses_fallback_regex());
}

#[test]
fn rx_fallback_backtracking_is_bounded() {
    // Catastrophic for a backtracker; the budget turns it into "no match", not a hang.
    let compiled = op(OperatorName::Rx, "^(a+)+\\1$");
    let input = [b'a'; 40].iter().copied().chain(*b"!").collect::<Vec<u8>>();
    assert!(!compiled.matches(&input, None));
}

#[test]
fn rx_bad_patterns_are_errors_that_say_where() {
    let e = CompiledOperator::compile(OperatorName::Rx, "a(b", &no_files(), "x.conf").unwrap_err();
    assert!(e.message.starts_with("@rx:"), "{e}");
    let e = CompiledOperator::compile(OperatorName::Rx, "[b", &no_files(), "x.conf").unwrap_err();
    assert!(e.message.contains("byte 0"), "{e}");
    // `regex`'s wording, kept when patterns moved to regex-automata's builder (the
    // configuration-mistake catalogue pins it).
    let e = CompiledOperator::compile(OperatorName::Rx, "(a", &no_files(), "x.conf").unwrap_err();
    assert_eq!(
        e.message,
        "@rx: regex: regex parse error:\n    (a\n    ^\nerror: unclosed group; fancy-regex: \
         Parsing error at position 2: Opening parenthesis without closing parenthesis"
    );
}

#[test]
fn rx_required_literals() {
    let compiled = op(OperatorName::Rx, "(?i)union\\s+select");
    let required = compiled.required_literals().expect("a literal prefix");
    assert_eq!(required.position, LiteralPosition::Prefix);
    assert_eq!(
        required.literals.len(),
        6,
        "union + one of the six \\s bytes"
    );
    assert!(required.literals.contains(&b"union ".to_vec()));
    let input = b"xx UnIoN\tselect".to_ascii_lowercase();
    assert!(compiled.matches(b"xx UnIoN\tselect", None));
    assert!(required
        .literals
        .iter()
        .any(|l| memmem::find(&input, l).is_some()));
    assert!(op(OperatorName::Rx, ".*").required_literals().is_none());
    assert!(op(OperatorName::Streq, "x").required_literals().is_none());
}

#[test]
fn rx_whole_line_shortcut_agrees_with_the_regex() {
    // `^.*$` skips the regex on inputs without a newline; `^(?:.*)$` is the same pattern
    // through the regex engine.
    let short = op(OperatorName::Rx, "^.*$");
    let regex = op(OperatorName::Rx, "^(?:.*)$");
    for input in [
        &b"content-type"[..],
        b"",
        b"a b\tc\r\x00\xff",
        b"abc\n",
        b"a\nb",
        b"\n",
    ] {
        let (mut a, mut b) = (Captures::default(), Captures::default());
        assert_eq!(
            short.matches(input, Some(&mut a)),
            regex.matches(input, Some(&mut b)),
            "{input:?}"
        );
        assert_eq!(a, b, "{input:?}");
        assert_eq!(short.matches(input, None), regex.matches(input, None));
    }
}

#[test]
fn rx_inner_literals_when_no_prefix_or_suffix_set() {
    // 941130's shape: a class of every byte first, then an alternation of words.
    let compiled = op(
        OperatorName::Rx,
        r"(?i)[\s\S](?:x(?:link:href|html|mlns)|data:text\/html|\@import|;base64)\b",
    );
    let required = compiled.required_literals().expect("inner literals");
    assert_eq!(required.position, LiteralPosition::Inner);
    let words: Vec<&[u8]> = required.literals.iter().map(Vec::as_slice).collect();
    assert_eq!(
        words,
        [
            &b";base64"[..],
            b"@import",
            b"data:text/html",
            b"xhtml",
            b"xlink:href",
            b"xmlns"
        ]
    );
    // 921200's shape: the one byte every match needs.
    let compiled = op(
        OperatorName::Rx,
        r"^[^:\(\)\&\|\!\<\>\~]*\)\s*(?:\((?:[^,\(\)\=\&\|\!\<\>\~]+[><~]?=|\s*[&!|]\s*(?:\)|\()?\s*)|\)\s*\(\s*[\&\|\!]\s*|[&!|]\s*\([^\(\)\=\&\|\!\<\>\~]+[><~]?=[^:\(\)\&\|\!\<\>\~]*)",
    );
    let required = compiled.required_literals().expect("inner literals");
    assert_eq!(required.position, LiteralPosition::Inner);
    assert!(required.literals.contains(&b")".to_vec()), "{required:?}");
    // An optional part, a class or an anchor requires nothing.
    assert!(op(OperatorName::Rx, r"[\s\S](?:abc)?x*")
        .required_literals()
        .is_none());
    assert!(op(OperatorName::Rx, r"^[a-z]+$")
        .required_literals()
        .is_none());
}

#[test]
fn pm_is_case_insensitive_and_captures_the_phrase() {
    check(
        OperatorName::Pm,
        "foo bar",
        &[
            (b"xFOOx", true),
            (b"BaR", true),
            (b"fo ba", false),
            (b"", false),
        ],
    );
    let compiled = op(OperatorName::Pm, "WebZIP wget");
    assert_eq!(captured(&compiled, b"xx wGeT yy"), vec![s("wget")]);
    assert_eq!(captured(&compiled, b"webzip"), vec![s("WebZIP")]);
    // A one-byte phrase at offset 0 (ModSecurity before 3.0.5 missed it).
    check(OperatorName::Pm, "a", &[(b"a", true)]);
}

#[test]
fn pm_argument_parsing() {
    assert_eq!(
        parse_pm_argument("\"a b\"").unwrap(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(parse_pm_argument("  a\tb  ").unwrap().len(), 2);
    assert_eq!(
        parse_pm_argument("|41 42|c").unwrap(),
        vec![b"ABc".to_vec()]
    );
    assert_eq!(parse_pm_argument("a\\;b").unwrap(), vec![b"a;b".to_vec()]);
    assert!(parse_pm_argument("a\\qb").unwrap_err().contains("escape"));
    assert!(parse_pm_argument("|4|").is_err());
    assert!(parse_pm_argument("|41").is_err());
    assert!(parse_pm_argument("").unwrap().is_empty());
    check(OperatorName::Pm, "", &[(b"", false), (b"x", false)]);
}

#[test]
fn pm_from_file_reads_through_the_rule_source() {
    let mut files = HashMap::new();
    files.insert(
        "/rules/one.data".to_string(),
        "# comment\n  # indented comment\n\n/etc/passwd\nBoot.ini\n".to_string(),
    );
    files.insert("/rules/two.data".to_string(), "cmd.exe".to_string());
    let source = MapSource(files);
    let compiled = CompiledOperator::compile(
        OperatorName::PmFromFile,
        "one.data two.data",
        &source,
        "/rules/REQUEST-930.conf",
    )
    .unwrap();
    assert_eq!(
        compiled.phrases().unwrap(),
        &[
            b"/etc/passwd".to_vec(),
            b"Boot.ini".to_vec(),
            b"cmd.exe".to_vec()
        ]
    );
    assert!(compiled.matches(b"/ETC/PASSWD", None));
    assert!(compiled.matches(b"c:\\boot.ini", None));
    assert!(compiled.matches(b"CMD.EXE", None));
    assert!(!compiled.matches(b"# comment", None));
    assert_eq!(
        captured(&compiled, b"x/etc/passwdx"),
        vec![s("/etc/passwd")]
    );
    let pmf = CompiledOperator::compile(OperatorName::Pmf, "two.data", &source, "/rules/x.conf");
    assert!(pmf.unwrap().matches(b"cmd.exe", None));
    let missing = CompiledOperator::compile(
        OperatorName::PmFromFile,
        "nope.data",
        &source,
        "/rules/x.conf",
    )
    .unwrap_err();
    assert!(
        missing.message.contains("/rules/nope.data") && missing.message.contains("no such file"),
        "{missing}"
    );
    assert!(
        CompiledOperator::compile(OperatorName::PmFromFile, " ", &source, "/rules/x.conf").is_err()
    );
}

#[test]
fn phrase_files_follow_getline_and_is_comment() {
    assert_eq!(
        parse_phrase_file("a\r\n  \n#x\nb"),
        vec![b"a\r".to_vec(), b"  ".to_vec(), b"b".to_vec()]
    );
    assert!(parse_phrase_file("").is_empty());
    assert_eq!(parse_phrase_file("a#b\n"), vec![b"a#b".to_vec()]);
}

#[test]
fn string_comparisons() {
    check(
        OperatorName::Streq,
        "abc",
        &[
            (b"abc", true),
            (b"ABC", false),
            (b"abcd", false),
            (b"", false),
        ],
    );
    check(OperatorName::Streq, "", &[(b"", true), (b"a", false)]);
    check(
        OperatorName::BeginsWith,
        "GET",
        &[(b"GET /", true), (b"get /", false), (b"GE", false)],
    );
    check(OperatorName::BeginsWith, "", &[(b"", true), (b"x", true)]);
    check(
        OperatorName::EndsWith,
        ".php",
        &[
            (b"index.php", true),
            (b"index.php5", false),
            (b"php", false),
        ],
    );
    check(OperatorName::EndsWith, "", &[(b"x", true)]);
    check(
        OperatorName::Contains,
        "script",
        &[(b"<script>", true), (b"SCRIPT", false), (b"scrip", false)],
    );
    check(OperatorName::Contains, "", &[(b"", true), (b"x", true)]);
    check(
        OperatorName::StrMatch,
        "WebZIP",
        &[(b"a WebZIP b", true), (b"webzip", false)],
    );
}

#[test]
fn within_finds_the_input_in_the_argument() {
    let methods = "GET HEAD POST OPTIONS";
    check(
        OperatorName::Within,
        methods,
        &[
            (b"GET", true),
            (b"POST", true),
            (b"PUT", false),
            (b"get", false),
            // A substring of the list matches too, as in ModSecurity.
            (b"T HE", true),
            (b"", true),
        ],
    );
    check(OperatorName::Within, "", &[(b"", true), (b"a", false)]);
}

#[test]
fn contains_word_uses_letters_only_as_word_characters() {
    check(
        OperatorName::ContainsWord,
        "select",
        &[
            (b"select", true),
            (b"select * from", true),
            (b"1 select", true),
            (b"a select b", true),
            (b"selection", false),
            (b"preselect", false),
            (b"_select_", true),
            (b"1select2", true),
            (b"selects select", true),
            (b"", false),
        ],
    );
    check(OperatorName::ContainsWord, "", &[(b"", true), (b"x", true)]);
}

#[test]
fn numbers_are_read_as_std_stoi() {
    assert_eq!(stoi(b"42"), 42);
    assert_eq!(stoi(b"  -7xyz"), -7);
    assert_eq!(stoi(b"+3"), 3);
    assert_eq!(stoi(b""), 0);
    assert_eq!(stoi(b"abc"), 0);
    assert_eq!(stoi(b"- 1"), 0);
    assert_eq!(stoi(b"2147483647"), i32::MAX);
    assert_eq!(stoi(b"-2147483648"), i32::MIN);
    assert_eq!(stoi(b"2147483648"), 0);
    assert_eq!(stoi(b"99999999999999999999999"), 0);
    assert_eq!(stoi(b"1.9"), 1);
}

#[test]
fn numbers_are_read_as_atoll_by_the_ordering_operators() {
    assert_eq!(atoll(b" 42abc"), 42);
    assert_eq!(atoll(b"-9"), -9);
    assert_eq!(atoll(b""), 0);
    assert_eq!(atoll(b"x1"), 0);
    assert_eq!(atoll(b"3000000000"), 3_000_000_000);
    assert_eq!(atoll(b"99999999999999999999999"), i64::MAX);
    assert_eq!(atoll(b"-99999999999999999999999"), i64::MIN);
    assert_eq!(atoll(b"12\x0034"), 12);
}

#[test]
fn numeric_comparisons() {
    // Beyond i32: `@gt` (atoll) still compares, `@eq` (stoi) reads 0.
    check(OperatorName::Gt, "2147483647", &[(b"3000000000", true)]);
    check(OperatorName::Eq, "0", &[(b"3000000000", true)]);
    check(
        OperatorName::Eq,
        "0",
        &[(b"0", true), (b"", true), (b"abc", true), (b"1", false)],
    );
    check(
        OperatorName::Eq,
        "5",
        &[(b"5", true), (b"05", true), (b"5 apples", true)],
    );
    check(
        OperatorName::Gt,
        "10",
        &[(b"11", true), (b"10", false), (b"-11", false)],
    );
    check(OperatorName::Ge, "10", &[(b"10", true), (b"9", false)]);
    check(
        OperatorName::Lt,
        "10",
        &[(b"9", true), (b"10", false), (b"", true)],
    );
    check(OperatorName::Le, "10", &[(b"10", true), (b"11", false)]);
    check(OperatorName::Gt, "", &[(b"1", true), (b"0", false)]);
}

#[test]
fn unconditional_and_never() {
    check(
        OperatorName::UnconditionalMatch,
        "",
        &[(b"", true), (b"x", true)],
    );
    check(OperatorName::NoMatch, "", &[(b"", false), (b"x", false)]);
    check(OperatorName::GeoLookup, "", &[(b"1.2.3.4", false)]);
    check(
        OperatorName::Rbl,
        "sbl-xbl.spamhaus.org",
        &[(b"1.2.3.4", false)],
    );
}

#[test]
fn validate_byte_range() {
    check(
        OperatorName::ValidateByteRange,
        "32-36,38-126",
        &[
            (b"abc", false),
            (b"a%b", true),
            (b"a\x00", true),
            (b"", false),
            (b"\x7f", true),
        ],
    );
    check(
        OperatorName::ValidateByteRange,
        "9,10,13,32-126,128-255",
        &[
            (b"a\tb\r\n", false),
            (b"\xff", false),
            (b"\x7f", true),
            (b"\x0b", true),
        ],
    );
    check(
        OperatorName::ValidateByteRange,
        "1-255",
        &[(b"x\x00", true), (b"x", false)],
    );
    for bad in ["1-256", "abc", "10-5", "1-", "300"] {
        let e = CompiledOperator::compile(OperatorName::ValidateByteRange, bad, &no_files(), "f")
            .unwrap_err();
        assert!(e.message.starts_with("@validateByteRange:"), "{bad}: {e}");
    }
}

#[test]
fn validate_url_encoding() {
    check(
        OperatorName::ValidateUrlEncoding,
        "",
        &[
            (b"", false),
            (b"a%20b", false),
            (b"%aF%00", false),
            (b"%", true),
            (b"a%2", true),
            (b"%2G", true),
            (b"%%41", true),
            (b"100%", true),
            (b"plain", false),
        ],
    );
}

#[test]
fn validate_utf8_encoding() {
    check(
        OperatorName::ValidateUtf8Encoding,
        "",
        &[
            (b"", false),
            (b"ascii", false),
            ("é€😀".as_bytes(), false),
            (b"\xc3", true),             // truncated
            (b"\xc3\x28", true),         // bad continuation
            (b"\x80", true),             // stray continuation byte
            (b"\xc0\xaf", true),         // overlong '/'
            (b"\xe0\x80\xaf", true),     // overlong
            (b"\xf0\x80\x80\xaf", true), // overlong
            (b"\xed\xa0\x80", true),     // surrogate U+D800
            (b"\xf5\x80\x80\x80", true), // lead above U+10FFFF
            (b"\xf8\x88\x80\x80\x80", true),
            (b"\xf4\x8f\xbf\xbf", false), // U+10FFFF
            // ModSecurity does not check the upper bound beyond the lead byte.
            (b"\xf4\x90\x80\x80", false),
        ],
    );
}

#[test]
fn ip_match() {
    check(
        OperatorName::IpMatch,
        "127.0.0.1,::1, 10.0.0.0/8 192.168.1.0/24,2001:db8::/32",
        &[
            (b"127.0.0.1", true),
            (b"127.0.0.2", false),
            (b"::1", true),
            (b"10.255.1.2", true),
            (b"192.168.1.77", true),
            (b"192.168.2.1", false),
            (b"2001:db8:1::5", true),
            (b"2001:db9::1", false),
            (b"not an ip", false),
            (b"", false),
            (b"\xff", false),
        ],
    );
    let e = CompiledOperator::compile(OperatorName::IpMatch, "1.2.3.4,nope", &no_files(), "f")
        .unwrap_err();
    assert!(e.message.contains("`nope`"), "{e}");
    assert!(
        CompiledOperator::compile(OperatorName::IpMatch, "10.0.0.0/33", &no_files(), "f").is_err()
    );
}

#[test]
fn ip_match_from_file() {
    let mut files = HashMap::new();
    files.insert(
        "/rules/ips.data".to_string(),
        "# partners\n10.1.0.0/16 # office\n\n  192.0.2.7 , 192.0.2.9 \n".to_string(),
    );
    files.insert("/rules/bad.data".to_string(), "1.2.3.4\nxyz\n".to_string());
    let source = MapSource(files);
    let compiled = CompiledOperator::compile(
        OperatorName::IpMatchFromFile,
        "ips.data",
        &source,
        "/rules/a",
    )
    .unwrap();
    assert!(compiled.matches(b"10.1.200.3", None));
    assert!(compiled.matches(b"192.0.2.7", None));
    assert!(!compiled.matches(b"192.0.2.8", None));
    assert!(compiled.matches(b"192.0.2.9", None));
    let e = CompiledOperator::compile(
        OperatorName::IpMatchFromFile,
        "bad.data",
        &source,
        "/rules/a",
    )
    .unwrap_err();
    assert!(
        e.message.contains("bad.data") && e.message.contains("line 2"),
        "{e}"
    );
}

#[test]
fn detect_sqli_captures_the_fingerprint() {
    let compiled = op(OperatorName::DetectSqli, "");
    assert!(!compiled.matches(b"hello world", None));
    assert!(!compiled.matches(b"", None));
    assert!(compiled.matches(b"1' OR '1'='1", None));
    assert_eq!(
        captured(&compiled, b"1 UNION SELECT 1,2--"),
        vec![s("1UE1c")]
    );
}

#[test]
fn detect_xss_captures_the_input() {
    let compiled = op(OperatorName::DetectXss, "");
    assert!(!compiled.matches(b"hello <b>world</b>", None));
    assert!(compiled.matches(b"<script>alert(1)</script>", None));
    assert_eq!(
        captured(&compiled, b"<img src=x onerror=alert(1)>"),
        vec![s("<img src=x onerror=alert(1)>")]
    );
}

#[test]
fn operators_without_captures_leave_them_empty() {
    let compiled = op(OperatorName::Contains, "a");
    let mut captures = Captures {
        groups: vec![Some(b"stale".to_vec())],
    };
    assert!(compiled.matches(b"a", Some(&mut captures)));
    assert!(captures.groups.is_empty());
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    fn all_operators() -> Vec<CompiledOperator> {
        let mut files = HashMap::new();
        files.insert("/r/p.data".to_string(), "abc\nxyz\n".to_string());
        files.insert("/r/i.data".to_string(), "10.0.0.0/8\n".to_string());
        let source = MapSource(files);
        NAMES
            .iter()
            .map(|(name, _)| {
                let argument = match name {
                    OperatorName::Rx => "(?i)(a|b)+\\d{2,}$",
                    OperatorName::PmFromFile | OperatorName::Pmf => "p.data",
                    OperatorName::IpMatchFromFile => "i.data",
                    OperatorName::IpMatch => "10.0.0.0/8,::1",
                    OperatorName::ValidateByteRange => "32-126",
                    _ => "abc",
                };
                CompiledOperator::compile(*name, argument, &source, "/r/x.conf").unwrap()
            })
            .chain([op(OperatorName::Rx, "(?<!x)([a-z])\\1")])
            .collect()
    }

    /// Patterns whose required literals sit inside the match (CRS 941130, 921200, 942360's
    /// shapes, and nested groups).
    const INNER_PATTERNS: &[&str] = &[
        r"(?i)[\s\S](?:x(?:link:href|html|mlns)|\@import|;base64)\b",
        r"^[^:\(\)]*\)\s*(?:\(\w+=|[&!|]\s*\(\s*)",
        r"(?i)^[\W\d]+\s*?(?:alter\s*(?:table|user)|(?:drop|create)\s+\w+)",
        r"(?:[a-z]+|\d)+(?:ab|c(?:d|ef)+)[^x]*",
        r"(?:\w+foo\w*|\d+bar\d*|[^a]+(?:baz|qux)+\s*)",
    ];

    proptest! {
        #[test]
        fn inner_literals_are_in_every_match(
            chunks in proptest::collection::vec(
                proptest::sample::select(vec![
                    "XLINK:HREF", "xhtml", "XmLnS", "@import", ";base64", " ", "(", ")", "&",
                    "!", "|", ":", "a", "x", "ml", "1", "-", "ALTER", "table", "Drop", "user",
                    "ab", "c", "d", "ef", "gh", "i", "\t", "foo", "bar", "baz", "qux",
                ]),
                0..12,
            )
        ) {
            let input = chunks.concat().into_bytes();
            for pattern in INNER_PATTERNS {
                let compiled = op(OperatorName::Rx, pattern);
                let required = compiled.required_literals().expect("inner literals");
                let mut captures = Captures::default();
                if !compiled.matches(&input, Some(&mut captures)) {
                    continue;
                }
                let whole = captures.groups.first().cloned().flatten().unwrap_or_default();
                let whole = whole.to_ascii_lowercase();
                prop_assert!(
                    required
                        .literals
                        .iter()
                        .any(|l| whole.windows(l.len()).any(|w| w == l.as_slice())),
                    "{pattern}: match {:?} holds none of {:?}",
                    String::from_utf8_lossy(&whole),
                    required.literals
                );
            }
        }

        #[test]
        fn matching_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            for compiled in all_operators() {
                let mut captures = Captures::default();
                let plain = compiled.matches(&input, None);
                prop_assert_eq!(plain, compiled.matches(&input, Some(&mut captures)));
                prop_assert!(captures.groups.len() <= 10);
            }
        }

        #[test]
        fn compiling_never_panics(argument in "\\PC{0,40}", raw in proptest::collection::vec(any::<u8>(), 0..40)) {
            let lossy = String::from_utf8_lossy(&raw).into_owned();
            for text in [argument.as_str(), lossy.as_str()] {
                for (name, _) in NAMES {
                    let _ = CompiledOperator::compile(*name, text, &no_files(), "/r/x.conf");
                }
            }
        }

        #[test]
        fn pcre_syntax_soup_never_panics(pattern in "[\\\\()\\[\\]{}?*+|^$.:=!<>'a-c0-9xkQEPR-]{0,24}") {
            if let Ok(compiled) = CompiledOperator::compile(OperatorName::Rx, &pattern, &no_files(), "f") {
                let mut captures = Captures::default();
                let _ = compiled.matches(b"abc<x>[]{}0123", Some(&mut captures));
            }
        }
    }
}

#[test]
fn compiled_operators_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<CompiledOperator>();
    shared::<Captures>();
}

mod xss_prefilter {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Without `<` and `=`, libinjection finds no XSS, whatever else the input holds:
        /// quotes, `>`, `/`, attribute names it blacklists, `javascript:` URLs, comments'
        /// insides.
        #[test]
        fn xss_needs_lt_or_eq(
            chunks in proptest::collection::vec(
                proptest::sample::select(vec![
                    "onload", "onerror", "style", "href", "src", "xmlns", "xlink:href", "datasrc",
                    "formaction", "javascript:", "vbscript:", "alert(1)", "script", "svg", "\"",
                    "'", "`", ">", "/", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\0", "!", "?",
                    "--", "[if", "xml", "import", "entity", "&#", "&lt;", "%3C", "x", "\u{ff1c}",
                    "doctype", "a", "1",
                ]),
                0..12,
            )
        ) {
            let input = chunks.concat().into_bytes();
            prop_assert!(!input.contains(&b'<') && !input.contains(&b'='));
            prop_assert!(!libinjectionrs::detect_xss(&input).is_injection());
        }

        /// With them, the operator is libinjection's answer.
        #[test]
        fn detect_xss_is_libinjection(
            chunks in proptest::collection::vec(
                proptest::sample::select(vec![
                    "<", "=", "onload", "style", "href", "javascript:", "script", "svg", "\"",
                    "'", "`", ">", "/", " ", "!--", "a", "x", "?", "[if",
                ]),
                0..12,
            )
        ) {
            let input = chunks.concat().into_bytes();
            let compiled = op(OperatorName::DetectXss, "");
            prop_assert_eq!(
                compiled.matches(&input, None),
                libinjectionrs::detect_xss(&input).is_injection()
            );
        }
    }

    #[test]
    fn the_prefilter_lets_attacks_through() {
        let compiled = op(OperatorName::DetectXss, "");
        for attack in [
            &b"<script>alert(1)</script>"[..],
            b"x\" onerror=alert(1)",
            b"' style=x:expression(alert(1))",
            b"<!--[if gte IE 4]>",
        ] {
            assert!(compiled.matches(attack, None), "{attack:?}");
        }
    }
}

mod within_search {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn within_is_a_substring_search(
            hay in proptest::collection::vec(proptest::sample::select(b"/ab-c .".to_vec()), 0..80),
            needle in proptest::collection::vec(proptest::sample::select(b"/ab-c .".to_vec()), 0..90),
        ) {
            let compiled = CompiledOperator::compile(
                OperatorName::Within,
                std::str::from_utf8(&hay).unwrap(),
                &MapSource(HashMap::new()),
                "/r/x.conf",
            )
            .unwrap();
            let expected = needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle.as_slice());
            prop_assert_eq!(compiled.matches(&needle, None), expected);
        }
    }
}
