//! The multipart parser: never panics on any Content-Type and body; at most `max_args`
//! fields; every file's size fits in the body; the strict-error flag is what its parts say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::{parse_multipart, parse_multipart_outcome};

// Input: byte 0 is the argument limit, then the Content-Type up to the first newline, then
// the body (seedable from the tests' bodies).
fuzz_target!(|data: &[u8]| {
    let Some((&max_args, rest)) = data.split_first() else {
        return;
    };
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let content_type = &rest[..split];
    let body = rest.get(split + 1..).unwrap_or_default();
    let max = usize::from(max_args);
    let outcome = parse_multipart_outcome(content_type, body, max);
    let m = &outcome.multipart;
    assert!(m.args.len() <= max, "{} args over {max}", m.args.len());
    for f in &m.files {
        assert!(f.size <= body.len() as u64);
    }
    let flags = m.flags;
    assert_eq!(
        flags.unmatched_boundary,
        flags.unmatched_boundary_value == 1
    );
    assert!(flags.unmatched_boundary_value <= 2);
    let strict = flags.processor_error
        || flags.boundary_quoted
        || flags.boundary_whitespace
        || flags.data_before
        || flags.data_after
        || flags.header_folding
        || flags.lf_line
        || flags.missing_semicolon
        || flags.invalid_quoting
        || flags.invalid_part
        || flags.invalid_header_folding
        || flags.file_limit_exceeded;
    assert_eq!(flags.strict_error(), strict);
    let wrapped = parse_multipart(content_type, body, max);
    assert_eq!(wrapped.is_err(), outcome.error.is_some());
});
