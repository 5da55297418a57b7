//! The Cookie header splitter: never panics; never more pairs than `;`-separated pieces;
//! a header without `;` is one pair (or none when empty).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::parse_cookies;

fuzz_target!(|header: &[u8]| {
    let mut out = Vec::new();
    parse_cookies(header, &mut out);
    let pieces = header.iter().filter(|&&b| b == b';').count() + 1;
    assert!(
        out.len() <= pieces,
        "{} pairs from {pieces} pieces",
        out.len()
    );
    for (name, value) in &out {
        assert!(name.len() + value.len() <= header.len());
    }
});
