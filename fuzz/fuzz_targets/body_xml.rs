//! The XML body parser: never panics; a parsed document has exactly one `XML:/*` value;
//! every error says why.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::parse_xml;

#[derive(Debug, Arbitrary)]
struct Input {
    max_depth: u16,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let depth = usize::from(input.max_depth % 300);
    match parse_xml(&input.body, depth) {
        Ok(doc) => assert_eq!(doc.texts.len(), 1, "XML:/* must be one value"),
        Err(e) => assert!(!e.message.is_empty()),
    }
});
