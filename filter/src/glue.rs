//! The proxy-wasm shell around the engine (wasm32 only).
//!
//! Root context: plugin configuration → [`Plan`] (once, at `on_configure`).
//! HTTP context: one read of the request header map → [`RequestView`] (connection
//! properties fetched only when a check asks) → [`Decision`] → continue, or a local reply.
//!
//! Every host call result is handled: a failing host call is an internal error and the
//! request fails closed (403) unless the config says `fail_open`; nothing here panics on
//! request input.

use crate::authz::{AuthzVerdict, CertificateCache, CertificateError};
use crate::config;
use crate::engine::{Decision, IpOutcome, LocalReply, Plan};
use crate::metrics::Counters;
use crate::request::{Headers, PeerCertificate, RequestView};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType, Status};
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

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
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
                Action::Continue
            }
        }
    }
}

impl Stream {
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
    peer: OnceCell<Result<Option<Rc<PeerCertificate>>, CertificateError>>,
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

    /// The client certificate. A certificate the client presented that cannot be parsed
    /// is the request's fault, not the host's: the rules that need it deny the request
    /// (with fewer SANs than Envoy sees, a DENY on a later SAN would silently not match).
    fn fetch_peer_certificate(&self) -> Result<Option<Rc<PeerCertificate>>, CertificateError> {
        // One host call gives the whole client certificate (all SANs); Envoy sets it only
        // when the client presented one. Parsed once per certificate.
        if let Some(pem) = self.property(&["connection", "peer_certificate"]) {
            if !pem.is_empty() {
                return self.certificates.borrow_mut().get_or_parse(&pem).map(Some);
            }
        }
        // Hosts without `connection.peer_certificate`: Envoy's per-field properties, which
        // expose only the first URI and DNS SAN.
        let mtls = self.property(&["connection", "mtls"]);
        if mtls.as_deref() != Some(&[1]) {
            return Ok(None);
        }
        let list = |name: &str| -> Vec<String> {
            self.string_property(&["connection", name])
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(Some(Rc::new(PeerCertificate {
            uri_sans: list("uri_san_peer_certificate"),
            dns_sans: list("dns_san_peer_certificate"),
            subject: self
                .string_property(&["connection", "subject_peer_certificate"])
                .unwrap_or_default(),
            sha256: self.string_property(&["connection", "sha256_peer_certificate_digest"]),
        })))
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

    fn peer_certificate(&self) -> Result<Option<&PeerCertificate>, CertificateError> {
        match self.peer.get_or_init(|| self.fetch_peer_certificate()) {
            Ok(c) => Ok(c.as_deref()),
            Err(e) => Err(*e),
        }
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
