//! The proxy-wasm shell around the engine (wasm32 only).
//!
//! Root context: plugin configuration → [`Plan`] (once, at `on_configure`).
//! HTTP context: one read of the request header map → [`PropertyRequest`] (connection
//! properties fetched only when a check asks) → [`Decision`] → continue, or a local reply.
//! What to count, log and edit comes from [`crate::outcome`]; host calls go through
//! [`crate::host`], whose wrappers return every status instead of trapping.
//!
//! A failing host call is an internal error and the request fails closed (403) unless
//! the config says `fail_open`; errors caused by the request are decided by the engine.

use crate::authz::CertificateCache;
use crate::config;
use crate::connection::{headers_from_map, Properties, PropertyRequest};
use crate::engine::{Decision, LocalReply, Plan};
use crate::error::HostError;
use crate::host::{self, LogLevel};
use crate::metrics::Counters;
use crate::outcome::{self, HeaderEdit, InternalCause};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

proxy_wasm::main! {{
    // Installs the SDK's panic hook (it logs the message). Nothing here panics on input;
    // the hook is for diagnosing a bug.
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The filter's counters and how they reach Envoy (`metrics.flush_interval_ms`).
#[derive(Default)]
struct Metrics {
    counters: Counters,
    /// True: every increment is handed to Envoy at once (interval 0, or no tick period).
    immediate: bool,
}

impl Metrics {
    /// Called once per request after its counts: hands them over at once in `immediate`
    /// mode, else leaves them for the tick.
    fn after_request(&mut self) {
        if self.immediate {
            self.flush();
        }
    }

    /// One `proxy_define_metric` per new counter, one `proxy_increment_metric` per counter
    /// with a pending count.
    fn flush(&mut self) {
        if !self.counters.has_pending() {
            return;
        }
        self.counters.flush(
            host::define_counter,
            |id, n| {
                if let Err(e) = host::increment_counter(id, n) {
                    host::log(LogLevel::Warn, &format!("cannot count: {e}"));
                }
            },
            |name, e| host::log(LogLevel::Warn, &format!("cannot define metric {name}: {e}")),
        );
    }
}

struct Root {
    plan: Option<Rc<Plan>>,
    metrics: Rc<RefCell<Metrics>>,
    certificates: Rc<RefCell<CertificateCache>>,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            plan: None,
            metrics: Rc::default(),
            certificates: Rc::new(RefCell::new(CertificateCache::new(CERTIFICATE_CACHE_SIZE))),
        }
    }
}

/// Parsed client certificates kept per VM (one VM per Envoy worker).
const CERTIFICATE_CACHE_SIZE: usize = 1024;

impl Context for Root {
    fn on_done(&mut self) -> bool {
        // The VM is going away: hand over what is left.
        self.metrics.borrow_mut().flush();
        true
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = match host::plugin_configuration() {
            Ok(b) => b,
            Err(e) => {
                host::log(
                    LogLevel::Error,
                    &format!("cannot read the plugin configuration: {e}"),
                );
                return false;
            }
        };
        match config::parse(&bytes) {
            Ok(plan) => {
                host::log(
                    LogLevel::Info,
                    &format!("configuration loaded ({} partners)", plan.partners().len()),
                );
                let flush = plan.metrics_flush();
                let mut immediate = flush.is_none();
                if let Some(period) = flush {
                    if let Err(e) = host::set_tick_period(period) {
                        host::log(
                            LogLevel::Warn,
                            &format!("cannot set the metrics tick ({e}): counting per request"),
                        );
                        immediate = true;
                    }
                }
                let mut metrics = self.metrics.borrow_mut();
                metrics.immediate = immediate;
                metrics.flush();
                drop(metrics);
                self.plan = Some(Rc::new(plan));
                true
            }
            Err(e) => {
                host::log(LogLevel::Error, &format!("invalid configuration: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            plan: self.plan.clone(),
            metrics: self.metrics.clone(),
            certificates: self.certificates.clone(),
        }))
    }

    fn on_tick(&mut self) {
        self.metrics.borrow_mut().flush();
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Stream {
    /// `None` only if Envoy created a stream although `on_configure` failed.
    plan: Option<Rc<Plan>>,
    metrics: Rc<RefCell<Metrics>>,
    certificates: Rc<RefCell<CertificateCache>>,
}

/// Properties through `proxy_get_property`.
struct HostProperties;

impl Properties for HostProperties {
    fn get(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
        host::property(path)
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(plan) = self.plan.clone() else {
            return self.internal_error(None, InternalCause::NoConfiguration);
        };
        let headers = match host::request_headers() {
            Ok(pairs) => headers_from_map(pairs),
            Err(error) => {
                let doing = "reading request headers";
                return self.internal_error(Some(&plan), InternalCause::Host { doing, error });
            }
        };
        let req = PropertyRequest::new(headers, HostProperties, &self.certificates);
        let decision = plan.evaluate(&req);
        if let Some(error) = req.host_error() {
            let doing = "reading a property";
            return self.internal_error(Some(&plan), InternalCause::Host { doing, error });
        }
        self.count(&decision);
        outcome::log_decision(&plan, &req.headers, &decision, |l| {
            host::log(LogLevel::Info, l)
        });
        match &decision.denial {
            Some(denial) => {
                let reply = plan.denial_reply(denial, req.headers.get("x-request-id"));
                self.reply(reply)
            }
            None => match edit_upstream_headers(&plan, &req.headers, &decision) {
                Ok(()) => Action::Continue,
                Err(error) => {
                    let doing = "editing request headers";
                    self.internal_error(Some(&plan), InternalCause::Host { doing, error })
                }
            },
        }
    }
}

/// One host call per edit [`outcome::upstream_edits`] lists.
fn edit_upstream_headers(
    plan: &Plan,
    headers: &crate::request::Headers,
    d: &Decision,
) -> Result<(), HostError> {
    for edit in outcome::upstream_edits(plan, headers, d) {
        match edit {
            HeaderEdit::Set(h, v) => host::set_request_header(h, v)?,
            HeaderEdit::Remove(h) => host::remove_request_header(h)?,
        }
    }
    Ok(())
}

impl Stream {
    fn count(&self, d: &Decision) {
        let mut m = self.metrics.borrow_mut();
        outcome::count_decision(&mut m.counters, d);
        m.after_request();
    }

    fn reply(&self, r: LocalReply) -> Action {
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let serialized = crate::wire::encode_pairs(&headers);
        if let Err(e) = host::send_local_response(r.status, &r.details, &r.body, &serialized) {
            host::log(LogLevel::Error, &format!("cannot deny the request: {e}"));
            // Nothing else can answer the request; closing it is the fail-closed choice.
            if let Err(e) = host::reset_request() {
                host::log(LogLevel::Error, &format!("cannot reset the request: {e}"));
            }
        }
        Action::Pause
    }

    fn internal_error(&self, plan: Option<&Plan>, why: InternalCause) -> Action {
        let mut m = self.metrics.borrow_mut();
        let e = outcome::internal_error(plan, why, &mut m.counters);
        m.after_request();
        drop(m);
        host::log(LogLevel::Error, &e.log);
        match e.reply {
            None => Action::Continue,
            Some(reply) => self.reply(reply),
        }
    }
}
