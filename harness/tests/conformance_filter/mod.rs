//! The conformance test filter (`test-filters/conformance`, proxy-wasm Rust SDK), built once
//! and compiled once per test binary; shared by the tests that drive it.

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_harness::build::build_wasm_crate;
use portcullis_harness::Host;

/// The built module.
fn wasm() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        build_wasm_crate(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test-filters/conformance"
        ))
        .expect("conformance filter builds")
    })
}

/// A host of its own per test (own metrics, shared data, queues), all sharing one
/// compiled module.
pub fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| {
        Host::from_file_cached(wasm(), &portcullis_harness::release::test_cache()).expect("loads")
    })
    .fork()
}
