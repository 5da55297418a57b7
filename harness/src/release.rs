//! The one way tests and benchmarks find the release portcullis filter: `$PORTCULLIS_WASM`
//! when set, else what `scripts/build-filter` builds (cargo decides what is stale).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Error, Host, ModuleCache};

/// The variable naming a built `portcullis_filter.wasm` (`scripts/test` sets it).
pub const WASM_ENV: &str = "PORTCULLIS_WASM";

/// The workspace root (the parent of the harness crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// Where `scripts/build-filter` puts the release filter.
pub fn default_path() -> PathBuf {
    workspace_root().join("target/wasm32-unknown-unknown/wasm-release/portcullis_filter.wasm")
}

/// The release filter: `$PORTCULLIS_WASM` if set (it must be a file); else the path
/// `scripts/build-filter` prints (normally [`default_path`]) after building it, once per
/// process (cargo rebuilds only what changed).
///
/// # Panics
/// When there is no filter to test (never skips): `$PORTCULLIS_WASM` names no file, or
/// the build fails.
///
/// ```no_run
/// let wasm = portcullis_harness::release::release_filter();
/// assert!(wasm.is_file());
/// ```
pub fn release_filter() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(locate)
}

fn locate() -> PathBuf {
    if let Some(p) = std::env::var_os(WASM_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        // Cargo runs tests and benchmarks in their package's directory: a relative path, as
        // `scripts/build-filter` prints it, is also tried from the workspace root.
        let from_root = workspace_root().join(&p);
        return if p.is_file() {
            p
        } else if p.is_relative() && from_root.is_file() {
            from_root
        } else {
            panic!(
                "{WASM_ENV}={} is not a file (nor {})",
                p.display(),
                from_root.display()
            )
        };
    }
    let root = workspace_root();
    let default = default_path();
    let script = root.join("scripts/build-filter");
    assert!(
        script.is_file(),
        "{} does not exist to build the release filter (or set {WASM_ENV} to a built \
         portcullis_filter.wasm)",
        script.display()
    );
    eprintln!("building the release filter with {}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        // The script looks for the .wasm under the workspace's target/: a CARGO_TARGET_DIR
        // meant for the test build must not move the filter build elsewhere.
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}):\n{}\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".wasm"))
        .map(PathBuf::from);
    let path = printed.unwrap_or(default);
    let path = if path.is_relative() {
        root.join(path)
    } else {
        path
    };
    assert!(
        path.is_file(),
        "{} succeeded but {} does not exist",
        script.display(),
        path.display()
    );
    path
}

/// The module cache tests share (`target/module-cache` of the workspace): the release
/// filter takes minutes to compile with a debug-built Cranelift, once per test binary
/// without it.
pub fn test_cache() -> ModuleCache {
    ModuleCache::new(workspace_root().join("target/module-cache"))
}

/// [`release_filter`] compiled through [`test_cache`].
///
/// # Errors
/// When the module does not load (see [`Host::new`]).
pub fn release_host() -> Result<Host, Error> {
    Host::from_file_cached(release_filter(), &test_cache())
}
