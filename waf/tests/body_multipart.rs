//! `parse_multipart_outcome` against ModSecurity v3.0.9 (`multipart.cc`). Each expectation was
//! checked by hand against libmodsecurity 3.0.9 (Debian 3.0.9-1+deb12u2) through its debug log;
//! the CRS cases are bodies from CRS v3.3.4's REQUEST-922 regression tests.

use portcullis_waf::body::{
    parse_multipart, parse_multipart_outcome, FilePart, MultipartOutcome, Pair,
};
use proptest::prelude::*;

const CT: &[u8] = b"multipart/form-data; boundary=xyz";
const END: &[u8] = b"--xyz--\r\n";

fn part(name: &str, value: &str) -> Vec<u8> {
    format!("--xyz\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        .into_bytes()
}

fn body(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

fn parse(content_type: &[u8], body: &[u8]) -> MultipartOutcome {
    parse_multipart_outcome(content_type, body, 1000)
}

fn pairs(list: &[(&str, &str)]) -> Vec<Pair> {
    list.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn error(outcome: &MultipartOutcome) -> Option<&str> {
    outcome.error.as_ref().map(|e| e.message.as_str())
}

#[test]
fn fields_files_and_part_headers() {
    let b = body(&[
        &part("a", "line1\r\nline2"),
        b"--xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\ndata\r\n",
        &part("_charset_", "utf-8"),
        END,
    ]);
    let outcome = parse(CT, &b);
    assert_eq!(error(&outcome), None);
    let m = &outcome.multipart;
    // The line break inside a text field is lost (ModSecurity overwrites its reserve); file
    // sizes count it.
    assert_eq!(
        m.args,
        pairs(&[("a", "line1line2"), ("_charset_", "utf-8")])
    );
    assert_eq!(
        m.files,
        vec![FilePart {
            name: b"f".to_vec(),
            filename: b"x.txt".to_vec(),
            size: 10
        }]
    );
    assert_eq!(
        m.part_headers,
        pairs(&[
            ("a", "Content-Disposition: form-data; name=\"a\"\r\n"),
            (
                "f",
                "Content-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n"
            ),
            ("f", "Content-Type: text/plain\r\n"),
            (
                "_charset_",
                "Content-Disposition: form-data; name=\"_charset_\"\r\n"
            ),
        ])
    );
    assert_eq!(
        m.names,
        vec![b"a".to_vec(), b"f".to_vec(), b"_charset_".to_vec()]
    );
    assert_eq!(m.filenames, vec![b"x.txt".to_vec()]);
    assert!(!m.flags.strict_error());
    // 2: a boundary matched after the first one.
    assert_eq!(m.flags.unmatched_boundary_value, 2);
    assert!(!m.flags.unmatched_boundary);
    assert_eq!(parse_multipart(CT, &b, 100).map(|m| m.args.len()), Ok(2));
}

#[test]
fn lf_only_and_mixed_line_endings() {
    let lf = parse(
        CT,
        b"--xyz\nContent-Disposition: form-data; name=\"a\"\n\nv\n--xyz--\n",
    );
    assert_eq!(lf.multipart.args, pairs(&[("a", "v")]));
    assert!(lf.multipart.flags.lf_line && !lf.multipart.flags.crlf_lf_lines);
    assert!(lf.multipart.flags.strict_error());
    let mixed = parse(
        CT,
        b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\n\r\nv\r\n--xyz--\r\n",
    );
    assert!(mixed.multipart.flags.lf_line && mixed.multipart.flags.crlf_lf_lines);
    // A bare LF ending the data line before a boundary counts as an LF line too.
    let before = parse(
        CT,
        b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\n--xyz--\r\n",
    );
    assert!(before.multipart.flags.lf_line);
    assert_eq!(before.multipart.args, pairs(&[("a", "v")]));
}

#[test]
fn data_before_and_after() {
    let before = parse(CT, &body(&[b"junk\r\n", &part("a", "v"), END]));
    assert!(before.multipart.flags.data_before && before.multipart.flags.strict_error());
    assert_eq!(before.multipart.args, pairs(&[("a", "v")]));
    let after = parse(CT, &body(&[&part("a", "v"), END, b"junk"]));
    assert!(after.multipart.flags.data_after && after.multipart.flags.strict_error());
    assert_eq!(error(&after), None);
}

#[test]
fn header_folding_joins_lines_with_a_space() {
    let outcome = parse(
        CT,
        &body(&[
            b"--xyz\r\nX-A:   1 \r\nContent-Disposition: form-data; name=\"a\"\r\nX-B: 2\r\n\tmore\r\nX-C: 3\r\n\r\nv\r\n",
            END,
        ]),
    );
    let m = &outcome.multipart;
    assert!(m.flags.header_folding && !m.flags.invalid_header_folding);
    assert_eq!(
        m.part_headers,
        pairs(&[
            ("a", "X-A:   1 \r\n"),
            ("a", "Content-Disposition: form-data; name=\"a\"\r\n"),
            ("a", "X-B: 2 more"),
            ("a", "X-C: 3\r\n"),
        ])
    );
    let invalid = parse(
        CT,
        &body(&[
            b"--xyz\r\nContent-Disposition: form-data;\r\n\x0bname=\"a\"\r\n\r\nv\r\n",
            END,
        ]),
    );
    assert!(invalid.multipart.flags.invalid_header_folding);
    assert_eq!(invalid.multipart.args, pairs(&[("a", "v")]));
    assert_eq!(
        invalid.multipart.part_headers,
        pairs(&[("a", "Content-Disposition: form-data; name=\"a\"")])
    );
}

#[test]
fn content_type_flags() {
    let b = body(&[&part("a", "v"), END]);
    let missing = parse(b"multipart/form-data boundary=xyz", &b);
    assert!(missing.multipart.flags.missing_semicolon);
    let quoted = parse(b"multipart/form-data; boundary=\"xyz\"", &b);
    assert!(quoted.multipart.flags.boundary_quoted && quoted.multipart.flags.strict_error());
    let spaced = parse(b"multipart/form-data; boundary =xyz", &b);
    assert!(spaced.multipart.flags.boundary_whitespace);
    assert_eq!(spaced.multipart.args, pairs(&[("a", "v")]));
    // A space after `=` is part of the boundary: nothing matches.
    let value_space = parse(b"multipart/form-data; boundary= xyz", &b);
    assert_eq!(
        error(&value_space),
        Some("Multipart parsing error: Multipart: No boundaries found in payload.")
    );
    assert!(
        value_space.multipart.flags.unmatched_boundary && value_space.multipart.flags.data_before
    );
    // A parameter after the boundary is tolerated.
    let charset = parse(b"multipart/form-data; boundary=xyz; charset=utf-8", &b);
    assert_eq!(error(&charset), None);
    assert_eq!(charset.multipart.args, pairs(&[("a", "v")]));
}

#[test]
fn content_type_errors() {
    let b = body(&[&part("a", "v"), END]);
    let cases: [(&[u8], &str); 5] = [
        (
            b"multipart/form-data",
            "Multipart: Boundary not found in C-T.",
        ),
        (
            b"multipart/form-data; BOUNDARY=xyz",
            "Multipart: Invalid boundary in C-T (case sensitivity).",
        ),
        (
            b"multipart/form-data; boundary=;x",
            "Multipart: Invalid boundary in C-T (empty).",
        ),
        (
            b"multipart/form-data; boundary=a; boundary=b",
            "Multipart: Multiple boundary parameters in C-T.",
        ),
        (
            b"multipart/form-data; boundary=\"xyz",
            "Multipart: Invalid boundary in C-T (quote).",
        ),
    ];
    for (content_type, message) in cases {
        let outcome = parse(content_type, &b);
        assert_eq!(
            error(&outcome),
            Some(format!("Multipart parsing error: {message}").as_str())
        );
        assert!(outcome.multipart.flags.strict_error(), "{message}");
        assert!(outcome.multipart.args.is_empty());
    }
    // An empty boundary makes ModSecurity give up silently: no error, no arguments.
    let silent = parse(b"multipart/form-data; boundary=\"\"", &b);
    assert_eq!(error(&silent), None);
    assert!(silent.multipart.args.is_empty() && !silent.multipart.flags.strict_error());
}

#[test]
fn invalid_quoting() {
    let single = parse(
        CT,
        &body(&[
            b"--xyz\r\nContent-Disposition: form-data; name='a'\r\n\r\nv\r\n",
            END,
        ]),
    );
    assert!(single.multipart.flags.invalid_quoting);
    assert_eq!(single.multipart.args, pairs(&[("a", "v")]));
    // A single quote inside double quotes is fine.
    let inner = parse(CT, &body(&[&part("a'b", "v"), END]));
    assert!(!inner.multipart.flags.invalid_quoting);
}

#[test]
fn part_errors_keep_parsing_in_the_headers() {
    // No Content-Disposition: the part's blank line does not end its headers, so the next
    // boundary is "data contains boundary" (invalid part) and is read as a header line.
    let outcome = parse(
        CT,
        &body(&[
            &part("a", "v"),
            b"--xyz\r\nX-A: 1\r\n\r\nv\r\n",
            &part("b", "w"),
            END,
        ]),
    );
    assert_eq!(outcome.multipart.args, pairs(&[("a", "v"), ("b", "w")]));
    assert!(outcome.multipart.flags.invalid_part);
    assert_eq!(
        error(&outcome),
        Some("Multipart parsing error: Multipart: Invalid part header (colon missing): --xyz\r\n")
    );
    assert_eq!(
        outcome.multipart.part_headers,
        pairs(&[
            ("a", "Content-Disposition: form-data; name=\"a\"\r\n"),
            ("b", "X-A: 1\r\n"),
            ("b", "Content-Disposition: form-data; name=\"b\"\r\n"),
        ])
    );
}

#[test]
fn missing_final_boundary_adds_nothing_and_overrides_the_message() {
    let outcome = parse(CT, &body(&[&part("a", "v"), &part("b", "w")]));
    assert_eq!(
        error(&outcome),
        Some("Multipart parsing error: Multipart: Final boundary missing.")
    );
    assert!(outcome.multipart.args.is_empty());
    assert_eq!(outcome.multipart.names, vec![b"a".to_vec(), b"b".to_vec()]);
    // An unknown Content-Disposition parameter: the part never reaches its data.
    let unknown = parse(
        CT,
        &body(&[
            &part("a", "v"),
            b"--xyz\r\nContent-Disposition: form-data; name=\"b\"; foo=bar\r\n\r\nv\r\n",
            &part("c", "w"),
            END,
        ]),
    );
    assert_eq!(
        error(&unknown),
        Some("Multipart parsing error: Multipart: Final boundary missing.")
    );
    assert!(unknown.multipart.flags.invalid_part);
    // A boundary followed by junk stops the parse.
    let junk = parse(CT, &body(&[&part("a", "v"), b"--xyzjunk\r\n", END]));
    assert_eq!(
        error(&junk),
        Some("Multipart parsing error: Multipart: Final boundary missing.")
    );
    assert!(junk.multipart.flags.strict_error());
    assert_eq!(junk.multipart.flags.unmatched_boundary_value, 2);
    // The final boundary without a line break is found at the end.
    let bare = parse(CT, &body(&[&part("a", "v"), b"--xyz--"]));
    assert_eq!(error(&bare), None);
    assert_eq!(bare.multipart.args, pairs(&[("a", "v")]));
    assert_eq!(bare.multipart.flags.unmatched_boundary_value, 0);
}

#[test]
fn unmatched_boundary_and_empty_parts() {
    let unmatched = parse(CT, &body(&[&part("a", "v"), &part("b", "w\r\n--xyq"), END]));
    assert_eq!(
        unmatched.multipart.args,
        pairs(&[("a", "v"), ("b", "w--xyq")])
    );
    assert_eq!(unmatched.multipart.flags.unmatched_boundary_value, 2);
    let inside = parse(CT, &body(&[&part("a", "v --xyz x"), END]));
    assert_eq!(inside.multipart.args, pairs(&[("a", "v --xyz x")]));
    // A part with no data at all swallows the next boundary as its data.
    let empty = parse(
        CT,
        &body(&[
            b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n",
            &part("b", "w"),
            END,
        ]),
    );
    assert_eq!(
        empty.multipart.args,
        pairs(&[("a", "--xyzContent-Disposition: form-data; name=\"b\"w")])
    );
    assert!(empty.multipart.flags.invalid_part);
    let empty_value = parse(CT, &body(&[&part("a", ""), END]));
    assert_eq!(empty_value.multipart.args, pairs(&[("a", "")]));
    assert!(!empty_value.multipart.flags.invalid_part);
    let no_body = parse(CT, b"");
    assert_eq!(error(&no_body), None);
    assert_eq!(
        error(&parse(CT, b"hello\r\n")),
        Some("Multipart parsing error: Multipart: No boundaries found in payload.")
    );
}

#[test]
fn header_names_are_case_insensitive_and_duplicates_ignored() {
    // CRS 922100-1 sends "Content-disposition".
    let outcome = parse(
        b"multipart/form-data; boundary=boundary",
        b"--boundary\nContent-disposition: form-data; name=\"_charset_\"\n\nutf-7\n--boundary\nContent-disposition: form-data; name=\"positive\"\nContent-Type: text/plain\ncontent-type: x\n\nLet me see.\n--boundary--\n",
    );
    assert_eq!(error(&outcome), None);
    assert_eq!(
        outcome.multipart.args,
        pairs(&[("_charset_", "utf-7"), ("positive", "Let me see.")])
    );
    assert_eq!(
        outcome.multipart.part_headers,
        pairs(&[
            (
                "_charset_",
                "Content-disposition: form-data; name=\"_charset_\"\n"
            ),
            (
                "positive",
                "Content-disposition: form-data; name=\"positive\"\n"
            ),
            ("positive", "Content-Type: text/plain\n"),
        ])
    );
}

#[test]
fn crs_922120_content_transfer_encoding_is_a_part_header() {
    let outcome = parse(
        b"multipart/form-data; boundary=boundary",
        b"--boundary\r\nContent-Disposition: form-data; name=\"flavors\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nPineapple. Pizza.\r\n--boundary--\r\n",
    );
    assert_eq!(error(&outcome), None);
    assert!(outcome
        .multipart
        .part_headers
        .iter()
        .any(|(name, line)| name == b"flavors" && line == b"Content-Transfer-Encoding: 8bit\r\n"));
}

#[test]
fn files_with_an_empty_filename_are_fields_and_nul_bytes_in_headers_are_errors() {
    let outcome = parse(
        CT,
        &body(&[
            b"--xyz\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\n\r\nAB\r\n\r\nC\r\n",
            b"--xyz\r\nContent-Disposition: form-data; name=\"g\"; filename=\"\"\r\n\r\nxx\r\n",
            END,
        ]),
    );
    assert_eq!(
        outcome.multipart.files,
        vec![FilePart {
            name: b"f".to_vec(),
            filename: b"a.php".to_vec(),
            size: 7
        }]
    );
    assert_eq!(outcome.multipart.args, pairs(&[("g", "xx")]));
    let nul = parse(
        CT,
        &body(&[
            b"--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\nX: a\0b\r\n\r\nv\r\n",
            END,
        ]),
    );
    assert_eq!(
        error(&nul),
        Some("Multipart parsing error: Multipart: Nul byte in part headers.")
    );
    assert_eq!(nul.multipart.args, pairs(&[("a", "v")]));
}

#[test]
fn long_lines_are_cut_at_4096_bytes() {
    let long = "A".repeat(5000);
    let data = parse(CT, &body(&[&part("a", &format!("{long}\r\nB")), END]));
    assert_eq!(error(&data), None);
    assert_eq!(data.multipart.args, pairs(&[("a", &format!("{long}B"))]));
    let header = parse(
        CT,
        &body(&[
            format!(
                "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\nX: {}\r\n\r\nv\r\n",
                "h".repeat(5000)
            )
            .as_bytes(),
            END,
        ]),
    );
    assert_eq!(
        error(&header),
        Some("Multipart parsing error: Multipart: Final boundary missing.")
    );
    assert!(header.multipart.flags.strict_error());
}

#[test]
fn argument_limit_truncates() {
    let outcome = parse_multipart_outcome(
        CT,
        &body(&[&part("a", "1"), &part("b", "2"), &part("c", "3"), END]),
        2,
    );
    assert!(outcome.truncated);
    assert_eq!(outcome.multipart.args, pairs(&[("a", "1"), ("b", "2")]));
}

#[test]
fn blank_lines_reparsing_a_huge_folded_header_hit_the_work_limit() {
    let mut b = b"--xyz\r\nContent-Disposition: form-data; foo=1\r\n".to_vec();
    for _ in 0..2000 {
        b.extend_from_slice(b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
    }
    b.extend(std::iter::repeat_n(b'\n', 60_000));
    let outcome = parse(CT, &b);
    assert!(outcome.error.is_some());
    assert!(outcome.multipart.flags.strict_error());
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_panic_and_stay_bounded(
        body in proptest::collection::vec(prop_oneof![
            Just(b"--xyz".to_vec()), Just(b"\r\n".to_vec()), Just(b"\n".to_vec()),
            Just(b"Content-Disposition: form-data; name=\"a\"".to_vec()), Just(b"; filename=\"f\"".to_vec()),
            Just(b"--".to_vec()), Just(b" ".to_vec()), Just(b"'".to_vec()), Just(b"\"".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ], 0..40),
        limit in 0usize..5,
    ) {
        let body = body.concat();
        let outcome = parse_multipart_outcome(CT, &body, limit);
        let m = &outcome.multipart;
        prop_assert!(m.args.len() + m.files.len() <= limit);
        prop_assert!(m.names.len() <= limit && m.filenames.len() <= limit);
        let header_bytes: usize = m.part_headers.iter().map(|(_, l)| l.len()).sum();
        prop_assert!(header_bytes <= body.len() * 2 + 16);
    }

    #[test]
    fn arbitrary_content_types_never_panic(content_type in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut header = b"multipart/form-data".to_vec();
        header.extend_from_slice(&content_type);
        let _ = parse_multipart_outcome(&header, b"--x\r\n\r\n--x--\r\n", 10);
        let _ = parse_multipart_outcome(&content_type, b"--x\r\n", 10);
    }
}
