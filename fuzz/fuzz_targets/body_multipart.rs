//! The multipart parser: never panics on any Content-Type and body; at most `max_args`
//! fields; every file's size fits in the body; the strict-error flag is what its parts say.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::{parse_multipart, parse_multipart_outcome};

#[derive(Debug, Arbitrary)]
struct Input {
    boundary: Option<String>,
    content_type: Vec<u8>,
    max_args: u8,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    // Most inputs name a boundary that the body may use; some send any Content-Type.
    let content_type = match &input.boundary {
        Some(b) => format!("multipart/form-data; boundary={b}").into_bytes(),
        None => input.content_type.clone(),
    };
    let max = usize::from(input.max_args);
    let outcome = parse_multipart_outcome(&content_type, &input.body, max);
    let m = &outcome.multipart;
    assert!(m.args.len() <= max, "{} args over {max}", m.args.len());
    for f in &m.files {
        assert!(f.size <= input.body.len() as u64);
    }
    let flags = m.flags;
    assert_eq!(flags.unmatched_boundary, flags.unmatched_boundary_value == 1);
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
    let wrapped = parse_multipart(&content_type, &input.body, max);
    assert_eq!(wrapped.is_err(), outcome.error.is_some());
});
