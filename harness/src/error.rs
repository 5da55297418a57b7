//! Errors of the harness: loading, starting and driving a filter.

use std::path::PathBuf;
use std::time::Duration;

use crate::context::LogEntry;

/// Everything that can go wrong between a `.wasm` file and a finished stream.
///
/// ```
/// use portcullis_harness::Error;
/// let e = Error::MissingImport { module: "env".into(), name: "proxy_foo".into() };
/// assert_eq!(e.to_string(), "Failed to load Wasm module due to a missing import: env.proxy_foo");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The module imports something the host (like Envoy) does not provide.
    #[error("Failed to load Wasm module due to a missing import: {module}.{name}")]
    MissingImport {
        /// Import module (`env`, `wasi_snapshot_preview1`, …).
        module: String,
        /// Import name.
        name: String,
    },
    /// Reading the module file failed.
    #[error("failed to read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// wasmtime could not compile the module.
    #[error("failed to compile Wasm module: {0}")]
    Compile(String),
    /// An import exists but with another signature, or instantiation failed.
    #[error("failed to link Wasm module: {0}")]
    Link(String),
    /// No `proxy_abi_version_*` export.
    #[error("Missing or unknown Proxy-Wasm ABI version")]
    UnknownAbiVersion,
    /// `memory` or an allocator (`malloc` / `proxy_on_memory_allocate`) is missing.
    #[error("Wasm module is missing the required export `{0}`")]
    MissingExport(&'static str),
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false.
    #[error("{callback} returned false; filter log: {}", join(logs))]
    StartFailed {
        /// The callback that failed.
        callback: &'static str,
        /// The filter's log lines up to the failure.
        logs: Vec<LogEntry>,
    },
    /// The filter trapped (a Rust panic, `unreachable`, a forbidden hostcall, …). The VM is
    /// now failed.
    #[error("filter trapped in {callback}: {message}")]
    Trap {
        /// The callback that was running.
        callback: &'static str,
        /// The filter's panic message (its last Critical log line) or the trap.
        message: String,
        /// The filter's log lines of that context.
        logs: Vec<LogEntry>,
    },
    /// A callback ran past the VM's deadline and was interrupted. The VM is now failed.
    #[error("filter exceeded its {deadline:?} deadline in {callback}")]
    Deadline {
        /// The callback that was running.
        callback: &'static str,
        /// The configured per-callback deadline.
        deadline: Duration,
    },
    /// A [`VmConfig::properties`](crate::VmConfig::properties) path the host cannot read
    /// unambiguously.
    #[error("VmConfig::properties: {0}")]
    PropertyPath(String),
    /// Building a filter (a Rust crate for wasm32, an AssemblyScript project) failed.
    #[error("building the wasm filter failed: {0}")]
    Build(String),
}

fn join(logs: &[LogEntry]) -> String {
    if logs.is_empty() {
        return "(none)".to_string();
    }
    logs.iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}
