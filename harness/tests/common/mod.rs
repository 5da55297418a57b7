//! Shared by the integration tests that need the release portcullis filter.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The release filter: `$PORTCULLIS_WASM` (scripts/test sets it), else built once per test
/// binary by `scripts/build-filter`.
pub fn release_filter() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        if let Some(p) = std::env::var_os("PORTCULLIS_WASM") {
            return PathBuf::from(p);
        }
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
        let out = Command::new(root.join("scripts/build-filter"))
            .current_dir(&root)
            .output()
            .expect("scripts/build-filter runs");
        assert!(
            out.status.success(),
            "scripts/build-filter failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().expect("build-filter prints the path");
        root.join(last.trim())
    })
}
