//! portcullis-waf: a SecLang engine that runs the OWASP Core Rule Set.
//!
//! Rule text is parsed ([`seclang`]) into an [`ast`], compiled once into an immutable
//! [`engine::Ruleset`], and evaluated per request by an [`engine::Transaction`]. Plain Rust with
//! no proxy-wasm calls: it compiles and is tested natively, and builds for wasm32.

pub mod ast;
pub mod body;
pub mod crs;
pub mod engine;
mod hex;
pub mod operator;
pub mod seclang;
pub mod transform;
