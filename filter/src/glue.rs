//! The proxy-wasm shell around the engine (wasm32 only).
//!
//! Root context: plugin configuration → [`Plan`] (once, at `on_configure`).
//! HTTP context: one read of the request header map → [`RequestView`] (connection
//! properties fetched only when a check asks) → [`Decision`] → continue, or a local reply.
//!
//! Every host call result is handled: a failing host call is an internal error and the
//! request fails closed (403) unless the config says `fail_open`; nothing here panics on
//! request input.

use crate::authz::{AuthzVerdict, CertificateCache};
use crate::config;
use crate::engine::{Decision, IpOutcome, LocalReply, Plan};
use crate::metrics::Counters;
use crate::request::{Headers, PeerCertificate, RequestView, StaticRequest};
use crate::waf::LimitAction;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[link(wasm_import_module = "env")]
extern "C" {
    // Declared here as well as in the SDK: the SDK's wrapper panics on a non-OK status and
    // passes no response-code details; we want neither.
    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

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
            |name| hostcalls::define_metric(MetricType::Counter, name),
            |id, n| {
                let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
            },
            |name, e| {
                log(
                    LogLevel::Warn,
                    &format!("cannot define metric {name}: {e:?}"),
                )
            },
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
        let bytes = match hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        ) {
            Ok(b) => b.unwrap_or_default(),
            Err(e) => {
                log(
                    LogLevel::Error,
                    &format!("cannot read the plugin configuration: {e:?}"),
                );
                return false;
            }
        };
        match config::parse(&bytes) {
            Ok(plan) => {
                log(
                    LogLevel::Info,
                    &format!("configuration loaded ({} partners)", plan.partners().len()),
                );
                let flush = plan.metrics_flush();
                let mut immediate = flush.is_none();
                if let Some(period) = flush {
                    if let Err(e) = hostcalls::set_tick_period(period) {
                        log(
                            LogLevel::Warn,
                            &format!("cannot set the metrics tick ({e:?}): counting per request"),
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
                log(LogLevel::Error, &format!("invalid configuration: {e}"));
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Stream {
            plan: self.plan.clone(),
            metrics: self.metrics.clone(),
            certificates: self.certificates.clone(),
            waf_pending: None,
            waf_rule_ids: None,
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
    /// The request held for the WAF while its body is buffered.
    waf_pending: Option<WafPending>,
    /// Matched rule ids for the `rule_ids_header` response header.
    waf_rule_ids: Option<String>,
}

/// What the WAF needs of a request whose body is still arriving.
struct WafPending {
    request: StaticRequest,
    client_ip: Option<std::net::IpAddr>,
    /// Body bytes Envoy has buffered so far.
    buffered: usize,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(plan) = self.plan.clone() else {
            return self.internal_error(None, "no configuration");
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(pairs) => Headers::new(
                pairs
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
            ),
            Err(e) => {
                return self
                    .internal_error(Some(&plan), &format!("cannot read request headers: {e:?}"))
            }
        };
        let req = HostRequest::new(headers, &self.certificates);
        let decision = plan.evaluate(&req);
        if let Some(err) = req.error.take() {
            return self.internal_error(Some(&plan), &err);
        }
        self.count(&decision);
        log_decision(&plan, &req, &decision);
        match &decision.denial {
            Some(denial) => {
                let reply = plan.denial_reply(denial, req.headers.get("x-request-id"));
                self.reply(reply)
            }
            None => {
                if let Err(e) = self.edit_upstream_headers(&plan, &req.headers, &decision) {
                    return self.internal_error(Some(&plan), &e);
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
                        destination_port: None,
                        ..Default::default()
                    },
                    client_ip: decision.client_ip,
                    buffered: 0,
                };
                if end_of_stream {
                    return self.run_waf(&plan, &pending, None);
                }
                // The body is buffered (the body callback pauses) and inspected before any of it
                // goes upstream. The headers go on now: in Envoy a paused headers callback
                // (StopAllIterationAndWatermark) would hold back the body callbacks too.
                self.waf_pending = Some(pending);
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let (Some(plan), Some(pending)) = (self.plan.clone(), self.waf_pending.take()) else {
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
            let mut pending = pending;
            pending.buffered = body_size;
            self.waf_pending = Some(pending);
            return Action::Pause;
        }
        self.run_waf_on_body(&plan, &pending, body_size)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let (Some(plan), Some(ids)) = (self.plan.clone(), self.waf_rule_ids.take()) else {
            return Action::Continue;
        };
        if let Some(h) = plan.waf().and_then(|w| w.rule_ids_header()) {
            if let Err(e) = hostcalls::set_map_value(MapType::HttpResponseHeaders, h, Some(&ids)) {
                log(LogLevel::Warn, &format!("cannot set {h}: {e:?}"));
            }
        }
        Action::Continue
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
}

impl Stream {
    /// Reads the first `len` buffered body bytes and runs the WAF on them.
    fn run_waf_on_body(&mut self, plan: &Plan, pending: &WafPending, len: usize) -> Action {
        match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, len) {
            Ok(body) => self.run_waf(plan, pending, Some(&body.unwrap_or_default())),
            Err(e) => {
                self.internal_error(Some(plan), &format!("cannot read the request body: {e:?}"))
            }
        }
    }

    fn run_waf(&mut self, plan: &Plan, pending: &WafPending, body: Option<&[u8]>) -> Action {
        let Some(waf) = plan.waf() else {
            return Action::Continue;
        };
        let outcome = waf.evaluate(&pending.request, pending.client_ip, body);
        let headers = &pending.request.headers;
        {
            let mut m = self.metrics.borrow_mut();
            outcome.count(&mut m.counters);
            m.after_request();
        }
        let request_id = headers.get("x-request-id");
        if let Some(line) = outcome.log_line(headers.authority(), headers.path(), request_id) {
            log(LogLevel::Info, &line);
        }
        if let Some(reply) = plan.waf_reply(&outcome, request_id) {
            return self.reply(reply);
        }
        if waf.rule_ids_header().is_some() && !outcome.matched.is_empty() {
            let ids: Vec<String> = outcome.matched.iter().map(u64::to_string).collect();
            self.waf_rule_ids = Some(ids.join(","));
        }
        Action::Continue
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
        log(
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

    /// Sets the partner header (or removes a forged one) and strips the headers the plan
    /// says clients must not send (e.g. `x-forwarded-client-cert` when untrusted). One host
    /// call per header actually present or set.
    fn edit_upstream_headers(
        &self,
        plan: &Plan,
        headers: &Headers,
        d: &Decision,
    ) -> Result<(), String> {
        let partner_header = plan.partner_header();
        if let (Some(h), Some(p)) = (partner_header, d.partner) {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, h, Some(p))
                .map_err(|e| format!("cannot set {h}: {e:?}"))?;
        }
        for h in plan.strip_headers() {
            let set_by_us = d.partner.is_some() && partner_header == Some(h.as_str());
            if !set_by_us && headers.contains(h) {
                hostcalls::remove_map_value(MapType::HttpRequestHeaders, h)
                    .map_err(|e| format!("cannot remove {h}: {e:?}"))?;
            }
        }
        Ok(())
    }

    fn count(&self, d: &Decision) {
        let mut m = self.metrics.borrow_mut();
        count_decision(&mut m.counters, d);
        m.after_request();
    }

    fn reply(&self, r: LocalReply) -> Action {
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let serialized = serialize_pairs(&headers);
        // SAFETY: every pointer/length pair refers to a live buffer for the whole call.
        let status = unsafe {
            proxy_send_local_response(
                r.status,
                r.details.as_ptr(),
                r.details.len(),
                r.body.as_ptr(),
                r.body.len(),
                serialized.as_ptr(),
                serialized.len(),
                -1,
            )
        };
        if status != Status::Ok {
            log(
                LogLevel::Error,
                &format!("send_local_response failed: {status:?}"),
            );
            // Nothing else can answer the request; closing it is the fail-closed choice.
            let _ = hostcalls::reset_http_request();
        }
        Action::Pause
    }

    fn internal_error(&self, plan: Option<&Plan>, why: &str) -> Action {
        let open = plan.is_some_and(|p| p.fail_open());
        log(
            LogLevel::Error,
            &format!(
                "internal error, request {}: {why}",
                if open {
                    "allowed (fail_open)"
                } else {
                    "denied (fail closed)"
                }
            ),
        );
        let mut m = self.metrics.borrow_mut();
        m.counters.increment(
            "internal",
            if open { "allowed" } else { "denied" },
            "internal_error",
            "partner",
            "none",
        );
        m.after_request();
        if open {
            return Action::Continue;
        }
        self.reply(LocalReply {
            status: 403,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"reason":"internal_error"}"#.to_vec(),
            details: "portcullis_internal_error".into(),
        })
    }
}

/// Adds the counts of one decision (no host call).
fn count_decision(m: &mut Counters, d: &Decision) {
    let partner = d.partner.unwrap_or("none");
    let ip = match d.ip {
        IpOutcome::NotConfigured => None,
        IpOutcome::Public => Some(("public", "unprotected_route")),
        IpOutcome::Allowed => Some(("allowed", "partner_network")),
        IpOutcome::Denied(r) if d.ip_dry_run => Some(("dry_run_denied", r.as_str())),
        IpOutcome::Denied(r) => Some(("denied", r.as_str())),
    };
    if let Some((decision, reason)) = ip {
        m.increment("ip_allowlist", decision, reason, "partner", partner);
    }
    let a = &d.authz;
    let policy = a.rule.unwrap_or("none");
    match a.verdict {
        AuthzVerdict::NotConfigured | AuthzVerdict::Skipped => return,
        AuthzVerdict::Allowed => {
            let reason = if a.rule.is_some() {
                "allow_rule_matched"
            } else {
                "no_allow_policy"
            };
            m.increment("authorization", "allowed", reason, "policy", policy);
        }
        AuthzVerdict::Denied => {
            let reason = d.denial.as_ref().map_or("denied", |x| x.reason);
            m.increment("authorization", "denied", reason, "policy", policy);
        }
    }
    if let Some((verdict, rule)) = a.dry_run {
        let decision = match verdict {
            AuthzVerdict::Denied => "dry_run_denied",
            _ => "dry_run_allowed",
        };
        m.increment(
            "authorization",
            decision,
            "dry_run",
            "policy",
            rule.unwrap_or("none"),
        );
    }
    if let Some(rule) = a.audit {
        m.increment(
            "authorization",
            "audit",
            "audit_rule_matched",
            "policy",
            rule,
        );
    }
}

/// One info line per enforced denial, dry-run difference and audit match.
fn log_decision(plan: &Plan, req: &HostRequest, d: &Decision) {
    let line = |what: &str, check: &str, reason: &str, policy: Option<&str>| {
        let client = d.client_ip.map(|a| a.to_string());
        log(
            LogLevel::Info,
            &format!(
                "{what} check={check} reason={reason} policy={} client_ip={} partner={} authority={:?} path={:?} request_id={}",
                policy.unwrap_or("-"),
                client.as_deref().unwrap_or("unknown"),
                d.partner.unwrap_or("none"),
                req.headers.authority(),
                req.headers.path(),
                req.headers.get("x-request-id").unwrap_or("-"),
            ),
        )
    };
    if let Some(den) = &d.denial {
        let policy = den.rule.and_then(|r| plan.rule_name(r));
        line("denied", den.check.as_str(), den.reason, policy);
    }
    if let (true, IpOutcome::Denied(r)) = (d.ip_dry_run, d.ip) {
        line("dry-run, would deny", "ip_allowlist", r.as_str(), None);
    }
    let a = &d.authz;
    match (a.verdict, a.dry_run) {
        (AuthzVerdict::Allowed, Some((AuthzVerdict::Denied, rule))) => line(
            "dry-run, would deny",
            "authorization",
            "dry_run_policy",
            rule,
        ),
        (AuthzVerdict::Denied, Some((AuthzVerdict::Allowed, rule))) => line(
            "dry-run, would allow",
            "authorization",
            "dry_run_policy",
            rule,
        ),
        _ => {}
    }
    if let Some(rule) = a.audit {
        line("audit", "authorization", "audit_rule_matched", Some(rule));
    }
}

fn log(level: LogLevel, msg: &str) {
    let _ = hostcalls::log(level, msg);
}

/// The proxy-wasm header-map encoding (abi.md §1d).
fn serialize_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The request as seen through host calls; each property is fetched on first use.
struct HostRequest<'a> {
    headers: Headers,
    certificates: &'a RefCell<CertificateCache>,
    source_address: OnceCell<Option<String>>,
    peer: OnceCell<Option<Rc<PeerCertificate>>>,
    destination_port: OnceCell<Option<u16>>,
    sni: OnceCell<Option<String>>,
    /// First host-call failure, turned into an internal error after evaluation.
    error: RefCell<Option<String>>,
}

impl<'a> HostRequest<'a> {
    fn new(headers: Headers, certificates: &'a RefCell<CertificateCache>) -> Self {
        HostRequest {
            headers,
            certificates,
            source_address: OnceCell::new(),
            peer: OnceCell::new(),
            destination_port: OnceCell::new(),
            sni: OnceCell::new(),
            error: RefCell::new(None),
        }
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match hostcalls::get_property(path.to_vec()) {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert_with(|| {
                    format!("cannot read property {}: {e:?}", path.join("."))
                });
                None
            }
        }
    }

    fn string_property(&self, path: &[&str]) -> Option<String> {
        self.property(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }
}

impl RequestView for HostRequest<'_> {
    fn headers(&self) -> &Headers {
        &self.headers
    }

    fn source_address(&self) -> Option<&str> {
        self.source_address
            .get_or_init(|| self.string_property(&["source", "address"]))
            .as_deref()
    }

    fn peer_certificate(&self) -> Option<&PeerCertificate> {
        self.peer
            .get_or_init(|| {
                // One host call gives the whole client certificate (all SANs); Envoy sets
                // it only when the client presented one. Parsed once per certificate.
                if let Some(pem) = self.property(&["connection", "peer_certificate"]) {
                    if !pem.is_empty() {
                        return match self.certificates.borrow_mut().get_or_parse(&pem) {
                            Ok(cert) => Some(cert),
                            Err(e) => {
                                // Fail closed: with fewer SANs than Envoy sees, a DENY on a
                                // later SAN would silently not match.
                                self.error.borrow_mut().get_or_insert_with(|| {
                                    format!("cannot parse connection.peer_certificate: {e}")
                                });
                                None
                            }
                        };
                    }
                }
                // Hosts without `connection.peer_certificate`: Envoy's per-field
                // properties, which expose only the first URI and DNS SAN.
                let mtls = self.property(&["connection", "mtls"]);
                if mtls.as_deref() != Some(&[1]) {
                    return None;
                }
                let list = |name: &str| -> Vec<String> {
                    self.string_property(&["connection", name])
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect()
                };
                Some(Rc::new(PeerCertificate {
                    uri_sans: list("uri_san_peer_certificate"),
                    dns_sans: list("dns_san_peer_certificate"),
                    subject: self
                        .string_property(&["connection", "subject_peer_certificate"])
                        .unwrap_or_default(),
                    sha256: self.string_property(&["connection", "sha256_peer_certificate_digest"]),
                }))
            })
            .as_deref()
    }

    fn destination_port(&self) -> Option<u16> {
        *self.destination_port.get_or_init(|| {
            let b = self.property(&["destination", "port"])?;
            let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
            u16::try_from(i64::from_le_bytes(arr)).ok()
        })
    }

    fn requested_server_name(&self) -> Option<&str> {
        self.sni
            .get_or_init(|| self.string_property(&["connection", "requested_server_name"]))
            .as_deref()
    }
}
