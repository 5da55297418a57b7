//! Per-context state: what the host keeps for the VM (root context) and for each HTTP
//! stream while the filter runs, and the records tests read afterwards.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::properties::StreamProps;
use crate::shared::Shared;
use crate::types::{Headers, LogLevel, Status};
use crate::vm::{ForeignFunction, GrpcReply, HttpReply, VmSettings};

/// One `proxy_log` line (or a WASI stdout/stderr write), with the context it came from.
///
/// ```
/// use portcullis_harness::{LogEntry, LogLevel};
/// let e = LogEntry { level: LogLevel::Info, message: "hi".into(), context_id: 1 };
/// assert_eq!(e.to_string(), "[info] #1 hi");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The level the filter asked for.
    pub level: LogLevel,
    /// The message (lossy UTF-8).
    pub message: String,
    /// The context the host had called into (root id for VM-level calls).
    pub context_id: u32,
}

impl std::fmt::Display for LogEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = format!("{:?}", self.level).to_lowercase();
        write!(f, "[{l}] #{} {}", self.context_id, self.message)
    }
}

/// A reply the filter sent with `proxy_send_local_response`, as Envoy would send it.
///
/// ```
/// use portcullis_harness::LocalReply;
/// let r = LocalReply { status: 403, body: b"no".to_vec(), headers: vec![], details: "x".into(), grpc_status: None };
/// assert_eq!(r.body_str(), "no");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Extra headers, names lower-cased (as Envoy adds them).
    pub headers: Headers,
    /// Response code details (Envoy replaces spaces with `_`).
    pub details: String,
    /// gRPC status; `None` when the filter passed a value outside 0..=16 (the SDK passes -1).
    pub grpc_status: Option<u32>,
}

impl LocalReply {
    /// The body as lossy UTF-8.
    ///
    /// ```
    /// # use portcullis_harness::LocalReply;
    /// let r = LocalReply { status: 200, body: b"ok".to_vec(), headers: vec![], details: String::new(), grpc_status: None };
    /// assert_eq!(r.body_str(), "ok");
    /// ```
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An outgoing `proxy_http_call` the filter made.
///
/// ```
/// # use portcullis_harness::HttpCallRecord;
/// fn cluster(c: &HttpCallRecord) -> &str { &c.cluster }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCallRecord {
    /// Token returned to the filter.
    pub token: u32,
    /// Upstream (cluster) name.
    pub cluster: String,
    /// Request headers (incl. `:method`, `:path`, `:authority`).
    pub headers: Headers,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Headers,
    /// Timeout the filter asked for.
    pub timeout: Duration,
    /// The context that was effective when the call was made.
    pub context_id: u32,
}

impl HttpCallRecord {
    /// First value of a request header of the call.
    ///
    /// ```
    /// # use portcullis_harness::HttpCallRecord;
    /// # use std::time::Duration;
    /// let c = HttpCallRecord { token: 1, cluster: "c".into(), headers: vec![(":path".into(), "/x".into())],
    ///     body: vec![], trailers: vec![], timeout: Duration::from_secs(1), context_id: 2 };
    /// assert_eq!(c.header(":path"), Some("/x"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }
}

/// An outgoing gRPC call or stream (`proxy_grpc_call` / `proxy_grpc_stream`).
///
/// ```
/// # use portcullis_harness::GrpcCallRecord;
/// fn method(c: &GrpcCallRecord) -> &str { &c.method }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCallRecord {
    /// Token returned to the filter.
    pub token: u32,
    /// Upstream (cluster) name.
    pub cluster: String,
    /// Service name.
    pub service: String,
    /// Method name.
    pub method: String,
    /// Initial metadata.
    pub initial_metadata: Headers,
    /// Request message (unary) or messages sent with `proxy_grpc_send` (stream).
    pub messages: Vec<Vec<u8>>,
    /// Timeout (unary calls).
    pub timeout: Duration,
    /// True for `proxy_grpc_stream`.
    pub streaming: bool,
    /// `proxy_grpc_cancel` / `proxy_grpc_close` seen.
    pub closed: bool,
    /// The context effective when the call was made.
    pub context_id: u32,
}

/// What happened on one HTTP stream: the final header maps and bodies as they left the
/// filter, the local reply, and everything the filter did.
///
/// ```
/// # use portcullis_harness::StreamRecord;
/// fn blocked(r: &StreamRecord) -> bool { r.local_reply.as_ref().is_some_and(|l| l.status == 403) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRecord {
    /// The stream's context id.
    pub context_id: u32,
    /// Request headers after the filter's edits.
    pub request_headers: Headers,
    /// Request trailers after the filter's edits.
    pub request_trailers: Headers,
    /// Response headers after the filter's edits (the local reply's headers if one was sent).
    pub response_headers: Headers,
    /// Response trailers after the filter's edits.
    pub response_trailers: Headers,
    /// Request body bytes the filter let through (upstream).
    pub request_body: Vec<u8>,
    /// Response body bytes the filter let through (downstream; the local reply body if one was sent).
    pub response_body: Vec<u8>,
    /// The local reply, if the filter sent one (or the VM failed closed).
    pub local_reply: Option<LocalReply>,
    /// `proxy_close_stream` was called (Envoy resets the stream, details `wasm_close_stream`).
    pub reset: bool,
    /// Log lines emitted while this stream's context was active.
    pub logs: Vec<LogEntry>,
    /// HTTP calls made on behalf of this stream.
    pub http_calls: Vec<HttpCallRecord>,
    /// gRPC calls/streams made on behalf of this stream.
    pub grpc_calls: Vec<GrpcCallRecord>,
    /// `proxy_set_property` calls (path with its segments joined by `\0`, as the filter
    /// gave it; [`crate::property_path`] builds one to compare with; value).
    pub properties_set: Vec<(String, Vec<u8>)>,
    /// Foreign function calls (name, arguments).
    pub foreign_calls: Vec<(String, Vec<u8>)>,
    /// The VM had failed and `FailStrategy::FailOpen` let the stream through untouched.
    pub failed_open: bool,
    /// WebAssembly work of each callback run for this stream, in order: (callback, fuel).
    /// Fuel is wasmtime's count of executed WebAssembly operators (about one per
    /// instruction; host calls cost none of it). Filled only when the host meters fuel
    /// ([`crate::HostOptions::fuel`]); empty otherwise.
    pub fuel: Vec<(&'static str, u64)>,
}

impl StreamRecord {
    /// First value of a final request header.
    ///
    /// ```
    /// # use portcullis_harness::StreamRecord;
    /// let r = StreamRecord { request_headers: vec![("a".into(), "1".into())], ..Default::default() };
    /// assert_eq!(r.request_header("a"), Some("1"));
    /// ```
    pub fn request_header(&self, name: &str) -> Option<&str> {
        header_value(&self.request_headers, name)
    }

    /// First value of a final response header.
    ///
    /// ```
    /// # use portcullis_harness::StreamRecord;
    /// let r = StreamRecord { response_headers: vec![("b".into(), "2".into())], ..Default::default() };
    /// assert_eq!(r.response_header("b"), Some("2"));
    /// ```
    pub fn response_header(&self, name: &str) -> Option<&str> {
        header_value(&self.response_headers, name)
    }

    /// The fuel of all this stream's callbacks (see [`StreamRecord::fuel`]); 0 when the
    /// host does not meter fuel.
    ///
    /// ```
    /// # use portcullis_harness::StreamRecord;
    /// let r = StreamRecord { fuel: vec![("proxy_on_request_headers", 900), ("proxy_on_log", 100)], ..Default::default() };
    /// assert_eq!(r.fuel_used(), 1000);
    /// ```
    pub fn fuel_used(&self) -> u64 {
        self.fuel.iter().map(|(_, f)| f).sum()
    }

    /// True if any log line contains `needle`.
    ///
    /// ```
    /// # use portcullis_harness::{StreamRecord, LogEntry, LogLevel};
    /// let r = StreamRecord { logs: vec![LogEntry { level: LogLevel::Info, message: "hello".into(), context_id: 2 }], ..Default::default() };
    /// assert!(r.logged("ell"));
    /// ```
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(needle))
    }
}

pub(crate) fn header_value<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A map keyed by context ids or tokens. Nearly every import looks up the effective
/// stream, so the key hash is one multiplication instead of SipHash (the ids are
/// host-assigned, not attacker-chosen).
pub(crate) type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of a `u32` key (see [`IdMap`]).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Where a direction of a stream is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paused {
    Headers,
    Body,
    Trailers,
}

/// One direction (request or response) of a stream.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    /// Headers readable/writable now (during the callback or while paused at headers).
    pub headers_avail: bool,
    pub trailers_avail: bool,
    pub headers_seen: bool,
    pub paused: Option<Paused>,
    /// Body bytes buffered by the host (what `proxy_get_buffer_bytes` sees).
    pub buffer: Vec<u8>,
    pub end_seen: bool,
    /// Trailers that arrived while paused.
    pub pending_trailers: Option<Headers>,
    /// Body data (or its end) arrived while paused at headers.
    pub body_pending: bool,
    /// `proxy_continue_stream` asked to resume.
    pub resume: bool,
}

/// Per-stream state the imports read and write.
pub(crate) struct StreamState {
    pub record: StreamRecord,
    pub props: StreamProps,
    pub dirs: [Direction; 2],
    /// In `proxy_on_log`: all maps readable, none writable.
    pub in_log: bool,
    /// A TCP connection (network filter): `dirs[0]` holds downstream data, `dirs[1]`
    /// upstream data, and the record's bodies what the filter let through each way.
    pub network: bool,
    /// A local reply was sent and its response path not yet run.
    pub local_reply_new: bool,
    /// The stream is over (local reply sent, reset) — later input is ignored.
    pub ended: bool,
    pub request_started_ns: u64,
    /// Request header values that are not UTF-8, as sent: (key, the lossy value the record
    /// holds, the bytes). The filter reads the bytes for as long as the pair is unchanged.
    pub raw_request_values: Vec<(String, String, Vec<u8>)>,
}

impl StreamState {
    pub(crate) fn new(context_id: u32, props: StreamProps, now_ns: u64) -> Self {
        StreamState {
            record: StreamRecord {
                context_id,
                ..Default::default()
            },
            props,
            dirs: [Direction::default(), Direction::default()],
            in_log: false,
            network: false,
            local_reply_new: false,
            ended: false,
            raw_request_values: Vec::new(),
            request_started_ns: now_ns,
        }
    }
}

/// A host-side answer scheduled for delivery to the filter.
pub(crate) enum PendingReply {
    Http(u32, HttpReply),
    Grpc(u32, GrpcReply),
    HttpTimeout(u32),
}

/// The response data visible during `proxy_on_http_call_response` / gRPC callbacks.
#[derive(Default)]
pub(crate) struct CalloutData {
    pub headers: Headers,
    pub body: Vec<u8>,
    pub trailers: Headers,
}

/// Which callback phase the VM is in (restricts hostcalls like Envoy does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `_initialize`/`_start`/`main`: only proxy_log and WASI allowed.
    Start,
    VmStart,
    Configure,
    Other,
}

pub(crate) type HttpResponder = Box<dyn FnMut(&HttpCallRecord) -> HttpReply + Send>;
pub(crate) type GrpcResponder = Box<dyn FnMut(&GrpcCallRecord) -> GrpcReply + Send>;

/// The `Store` data of one VM.
pub(crate) struct HostState {
    pub limits: StoreLimits,
    pub memory: Option<Memory>,
    pub malloc: Option<TypedFunc<i32, i32>>,
    pub settings: Arc<VmSettings>,
    pub shared: Arc<Shared>,
    pub vm_serial: u64,
    pub phase: Phase,
    pub root_id: u32,
    /// The context the host called into.
    pub current: u32,
    /// The context hostcalls act on (`proxy_set_effective_context`).
    pub effective: u32,
    pub streams: IdMap<StreamState>,
    pub vm_logs: Vec<LogEntry>,
    pub last_critical: Option<String>,
    pub tick_period_ms: u64,
    pub realtime_ns: u64,
    pub monotonic_ns: u64,
    pub next_token: u32,
    pub http_responders: HashMap<String, HttpResponder>,
    pub grpc_responders: HashMap<String, GrpcResponder>,
    /// (due monotonic ns, reply), delivered in order.
    pub pending: Vec<(u64, PendingReply)>,
    pub http_calls: IdMap<HttpCallRecord>,
    pub grpc_calls: IdMap<GrpcCallRecord>,
    pub callout: CalloutData,
    pub status: (u32, String),
    pub foreign: HashMap<String, ForeignFunction>,
    pub done_pending: bool,
    /// The filter called `proxy_done` after a deferred `proxy_on_done`: the host deletes
    /// the root context once the current callback returns.
    pub done_called: bool,
    pub dns_requests: Vec<(u32, String)>,
    /// Every HTTP call made by this VM, in order.
    pub all_http_calls: Vec<HttpCallRecord>,
    pub all_grpc_calls: Vec<GrpcCallRecord>,
    /// xorshift state for `random_get`.
    pub rng: u64,
    /// `proxy_*` imports made to fail (see `Vm::fail_host_call`).
    pub faults: Vec<(String, Status)>,
}

impl HostState {
    /// The status a failing import answers, if `name` is made to fail.
    pub(crate) fn fault(&self, name: &str) -> Option<Status> {
        if self.faults.is_empty() {
            return None;
        }
        self.faults.iter().find(|(n, _)| n == name).map(|&(_, s)| s)
    }

    /// The stream the effective context names, if it is a stream.
    pub(crate) fn effective_stream(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective)
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: String) {
        if level == LogLevel::Critical {
            self.last_critical = Some(message.clone());
        }
        let entry = LogEntry {
            level,
            message,
            context_id: self.effective,
        };
        // Stream lines go to the stream's record only, so a long benchmark does not grow
        // the VM's log without bound.
        match self.streams.get_mut(&self.effective) {
            Some(s) => s.record.logs.push(entry),
            None => self.vm_logs.push(entry),
        }
    }
}
