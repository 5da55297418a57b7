//! A proxy-wasm (ABI 0.2.1) host on wasmtime that runs any proxy-wasm filter the way
//! Envoy runs it, so filters can be tested and benchmarked without Envoy.
//!
//! Layout (mirroring proxy-wasm-rust-sdk from the host side): [`types`] the ABI's enums
//! and encodings, `hostcalls` one function per `env` import, `wasi` Envoy's WASI subset,
//! `context` per-context state and records, `vm` the driving API ([`Host`] → [`Vm`] →
//! [`HttpStream`], one file per job), `properties` Envoy's attributes, `shared` cross-VM
//! state. With the `replay` feature, `replay` reads traffic files and reports on them;
//! the `cli` feature builds the `portcullis` binary. The guide: `harness/README.md`.
//!
//! Driving a filter (not run as a doctest: it needs a built `filter.wasm`; the doctests
//! of [`Host`], [`Vm`] and [`HttpStream`] run the same calls on inline WAT modules):
//!
//! ```no_run
//! use portcullis_harness::{Host, VmConfig, StreamProps, Action};
//! let host = Host::from_file("filter.wasm").unwrap();
//! let mut vm = host.start_vm(VmConfig { plugin_configuration: b"{}".to_vec(), ..Default::default() }).unwrap();
//! let mut s = vm.http_stream(StreamProps::default().source("10.0.0.1:5000".parse().unwrap())).unwrap();
//! let action = s.request_headers(&[(":method", "GET"), (":path", "/admin")], true).unwrap();
//! let rec = s.finish().unwrap();
//! if action == Action::LocalReply { println!("{:?}", rec.local_reply); }
//! ```

#![deny(missing_docs)]

pub mod build;
mod context;
mod error;
mod hostcalls;
mod properties;
pub mod release;
#[cfg(feature = "replay")]
pub mod replay;
mod shared;
pub mod types;
mod vm;
mod wasi;

pub use context::{GrpcCallRecord, HttpCallRecord, LocalReply, LogEntry, StreamRecord};
pub use error::Error;
pub use properties::{check_dotted_path, property_path, StreamProps, TlsInfo};
pub use shared::Metric;
pub use types::{
    decode_pairs, encode_pairs, Action, HeaderPair, Headers, LogLevel, MetricType, Status,
};
pub use vm::{
    ClosedBy, FailStrategy, ForeignFunction, GrpcReply, Host, HostOptions, HttpReply, HttpStream,
    ModuleCache, TcpConnection, TcpRecord, Vm, VmConfig, CACHE_DIR_ENV,
};
