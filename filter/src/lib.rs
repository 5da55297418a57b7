//! portcullis: a proxy-wasm filter for Istio/Envoy ingress gateways.
//!
//! The decision engine ([`config`] → [`engine::Plan`] → [`engine::Decision`]) is plain Rust
//! with no proxy-wasm calls; it compiles and is tested natively. The proxy-wasm glue
//! (`glue`, built only for wasm32) is a thin shell: headers and properties in, an action out.

pub mod authz;
pub mod check;
pub mod clientip;
pub mod config;
pub mod connection;
pub mod engine;
pub mod error;
pub mod iplist;
pub mod lists;
pub mod metrics;
pub mod outcome;
pub mod path;
pub mod request;
pub mod uri;
pub mod waf;
pub mod wire;

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod host;
