//! The driving API: [`Host`] (engine + compiled module, once per filter), [`Vm`] (one
//! instance and its `Store`, started in Envoy's order) and [`HttpStream`] (one context
//! per request, fed phase by phase like Envoy's HTTP filter chain).
//!
//! By job: `config` (what a VM is started with), `host` (engine, compilation, start-up),
//! this file (the VM, its callbacks and their deadline, shutdown), `stream` (the HTTP
//! stream driver), `local_reply` (a reply the filter sends instead of the upstream's),
//! `calls` (scripted `http_call`/`grpc_call`/foreign-function answers and their delivery),
//! `time` (the virtual clock and ticks), `dispatch` (running what callbacks deferred),
//! `cache` (compiled modules on disk).

mod cache;
mod calls;
mod config;
mod dispatch;
mod host;
mod local_reply;
mod network;
mod stream;
mod time;

use std::time::Duration;

use wasmtime::{Store, Trap, TypedFunc, WasmParams, WasmResults};

use crate::context::{HostState, LogEntry, Phase, StreamState};
use crate::error::Error;
use crate::types::Status;

pub use cache::{ModuleCache, CACHE_DIR_ENV};
pub use calls::{ForeignFunction, GrpcReply, HttpReply};
pub(crate) use config::VmSettings;
pub use config::{FailStrategy, VmConfig};
pub use host::{Host, HostOptions};
pub use network::{ClosedBy, TcpConnection, TcpRecord};
pub use stream::HttpStream;

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
    on_new_connection: Option<TypedFunc<i32, i32>>,
    on_downstream_data: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_upstream_data: Option<TypedFunc<(i32, i32, i32), i32>>,
    on_downstream_connection_close: Option<TypedFunc<(i32, i32), ()>>,
    on_upstream_connection_close: Option<TypedFunc<(i32, i32), ()>>,
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
    /// The host meters fuel ([`HostOptions::fuel`]): each callback's is counted.
    metered: bool,
    /// Fuel of every callback so far (start-up included), when metered.
    fuel_used: u64,
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

    /// Opens a stream context (HTTP, or TCP with `network`) as Envoy does: a new id, its
    /// state, then `proxy_on_context_create` unless the VM has failed. Returns the id and
    /// whether the stream bypasses the failed VM; the state is dropped if the call fails.
    fn open_context(
        &mut self,
        props: crate::StreamProps,
        network: bool,
    ) -> Result<(u32, bool), Error> {
        let id = self.next_ctx;
        self.next_ctx = self.next_ctx.wrapping_add(1).max(2);
        let now = self.store.data().realtime_ns;
        let mut state = StreamState::new(id, props, now);
        state.network = network;
        self.store.data_mut().streams.insert(id, state);
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
        Ok((id, bypass))
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
        let fuel_before = self.fuel_left();
        let r = f.call(&mut self.store, args);
        if let Some(before) = fuel_before {
            let used = before.saturating_sub(self.fuel_left().unwrap_or(before));
            self.fuel_used = self.fuel_used.saturating_add(used);
            if let Some(st) = self.store.data_mut().streams.get_mut(&ctx) {
                st.record.fuel.push((name, used));
            }
        }
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

    /// Sets a VM-wide property at a path given as its segments (which may hold dots), as
    /// the filter asks for it; later values win. Envoy hands the filter the path's
    /// segments joined by `\0` and resolves them one by one (context.cc `getProperty`).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.set_property(&["metadata", "filter_metadata", "envoy.filters.http.lua", "key"], b"v".to_vec());
    /// ```
    ///
    /// # Panics
    ///
    /// Under an attribute Envoy 1.40 no longer has (see [`crate::check_dotted_path`]).
    pub fn set_property(&mut self, segments: &[&str], value: Vec<u8>) {
        let path = crate::properties::property_path(segments);
        if let Err(e) = crate::properties::check_dotted_path(&path) {
            panic!("Vm::set_property: {e}");
        }
        let s = self.store.data_mut();
        std::sync::Arc::make_mut(&mut s.settings)
            .properties
            .push((path, value));
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

    /// The fuel (WebAssembly operators executed, see [`crate::StreamRecord::fuel`]) of
    /// every callback this VM ran, start-up included; `None` unless the host meters fuel
    /// ([`HostOptions::fuel`]).
    ///
    /// ```
    /// # use portcullis_harness::{Host, HostOptions};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// let plain = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert_eq!(plain.fuel_used(), None);
    /// let metered = Host::with_options(wat.as_bytes(), &HostOptions { fuel: true, ..Default::default() }).unwrap();
    /// assert_eq!(metered.start_vm(Default::default()).unwrap().fuel_used(), Some(0));
    /// ```
    pub fn fuel_used(&self) -> Option<u64> {
        self.metered.then_some(self.fuel_used)
    }

    /// Fuel left in the store, when metered.
    fn fuel_left(&self) -> Option<u64> {
        if self.metered {
            self.store.get_fuel().ok()
        } else {
            None
        }
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

    fn stream(&mut self, id: u32) -> Option<&mut StreamState> {
        self.store.data_mut().streams.get_mut(&id)
    }
}
