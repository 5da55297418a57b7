//! Conformance filter for portcullis-harness: exercises host functions through the
//! proxy-wasm Rust SDK, driven by request paths, so the harness tests assert outcomes.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: String::new(), ticks: 0, done_deferred: false }) });
}}

// Imports the SDK does not wrap, or wraps with a panic on a non-OK status; declared raw so
// the tests can assert the status the host returns.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_size(map_type: u32, return_size: *mut u32) -> u32;
    fn proxy_get_buffer_status(buffer_type: u32, return_length: *mut u32, return_flags: *mut u32) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_done() -> u32;
}

fn header_map_size(map_type: u32) -> (u32, u32) {
    let mut size = 0u32;
    let status = unsafe { proxy_get_header_map_size(map_type, &mut size) };
    (status, size)
}

fn buffer_status(buffer_type: u32) -> (u32, u32, u32) {
    let (mut len, mut flags) = (0u32, 0u32);
    let status = unsafe { proxy_get_buffer_status(buffer_type, &mut len, &mut flags) };
    (status, len, flags)
}

/// Name of the queue a `queue-owner` VM registers (other VMs resolve it by vm_id).
const WORK_QUEUE: &str = "work";

struct Root {
    config: String,
    ticks: u32,
    done_deferred: bool,
}

impl Context for Root {
    fn on_done(&mut self) -> bool {
        if self.deferring() {
            self.done_deferred = true;
            log::info!("on_done: deferring");
            return false;
        }
        true
    }
}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        let vm = self.get_vm_configuration().unwrap_or_default();
        log::info!("vm_start config={}", String::from_utf8_lossy(&vm));
        true
    }

    fn on_configure(&mut self, _size: usize) -> bool {
        let cfg = self.get_plugin_configuration().unwrap_or_default();
        self.config = String::from_utf8_lossy(&cfg).into_owned();
        if self.config == "reject" {
            log::error!("bad configuration: reject");
            return false;
        }
        if self.config == "tick" || self.config == "defer-done" {
            self.set_tick_period(Duration::from_millis(100));
        }
        if self.config == "queue-owner" {
            let q = hostcalls::register_shared_queue(WORK_QUEUE);
            log::info!("registered queue {:?}", q);
        }
        let (status, len, flags) = buffer_status(7); // PluginConfiguration
        log::info!("plugin config buffer status={} len={} flags={}", status, len, flags);
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        log::info!("tick {}", self.ticks);
        let _ = self.set_shared_data("ticks", Some(self.ticks.to_string().as_bytes()), None);
        if self.done_deferred {
            self.done_deferred = false;
            let status = unsafe { proxy_done() };
            log::info!("proxy_done status={}", status);
        }
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = hostcalls::dequeue_shared_queue(queue_id) {
            let item = String::from_utf8_lossy(&item).into_owned();
            log::info!("queue_ready queue={} item={}", queue_id, item);
            if let Some(id) = item.strip_prefix("resume:").and_then(|i| i.parse::<u32>().ok()) {
                // Act on a held stream from the root context, as batching filters do.
                let bad = unsafe { proxy_set_effective_context(0xdead) };
                let ok = unsafe { proxy_set_effective_context(id) };
                log::info!("set_effective_context unknown={} stream={}", bad, ok);
                let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, "x-resumed-by", Some("root"));
                let _ = hostcalls::resume_http_request();
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { id: context_id, config: self.config.clone(), path: String::new() }))
    }

    fn create_stream_context(&self, context_id: u32) -> Option<Box<dyn StreamContext>> {
        Some(Box::new(Tcp { id: context_id }))
    }

    fn get_type(&self) -> Option<ContextType> {
        // Plugin configuration `tcp`: a network filter (TCP) instead of an HTTP one.
        if self.config == "tcp" {
            Some(ContextType::StreamContext)
        } else {
            Some(ContextType::HttpContext)
        }
    }
}

impl Root {
    fn deferring(&self) -> bool {
        self.config == "defer-done"
    }
}

struct Stream {
    id: u32,
    config: String,
    path: String,
}

impl Context for Stream {
    fn on_http_call_response(&mut self, _token: u32, nh: usize, body: usize, _nt: usize) {
        if nh == 0 {
            self.send_http_response(504, vec![], Some(b"callout failed"));
            return;
        }
        let status = self.get_http_call_response_header(":status").unwrap_or_default();
        let b = self.get_http_call_response_body(0, body).unwrap_or_default();
        if status == "200" {
            self.set_http_request_header("x-authz", Some(&String::from_utf8_lossy(&b)));
            self.resume_http_request();
        } else {
            self.send_http_response(403, vec![("x-denied-by", "authz")], Some(b"denied"));
        }
    }

    fn on_grpc_call_response(&mut self, _token: u32, status: u32, size: usize) {
        let (bs, len, _) = buffer_status(5); // GrpcReceiveBuffer
        log::info!("grpc response status={} size={} buffer_status={} len={}", status, size, bs, len);
        if status == 0 {
            let m = self.get_grpc_call_response_body(0, size).unwrap_or_default();
            self.set_http_request_header("x-grpc", Some(&String::from_utf8_lossy(&m)));
            self.resume_http_request();
        } else {
            let (_, msg) = self.get_grpc_status();
            self.send_grpc_response(GrpcStatusCode::Aborted, msg.as_deref(), vec![]);
        }
    }
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        log::info!("#{} request {}", self.id, path);
        self.path = path.clone();
        self.add_http_request_header("x-added", "1");
        self.set_http_request_header("x-replaced", Some("new"));
        self.set_http_request_header("x-remove-me", None);
        match path.as_str() {
            "/deny" => {
                self.send_http_response(403, vec![("x-reason", "policy")], Some(b"forbidden\n"));
                Action::Pause
            }
            "/panic" => panic!("conformance panic on purpose"),
            "/spin" => loop {
                std::hint::spin_loop();
            },
            "/callout" => {
                let r = self.dispatch_http_call(
                    "authz",
                    vec![(":method", "GET"), (":path", "/check"), (":authority", "authz")],
                    None,
                    vec![],
                    Duration::from_millis(500),
                );
                log::info!("dispatch {:?}", r.is_ok());
                Action::Pause
            }
            "/callout-unknown" => {
                let r = self.dispatch_http_call("nope", vec![(":method", "GET"), (":path", "/"), (":authority", "x")], None, vec![], Duration::from_secs(1));
                log::info!("unknown cluster err={}", r.is_err());
                Action::Continue
            }
            "/grpc" => {
                let r = self.dispatch_grpc_call("grpcbin", "svc.Svc", "Check", vec![], Some(b"req"), Duration::from_secs(1));
                log::info!("grpc dispatch {:?}", r.is_ok());
                Action::Pause
            }
            "/props" => {
                for p in [
                    vec!["source", "address"],
                    vec!["request", "path"],
                    vec!["request", "method"],
                    vec!["plugin_name"],
                    vec!["plugin_root_id"],
                    vec!["connection", "uri_san_peer_certificate"],
                    vec!["connection", "requested_server_name"],
                ] {
                    let v = self.get_property(p.clone()).map(|v| String::from_utf8_lossy(&v).into_owned());
                    log::info!("prop {}={:?}", p.join("."), v);
                }
                let port = self.get_property(vec!["source", "port"]).unwrap_or_default();
                log::info!("prop source.port.len={} value={}", port.len(), port.first().copied().unwrap_or(0) as u32 + 256 * port.get(1).copied().unwrap_or(0) as u32);
                let mtls = self.get_property(vec!["connection", "mtls"]).unwrap_or_default();
                log::info!("prop mtls={:?}", mtls);
                self.set_property(vec!["my", "key"], Some(b"v1"));
                let back = self.get_property(vec!["my", "key"]);
                log::info!("prop my.key back={:?}", back.map(|b| String::from_utf8_lossy(&b).into_owned()));
                // One key under a filter name with dots, asked for whole and split otherwise.
                for (name, p) in [
                    ("lua.key", vec!["metadata", "filter_metadata", "envoy.filters.http.lua", "key"]),
                    ("lua.split", vec!["metadata", "filter_metadata", "envoy", "filters", "http", "lua", "key"]),
                    ("cluster_id", vec!["xds", "node", "metadata", "CLUSTER_ID"]),
                    // The attribute names Envoy 1.40 no longer has (NotFound): xds.* above.
                    ("legacy node", vec!["node", "metadata", "CLUSTER_ID"]),
                    ("legacy route_name", vec!["route_name"]),
                ] {
                    let v = self.get_property(p).map(|v| String::from_utf8_lossy(&v).into_owned());
                    log::info!("prop {}={:?}", name, v);
                }
                Action::Continue
            }
            "/shared" => {
                let _ = self.set_shared_data("k", Some(b"v1"), None);
                let (v, cas) = self.get_shared_data("k");
                let stale = self.set_shared_data("k", Some(b"v2"), Some(cas.unwrap_or(0).wrapping_add(1000)));
                let fresh = self.set_shared_data("k", Some(b"v3"), cas);
                log::info!("shared v={:?} stale_err={} fresh_ok={}", v.map(|b| String::from_utf8_lossy(&b).into_owned()), stale.is_err(), fresh.is_ok());
                let q = hostcalls::register_shared_queue("q1").unwrap_or(0);
                let _ = hostcalls::enqueue_shared_queue(q, Some(b"item"));
                let d = hostcalls::dequeue_shared_queue(q).ok().flatten();
                let e = hostcalls::dequeue_shared_queue(q).ok().flatten();
                log::info!("queue first={:?} second_none={}", d.map(|b| String::from_utf8_lossy(&b).into_owned()), e.is_none());
                Action::Continue
            }
            "/metrics" => {
                let c = hostcalls::define_metric(MetricType::Counter, "requests").unwrap_or(0);
                let g = hostcalls::define_metric(MetricType::Gauge, "level").unwrap_or(0);
                let _ = hostcalls::increment_metric(c, 1);
                let bad = hostcalls::increment_metric(c, -1).is_err();
                let _ = hostcalls::record_metric(g, 42);
                log::info!("metrics counter={:?} bad_decrement_err={}", hostcalls::get_metric(c).ok(), bad);
                Action::Continue
            }
            "/foreign" => {
                let r = hostcalls::call_foreign_function("no_such_function", Some(b"x"));
                log::info!("foreign not_found={}", matches!(r, Err(Status::NotFound)));
                let e = hostcalls::call_foreign_function("echo", Some(b"ping")).ok().flatten();
                log::info!("foreign echo={:?}", e.map(|b| String::from_utf8_lossy(&b).into_owned()));
                Action::Continue
            }
            "/grpc-unknown" => {
                let r = self.dispatch_grpc_call("nope", "svc.Svc", "Check", vec![], Some(b"req"), Duration::from_secs(1));
                log::info!("grpc unknown cluster err={:?}", r.err());
                Action::Continue
            }
            "/map-size" => {
                let (status, size) = header_map_size(0); // HttpRequestHeaders
                let pairs = self.get_http_request_headers();
                let sum: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
                let (bad, _) = header_map_size(99);
                let (resp, _) = header_map_size(2); // HttpResponseHeaders, not yet received
                log::info!("map_size status={} size={} pairs_sum={} bad_type={} response_now={}", status, size, sum, bad, resp);
                Action::Continue
            }
            "/effective-hold" => {
                // Hand our id to the root context through the VM's own queue; the root
                // resumes us from on_queue_ready with set_effective_context.
                match hostcalls::resolve_shared_queue("q", WORK_QUEUE) {
                    Ok(Some(q)) => {
                        let r = hostcalls::enqueue_shared_queue(q, Some(format!("resume:{}", self.id).as_bytes()));
                        log::info!("enqueued self ok={}", r.is_ok());
                        Action::Pause
                    }
                    other => {
                        log::info!("no work queue: {:?}", other);
                        Action::Continue
                    }
                }
            }
            "/enqueue" => {
                let q = hostcalls::resolve_shared_queue("q", WORK_QUEUE);
                let r = q.map(|q| q.map(|q| hostcalls::enqueue_shared_queue(q, Some(format!("hello from #{}", self.id).as_bytes()))));
                log::info!("enqueue {:?}", r.map(|o| o.map(|e| e.is_ok())));
                Action::Continue
            }
            "/done-early" => {
                let status = unsafe { proxy_done() };
                log::info!("early proxy_done status={}", status);
                Action::Continue
            }
            "/hold" => Action::Pause,
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, size: usize, eos: bool) -> Action {
        if !eos {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, size).unwrap_or_default();
        log::info!("request body {} bytes", body.len());
        if self.path == "/buffer-status" {
            let (status, len, flags) = buffer_status(0); // HttpRequestBody
            let (resp, _, _) = buffer_status(1); // HttpResponseBody: none yet
            let (bad, _, _) = buffer_status(99);
            log::info!("buffer_status status={} len={} flags={} response={} bad_type={}", status, len, flags, resp, bad);
        }
        if self.config == "rewrite-body" {
            self.set_http_request_body(0, size, b"REPLACED");
            self.set_http_request_body(0, 0, b"<");
            self.set_http_request_body(usize::MAX >> 1, 0, b">");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log::info!("response status {}", status);
        self.set_http_response_header("x-seen-by", Some("conformance"));
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, eos: bool) -> Action {
        if !eos {
            return Action::Pause;
        }
        let b = self.get_http_response_body(0, size).unwrap_or_default();
        log::info!("response body {}", String::from_utf8_lossy(&b));
        Action::Continue
    }

    fn on_log(&mut self) {
        let path = self.get_http_request_header(":path").unwrap_or_default();
        let status = self.get_http_response_header(":status").unwrap_or_default();
        log::info!("on_log path={} status={}", path, status);
    }
}

/// The network filter (plugin configuration `tcp`): a line protocol. Downstream data is
/// held until it ends with a newline, then passed upstream upper-cased; `close` closes the
/// connection, `panic` traps; upstream data goes back prefixed with `<`.
struct Tcp {
    id: u32,
}

impl Context for Tcp {}

impl StreamContext for Tcp {
    fn on_new_connection(&mut self) -> Action {
        let src = self.get_property(vec!["source", "address"]).map(|v| String::from_utf8_lossy(&v).into_owned());
        log::info!("#{} tcp new connection from {:?}", self.id, src);
        Action::Continue
    }

    fn on_downstream_data(&mut self, size: usize, end: bool) -> Action {
        let data = self.get_downstream_data(0, size).unwrap_or_default();
        let text = String::from_utf8_lossy(&data).into_owned();
        log::info!("downstream size={} end={} data={:?}", size, end, text);
        if text.contains("panic") {
            panic!("conformance tcp panic on purpose");
        }
        if text.contains("close") {
            self.close_downstream();
            return Action::Pause;
        }
        if !text.ends_with('\n') && !end {
            return Action::Pause;
        }
        self.set_downstream_data(0, size, text.to_uppercase().as_bytes());
        Action::Continue
    }

    fn on_downstream_close(&mut self, peer: PeerType) {
        log::info!("downstream close peer={:?}", peer as u32);
    }

    fn on_upstream_data(&mut self, size: usize, end: bool) -> Action {
        let data = self.get_upstream_data(0, size).unwrap_or_default();
        log::info!("upstream size={} end={}", size, end);
        self.set_upstream_data(0, 0, b"<");
        let _ = data;
        Action::Continue
    }

    fn on_upstream_close(&mut self, peer: PeerType) {
        log::info!("upstream close peer={:?}", peer as u32);
    }

    fn on_log(&mut self) {
        log::info!("tcp log #{}", self.id);
    }
}
