//! The driving API: [`Host`] (engine + compiled module, once per filter), [`Vm`] (one
//! instance and its `Store`, started in Envoy's order) and [`HttpStream`] (one context
//! per request, fed phase by phase like Envoy's HTTP filter chain).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, Store, StoreLimitsBuilder, Trap, TypedFunc,
    WasmParams, WasmResults,
};

use crate::context::{
    CalloutData, GrpcCallRecord, HostState, HttpCallRecord, LocalReply, LogEntry, Paused,
    PendingReply, Phase, StreamRecord, StreamState,
};
use crate::error::Error;
use crate::properties::StreamProps;
use crate::shared::{Metric, Shared};
use crate::types::{Action, HeaderPair, Headers, LogLevel, Status};
use crate::{hostcalls, wasi};

/// Epoch ticks (plus one) in `d`: the store's deadline for a callback of that budget.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()) as u64 + 1
}

/// Epoch tick of the deadline clock.
const TICK: Duration = Duration::from_millis(5);

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
    pub callback_deadline: Duration,
    /// Wall-clock budget of each start-up callback (the module's start functions,
    /// `proxy_on_vm_start`, `proxy_on_configure`). Envoy puts no limit on these, and a
    /// filter that compiles a rule set there (a WAF with the OWASP CRS: ~0.3 s natively,
    /// seconds on a loaded machine) would fail under the per-request deadline.
    pub start_deadline: Duration,
    /// Level `proxy_get_log_level` reports (all lines are captured regardless).
    pub log_level: LogLevel,
    /// VM-wide properties by dotted path (e.g. `xds.node`, `node`), raw bytes.
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
            callback_deadline: Duration::from_secs(1),
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

/// A scripted answer to a `proxy_http_call`.
///
/// ```
/// use portcullis_harness::HttpReply;
/// let r = HttpReply::ok(200, b"{}".to_vec()).header("content-type", "application/json");
/// assert!(matches!(r, HttpReply::Response { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpReply {
    /// A response, delivered `delay` after the call on the virtual clock (0 = right after
    /// the callback that made the call returns).
    Response {
        /// Response headers, incl. `:status`.
        headers: Headers,
        /// Body.
        body: Vec<u8>,
        /// Trailers.
        trailers: Headers,
        /// Virtual delay.
        delay: Duration,
    },
    /// No answer: the call fails (0 headers) when its timeout elapses on the virtual clock.
    Timeout,
    /// Connection failure: the call fails (0 headers) right away.
    Reset,
}

impl HttpReply {
    /// A response with `:status` and a body, no delay.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// let r = HttpReply::ok(204, vec![]);
    /// # let _ = r;
    /// ```
    pub fn ok(status: u16, body: Vec<u8>) -> Self {
        HttpReply::Response {
            headers: vec![(":status".to_string(), status.to_string())],
            body,
            trailers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header to a `Response`.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// let r = HttpReply::ok(200, vec![]).header("x", "1");
    /// # let _ = r;
    /// ```
    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let HttpReply::Response { headers, .. } = &mut self {
            headers.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// Sets the virtual delay of a `Response`.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// # use std::time::Duration;
    /// let r = HttpReply::ok(200, vec![]).delayed(Duration::from_millis(30));
    /// # let _ = r;
    /// ```
    pub fn delayed(mut self, d: Duration) -> Self {
        if let HttpReply::Response { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

/// A scripted answer to a unary `proxy_grpc_call`.
///
/// ```
/// use portcullis_harness::GrpcReply;
/// let ok = GrpcReply::message(b"\x08\x01".to_vec());
/// let err = GrpcReply::status(7, "denied");
/// assert_ne!(ok, err);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcReply {
    /// Success: `proxy_on_grpc_receive` with the message.
    Message {
        /// Response message bytes.
        message: Vec<u8>,
        /// Virtual delay.
        delay: Duration,
    },
    /// Failure: `proxy_on_grpc_close` with the status (message via `proxy_get_status`).
    Status {
        /// gRPC status code.
        code: u32,
        /// Status message.
        message: String,
        /// Virtual delay.
        delay: Duration,
    },
    /// No answer: closes with DEADLINE_EXCEEDED (4) when the timeout elapses.
    Timeout,
}

impl GrpcReply {
    /// A successful reply, no delay.
    ///
    /// ```
    /// # use portcullis_harness::GrpcReply;
    /// let _ = GrpcReply::message(vec![1]);
    /// ```
    pub fn message(message: Vec<u8>) -> Self {
        GrpcReply::Message {
            message,
            delay: Duration::ZERO,
        }
    }

    /// A failed call, no delay.
    ///
    /// ```
    /// # use portcullis_harness::GrpcReply;
    /// let _ = GrpcReply::status(14, "unavailable");
    /// ```
    pub fn status(code: u32, message: &str) -> Self {
        GrpcReply::Status {
            code,
            message: message.to_string(),
            delay: Duration::ZERO,
        }
    }
}

/// A host function answering `proxy_call_foreign_function` for one name.
pub type ForeignFunction = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send>;

/// One compiled filter: a wasmtime `Engine`, the `Module` and its pre-linked imports.
/// Compile once, then start as many [`Vm`]s as needed; they share shared data, queues
/// and metrics like VMs of one Envoy process.
///
/// ```
/// use portcullis_harness::Host;
/// let wat = r#"(module (memory (export "memory") 1)
///   (func (export "malloc") (param i32) (result i32) i32.const 1024)
///   (func (export "proxy_abi_version_0_2_1")))"#;
/// let host = Host::new(wat.as_bytes()).unwrap();
/// let vm = host.start_vm(Default::default()).unwrap();
/// assert!(vm.failure().is_none());
/// ```
pub struct Host {
    engine: Engine,
    pre: InstancePre<HostState>,
    shared: Arc<Shared>,
    next_serial: AtomicU64,
}

impl Host {
    /// Compiles a module (binary or WAT text) and links Envoy's imports.
    ///
    /// ```
    /// use portcullis_harness::{Error, Host};
    /// let wat = r#"(module (import "env" "proxy_nope" (func))
    ///   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let err = Host::new(wat.as_bytes()).err().unwrap();
    /// assert!(matches!(err, Error::MissingImport { .. }));
    /// ```
    pub fn new(wasm: &[u8]) -> Result<Host, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| Error::Compile(format!("{e:#}")))?;
        let module = Module::new(&engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")))?;

        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        let v010 = exports.contains(&"proxy_abi_version_0_1_0");
        if !exports.iter().any(|n| {
            matches!(
                *n,
                "proxy_abi_version_0_1_0" | "proxy_abi_version_0_2_0" | "proxy_abi_version_0_2_1"
            )
        }) {
            return Err(Error::UnknownAbiVersion);
        }
        for imp in module.imports() {
            let known = match imp.module() {
                "env" => {
                    hostcalls::ENV_IMPORTS.contains(&imp.name())
                        && (v010 || !hostcalls::ABI_0_1_0_ONLY.contains(&imp.name()))
                }
                "wasi_snapshot_preview1" | "wasi_unstable" => {
                    wasi::WASI_IMPORTS.contains(&imp.name())
                }
                _ => false,
            };
            if !known {
                return Err(Error::MissingImport {
                    module: imp.module().to_string(),
                    name: imp.name().to_string(),
                });
            }
        }

        let mut linker = Linker::new(&engine);
        hostcalls::link(&mut linker).map_err(|e| Error::Link(format!("{e:#}")))?;
        wasi::link(&mut linker, "wasi_snapshot_preview1")
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        wasi::link(&mut linker, "wasi_unstable").map_err(|e| Error::Link(format!("{e:#}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| Error::Link(format!("{e:#}")))?;

        // The deadline clock: one thread per engine, ending when the engine is gone.
        let weak = engine.weak();
        std::thread::spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        });

        Ok(Host {
            engine,
            pre,
            shared: Arc::new(Shared::default()),
            next_serial: AtomicU64::new(1),
        })
    }

    /// A host for the same compiled module with fresh host-wide state (metrics, shared
    /// data, queues): another Envoy process with the same filter, without compiling again.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::new(wat.as_bytes()).unwrap();
    /// let other = host.fork();
    /// assert!(other.start_vm(Default::default()).is_ok());
    /// assert!(other.metrics().is_empty());
    /// ```
    pub fn fork(&self) -> Host {
        Host {
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            shared: Arc::new(Shared::default()),
            next_serial: AtomicU64::new(1),
        }
    }

    /// Reads and compiles a `.wasm` (or `.wat`) file.
    ///
    /// ```
    /// use portcullis_harness::{Error, Host};
    /// assert!(matches!(Host::from_file("/nonexistent.wasm"), Err(Error::Io { .. })));
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Host, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Host::new(&bytes)
    }

    /// Instantiates the module and starts it as Envoy does: `_initialize` (+ `main` /
    /// `__main_void`) or `_start`, then root `proxy_on_context_create(root, 0)`,
    /// `proxy_on_vm_start`, `proxy_on_configure`.
    ///
    /// ```
    /// # use portcullis_harness::{Host, VmConfig};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::new(wat.as_bytes()).unwrap();
    /// let vm = host.start_vm(VmConfig { vm_id: "a".into(), ..Default::default() }).unwrap();
    /// # let _ = vm;
    /// ```
    pub fn start_vm(&self, config: VmConfig) -> Result<Vm, Error> {
        let start = config.start_time.unwrap_or_else(SystemTime::now);
        let realtime_ns = start
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let settings = VmSettings {
            plugin_configuration: config.plugin_configuration.clone(),
            vm_configuration: config.vm_configuration.clone(),
            env: config.env.clone(),
            plugin_name: config.plugin_name.clone(),
            root_id: config.root_id.clone(),
            vm_id: config.vm_id.clone(),
            log_level: config.log_level,
            properties: config.properties.clone(),
        };
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(config.memory_limit)
                .build(),
            memory: None,
            malloc: None,
            settings: Arc::new(settings),
            shared: self.shared.clone(),
            vm_serial: serial,
            phase: Phase::Start,
            root_id: 1,
            current: 1,
            effective: 1,
            streams: Default::default(),
            vm_logs: Vec::new(),
            last_critical: None,
            tick_period_ms: 0,
            realtime_ns,
            monotonic_ns: 1_000_000_000,
            next_token: 0,
            http_responders: HashMap::new(),
            grpc_responders: HashMap::new(),
            pending: Vec::new(),
            http_calls: Default::default(),
            grpc_calls: Default::default(),
            callout: CalloutData::default(),
            status: (0, String::new()),
            foreign: HashMap::new(),
            done_pending: false,
            done_called: false,
            dns_requests: Vec::new(),
            all_http_calls: Vec::new(),
            all_grpc_calls: Vec::new(),
            rng: 0x2545_f491_4f6c_dd1d ^ serial,
            faults: config.host_call_faults.clone(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let deadline_ticks = ticks(config.callback_deadline);
        let start_deadline_ticks = ticks(config.start_deadline);
        store.set_epoch_deadline(start_deadline_ticks);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| Error::Link(format!("{e:#}")))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(Error::MissingExport("memory"))?;
        let malloc = instance
            .get_typed_func::<i32, i32>(&mut store, "malloc")
            .or_else(|_| {
                instance.get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            })
            .map_err(|_| Error::MissingExport("malloc"))?;
        store.data_mut().memory = Some(memory);
        store.data_mut().malloc = Some(malloc);

        macro_rules! f {
            ($name:literal) => {
                instance.get_typed_func(&mut store, $name).ok()
            };
        }
        let cb = Callbacks {
            initialize: f!("_initialize"),
            main: f!("main"),
            main_void: f!("__main_void"),
            start: f!("_start"),
            on_context_create: f!("proxy_on_context_create"),
            on_vm_start: f!("proxy_on_vm_start"),
            on_configure: f!("proxy_on_configure"),
            on_tick: f!("proxy_on_tick"),
            on_queue_ready: f!("proxy_on_queue_ready"),
            on_request_headers: f!("proxy_on_request_headers"),
            on_request_body: f!("proxy_on_request_body"),
            on_request_trailers: f!("proxy_on_request_trailers"),
            on_response_headers: f!("proxy_on_response_headers"),
            on_response_body: f!("proxy_on_response_body"),
            on_response_trailers: f!("proxy_on_response_trailers"),
            on_http_call_response: f!("proxy_on_http_call_response"),
            on_grpc_receive: f!("proxy_on_grpc_receive"),
            on_grpc_close: f!("proxy_on_grpc_close"),
            on_done: f!("proxy_on_done"),
            on_log: f!("proxy_on_log"),
            on_delete: f!("proxy_on_delete"),
        };
        let mut vm = Vm {
            store,
            cb,
            failed: None,
            fail_strategy: config.fail_strategy,
            deadline: config.callback_deadline,
            deadline_ticks,
            start_deadline: config.start_deadline,
            start_deadline_ticks,
            next_ctx: 2,
            tick_seen_ms: 0,
            next_tick_ns: None,
            deleted: false,
        };
        vm.boot(&config)?;
        Ok(vm)
    }

    /// All metrics the filter's VMs defined.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::new(wat.as_bytes()).unwrap();
    /// assert!(host.metrics().is_empty());
    /// ```
    pub fn metrics(&self) -> Vec<Metric> {
        self.shared.metrics()
    }

    /// A metric's value by the name the filter defined it with (without `wasmcustom.`).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::new(wat.as_bytes()).unwrap();
    /// assert_eq!(host.metric("requests"), None);
    /// ```
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.shared
            .metrics()
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// Shared data: (key, value, cas), sorted by key.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::new(wat.as_bytes()).unwrap();
    /// assert!(host.shared_data().is_empty());
    /// ```
    pub fn shared_data(&self) -> Vec<(String, Vec<u8>, u32)> {
        self.shared.all_data()
    }
}

type BodyPick = fn(&Callbacks) -> &Option<TypedFunc<(i32, i32, i32), i32>>;
type TrailersPick = fn(&Callbacks) -> &Option<TypedFunc<(i32, i32), i32>>;
type HeadersPick = BodyPick;
/// `proxy_on_http_call_response(context, token, headers, body, trailers)`.
type HttpCallResponseFn = TypedFunc<(i32, i32, i32, i32, i32), ()>;

struct Callbacks {
    initialize: Option<TypedFunc<(), ()>>,
    main: Option<TypedFunc<(i32, i32), i32>>,
    main_void: Option<TypedFunc<(), i32>>,
    start: Option<TypedFunc<(), ()>>,
    on_context_create: Option<TypedFunc<(i32, i32), ()>>,
    on_vm_start: Option<TypedFunc<(i32, i32), i32>>,
    on_configure: Option<TypedFunc<(i32, i32), i32>>,
    on_tick: Option<TypedFunc<i32, ()>>,
    on_queue_ready: Option<TypedFunc<(i32, i32), ()>>,
    on_request_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_request_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_response_headers: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_body: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_response_trailers: Option<TypedFunc<(i32, i32), i32>>,
    on_http_call_response: Option<HttpCallResponseFn>,
    on_grpc_receive: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_grpc_close: Option<TypedFunc<(i32, i32, i32), ()>>,
    on_done: Option<TypedFunc<i32, i32>>,
    on_log: Option<TypedFunc<i32, ()>>,
    on_delete: Option<TypedFunc<i32, ()>>,
}

/// One running instance of the filter with its own `Store` (one Envoy worker's VM).
///
/// ```
/// use portcullis_harness::{Host, StreamProps};
/// # let wat = r#"(module (memory (export "memory") 1)
/// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
/// #   (func (export "proxy_abi_version_0_2_1")))"#;
/// let host = Host::new(wat.as_bytes()).unwrap();
/// let mut vm = host.start_vm(Default::default()).unwrap();
/// let mut s = vm.http_stream(StreamProps::default()).unwrap();
/// s.request_headers(&[(":path", "/")], true).unwrap();
/// let rec = s.finish().unwrap();
/// assert_eq!(rec.request_header(":path"), Some("/"));
/// ```
pub struct Vm {
    store: Store<HostState>,
    cb: Callbacks,
    failed: Option<String>,
    fail_strategy: FailStrategy,
    deadline: Duration,
    deadline_ticks: u64,
    start_deadline: Duration,
    start_deadline_ticks: u64,
    next_ctx: u32,
    tick_seen_ms: u64,
    next_tick_ns: Option<u64>,
    /// The root context was deleted (`shutdown`, or `proxy_done` after a deferred
    /// `proxy_on_done`): no more callbacks run.
    deleted: bool,
}

impl Vm {
    fn boot(&mut self, config: &VmConfig) -> Result<(), Error> {
        let root = self.store.data().root_id;
        if self.cb.initialize.is_some() {
            self.call("_initialize", |c| &c.initialize, (), root)?;
            if self.cb.main.is_some() {
                self.call("main", |c| &c.main, (0, 0), root)?;
            } else {
                self.call("__main_void", |c| &c.main_void, (), root)?;
            }
        } else {
            self.call("_start", |c| &c.start, (), root)?;
        }
        self.store.data_mut().phase = Phase::Other;
        self.call(
            "proxy_on_context_create",
            |c| &c.on_context_create,
            (root as i32, 0),
            root,
        )?;
        self.store.data_mut().phase = Phase::VmStart;
        let n = config.vm_configuration.len() as i32;
        let ok = self.call(
            "proxy_on_vm_start",
            |c| &c.on_vm_start,
            (root as i32, n),
            root,
        )?;
        if ok == Some(0) {
            return Err(self.start_failed("proxy_on_vm_start"));
        }
        self.store.data_mut().phase = Phase::Configure;
        let n = config.plugin_configuration.len() as i32;
        let ok = self.call(
            "proxy_on_configure",
            |c| &c.on_configure,
            (root as i32, n),
            root,
        )?;
        if ok == Some(0) {
            return Err(self.start_failed("proxy_on_configure"));
        }
        self.store.data_mut().phase = Phase::Other;
        self.settle()
    }

    fn start_failed(&mut self, callback: &'static str) -> Error {
        self.failed = Some(format!("{callback} returned false"));
        Error::StartFailed {
            callback,
            logs: self.store.data().vm_logs.clone(),
        }
    }

    /// Calls one export with the deadline armed; a trap marks the VM failed.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        name: &'static str,
        pick: impl Fn(&Callbacks) -> &Option<TypedFunc<P, R>>,
        args: P,
        ctx: u32,
    ) -> Result<Option<R>, Error> {
        let Some(f) = pick(&self.cb) else {
            return Ok(None);
        };
        if self.deleted {
            return Ok(None);
        }
        if let Some(msg) = &self.failed {
            return Err(Error::Trap {
                callback: name,
                message: format!("VM already failed: {msg}"),
                logs: Vec::new(),
            });
        }
        {
            let s = self.store.data_mut();
            s.current = ctx;
            s.effective = ctx;
            s.last_critical = None;
        }
        let starting = matches!(
            name,
            "_initialize"
                | "main"
                | "__main_void"
                | "_start"
                | "proxy_on_vm_start"
                | "proxy_on_configure"
        );
        let (deadline, deadline_ticks) = if starting {
            (self.start_deadline, self.start_deadline_ticks)
        } else {
            (self.deadline, self.deadline_ticks)
        };
        self.store.set_epoch_deadline(deadline_ticks);
        let r = f.call(&mut self.store, args);
        let root = self.store.data().root_id;
        let s = self.store.data_mut();
        s.effective = root;
        s.current = root;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let s = self.store.data();
                let logs = match s.streams.get(&ctx) {
                    Some(st) => st.record.logs.clone(),
                    None => s.vm_logs.clone(),
                };
                let err = if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                    Error::Deadline {
                        callback: name,
                        deadline,
                    }
                } else {
                    let message = s
                        .last_critical
                        .clone()
                        .unwrap_or_else(|| e.root_cause().to_string());
                    Error::Trap {
                        callback: name,
                        message,
                        logs,
                    }
                };
                self.failed = Some(err.to_string());
                Err(err)
            }
        }
    }

    /// Why the VM failed (a trap, a deadline, a false start-up callback), if it did.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert_eq!(vm.failure(), None);
    /// ```
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Makes the `proxy_*` import `name` answer `status` without running, from now on
    /// (`Status::Ok` included: then it does nothing and reports success). For testing
    /// how a filter handles a failing host.
    ///
    /// ```
    /// # use portcullis_harness::{Host, Status};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.fail_host_call("proxy_get_property", Status::InternalFailure);
    /// vm.clear_host_call_faults();
    /// ```
    pub fn fail_host_call(&mut self, name: &str, status: Status) {
        let faults = &mut self.store.data_mut().faults;
        faults.retain(|(n, _)| n != name);
        faults.push((name.to_owned(), status));
    }

    /// Undoes every [`Self::fail_host_call`] (and [`VmConfig::host_call_faults`]).
    pub fn clear_host_call_faults(&mut self) {
        self.store.data_mut().faults.clear();
    }

    /// Opens an HTTP stream: a new context (`proxy_on_context_create(id, root)`).
    /// On a failed VM the stream follows the fail strategy without calling the filter.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.request_headers(&[(":method", "GET")], true).unwrap(), Action::Continue);
    /// ```
    pub fn http_stream(&mut self, props: StreamProps) -> Result<HttpStream<'_>, Error> {
        let id = self.next_ctx;
        self.next_ctx = self.next_ctx.wrapping_add(1).max(2);
        let now = self.store.data().realtime_ns;
        self.store
            .data_mut()
            .streams
            .insert(id, StreamState::new(id, props, now));
        let bypass = self.failed.is_some();
        if !bypass {
            let root = self.store.data().root_id;
            let r = self.call(
                "proxy_on_context_create",
                |c| &c.on_context_create,
                (id as i32, root as i32),
                id,
            );
            if let Err(e) = r {
                self.store.data_mut().streams.remove(&id);
                return Err(e);
            }
        }
        Ok(HttpStream {
            vm: self,
            id,
            bypass,
            finished: false,
        })
    }

    /// Registers the responder for `proxy_http_call`s to `cluster` (calls to clusters
    /// without one get BAD_ARGUMENT, as an unknown cluster in Envoy).
    ///
    /// ```
    /// # use portcullis_harness::{Host, HttpReply};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.on_http_call("authz", |call| if call.header(":path") == Some("/ok") {
    ///     HttpReply::ok(200, vec![])
    /// } else {
    ///     HttpReply::Timeout
    /// });
    /// ```
    pub fn on_http_call(
        &mut self,
        cluster: &str,
        responder: impl FnMut(&HttpCallRecord) -> HttpReply + Send + 'static,
    ) {
        self.store
            .data_mut()
            .http_responders
            .insert(cluster.to_string(), Box::new(responder));
    }

    /// Registers the responder for unary `proxy_grpc_call`s to `cluster` (and accepts
    /// `proxy_grpc_stream`s to it). Unknown clusters get PARSE_FAILURE.
    ///
    /// ```
    /// # use portcullis_harness::{Host, GrpcReply};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.on_grpc_call("grpcbin", |_call| GrpcReply::status(10, "aborted"));
    /// ```
    pub fn on_grpc_call(
        &mut self,
        cluster: &str,
        responder: impl FnMut(&GrpcCallRecord) -> GrpcReply + Send + 'static,
    ) {
        self.store
            .data_mut()
            .grpc_responders
            .insert(cluster.to_string(), Box::new(responder));
    }

    /// Answers `proxy_call_foreign_function(name, …)` (unregistered names: NOT_FOUND,
    /// except Envoy's no-op built-ins).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.register_foreign_function("echo", |args| Ok(args.to_vec()));
    /// ```
    pub fn register_foreign_function(
        &mut self,
        name: &str,
        f: impl FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send + 'static,
    ) {
        self.store
            .data_mut()
            .foreign
            .insert(name.to_string(), Box::new(f));
    }

    /// Log lines of the VM (root context, start-up, WASI writes outside streams).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.logs().is_empty());
    /// ```
    pub fn logs(&self) -> &[LogEntry] {
        &self.store.data().vm_logs
    }

    /// Takes (and clears) the VM's log lines.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let _lines = vm.take_logs();
    /// assert!(vm.logs().is_empty());
    /// ```
    pub fn take_logs(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.store.data_mut().vm_logs)
    }

    /// Every `proxy_http_call` this VM made, in order.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.http_calls().is_empty());
    /// ```
    pub fn http_calls(&self) -> &[HttpCallRecord] {
        &self.store.data().all_http_calls
    }

    /// Every gRPC call/stream this VM opened, in order.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.grpc_calls().is_empty());
    /// ```
    pub fn grpc_calls(&self) -> &[GrpcCallRecord] {
        &self.store.data().all_grpc_calls
    }

    /// The tick period the filter set (`None` = ticks off).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert_eq!(vm.tick_period(), None);
    /// ```
    pub fn tick_period(&self) -> Option<Duration> {
        match self.store.data().tick_period_ms {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The virtual realtime clock (what `clock_time_get(REALTIME)` returns), in ns since
    /// the Unix epoch.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # use std::time::Duration;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let t0 = vm.now_ns();
    /// vm.advance_time(Duration::from_millis(5)).unwrap();
    /// assert_eq!(vm.now_ns() - t0, 5_000_000);
    /// ```
    pub fn now_ns(&self) -> u64 {
        self.store.data().realtime_ns
    }

    /// Advances the virtual clock, firing `proxy_on_tick` and delayed/timed-out call
    /// replies in time order as they come due.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # use std::time::Duration;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.advance_time(Duration::from_secs(10)).unwrap();
    /// ```
    pub fn advance_time(&mut self, by: Duration) -> Result<(), Error> {
        let target = self.store.data().monotonic_ns + by.as_nanos() as u64;
        loop {
            self.refresh_tick();
            let pending_due = self.store.data().pending.iter().map(|(t, _)| *t).min();
            let next = match (self.next_tick_ns, pending_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match next {
                Some(t) if t <= target => {
                    self.set_clock(t);
                    if self.next_tick_ns == Some(t) {
                        let root = self.store.data().root_id;
                        self.next_tick_ns = Some(t + self.tick_seen_ms * 1_000_000);
                        self.call("proxy_on_tick", |c| &c.on_tick, root as i32, root)?;
                    }
                    self.settle()?;
                }
                _ => break,
            }
        }
        self.set_clock(target);
        self.settle()
    }

    /// Delivers what is due now: call replies and `proxy_on_queue_ready` for queues this
    /// VM owns that other VMs (or it) enqueued to.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.dispatch().unwrap();
    /// ```
    pub fn dispatch(&mut self) -> Result<(), Error> {
        self.settle()
    }

    /// Ends the VM: root `proxy_on_done`, then `proxy_on_delete`. Returns `true` when the
    /// root context is deleted now; `false` when the filter deferred with `proxy_on_done`
    /// returning false: it must call `proxy_done` later (from a tick, a call reply, a queue
    /// notification — drive those with [`Vm::advance_time`] / [`Vm::dispatch`]), after
    /// which the host deletes the root context ([`Vm::is_deleted`]).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.shutdown().unwrap());
    /// assert!(vm.is_deleted());
    /// ```
    pub fn shutdown(&mut self) -> Result<bool, Error> {
        if self.failed.is_some() || self.deleted {
            return Ok(self.deleted);
        }
        let root = self.store.data().root_id;
        let done = self.call("proxy_on_done", |c| &c.on_done, root as i32, root)?;
        if done == Some(0) {
            self.store.data_mut().done_pending = true;
            return Ok(false);
        }
        self.delete_root()?;
        Ok(true)
    }

    /// True once the root context was deleted (see [`Vm::shutdown`]); a deleted VM runs
    /// no callbacks.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(!vm.is_deleted());
    /// ```
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The size in bytes of the module's exported linear memory (`memory`) now: what the VM
    /// holds in Envoy (linear memory only grows; `memory.grow` pages are never returned).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 3)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert_eq!(vm.memory_bytes(), 3 * 65536);
    /// ```
    pub fn memory_bytes(&self) -> usize {
        self.store
            .data()
            .memory
            .map_or(0, |m| m.data_size(&self.store))
    }

    fn delete_root(&mut self) -> Result<(), Error> {
        let root = self.store.data().root_id;
        let s = self.store.data_mut();
        s.done_pending = false;
        s.done_called = false;
        self.call("proxy_on_delete", |c| &c.on_delete, root as i32, root)?;
        self.deleted = true;
        Ok(())
    }

    fn set_clock(&mut self, mono: u64) {
        let s = self.store.data_mut();
        let delta = mono.saturating_sub(s.monotonic_ns);
        s.monotonic_ns = mono;
        s.realtime_ns += delta;
    }

    fn refresh_tick(&mut self) {
        let p = self.store.data().tick_period_ms;
        if p != self.tick_seen_ms {
            self.tick_seen_ms = p;
            self.next_tick_ns = (p > 0).then(|| self.store.data().monotonic_ns + p * 1_000_000);
        }
    }

    /// Runs everything deferred until nothing is left: due replies, queue
    /// notifications, local replies and resumes requested during callbacks.
    fn settle(&mut self) -> Result<(), Error> {
        for _ in 0..10_000 {
            if self.failed.is_some() || self.deleted {
                return Ok(());
            }
            if self.store.data().done_called {
                self.delete_root()?;
                return Ok(());
            }
            let now = self.store.data().monotonic_ns;
            let due = self
                .store
                .data()
                .pending
                .iter()
                .position(|(t, _)| *t <= now);
            if let Some(i) = due {
                let (_, reply) = self.store.data_mut().pending.remove(i);
                self.deliver(reply)?;
                continue;
            }
            let serial = self.store.data().vm_serial;
            if self.store.data().shared.has_ready(serial) {
                let ids = self.store.data().shared.take_ready(serial);
                let root = self.store.data().root_id;
                for id in ids {
                    self.call(
                        "proxy_on_queue_ready",
                        |c| &c.on_queue_ready,
                        (root as i32, id as i32),
                        root,
                    )?;
                }
                continue;
            }
            let work = self.store.data().streams.iter().find_map(|(id, s)| {
                if s.local_reply_new {
                    Some((*id, None))
                } else if s.dirs[0].resume {
                    Some((*id, Some(0)))
                } else if s.dirs[1].resume {
                    Some((*id, Some(1)))
                } else {
                    None
                }
            });
            match work {
                Some((id, None)) => self.run_local_reply(id)?,
                Some((id, Some(dir))) => self.resume(id, dir)?,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    fn deliver(&mut self, reply: PendingReply) -> Result<(), Error> {
        let root = self.store.data().root_id;
        match reply {
            PendingReply::Http(
                token,
                HttpReply::Response {
                    headers,
                    body,
                    trailers,
                    ..
                },
            ) => {
                let (nh, nb, nt) = (headers.len(), body.len(), trailers.len());
                self.store.data_mut().callout = CalloutData {
                    headers,
                    body,
                    trailers,
                };
                self.call(
                    "proxy_on_http_call_response",
                    |c| &c.on_http_call_response,
                    (root as i32, token as i32, nh as i32, nb as i32, nt as i32),
                    root,
                )?;
            }
            PendingReply::Http(token, _) | PendingReply::HttpTimeout(token) => {
                self.store.data_mut().callout = CalloutData::default();
                self.call(
                    "proxy_on_http_call_response",
                    |c| &c.on_http_call_response,
                    (root as i32, token as i32, 0, 0, 0),
                    root,
                )?;
            }
            PendingReply::Grpc(token, GrpcReply::Message { message, .. }) => {
                let n = message.len();
                let s = self.store.data_mut();
                s.callout = CalloutData {
                    body: message,
                    ..Default::default()
                };
                s.status = (0, String::new());
                self.call(
                    "proxy_on_grpc_receive",
                    |c| &c.on_grpc_receive,
                    (root as i32, token as i32, n as i32),
                    root,
                )?;
            }
            PendingReply::Grpc(token, other) => {
                let (code, msg) = match other {
                    GrpcReply::Status { code, message, .. } => (code, message),
                    _ => (4, "deadline exceeded".to_string()),
                };
                let s = self.store.data_mut();
                s.callout = CalloutData::default();
                s.status = (code, msg);
                self.call(
                    "proxy_on_grpc_close",
                    |c| &c.on_grpc_close,
                    (root as i32, token as i32, code as i32),
                    root,
                )?;
            }
        }
        self.store.data_mut().callout = CalloutData::default();
        Ok(())
    }

    /// Sends a local reply through the response path, as Envoy's encoder chain does.
    fn run_local_reply(&mut self, id: u32) -> Result<(), Error> {
        let Some(s) = self.store.data_mut().streams.get_mut(&id) else {
            return Ok(());
        };
        s.local_reply_new = false;
        s.ended = true;
        s.dirs[0].paused = None;
        s.dirs[0].resume = false;
        s.dirs[0].headers_avail = false;
        s.dirs[0].trailers_avail = false;
        let Some(reply) = s.record.local_reply.clone() else {
            return Ok(());
        };
        let mut headers: Headers = vec![(":status".to_string(), reply.status.to_string())];
        if !reply.body.is_empty() {
            headers.push(("content-length".to_string(), reply.body.len().to_string()));
            headers.push(("content-type".to_string(), "text/plain".to_string()));
        }
        headers.extend(reply.headers.iter().cloned());
        let started = s.dirs[1].headers_seen;
        s.record.response_headers = headers;
        s.record.response_body.clear();
        s.dirs[1].buffer.clear();
        s.dirs[1].paused = None;
        s.dirs[1].resume = false;
        if started {
            // Headers already went through the filter: Envoy replaces the response
            // without running this filter's callbacks again.
            s.record.response_body = reply.body;
            s.dirs[1].headers_avail = false;
            return Ok(());
        }
        s.dirs[1].headers_seen = true;
        s.dirs[1].headers_avail = true;
        let n = s.record.response_headers.len();
        let eos = reply.body.is_empty();
        self.call(
            "proxy_on_response_headers",
            |c| &c.on_response_headers,
            (id as i32, n as i32, eos as i32),
            id,
        )?;
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            s.dirs[1].headers_avail = false;
            s.dirs[1].buffer = reply.body;
        }
        if !eos {
            let n = self.stream(id).map(|s| s.dirs[1].buffer.len()).unwrap_or(0);
            self.call(
                "proxy_on_response_body",
                |c| &c.on_response_body,
                (id as i32, n as i32, 1),
                id,
            )?;
        }
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            let b = std::mem::take(&mut s.dirs[1].buffer);
            s.record.response_body.extend(b);
            s.local_reply_new = false;
        }
        Ok(())
    }

    fn stream(&mut self, id: u32) -> Option<&mut StreamState> {
        self.store.data_mut().streams.get_mut(&id)
    }

    /// `proxy_continue_stream` for one direction: release what was held.
    fn resume(&mut self, id: u32, dir: usize) -> Result<(), Error> {
        let Some(s) = self.stream(id) else {
            return Ok(());
        };
        let d = &mut s.dirs[dir];
        d.resume = false;
        let Some(at) = d.paused.take() else {
            return Ok(());
        };
        match at {
            Paused::Headers => {
                d.headers_avail = false;
                if d.body_pending {
                    d.body_pending = false;
                    let (n, eos) = (d.buffer.len(), d.end_seen);
                    let r = self.call(
                        body_name(dir),
                        Vm::body_cb(dir),
                        (id as i32, n as i32, eos as i32),
                        id,
                    )?;
                    self.after_body(id, dir, r.unwrap_or(0));
                }
            }
            Paused::Body => self.forward_body(id, dir),
            Paused::Trailers => {
                d.trailers_avail = false;
                self.forward_body(id, dir);
            }
        }
        let pending = self
            .stream(id)
            .filter(|s| s.dirs[dir].paused.is_none())
            .and_then(|s| s.dirs[dir].pending_trailers.take());
        if let Some(t) = pending {
            self.trailers_now(id, dir, t)?;
        }
        Ok(())
    }

    fn body_cb(dir: usize) -> BodyPick {
        if dir == 0 {
            |c| &c.on_request_body
        } else {
            |c| &c.on_response_body
        }
    }

    fn forward_body(&mut self, id: u32, dir: usize) {
        if let Some(s) = self.stream(id) {
            let b = std::mem::take(&mut s.dirs[dir].buffer);
            if dir == 0 {
                s.record.request_body.extend(b);
            } else {
                s.record.response_body.extend(b);
            }
        }
    }

    fn after_body(&mut self, id: u32, dir: usize, r: i32) {
        if r == 0 {
            self.forward_body(id, dir);
        } else if let Some(s) = self.stream(id) {
            s.dirs[dir].paused = Some(Paused::Body);
        }
    }

    fn trailers_now(&mut self, id: u32, dir: usize, t: Headers) -> Result<(), Error> {
        let n = t.len();
        if let Some(s) = self.stream(id) {
            s.dirs[dir].trailers_avail = true;
            s.dirs[dir].end_seen = true;
            if dir == 0 {
                s.record.request_trailers = t;
            } else {
                s.record.response_trailers = t;
            }
        }
        let (name, f): (&str, TrailersPick) = if dir == 0 {
            ("proxy_on_request_trailers", |c| &c.on_request_trailers)
        } else {
            ("proxy_on_response_trailers", |c| &c.on_response_trailers)
        };
        let r = self.call(name, f, (id as i32, n as i32), id)?.unwrap_or(0);
        if r == 0 {
            if let Some(s) = self.stream(id) {
                s.dirs[dir].trailers_avail = false;
            }
            self.forward_body(id, dir);
        } else if let Some(s) = self.stream(id) {
            s.dirs[dir].paused = Some(Paused::Trailers);
        }
        Ok(())
    }
}

fn body_name(dir: usize) -> &'static str {
    if dir == 0 {
        "proxy_on_request_body"
    } else {
        "proxy_on_response_body"
    }
}

fn lower(h: impl IntoIterator<Item = impl HeaderPair>) -> Headers {
    h.into_iter()
        .map(|p| (p.key().to_ascii_lowercase(), p.value().to_string()))
        .collect()
}

/// One HTTP stream (one filter context), driven phase by phase. Each phase returns the
/// [`Action`] after Envoy's rules and everything deferred (call replies due now, resumes,
/// local replies) has run. Dropping it without [`HttpStream::finish`] still ends the
/// context.
///
/// ```
/// # use portcullis_harness::{Host, StreamProps, Action};
/// # let wat = r#"(module (memory (export "memory") 1)
/// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
/// #   (func (export "proxy_abi_version_0_2_1")))"#;
/// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
/// let mut s = vm.http_stream(StreamProps::default()).unwrap();
/// s.request_headers(&[(":method", "POST"), (":path", "/x")], false).unwrap();
/// s.request_body(b"hello", true).unwrap();
/// s.response_headers(&[(":status", "200")], true).unwrap();
/// let rec = s.finish().unwrap();
/// assert_eq!(rec.request_body, b"hello");
/// ```
pub struct HttpStream<'vm> {
    vm: &'vm mut Vm,
    id: u32,
    bypass: bool,
    finished: bool,
}

impl HttpStream<'_> {
    /// The stream's context id.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.context_id(), 2);
    /// ```
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// The record so far (header maps as they stand now, local reply, logs, calls).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert!(s.record().local_reply.is_none());
    /// ```
    pub fn record(&self) -> &StreamRecord {
        static EMPTY: std::sync::OnceLock<StreamRecord> = std::sync::OnceLock::new();
        self.vm
            .store
            .data()
            .streams
            .get(&self.id)
            .map(|s| &s.record)
            .unwrap_or_else(|| EMPTY.get_or_init(StreamRecord::default))
    }

    fn state(&mut self) -> Option<&mut StreamState> {
        self.vm.store.data_mut().streams.get_mut(&self.id)
    }

    fn status(&mut self, dir: usize) -> Action {
        let Some(s) = self.state() else {
            return Action::Continue;
        };
        if s.record.local_reply.is_some() && s.ended {
            Action::LocalReply
        } else if s.record.reset {
            Action::Reset
        } else if s.dirs[dir].paused.is_some() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// Applies the fail strategy (failed VM) or the stream's end; `Some` = do not call the filter.
    fn short_circuit(&mut self, dir: usize) -> Option<Action> {
        if self.bypass || self.vm.failed.is_some() {
            let strategy = self.vm.fail_strategy;
            let s = self.state()?;
            return Some(match strategy {
                FailStrategy::FailOpen => {
                    s.record.failed_open = true;
                    Action::Continue
                }
                FailStrategy::FailClose => {
                    if s.record.local_reply.is_none() {
                        s.record.local_reply = Some(LocalReply {
                            status: 503,
                            body: Vec::new(),
                            headers: Vec::new(),
                            details: "wasm_fail_stream".to_string(),
                            grpc_status: None,
                        });
                        s.record.response_headers = vec![(":status".into(), "503".into())];
                    }
                    s.ended = true;
                    Action::LocalReply
                }
            });
        }
        if self.state()?.ended {
            return Some(self.status(dir));
        }
        None
    }

    fn headers(&mut self, dir: usize, h: Headers, eos: bool) -> Result<Action, Error> {
        let n = h.len();
        if let Some(s) = self.state() {
            let d = &mut s.dirs[dir];
            d.headers_seen = true;
            d.end_seen = eos;
            if dir == 0 {
                s.record.request_headers = h;
            } else {
                s.record.response_headers = h;
            }
        }
        if let Some(a) = self.short_circuit(dir) {
            return Ok(a);
        }
        if let Some(s) = self.state() {
            s.dirs[dir].headers_avail = true;
        }
        let (name, f): (&str, HeadersPick) = if dir == 0 {
            ("proxy_on_request_headers", |c| &c.on_request_headers)
        } else {
            ("proxy_on_response_headers", |c| &c.on_response_headers)
        };
        let id = self.id;
        let r = self
            .vm
            .call(name, f, (id as i32, n as i32, eos as i32), id)?;
        if let Some(s) = self.state() {
            let d = &mut s.dirs[dir];
            if r.unwrap_or(0) == 0 {
                d.headers_avail = false;
            } else {
                d.paused = Some(Paused::Headers);
            }
        }
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    fn body(&mut self, dir: usize, data: &[u8], eos: bool) -> Result<Action, Error> {
        if let Some(a) = self.short_circuit(dir) {
            if let (Action::Continue, Some(s)) = (a, self.state()) {
                if dir == 0 {
                    s.record.request_body.extend_from_slice(data);
                } else {
                    s.record.response_body.extend_from_slice(data);
                }
            }
            return Ok(a);
        }
        let id = self.id;
        let Some(s) = self.state() else {
            return Ok(Action::Continue);
        };
        let d = &mut s.dirs[dir];
        d.buffer.extend_from_slice(data);
        d.end_seen |= eos;
        if matches!(d.paused, Some(Paused::Headers) | Some(Paused::Trailers)) {
            d.body_pending = true;
            return Ok(Action::Pause);
        }
        let n = d.buffer.len();
        let r = self.vm.call(
            body_name(dir),
            Vm::body_cb(dir),
            (id as i32, n as i32, eos as i32),
            id,
        )?;
        if r.unwrap_or(0) == 0 {
            if let Some(s) = self.state() {
                s.dirs[dir].paused = None;
            }
        }
        self.vm.after_body(id, dir, r.unwrap_or(0));
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    fn trailers(&mut self, dir: usize, t: Headers) -> Result<Action, Error> {
        if let Some(a) = self.short_circuit(dir) {
            if let Some(s) = self.state() {
                if dir == 0 {
                    s.record.request_trailers = t;
                } else {
                    s.record.response_trailers = t;
                }
            }
            return Ok(a);
        }
        let id = self.id;
        let Some(s) = self.state() else {
            return Ok(Action::Continue);
        };
        if s.dirs[dir].paused == Some(Paused::Headers) {
            s.dirs[dir].pending_trailers = Some(t);
            return Ok(Action::Pause);
        }
        s.dirs[dir].paused = None;
        self.vm.trailers_now(id, dir, t)?;
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    /// Request headers arrive (`proxy_on_request_headers`); keys are lower-cased.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.request_headers(&[(":path", "/")], true).unwrap(), Action::Continue);
    /// ```
    pub fn request_headers(
        &mut self,
        headers: impl IntoIterator<Item = impl HeaderPair>,
        end_of_stream: bool,
    ) -> Result<Action, Error> {
        self.headers(0, lower(headers), end_of_stream)
    }

    /// A request body chunk (`proxy_on_request_body` with the total buffered size).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], false).unwrap();
    /// s.request_body(b"x", true).unwrap();
    /// ```
    pub fn request_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action, Error> {
        self.body(0, data, end_of_stream)
    }

    /// Request trailers (`proxy_on_request_trailers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], false).unwrap();
    /// s.request_trailers(&[("grpc-status", "0")]).unwrap();
    /// ```
    pub fn request_trailers(
        &mut self,
        trailers: impl IntoIterator<Item = impl HeaderPair>,
    ) -> Result<Action, Error> {
        self.trailers(0, lower(trailers))
    }

    /// Response headers from upstream (`proxy_on_response_headers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], true).unwrap();
    /// s.response_headers(&[(":status", "200")], true).unwrap();
    /// ```
    pub fn response_headers(
        &mut self,
        headers: impl IntoIterator<Item = impl HeaderPair>,
        end_of_stream: bool,
    ) -> Result<Action, Error> {
        self.headers(1, lower(headers), end_of_stream)
    }

    /// A response body chunk (`proxy_on_response_body`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.response_headers(&[(":status", "200")], false).unwrap();
    /// s.response_body(b"ok", true).unwrap();
    /// ```
    pub fn response_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action, Error> {
        self.body(1, data, end_of_stream)
    }

    /// Response trailers (`proxy_on_response_trailers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.response_headers(&[(":status", "200")], false).unwrap();
    /// s.response_trailers(&[("x", "y")]).unwrap();
    /// ```
    pub fn response_trailers(
        &mut self,
        trailers: impl IntoIterator<Item = impl HeaderPair>,
    ) -> Result<Action, Error> {
        self.trailers(1, lower(trailers))
    }

    /// Ends the stream as Envoy does: `proxy_on_log` (all maps readable), `proxy_on_done`,
    /// `proxy_on_delete`; returns the record.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// let rec = s.finish().unwrap();
    /// assert_eq!(rec.context_id, 2);
    /// ```
    pub fn finish(mut self) -> Result<StreamRecord, Error> {
        self.finished = true;
        self.end()
    }

    fn end(&mut self) -> Result<StreamRecord, Error> {
        let id = self.id;
        let mut result = Ok(());
        if !self.bypass && self.vm.failed.is_none() {
            if let Some(s) = self.state() {
                s.in_log = true;
                for d in s.dirs.iter_mut() {
                    d.paused = None;
                    d.headers_avail = false;
                    d.trailers_avail = false;
                }
            }
            result = self
                .vm
                .call("proxy_on_log", |c| &c.on_log, id as i32, id)
                .and_then(|_| self.vm.call("proxy_on_done", |c| &c.on_done, id as i32, id))
                .and_then(|_| {
                    self.vm
                        .call("proxy_on_delete", |c| &c.on_delete, id as i32, id)
                })
                .map(|_| ());
        } else {
            // Fail-closed streams that never saw a phase still get their 503.
            let _ = self.short_circuit(0);
        }
        let s = self.vm.store.data_mut();
        let rec = s.streams.remove(&id).map(|s| s.record).unwrap_or_default();
        result.map(|_| rec)
    }
}

impl Drop for HttpStream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.end();
        }
    }
}
