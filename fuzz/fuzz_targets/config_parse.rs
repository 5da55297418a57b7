//! The JSON config parser and compiler (`Plan::parse`): never panics, every error names a
//! JSON pointer, and compile(parse(print(config))) decides as the original. The config has
//! no printer of its own, so "print" is serde_json's (a `Value` re-serialized pretty):
//! whitespace, key escapes and number spellings change, the meaning must not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_filter::engine::Plan;
use portcullis_filter::request::StaticRequest;
use std::sync::OnceLock;

static PROBES: OnceLock<Vec<StaticRequest>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let original = match Plan::parse(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(
                e.pointer.is_empty() || e.pointer.starts_with('/'),
                "error pointer {:?} is not a JSON pointer",
                e.pointer
            );
            assert!(!e.message.is_empty(), "an error without a message");
            return;
        }
    };
    let value: serde_json::Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => panic!("Plan::parse accepted what serde_json::Value refuses: {e}"),
    };
    let printed = serde_json::to_vec_pretty(&value).expect("a Value always prints");
    let reprinted = match Plan::parse(&printed) {
        Ok(p) => p,
        Err(e) => panic!("the re-printed config no longer compiles: {e}"),
    };
    assert_eq!(original.warnings(), reprinted.warnings());
    assert_eq!(original.strip_headers(), reprinted.strip_headers());
    for req in PROBES.get_or_init(portcullis_fuzz::probe_requests) {
        assert_eq!(
            original.evaluate(req),
            reprinted.evaluate(req),
            "request {req:?}"
        );
    }
});
