//! What a VM is started with: Envoy's `PluginConfig` + `VmConfig` ([`VmConfig`]), the
//! fail strategy, and the part of it the imports read ([`VmSettings`]).

use std::time::{Duration, SystemTime};

use crate::types::{LogLevel, Status};

/// What Envoy does with streams once the VM has failed (`failStrategy`).
///
/// ```
/// use portcullis_harness::FailStrategy;
/// assert_eq!(FailStrategy::default(), FailStrategy::FailClose);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailStrategy {
    /// Reply 503 (Envoy's default, `FAIL_CLOSE`).
    #[default]
    FailClose,
    /// Bypass the filter (`FAIL_OPEN`).
    FailOpen,
}

/// How one VM is configured (Envoy's `PluginConfig` + `VmConfig`).
///
/// ```
/// use portcullis_harness::VmConfig;
/// let cfg = VmConfig { plugin_configuration: br#"{"k":1}"#.to_vec(), ..Default::default() };
/// assert_eq!(cfg.root_id, "");
/// ```
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Bytes `proxy_on_configure` reads (Istio: the JSON of `pluginConfig`).
    pub plugin_configuration: Vec<u8>,
    /// Bytes `proxy_on_vm_start` reads.
    pub vm_configuration: Vec<u8>,
    /// Environment for WASI `environ_get` (Istio `vmConfig.env`).
    pub env: Vec<(String, String)>,
    /// `plugin_name` property (Istio: `<namespace>.<WasmPlugin name>`).
    pub plugin_name: String,
    /// `plugin_root_id` property (Istio: `spec.pluginName`).
    pub root_id: String,
    /// `plugin_vm_id` property; also the namespace of shared queues.
    pub vm_id: String,
    /// What happens to streams after the VM traps.
    pub fail_strategy: FailStrategy,
    /// Linear-memory cap in bytes (Envoy/cpp-host: 1 GiB).
    pub memory_limit: usize,
    /// Wall-clock budget of one callback; past it the callback is interrupted (epochs).
    /// Envoy has no such limit: this only stops a runaway loop in a test, so the default
    /// (10 s) is far above any real callback — a CRS request that takes ~1 ms alone took
    /// over 1 s on a CI machine at load 12. Set it lower to catch slow callbacks.
    pub callback_deadline: Duration,
    /// Wall-clock budget of each start-up callback (the module's start functions,
    /// `proxy_on_vm_start`, `proxy_on_configure`). Envoy puts no limit on these, and a
    /// filter that compiles a rule set there (a WAF with the OWASP CRS: ~0.3 s natively,
    /// seconds on a loaded machine) would fail under the per-request deadline.
    pub start_deadline: Duration,
    /// Level `proxy_get_log_level` reports (all lines are captured regardless).
    pub log_level: LogLevel,
    /// VM-wide properties, raw bytes, by path: segments joined by `\0`
    /// ([`crate::property_path`]) or a dotted path where that is unambiguous
    /// ([`crate::check_dotted_path`]; `start_vm` refuses an ambiguous one).
    pub properties: Vec<(String, Vec<u8>)>,
    /// Virtual realtime clock at start; `None` = the real time now.
    pub start_time: Option<SystemTime>,
    /// `proxy_*` imports that fail from the start, answering this status without running
    /// (e.g. `("proxy_get_buffer_bytes", Status::InternalFailure)` to fail `on_configure`);
    /// change them later with [`Vm::fail_host_call`].
    pub host_call_faults: Vec<(String, Status)>,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            plugin_configuration: Vec::new(),
            vm_configuration: Vec::new(),
            env: Vec::new(),
            plugin_name: String::new(),
            root_id: String::new(),
            vm_id: String::new(),
            fail_strategy: FailStrategy::FailClose,
            memory_limit: 1 << 30,
            callback_deadline: Duration::from_secs(10),
            start_deadline: Duration::from_secs(60),
            log_level: LogLevel::Trace,
            properties: Vec::new(),
            start_time: None,
            host_call_faults: Vec::new(),
        }
    }
}

/// The parts of [`VmConfig`] the imports read.
#[derive(Debug, Clone)]
pub(crate) struct VmSettings {
    pub plugin_configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    pub env: Vec<(String, String)>,
    pub plugin_name: String,
    pub root_id: String,
    pub vm_id: String,
    pub log_level: LogLevel,
    pub properties: Vec<(String, Vec<u8>)>,
}
