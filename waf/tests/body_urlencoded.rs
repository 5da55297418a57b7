//! `parse_urlencoded` and `parse_cookies` against ModSecurity v3.0.9's behaviour; each expected
//! value was checked against libmodsecurity 3.0.9 (Debian 3.0.9-1+deb12u2) through its debug log.

use portcullis_waf::body::{parse_cookies, parse_urlencoded, parse_urlencoded_outcome, Pair};
use proptest::prelude::*;

fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn urlencoded(input: &str) -> (Vec<Pair>, bool) {
    let mut out = Vec::new();
    let invalid = parse_urlencoded(input.as_bytes(), b'&', usize::MAX, &mut out);
    (out, invalid)
}

fn cookies(header: &str) -> Vec<Pair> {
    let mut out = Vec::new();
    parse_cookies(header.as_bytes(), &mut out);
    out
}

#[test]
fn empty_pieces_are_empty_arguments_but_a_trailing_separator_adds_none() {
    // libmodsecurity 3.0.9: `/?a=1&&b=%4&c&=x&` gives ARGS_GET a=1, ""="", b="%4", c="", ""="x".
    let (out, invalid) = urlencoded("a=1&&b=%4&c&=x&");
    assert_eq!(
        out,
        pairs(&[("a", "1"), ("", ""), ("b", "%4"), ("c", ""), ("", "x")])
    );
    assert!(invalid, "`%4` is an invalid encoding (URLENCODED_ERROR=1)");
}

#[test]
fn plus_is_space_and_percent_decoding_is_non_strict() {
    // libmodsecurity 3.0.9: `a+b=%41%zz+%` gives ARGS_GET:`a b` = `A%zz %`.
    let (out, invalid) = urlencoded("a+b=%41%zz+%");
    assert_eq!(out, pairs(&[("a b", "A%zz %")]));
    assert!(invalid);
}

#[test]
fn value_keeps_later_equal_signs_and_valid_input_is_not_an_error() {
    let (out, invalid) = urlencoded("q=a=b%3d&x=%2B");
    assert_eq!(out, pairs(&[("q", "a=b="), ("x", "+")]));
    assert!(!invalid);
}

#[test]
fn empty_input_has_no_arguments() {
    assert_eq!(urlencoded(""), (vec![], false));
    // A lone separator is one empty piece followed by nothing (std::getline).
    assert_eq!(urlencoded("&"), (pairs(&[("", "")]), false));
}

#[test]
fn custom_separator_is_honoured() {
    let mut out = Vec::new();
    parse_urlencoded(b"a=1;b=2&c", b';', usize::MAX, &mut out);
    assert_eq!(out, pairs(&[("a", "1"), ("b", "2&c")]));
}

#[test]
fn pairs_over_the_limit_are_dropped_and_reported_but_still_checked_for_bad_encoding() {
    let mut out = Vec::new();
    let outcome = parse_urlencoded_outcome(b"a=1&b=2&c=%zz", b'&', 2, &mut out);
    assert_eq!(out, pairs(&[("a", "1"), ("b", "2")]));
    assert!(outcome.truncated);
    assert!(outcome.invalid_encoding);
    let mut out = Vec::new();
    let outcome = parse_urlencoded_outcome(b"a=1&b=2", b'&', 2, &mut out);
    assert!(!outcome.truncated);
}

#[test]
fn cookies_split_on_semicolons_left_trim_names_and_keep_values() {
    // libmodsecurity 3.0.9: ` a=b=c; ;  =z; d ;e= f ; ` gives a=`b=c`, `d `=``, e=` f `.
    assert_eq!(
        cookies(" a=b=c; ;  =z; d ;e= f ; "),
        pairs(&[("a", "b=c"), ("d ", ""), ("e", " f ")])
    );
}

#[test]
fn only_the_last_cookie_is_right_trimmed() {
    // libmodsecurity 3.0.9: `a=1 ;b=2 ` gives a=`1 `, b=`2`.
    assert_eq!(cookies("a=1 ;b=2 "), pairs(&[("a", "1 "), ("b", "2")]));
}

#[test]
fn cookie_trim_uses_c_isspace_and_does_not_url_decode() {
    // libmodsecurity 3.0.9: "\ta=1;\x0bb" gives a=1, b=``.
    assert_eq!(cookies("\ta=1;\x0bb"), pairs(&[("a", "1"), ("b", "")]));
    assert_eq!(cookies("s=%41+b"), pairs(&[("s", "%41+b")]));
    assert_eq!(cookies(""), vec![]);
    assert_eq!(cookies(";;"), vec![]);
}

proptest! {
    #[test]
    fn urlencoded_output_is_bounded_by_input_and_limit(input in proptest::collection::vec(any::<u8>(), 0..512), limit in 0usize..8) {
        let mut out = Vec::new();
        parse_urlencoded_outcome(&input, b'&', limit, &mut out);
        prop_assert!(out.len() <= limit);
        let bytes: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
        prop_assert!(bytes <= input.len());
    }

    #[test]
    fn cookies_output_is_bounded_by_input(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = Vec::new();
        parse_cookies(&input, &mut out);
        let bytes: usize = out.iter().map(|(n, v)| n.len() + v.len()).sum();
        prop_assert!(bytes <= input.len());
        prop_assert!(out.len() <= input.iter().filter(|&&b| b == b';').count() + 1);
        prop_assert!(out.iter().all(|(name, _)| !name.is_empty()));
    }
}
