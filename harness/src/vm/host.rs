//! [`Host`]: the wasmtime engine, the compiled module with Envoy's imports linked, the
//! deadline clock, and starting a [`Vm`] the way Envoy does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store, StoreLimitsBuilder};

use crate::context::{CalloutData, HostState, Phase};
use crate::error::Error;
use crate::shared::{Metric, Shared};
use crate::{hostcalls, wasi};

use super::cache::ModuleCache;
use super::config::{VmConfig, VmSettings};
use super::{Callbacks, Vm};

/// Epoch ticks (plus one) in `d`: the store's deadline for a callback of that budget.
fn ticks(d: Duration) -> u64 {
    (d.as_nanos() / TICK.as_nanos()) as u64 + 1
}

/// Epoch tick of the deadline clock.
const TICK: Duration = Duration::from_millis(5);

/// How a [`Host`] compiles and runs the filter beyond Envoy's behaviour: where compiled
/// code is kept, and whether WebAssembly work is counted.
///
/// ```
/// use portcullis_harness::HostOptions;
/// let opts = HostOptions::default();
/// assert!(!opts.fuel && opts.cache.is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct HostOptions {
    /// Keep compiled code here (see [`Host::new_cached`]).
    pub cache: Option<ModuleCache>,
    /// Count the WebAssembly operators each callback executes (wasmtime fuel): read with
    /// [`crate::StreamRecord::fuel`], [`HttpStream::fuel_used`](crate::HttpStream::fuel_used)
    /// and [`Vm::fuel_used`]. A deterministic measure of work (the same input costs the
    /// same fuel on any machine and load), for tests that bound the cost of a request
    /// without timing it. Off by default: the instrumented code runs slower, and it is
    /// compiled separately (the module cache keys it apart).
    pub fuel: bool,
}

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
    from_cache: bool,
    fuel: bool,
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
        Host::with_options(wasm, &HostOptions::default())
    }

    /// As [`Host::new`], with [`HostOptions`] (a module cache, fuel metering).
    ///
    /// ```
    /// # use portcullis_harness::{Host, HostOptions, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    /// #     i32.const 0 i32.const 1 i32.add drop i32.const 0)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let host = Host::with_options(wat.as_bytes(), &HostOptions { fuel: true, ..Default::default() }).unwrap();
    /// let mut vm = host.start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], true).unwrap();
    /// assert!(s.fuel_used() > 0);
    /// ```
    pub fn with_options(wasm: &[u8], options: &HostOptions) -> Result<Host, Error> {
        Host::build(wasm, options)
    }

    /// As [`Host::from_file`], through [`Host::with_options`].
    ///
    /// ```
    /// use portcullis_harness::{Error, Host, HostOptions};
    /// let opts = HostOptions { fuel: true, ..Default::default() };
    /// assert!(matches!(Host::from_file_with("/nonexistent.wasm", &opts), Err(Error::Io { .. })));
    /// ```
    pub fn from_file_with(path: impl AsRef<Path>, options: &HostOptions) -> Result<Host, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Host::with_options(&bytes, options)
    }

    /// As [`Host::new`], with the compiled code kept in `cache`: the first run compiles
    /// and stores it, later runs (any process) load it in milliseconds.
    ///
    /// ```
    /// # use portcullis_harness::{Host, ModuleCache};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let dir = std::env::temp_dir().join(format!("portcullis-new-cached-{}", std::process::id()));
    /// let host = Host::new_cached(wat.as_bytes(), &ModuleCache::new(&dir)).unwrap();
    /// assert!(host.start_vm(Default::default()).is_ok());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn new_cached(wasm: &[u8], cache: &ModuleCache) -> Result<Host, Error> {
        let options = HostOptions {
            cache: Some(cache.clone()),
            ..HostOptions::default()
        };
        Host::with_options(wasm, &options)
    }

    /// As [`Host::from_file`], through [`Host::new_cached`].
    ///
    /// ```
    /// use portcullis_harness::{Error, Host, ModuleCache};
    /// let cache = ModuleCache::new(std::env::temp_dir().join("unused"));
    /// assert!(matches!(Host::from_file_cached("/nonexistent.wasm", &cache), Err(Error::Io { .. })));
    /// ```
    pub fn from_file_cached(path: impl AsRef<Path>, cache: &ModuleCache) -> Result<Host, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Host::new_cached(&bytes, cache)
    }

    /// True when the compiled code came from a [`ModuleCache`] instead of being compiled.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// True when this host meters fuel ([`HostOptions::fuel`]).
    pub fn meters_fuel(&self) -> bool {
        self.fuel
    }

    fn build(wasm: &[u8], options: &HostOptions) -> Result<Host, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        // Part of the engine's compatibility hash, so the cache keeps metered code apart.
        config.consume_fuel(options.fuel);
        let engine = Engine::new(&config).map_err(|e| Error::Compile(format!("{e:#}")))?;
        let (module, from_cache) = match &options.cache {
            Some(c) => c.load_or_compile(&engine, wasm)?,
            None => (
                Module::new(&engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")))?,
                false,
            ),
        };

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
            from_cache,
            fuel: options.fuel,
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
            from_cache: self.from_cache,
            fuel: self.fuel,
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
        for (path, _) in &config.properties {
            crate::properties::check_dotted_path(path).map_err(Error::PropertyPath)?;
        }
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
        if self.fuel {
            // Metering, not limiting: all the fuel there is; each callback's use is the
            // difference (`Vm::call`). Cannot fail with fuel enabled.
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::Link(format!("{e:#}")))?;
        }
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
            on_new_connection: f!("proxy_on_new_connection"),
            on_downstream_data: f!("proxy_on_downstream_data"),
            on_upstream_data: f!("proxy_on_upstream_data"),
            on_downstream_connection_close: f!("proxy_on_downstream_connection_close"),
            on_upstream_connection_close: f!("proxy_on_upstream_connection_close"),
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
            metered: self.fuel,
            fuel_used: 0,
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
