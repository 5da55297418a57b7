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
//!
//! With `partner_lists`, the root's tick and `on_http_call_response` drive
//! [`ListState`] (fetch, publish, load); each request takes the table in force once, at
//! its start, so a swap never lands in the middle of a decision.

use crate::authz::CertificateCache;
use crate::connection::{headers_from_map, Properties, PropertyRequest};
use crate::engine::{Decision, LocalReply, Plan};
use crate::error::HostError;
use crate::host::{self, LogLevel};
use crate::lists::{FetchResponse, ListState, ListsHost, Severity};
use crate::metrics::Counters;
use crate::outcome::{self, HeaderEdit, InternalCause};
use crate::request::{RequestView, StaticRequest};
use crate::waf::{LimitAction, ResponseCheck, WafOutcome};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

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
    /// `partner_lists`: this VM's table in force and fetch state.
    lists: Option<Rc<RefCell<ListState>>>,
    lists_host: Rc<ListsGlue>,
    /// The id of [`LINEAR_MEMORY_GAUGE`], once defined.
    memory_gauge: Cell<Option<u32>>,
}

impl Default for Root {
    fn default() -> Self {
        Root {
            plan: None,
            metrics: Rc::default(),
            certificates: Rc::new(RefCell::new(CertificateCache::new(CERTIFICATE_CACHE_SIZE))),
            lists: None,
            lists_host: Rc::default(),
            memory_gauge: Cell::new(None),
        }
    }
}

/// [`ListsHost`] through the proxy-wasm calls.
#[derive(Default)]
struct ListsGlue {
    /// The id of the `portcullis.partner_lists.version` gauge, once defined.
    version_gauge: Cell<Option<u32>>,
}

/// The gauge with the partner-list version in force (the same in every worker once loaded).
const VERSION_GAUGE: &str = "portcullis.partner_lists.version";

/// The gauge with the largest linear memory (bytes) of the plugin's VMs, set on every tick
/// and at configuration: what a soak watches for a leak.
const LINEAR_MEMORY_GAUGE: &str = "portcullis.vm.linear_memory_bytes";

/// Sets [`LINEAR_MEMORY_GAUGE`]. Every VM (each worker's, and the main thread's) writes the
/// one gauge Envoy shares between them, so each writes the larger of its own size and the
/// gauge's value: a Wasm memory never shrinks, and the largest VM is where a leak shows
/// (one VM alone would make the gauge flip between VMs' sizes). `id` caches the gauge's id.
fn record_linear_memory(id: &Cell<Option<u32>>) {
    let own = host::linear_memory_bytes();
    let defined = match id.get() {
        Some(id) => Ok(id),
        None => host::define_gauge(LINEAR_MEMORY_GAUGE),
    };
    let recorded = defined.and_then(|gauge| {
        // A gauge that cannot be read counts as unset: this VM's size goes in.
        let largest = own.max(host::metric_value(gauge).unwrap_or(0));
        host::record_gauge(gauge, largest).map(|()| gauge)
    });
    match recorded {
        Ok(gauge) => id.set(Some(gauge)),
        Err(e) => host::log(
            LogLevel::Warn,
            &format!("cannot set {LINEAR_MEMORY_GAUGE}: {e}"),
        ),
    }
}

impl ListsHost for ListsGlue {
    fn now_ms(&self) -> u64 {
        // A clock that fails reads as 0: a fetch is then due at once, never late.
        host::now_ms().unwrap_or_else(|e| {
            host::log(LogLevel::Warn, &format!("cannot read the clock: {e}"));
            0
        })
    }
    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
        host::shared_data(key)
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        host::set_shared_data(key, value, cas)
    }
    fn http_get(
        &self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<u32, HostError> {
        let headers = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            (":scheme", "http"),
            ("user-agent", "portcullis"),
        ];
        host::http_call(cluster, headers, timeout)
    }
    fn log(&self, severity: Severity, message: &str) {
        let level = match severity {
            Severity::Info => LogLevel::Info,
            Severity::Warn => LogLevel::Warn,
            Severity::Error => LogLevel::Error,
        };
        host::log(level, message);
    }
    fn version_loaded(&self, version: u64) {
        let id = match self.version_gauge.get() {
            Some(id) => Ok(id),
            None => host::define_gauge(VERSION_GAUGE),
        };
        match id.and_then(|id| host::record_gauge(id, version).map(|()| id)) {
            Ok(id) => self.version_gauge.set(Some(id)),
            Err(e) => host::log(LogLevel::Warn, &format!("cannot set {VERSION_GAUGE}: {e}")),
        }
    }
}

/// Reads an HTTP call's response for the lists: no headers means no response; a body over
/// `max_bytes` is not read.
fn fetch_response(
    num_headers: usize,
    body_size: usize,
    checksum_header: Option<&str>,
    max_bytes: usize,
) -> Result<FetchResponse, HostError> {
    if num_headers == 0 {
        return Ok(FetchResponse {
            status: None,
            checksum: None,
            body: Ok(Vec::new()),
        });
    }
    let headers = host::http_call_response_headers()?;
    let value = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    // A response without a readable :status is refused like a non-200 one.
    let status = value(":status").and_then(|v| v.parse().ok()).unwrap_or(0);
    let checksum = checksum_header.and_then(value).map(str::to_owned);
    let body = if body_size > max_bytes {
        Err(body_size)
    } else {
        Ok(host::http_call_response_body(body_size)?)
    };
    Ok(FetchResponse {
        status: Some(status),
        checksum,
        body,
    })
}

/// Parsed client certificates kept per VM (one VM per Envoy worker).
const CERTIFICATE_CACHE_SIZE: usize = 1024;

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(lists) = &self.lists else {
            return;
        };
        let mut state = lists.borrow_mut();
        let spec = state.plan().spec();
        let header = spec.checksum_header.as_ref().map(|h| h.0.as_str());
        let response = fetch_response(num_headers, body_size, header, spec.max_bytes as usize);
        let mut m = self.metrics.borrow_mut();
        state.on_response(
            self.lists_host.as_ref(),
            &mut m.counters,
            token_id,
            response,
        );
        m.after_request();
    }

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
        match Plan::parse(&bytes) {
            Ok(plan) => {
                host::log(
                    LogLevel::Info,
                    &format!("configuration loaded ({} partners)", plan.partners().len()),
                );
                if let Some(waf) = plan.waf() {
                    host::log(LogLevel::Info, &waf.summary());
                }
                let flush = plan.metrics_flush();
                let mut immediate = flush.is_none();
                // The tick serves the metrics flush and the lists' poll: the shorter period.
                let mut tick = flush;
                self.lists = plan.partner_lists().map(|l| {
                    let spec = l.spec();
                    host::log(
                        LogLevel::Info,
                        &format!(
                            "partner lists: {} list(s) from cluster {} every {} ms (shared-data key {})",
                            l.sources().len(),
                            spec.cluster,
                            spec.refresh_interval_ms,
                            l.key()
                        ),
                    );
                    tick = Some(tick.map_or(l.poll_interval(), |t| t.min(l.poll_interval())));
                    Rc::new(RefCell::new(ListState::new(l.clone())))
                });
                if let Some(period) = tick {
                    if let Err(e) = host::set_tick_period(period) {
                        host::log(
                            LogLevel::Warn,
                            &format!("cannot set the metrics tick ({e}): counting per request"),
                        );
                        immediate = true;
                        if self.lists.is_some() {
                            // Without a tick no list is ever fetched.
                            host::log(
                                LogLevel::Error,
                                &format!("partner lists need the timer tick: {e}"),
                            );
                            return false;
                        }
                    }
                }
                let mut metrics = self.metrics.borrow_mut();
                metrics.immediate = immediate;
                metrics.flush();
                drop(metrics);
                self.plan = Some(Rc::new(plan));
                record_linear_memory(&self.memory_gauge);
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
            lists: self.lists.clone(),
            lists_host: self.lists_host.clone(),
            waf_pending: None,
            waf_rule_ids: None,
            waf_response: None,
        }))
    }

    fn on_tick(&mut self) {
        if let Some(lists) = &self.lists {
            let mut m = self.metrics.borrow_mut();
            lists
                .borrow_mut()
                .on_tick(self.lists_host.as_ref(), &mut m.counters);
        }
        self.metrics.borrow_mut().flush();
        record_linear_memory(&self.memory_gauge);
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
    lists: Option<Rc<RefCell<ListState>>>,
    lists_host: Rc<ListsGlue>,
    /// The request held for the WAF while its body is buffered.
    waf_pending: Option<WafPending>,
    /// Matched rule ids for the `rule_ids_header` response header.
    waf_rule_ids: Option<String>,
    /// The WAF transaction of a request it let through, for the response phases.
    waf_response: Option<WafResponse>,
}

/// A response the WAF inspects (`waf.response.enabled`).
struct WafResponse {
    check: ResponseCheck,
    /// The request's headers, for the log line and the denial body.
    request: crate::request::Headers,
    /// True once phase 3 passed and the body is being buffered for phase 4.
    buffering_body: bool,
}

/// What the WAF needs of a request whose body is still arriving.
struct WafPending {
    request: StaticRequest,
    client_ip: Option<std::net::IpAddr>,
    /// Body bytes Envoy has buffered so far.
    buffered: usize,
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
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
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
        // The table in force for this whole request (a newer one may load meanwhile).
        let lists = self.lists.as_ref().and_then(|l| {
            let mut m = self.metrics.borrow_mut();
            l.borrow_mut()
                .for_request(self.lists_host.as_ref(), &mut m.counters)
        });
        let req = PropertyRequest::new(headers, HostProperties, &self.certificates);
        let decision = plan.evaluate_with_lists(&req, lists.as_deref().map(|t| &t.table));
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
            None => {
                if let Err(error) = edit_upstream_headers(&plan, &req.headers, &decision) {
                    let doing = "editing request headers";
                    return self.internal_error(Some(&plan), InternalCause::Host { doing, error });
                }
                if plan.waf().is_none() {
                    return Action::Continue;
                }
                // The WAF reads REMOTE_ADDR: the IP check's client IP, else the peer.
                let source_address = match decision.client_ip {
                    Some(_) => None,
                    None => req.source_address().map(str::to_string),
                };
                let pending = WafPending {
                    request: StaticRequest {
                        headers: req.headers.clone(),
                        source_address,
                        ..Default::default()
                    },
                    client_ip: decision.client_ip,
                    buffered: 0,
                };
                if end_of_stream {
                    return self.run_waf(&plan, &pending, None);
                }
                // The body is buffered (the body callback pauses) and inspected before any of
                // it goes upstream. The headers go on now: in Envoy a paused headers callback
                // (StopAllIterationAndWatermark) would hold back the body callbacks too.
                self.waf_pending = Some(pending);
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(plan), Some(mut pending)) = (self.plan.clone(), self.waf_pending.take()) else {
            return Action::Continue;
        };
        let Some(waf) = plan.waf() else {
            return Action::Continue;
        };
        let settings = waf.request_body();
        let limit = settings.limit_bytes as usize;
        if body_size > limit {
            if settings.limit_action == LimitAction::Reject {
                return self.body_too_large(&pending);
            }
            // ProcessPartial: inspect what fits; the rest streams through uninspected.
            return self.run_waf_on_body(&plan, &pending, limit);
        }
        if !end_of_stream {
            // Envoy keeps buffering while we pause.
            pending.buffered = body_size;
            self.waf_pending = Some(pending);
            return Action::Pause;
        }
        self.run_waf_on_body(&plan, &pending, body_size)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body ended by trailers: the whole body is buffered now.
        let (Some(plan), Some(pending)) = (self.plan.clone(), self.waf_pending.take()) else {
            return Action::Continue;
        };
        let limit = plan
            .waf()
            .map_or(0, |w| w.request_body().limit_bytes as usize);
        self.run_waf_on_body(&plan, &pending, pending.buffered.min(limit))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plan) = self.plan.clone() else {
            return Action::Continue;
        };
        if let Some(ids) = self.waf_rule_ids.take() {
            if let Some(h) = plan.waf().and_then(|w| w.rule_ids_header()) {
                if let Err(e) = host::set_response_header(h, &ids) {
                    host::log(LogLevel::Warn, &format!("cannot set {h}: {e}"));
                }
            }
        }
        let Some(mut response) = self.waf_response.take() else {
            return Action::Continue;
        };
        let Some(waf) = plan.waf() else {
            return Action::Continue;
        };
        let headers = match host::response_headers() {
            Ok(h) => h,
            Err(error) => {
                let doing = "reading response headers";
                return self.internal_error(Some(&plan), InternalCause::Host { doing, error });
            }
        };
        let value = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        // A status Envoy always sets; an unreadable one is 0, which no rule expects.
        let status = value(":status").and_then(|v| v.parse().ok()).unwrap_or(0);
        let inspect_body = waf.inspects_response_body(value("content-type"));
        let outcome = response.check.headers(status, &headers);
        if let Some(action) = self.waf_response_outcome(&plan, &response, &outcome) {
            return action;
        }
        if end_of_stream || !inspect_body {
            let outcome = response.check.finish();
            return self
                .waf_response_outcome(&plan, &response, &outcome)
                .unwrap_or(Action::Continue);
        }
        // The headers go on (a paused headers callback would hold back the body callbacks in
        // Envoy); the body is held until phase 4 decided.
        response.buffering_body = true;
        self.waf_response = Some(response);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(plan), Some(response)) = (self.plan.clone(), self.waf_response.take()) else {
            return Action::Continue;
        };
        let limit = plan.waf().map_or(0, |w| w.response_body_limit());
        if body_size < limit && !end_of_stream {
            // Envoy keeps buffering while we pause.
            self.waf_response = Some(response);
            return Action::Pause;
        }
        // The whole body, or the first `limit` bytes (the rest streams through uninspected).
        self.run_waf_on_response_body(&plan, response, body_size.min(limit))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body ended by trailers: what was buffered is the whole body.
        let (Some(plan), Some(response)) = (self.plan.clone(), self.waf_response.take()) else {
            return Action::Continue;
        };
        let limit = plan.waf().map_or(0, |w| w.response_body_limit());
        self.run_waf_on_response_body(&plan, response, limit)
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
    /// Reads the first `len` buffered body bytes and runs the WAF on them.
    fn run_waf_on_body(&mut self, plan: &Plan, pending: &WafPending, len: usize) -> Action {
        match host::request_body(len) {
            Ok(body) => self.run_waf(plan, pending, Some(&body)),
            Err(error) => {
                let doing = "reading the request body";
                self.internal_error(Some(plan), InternalCause::Host { doing, error })
            }
        }
    }

    fn run_waf(&mut self, plan: &Plan, pending: &WafPending, body: Option<&[u8]>) -> Action {
        let Some(waf) = plan.waf() else {
            return Action::Continue;
        };
        let (outcome, response) = waf.evaluate_request(&pending.request, pending.client_ip, body);
        let headers = &pending.request.headers;
        {
            let mut m = self.metrics.borrow_mut();
            outcome.count(&mut m.counters);
            m.after_request();
        }
        let request_id = headers.get("x-request-id");
        if let Some(line) = outcome.log_line(headers.authority(), headers.path(), request_id) {
            host::log(LogLevel::Info, &line);
        }
        if let Some(reply) = plan.waf_reply(&outcome, request_id) {
            return self.reply(reply);
        }
        if waf.rule_ids_header().is_some() && !outcome.matched.is_empty() {
            let ids: Vec<String> = outcome.matched.iter().map(u64::to_string).collect();
            self.waf_rule_ids = Some(ids.join(","));
        }
        self.waf_response = response.map(|check| WafResponse {
            check,
            request: headers.clone(),
            buffering_body: false,
        });
        Action::Continue
    }

    /// Reads the first `len` buffered response body bytes and runs phase 4 on them.
    fn run_waf_on_response_body(
        &mut self,
        plan: &Plan,
        mut response: WafResponse,
        len: usize,
    ) -> Action {
        if !response.buffering_body {
            return Action::Continue;
        }
        let body = match host::response_body(len) {
            Ok(b) => b,
            Err(error) => {
                let doing = "reading the response body";
                return self.internal_error(Some(plan), InternalCause::Host { doing, error });
            }
        };
        let outcome = response.check.body(&body);
        self.waf_response_outcome(plan, &response, &outcome)
            .unwrap_or(Action::Continue)
    }

    /// Counts and logs a response-phase denial (or dry-run denial) and, when enforced,
    /// replaces the response with the denial reply. `None`: the response goes on.
    ///
    /// In Envoy a local reply after the response headers went downstream (phase 4) cannot
    /// change the status: Envoy resets the stream instead, so the held body never reaches
    /// the client.
    fn waf_response_outcome(
        &self,
        plan: &Plan,
        response: &WafResponse,
        outcome: &WafOutcome,
    ) -> Option<Action> {
        if outcome.intervention.is_none() && outcome.detected.is_none() {
            return None;
        }
        let headers = &response.request;
        {
            let mut m = self.metrics.borrow_mut();
            outcome.count(&mut m.counters);
            m.after_request();
        }
        let request_id = headers.get("x-request-id");
        if let Some(line) = outcome.log_line(headers.authority(), headers.path(), request_id) {
            host::log(LogLevel::Info, &line);
        }
        let reply = plan.waf_reply(outcome, request_id)?;
        Some(self.reply(reply))
    }

    /// `limit_action: reject`: 413, as ModSecurity's `SecRequestBodyLimitAction Reject`.
    fn body_too_large(&self, pending: &WafPending) -> Action {
        let headers = &pending.request.headers;
        {
            let mut m = self.metrics.borrow_mut();
            m.counters
                .increment("waf", "denied", "request_body_too_large", "rule", "none");
            m.after_request();
        }
        host::log(
            LogLevel::Info,
            &format!(
                "denied check=waf reason=request_body_too_large authority={:?} path={:?} request_id={}",
                headers.authority(),
                headers.path(),
                headers.get("x-request-id").unwrap_or("-"),
            ),
        );
        self.reply(LocalReply {
            status: 413,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"reason":"request_body_too_large","check":"waf"}"#.to_vec(),
            details: "portcullis_waf_request_body_too_large".into(),
        })
    }

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
