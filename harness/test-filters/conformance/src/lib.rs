//! Conformance filter for portcullis-harness: exercises host functions through the
//! proxy-wasm Rust SDK, driven by request paths, so the harness tests assert outcomes.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: String::new(), ticks: 0 }) });
}}

struct Root {
    config: String,
    ticks: u32,
}

impl Context for Root {}

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
        if self.config == "tick" {
            self.set_tick_period(Duration::from_millis(100));
        }
        true
    }

    fn on_tick(&mut self) {
        self.ticks += 1;
        log::info!("tick {}", self.ticks);
        let _ = self.set_shared_data("ticks", Some(self.ticks.to_string().as_bytes()), None);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream { id: context_id, config: self.config.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    id: u32,
    config: String,
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
