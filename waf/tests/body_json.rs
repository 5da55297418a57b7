//! `parse_json` against ModSecurity v3.0.9 (yajl 2.1): each expected value was checked by hand
//! against libmodsecurity 3.0.9 (Debian 3.0.9-1+deb12u2) through its debug log ("Adding request
//! argument (JSON)") and `REQBODY_ERROR_MSG`.

use portcullis_waf::body::{parse_json, Pair};
use proptest::prelude::*;

fn json(body: &[u8]) -> (Vec<Pair>, Option<String>) {
    json_limited(body, 10_000, usize::MAX)
}

fn json_limited(body: &[u8], depth: usize, args: usize) -> (Vec<Pair>, Option<String>) {
    let mut out = Vec::new();
    let error = parse_json(body, depth, args, &mut out)
        .err()
        .map(|e| e.message);
    (out, error)
}

fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn parse_error(reason: &str) -> Option<String> {
    Some(format!("JSON parsing error: parse error: {reason}\n"))
}

fn lexical_error(reason: &str) -> Option<String> {
    Some(format!("JSON parsing error: lexical error: {reason}\n"))
}

#[test]
fn objects_arrays_and_scalars_are_named_as_modsecurity_names_them() {
    let (out, error) = json(
        br#"{"a":1,"b":{"c":[1,"x",true,null,{"d":2.50e1}],"e":[]},"f":{},"a":"dup","":"emp","u":"\u00e9\n"}"#,
    );
    assert_eq!(error, None);
    assert_eq!(
        out,
        pairs(&[
            ("json.a", "1"),
            ("json.b.c.array_0", "1"),
            ("json.b.c.array_1", "x"),
            ("json.b.c.array_2", "true"),
            ("json.b.c.array_3", ""),
            ("json.b.c.array_4.d", "2.50e1"),
            ("json.a", "dup"),
            ("json.empty-key", "emp"),
            ("json.u", "é\n"),
        ])
    );
}

#[test]
fn array_indexes_count_every_element_including_containers() {
    let (out, error) = json(br#"[1,[2,3],{"k":"v"},[[]],7]"#);
    assert_eq!(error, None);
    assert_eq!(
        out,
        pairs(&[
            ("json.array_0", "1"),
            ("json.array_1.array_0", "2"),
            ("json.array_1.array_1", "3"),
            ("json.array_2.k", "v"),
            ("json.array_4", "7"),
        ])
    );
    let (out, _) = json(br#"{"":{"":[1]},"a.b":2}"#);
    assert_eq!(
        out,
        pairs(&[("json.empty-key.empty-key.array_0", "1"), ("json.a.b", "2")])
    );
}

#[test]
fn top_level_scalars_are_named_json() {
    assert_eq!(json(br#""str""#), (pairs(&[("json", "str")]), None));
    assert_eq!(json(b"true"), (pairs(&[("json", "true")]), None));
    assert_eq!(json(b" -0.5E+3 \n"), (pairs(&[("json", "-0.5E+3")]), None));
    assert_eq!(
        json(b"123456789012345678901234567890"),
        (pairs(&[("json", "123456789012345678901234567890")]), None)
    );
}

#[test]
fn empty_body_is_no_error_but_white_space_is_premature_eof() {
    assert_eq!(json(b""), (vec![], None));
    assert_eq!(json(b"  "), (vec![], parse_error("premature EOF")));
    assert_eq!(json(br#"["ab"#), (vec![], parse_error("premature EOF")));
    assert_eq!(
        json(b"[1,2"),
        (
            pairs(&[("json.array_0", "1"), ("json.array_1", "2")]),
            parse_error("premature EOF")
        )
    );
}

#[test]
fn arguments_before_a_syntax_error_are_kept() {
    assert_eq!(
        json(br#"{"a":1,}"#),
        (
            pairs(&[("json.a", "1")]),
            parse_error("invalid object key (must be a string)")
        )
    );
    assert_eq!(
        json(br#"{"a":01}"#),
        (
            pairs(&[("json.a", "0")]),
            parse_error("after key and value, inside map, I expect ',' or '}'")
        )
    );
    assert_eq!(
        json(b"[1 2]"),
        (
            pairs(&[("json.array_0", "1")]),
            parse_error("after array element, I expect ',' or ']'")
        )
    );
    assert_eq!(
        json(b"[1,]"),
        (
            pairs(&[("json.array_0", "1")]),
            parse_error("unallowed token at this point in JSON text")
        )
    );
    assert_eq!(
        json(b"]").1,
        parse_error("unallowed token at this point in JSON text")
    );
    assert_eq!(
        json(br#"{"a" 1}"#).1,
        parse_error("object key and value must be separated by a colon (':')")
    );
    assert_eq!(
        json(b"[0x]"),
        (
            pairs(&[("json.array_0", "0")]),
            lexical_error("invalid char in json text.")
        )
    );
}

#[test]
fn trailing_text_is_garbage_except_an_unterminated_string() {
    assert_eq!(json(br#"{"a":1} x"#).1, parse_error("trailing garbage"));
    assert_eq!(
        json(br#"{"a":1}{"b":2}"#),
        (pairs(&[("json.a", "1")]), parse_error("trailing garbage"))
    );
    assert_eq!(json(b"{\"a\":1}\x00").1, parse_error("trailing garbage"));
    assert_eq!(json(br#"{"a":1} tr"#).1, parse_error("trailing garbage"));
    // yajl is still waiting for the string's end when the body ends: libmodsecurity accepts it.
    assert_eq!(json(br#"{"a":1} "x"#), (pairs(&[("json.a", "1")]), None));
}

#[test]
fn lexical_errors_have_yajls_messages() {
    assert_eq!(
        json(b"{\"a\":\"\xff\"}").1,
        lexical_error("invalid bytes in UTF8 string.")
    );
    assert_eq!(
        json(br#"{"a":-}"#).1,
        lexical_error("malformed number, a digit is required after the minus sign.")
    );
    assert_eq!(
        json(br#"{"a":1e}"#).1,
        lexical_error("malformed number, a digit is required after the exponent.")
    );
    assert_eq!(
        json(br#"{"a":1.}"#).1,
        lexical_error("malformed number, a digit is required after the decimal point.")
    );
    assert_eq!(
        json(b"{\"a\":\"x\ty\"}").1,
        lexical_error("invalid character inside string.")
    );
    assert_eq!(
        json(br#"{"a":/*c*/1}"#).1,
        lexical_error("probable comment found in input text, comments are not enabled.")
    );
    assert_eq!(
        json(br#"{"a":TRUE}"#).1,
        lexical_error("invalid char in json text.")
    );
    assert_eq!(
        json(br#"{"a":tru}"#).1,
        lexical_error("invalid string in json text.")
    );
    assert_eq!(
        json(br#"{"a":"\x"}"#).1,
        lexical_error("inside a string, '\\' occurs before a character which it may not.")
    );
    assert_eq!(
        json(br#""\u00""#).1,
        lexical_error("invalid (non-hex) character occurs after '\\u' inside string.")
    );
}

#[test]
fn yajl_string_rules_are_kept() {
    // \v and \f are white space; 0x7f is allowed; the UTF-8 check is structural only.
    assert_eq!(json(b"{\"a\":\x0b\x0c1}").0, pairs(&[("json.a", "1")]));
    assert_eq!(json(b"{\"a\":\"\x7f\"}").0, pairs(&[("json.a", "\x7f")]));
    assert_eq!(
        json(b"{\"a\":\"\xc0\x80\"}").0,
        vec![(b"json.a".to_vec(), b"\xc0\x80".to_vec())]
    );
    // A lone high surrogate is `?`; one followed by any \u escape is combined with it.
    assert_eq!(json(br#""\ud800abc""#).0, pairs(&[("json", "?abc")]));
    assert_eq!(
        json(br#""\ud800\u0041z""#).0,
        pairs(&[("json", "\u{10041}z")])
    );
    assert_eq!(
        json(br#""\udc00""#).0,
        vec![(b"json".to_vec(), b"\xed\xb0\x80".to_vec())]
    );
    assert_eq!(
        json(br#""a\u0000b""#).0,
        vec![(b"json".to_vec(), b"a\0b".to_vec())]
    );
    assert_eq!(
        json(br#""\/\b\f\n\r\t\"\\""#).0,
        pairs(&[("json", "/\x08\x0c\n\r\t\"\\")])
    );
    assert_eq!(json(br#"{"a\u0041":1}"#).0, pairs(&[("json.aA", "1")]));
}

#[test]
fn depth_limit_cancels_the_parse_when_a_container_goes_one_too_deep() {
    // SecRequestBodyJsonDepthLimit 3 in libmodsecurity 3.0.9.
    let depth_error = Some(
        "JSON parsing error: parse error: client cancelled parse via callback return value\n. Parsing depth limit exceeded"
            .to_string(),
    );
    assert_eq!(
        json_limited(b"[[[1]]]", 3, usize::MAX),
        (pairs(&[("json.array_0.array_0.array_0", "1")]), None)
    );
    assert_eq!(
        json_limited(b"[[[[1]]]]", 3, usize::MAX),
        (vec![], depth_error.clone())
    );
    assert_eq!(
        json_limited(br#"{"a":{"b":{"c":{}}}}"#, 3, usize::MAX),
        (vec![], depth_error)
    );
}

#[test]
fn argument_limit_cancels_the_parse() {
    // SecArgumentsLimit 3 in libmodsecurity 3.0.9: three added, then the parse is cancelled.
    assert_eq!(
        json_limited(br#"[1,2,3,4,5,{"a":1}]"#, 10, 3),
        (
            pairs(&[
                ("json.array_0", "1"),
                ("json.array_1", "2"),
                ("json.array_2", "3")
            ]),
            parse_error("client cancelled parse via callback return value")
        )
    );
    assert_eq!(json_limited(b"[1,2,3]", 10, 3).1, None);
}

#[test]
fn deep_nesting_is_bounded_without_recursion() {
    let deep = vec![b'['; 1_000_000];
    let (out, error) = json_limited(&deep, 10_000, usize::MAX);
    assert!(out.is_empty());
    assert!(error.is_some_and(|m| m.ends_with("Parsing depth limit exceeded")));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_output_is_bounded(body in proptest::collection::vec(any::<u8>(), 0..256), limit in 0usize..6) {
        let (out, _) = json_limited(&body, 4, limit);
        prop_assert!(out.len() <= limit);
    }

    #[test]
    fn json_like_text_never_panics(body in r#"[\[\]{}",:0-9a-z\\ .eE+-]{0,64}"#) {
        let (out, _) = json_limited(body.as_bytes(), 8, 1000);
        prop_assert!(out.iter().all(|(name, _)| name.starts_with(b"json")));
    }
}
