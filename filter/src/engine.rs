//! The compiled plan and the per-request decision.
//!
//! [`Plan::parse`] reads the configuration ([`config`]) and [`Plan::compile`] turns it into
//! immutable lookup structures once (at `on_configure`); [`Plan::evaluate`] runs the checks
//! cheapest first and returns a [`Decision`]. No proxy-wasm calls here: this compiles and
//! tests natively.

use crate::authz::{Authz, AuthzOutcome, AuthzVerdict, RuleId, XFCC};
pub use crate::check::Check;
use crate::check::Mode;
use crate::clientip::{self, ClientIpError};
use crate::config::{
    self, ClientIpSource, ConfigSpec, DenialSpec, HeaderName, IpAllowlistSpec, PartnerSpec,
    RouteSpec, Scope,
};
use crate::error::{ConfigError, Refusal};
use crate::iplist::{IpTable, IpTableBuilder, PartnerId};
use crate::lists::{ListPlan, UntilLoaded};
use crate::path::{self, PathNormalization};
use crate::request::RequestView;
use crate::uri::{HostPattern, PathPrefix};
use crate::waf::{Waf, WafOutcome, REASON as WAF_REASON};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// A compiled partner.
#[derive(Debug, Clone)]
pub struct Partner {
    /// Name from the config.
    pub name: String,
    hosts: Vec<HostPattern>,
    path_prefixes: Vec<PathPrefix>,
}

impl Partner {
    /// A path that cannot be normalized is inside no partner's `path_prefixes`.
    fn may_reach(&self, authority: &str, path: RoutePath) -> bool {
        route_matches(&self.hosts, &self.path_prefixes, authority, path, false)
    }
}

/// The path the IP allow-list's routes are matched on.
#[derive(Debug, Clone, Copy)]
enum RoutePath<'a> {
    /// Normalized (query dropped).
    Normal(&'a str),
    /// Normalization failed: nobody knows which route the upstream will serve, so the
    /// path is taken to reach every guarded route and no partner scope (fail closed).
    Unknown,
}

/// True if `authority` and `path` are inside the route; `unknown_matches` decides
/// whether an unnormalizable path is inside a non-empty prefix list and a missing
/// authority inside a non-empty host list.
fn route_matches(
    hosts: &[HostPattern],
    prefixes: &[PathPrefix],
    authority: &str,
    path: RoutePath,
    unknown_matches: bool,
) -> bool {
    // A request with no `:authority` (never from Envoy) is on every host, like an
    // unknown path: guarded by every route, inside no partner's scope.
    (hosts.is_empty()
        || (authority.is_empty() && unknown_matches)
        || hosts.iter().any(|h| h.matches(authority)))
        && (prefixes.is_empty()
            || match path {
                RoutePath::Normal(path) => prefixes.iter().any(|p| p.matches(path)),
                RoutePath::Unknown => unknown_matches,
            })
}

#[derive(Debug, Clone)]
enum ClientIpRule {
    Peer,
    ForwardedFor { trusted_hops: u32 },
}

#[derive(Debug, Clone)]
struct IpAllowlist {
    mode: Mode,
    client_ip: ClientIpRule,
    /// `None` = guard all traffic.
    protected: Option<Routes>,
}

/// `protected_routes`: each route's hosts and path prefixes.
type Routes = Vec<(Vec<HostPattern>, Vec<PathPrefix>)>;

/// The compiled, immutable configuration.
#[derive(Debug, Clone)]
pub struct Plan {
    partners: Vec<Partner>,
    ip: Option<IpAllowlist>,
    /// The partners' networks: one table shared by the IP allow-list and `partners`
    /// sources in authorization rules; built when either needs it.
    partner_table: Option<IpTable>,
    authz: Option<Authz>,
    /// Path normalization for every check (authorization's settings, else Envoy's).
    path_normalization: PathNormalization,
    strip_headers: Vec<String>,
    partner_header: Option<String>,
    denial: DenialSpec,
    fail_open: bool,
    metrics_flush: Option<Duration>,
    waf: Option<Waf>,
    /// `partner_lists`: the partners' networks come from fetched lists too.
    lists: Option<Arc<ListPlan>>,
}

/// The IP allow-list's verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpOutcome {
    /// No `ip_allowlist` configured.
    NotConfigured,
    /// The route is not protected (`scope: routes`); the request is public.
    Public,
    /// The client IP belongs to a partner allowed to reach this route.
    Allowed,
    /// Denied (or would be, in dry-run) for `reason`.
    Denied(IpDenyReason),
}

/// Why the IP allow-list denied a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpDenyReason {
    /// The client IP is in no partner's networks.
    NotAllowed,
    /// The client IP belongs to partners, none of which may reach this host/path.
    PartnerScope,
    /// The client IP could not be determined.
    ClientIpUnknown(ClientIpError),
    /// `partner_lists` are configured, none is loaded yet, and the static `cidrs` alone
    /// do not allow the request.
    ListsNotLoaded,
}

impl IpDenyReason {
    /// Stable snake_case reason.
    pub fn as_str(self) -> &'static str {
        match self {
            IpDenyReason::NotAllowed => "ip_not_allowed",
            IpDenyReason::PartnerScope => "partner_not_allowed_here",
            IpDenyReason::ClientIpUnknown(_) => "client_ip_unknown",
            IpDenyReason::ListsNotLoaded => LISTS_NOT_LOADED,
        }
    }
}

/// The reason of a denial because the partner lists are not loaded yet.
pub const LISTS_NOT_LOADED: &str = "partner_lists_not_loaded";

/// What the engine decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Outcome of the IP allow-list.
    pub ip: IpOutcome,
    /// True when the IP allow-list runs in dry-run (its denial is not applied).
    pub ip_dry_run: bool,
    /// The client IP, when determined.
    pub client_ip: Option<IpAddr>,
    /// The partner passed upstream, if the client IP belongs to one allowed here.
    pub partner: Option<&'p str>,
    /// The enforced denial, if any: the request must be answered with [`Plan::denial_reply`].
    pub denial: Option<Denial>,
    /// Outcome of the authorization policies (deciding rule, dry-run, audit).
    pub authz: AuthzOutcome<'p>,
}

/// An enforced denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denial {
    /// The check that denied.
    pub check: Check,
    /// Stable snake_case reason.
    pub reason: &'static str,
    /// Finer detail (e.g. why the client IP is unknown), stable snake_case.
    pub detail: Option<&'static str>,
    /// The authorization rule that denied (see [`Plan::rule_name`]); `None` for other
    /// checks and for "no ALLOW rule matched".
    pub rule: Option<RuleId>,
}

impl Denial {
    /// A denial by `check` for `reason`, with no rule.
    pub fn new(check: Check, reason: &'static str, detail: Option<&'static str>) -> Self {
        Denial {
            check,
            reason,
            detail,
            rule: None,
        }
    }
}

impl Decision<'_> {
    /// True if the request may proceed.
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}

/// A local reply to send instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Envoy's response code details (`portcullis_<check>_<reason>`).
    pub details: String,
}

impl Plan {
    /// Parses and compiles a configuration.
    ///
    /// ```
    /// use portcullis_filter::engine::Plan;
    /// let plan = Plan::parse(br#"{
    ///   "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
    ///   "ip_allowlist": {"client_ip": {"source": "peer"}}
    /// }"#).unwrap();
    /// # let _ = plan;
    /// let err = Plan::parse(br#"{"partners": [{"name": "a", "cidrs": ["10.0.0.0/33"]}]}"#)
    ///     .unwrap_err();
    /// assert!(err.to_string().starts_with("/partners/0/cidrs/0: \"10.0.0.0/33\" is not a CIDR"));
    /// ```
    pub fn parse(json: &[u8]) -> Result<Plan, ConfigError> {
        Plan::compile(config::parse_spec(json)?)
    }

    /// Compiles a parsed configuration; semantic errors carry JSON pointers. Each check
    /// compiles on its own; the partners' network table is shared by those that need it.
    pub fn compile(spec: ConfigSpec) -> Result<Plan, ConfigError> {
        check_denial(&spec.denial)?;
        let partners = compile_partners(&spec.partners)?;
        let lists = spec
            .partner_lists
            .as_ref()
            .map(|l| ListPlan::compile(l, &spec.partners).map(Arc::new))
            .transpose()?;
        let (ip, partner_header) = match spec.ip_allowlist {
            None => (None, None),
            Some(a) => {
                let (ip, header) = IpAllowlist::compile(a, &spec.partners, lists.is_some())?;
                (Some(ip), Some(header))
            }
        };
        let authz = spec
            .authorization
            .as_ref()
            .map(|a| Authz::compile(a, &spec.partners, lists.as_deref()))
            .transpose()?;
        let partner_table = (ip.is_some() || authz.as_ref().is_some_and(Authz::needs_partners))
            .then(|| partner_table(&spec.partners));
        let waf = spec.waf.as_ref().map(Waf::compile).transpose()?;
        let mut strip_headers: Vec<String> = partner_header.iter().cloned().collect();
        if authz.as_ref().is_some_and(Authz::strips_xfcc) {
            strip_headers.push(XFCC.to_owned());
        }
        Ok(Plan {
            partners,
            ip,
            partner_table,
            path_normalization: authz
                .as_ref()
                .map_or(PathNormalization::ENVOY, |a| *a.path_normalization()),
            authz,
            strip_headers,
            partner_header,
            denial: spec.denial,
            fail_open: spec.fail_open,
            metrics_flush: match spec.metrics.flush_interval_ms {
                0 => None,
                ms => Some(Duration::from_millis(ms.into())),
            },
            waf,
            lists,
        })
    }

    /// The partner lists fetched at run time, when configured.
    pub fn partner_lists(&self) -> Option<&Arc<ListPlan>> {
        self.lists.as_ref()
    }

    /// Tests: the plan with its authorization rule groups searched by `lookup`.
    #[cfg(test)]
    pub(crate) fn with_authz_lookup(mut self, lookup: crate::authz::Lookup) -> Plan {
        if let Some(a) = &mut self.authz {
            a.set_lookup(lookup);
        }
        self
    }

    /// Request headers the glue must remove before forwarding: the partner header (set
    /// only by the filter) and, unless the identity comes from it or `keep_xfcc` is set,
    /// `x-forwarded-client-cert` (untrusted when the gateway itself terminates mTLS).
    pub fn strip_headers(&self) -> &[String] {
        &self.strip_headers
    }

    /// The name (`ns[<ns>]-policy[<name>]-rule[<i>]`) of an authorization rule.
    pub fn rule_name(&self, id: RuleId) -> Option<&str> {
        self.authz.as_ref().and_then(|a| a.rule_name(id))
    }

    /// Where this configuration is knowingly stricter than Envoy RBAC (for `portcullis check`).
    pub fn warnings(&self) -> Vec<String> {
        self.authz.as_ref().map(Authz::warnings).unwrap_or_default()
    }

    /// True when evaluation may ask for the client certificate.
    pub fn needs_peer_certificate(&self) -> bool {
        self.authz.as_ref().is_some_and(Authz::needs_identity)
    }

    /// The partners, indexed by [`PartnerId`].
    pub fn partners(&self) -> &[Partner] {
        &self.partners
    }

    /// The upstream header that carries the matched partner (and is stripped from
    /// incoming requests), when the IP allow-list is configured.
    pub fn partner_header(&self) -> Option<&str> {
        self.partner_header.as_deref()
    }

    /// How often counters are handed to the host; `None` = on every request
    /// (`metrics.flush_interval_ms: 0`).
    pub fn metrics_flush(&self) -> Option<Duration> {
        self.metrics_flush
    }

    /// The WAF check, when configured. It runs after the other checks allowed the request,
    /// once the body (if any) is buffered: see [`Waf::evaluate`].
    pub fn waf(&self) -> Option<&Waf> {
        self.waf.as_ref()
    }

    /// True when the filter must allow requests on internal errors.
    pub fn fail_open(&self) -> bool {
        self.fail_open
    }

    /// True when evaluation may ask for `source.address`.
    pub fn needs_peer_address(&self) -> bool {
        matches!(
            &self.ip,
            Some(IpAllowlist {
                client_ip: ClientIpRule::Peer,
                ..
            })
        ) || self.authz.as_ref().is_some_and(Authz::needs_source_address)
    }

    /// Runs the checks, cheapest first.
    ///
    /// ```
    /// use portcullis_filter::{engine::Plan, request::StaticRequest};
    /// let plan = Plan::parse(br#"{"partners":[{"name":"acme","cidrs":["10.1.0.0/16"]}],
    ///   "ip_allowlist":{"client_ip":{"source":"peer"}}}"#).unwrap();
    /// let d = plan.evaluate(&StaticRequest::new("GET", "api", "/", "10.1.2.3:5555"));
    /// assert!(d.allowed());
    /// assert_eq!(d.partner, Some("acme"));
    /// let d = plan.evaluate(&StaticRequest::new("GET", "api", "/", "10.2.0.1:5555"));
    /// assert_eq!(d.denial.unwrap().reason, "ip_not_allowed");
    /// ```
    pub fn evaluate<'p, R: RequestView + ?Sized>(&'p self, req: &R) -> Decision<'p> {
        self.evaluate_with_lists(req, None)
    }

    /// [`Self::evaluate`] with the table compiled from the fetched partner lists in force
    /// (`None`: none loaded yet). Without `partner_lists` the table is ignored.
    ///
    /// Before the first lists, a request the static `cidrs` allow is allowed; one they do
    /// not allow, and every request authorization rules with `partners` sources decide,
    /// is denied with `partner_lists_not_loaded` (`until_loaded: deny`) or let through as
    /// a dry-run denial (`until_loaded: allow`).
    pub fn evaluate_with_lists<'p, R: RequestView + ?Sized>(
        &'p self,
        req: &R,
        fetched: Option<&'p IpTable>,
    ) -> Decision<'p> {
        let (table, pending) = match (&self.lists, fetched) {
            (None, _) => (self.partner_table.as_ref(), None),
            (Some(_), Some(t)) => (Some(t), None),
            (Some(l), None) => (self.partner_table.as_ref(), Some(l.spec().until_loaded)),
        };
        let mut d = Decision {
            ip: IpOutcome::NotConfigured,
            ip_dry_run: false,
            client_ip: None,
            partner: None,
            denial: None,
            authz: AuthzOutcome::NOT_CONFIGURED,
        };
        let normalized = path::normalize(req.headers().path(), &self.path_normalization);
        let path = match &normalized {
            Ok(p) => RoutePath::Normal(p),
            Err(_) => RoutePath::Unknown,
        };
        if let Some(ip) = &self.ip {
            self.check_ip(ip, req, path, table, pending, &mut d);
        }
        if let Some(a) = &self.authz {
            if d.denial.is_some() {
                d.authz.verdict = AuthzVerdict::Skipped;
                return d;
            }
            let e = match &normalized {
                Err(e) => a.refused(Refusal::Path(*e)),
                Ok(p) => {
                    let e = a.evaluate(req, p, d.client_ip, table);
                    // The upstream may read the path as Envoy forwarded it (`%2F` kept,
                    // `//` and `;params` left alone) rather than as normalized here: an
                    // allow must hold for both readings, or `/admin%2F..%2Fx` (denied as
                    // sent, allowed once decoded) reaches `/admin…` routes. Found by the
                    // evasion catalogue (tests/tests/evasion_catalogue.rs).
                    let raw = req.headers().path();
                    let differs = e.outcome.verdict != AuthzVerdict::Denied
                        && self.path_normalization != PathNormalization::ENVOY
                        && may_read_differently(raw);
                    match differs.then(|| path::normalize(raw, &PathNormalization::ENVOY)) {
                        Some(Ok(fwd)) if fwd != *p => {
                            let as_sent = a.evaluate(req, &fwd, d.client_ip, table);
                            if as_sent.outcome.verdict == AuthzVerdict::Denied {
                                as_sent
                            } else {
                                e
                            }
                        }
                        _ => e,
                    }
                }
            };
            d.authz = e.outcome;
            if pending == Some(UntilLoaded::Deny)
                && a.needs_partners()
                && e.outcome.verdict != AuthzVerdict::Denied
            {
                // A DENY rule on `partners` may match a network only the lists hold.
                d.authz.verdict = AuthzVerdict::Denied;
                d.authz.rule = None;
                d.denial = Some(Denial::new(Check::Authorization, LISTS_NOT_LOADED, None));
                return d;
            }
            if e.outcome.verdict == AuthzVerdict::Denied {
                let (reason, detail) = match (e.outcome.error, e.rule_id) {
                    // Envoy hid the TCP peer and the rules depend on it (authz/direct.rs).
                    (Some(why @ Refusal::DirectPeer(_)), _) => (why.reason(), None),
                    (Some(why), _) => (why.reason(), Some(why.detail())),
                    (None, Some(_)) => ("denied_by_policy", None),
                    (None, None) => ("no_allow_policy_matched", None),
                };
                d.denial = Some(Denial {
                    check: Check::Authorization,
                    reason,
                    detail,
                    rule: e.rule_id,
                });
            }
        }
        d
    }

    fn check_ip<'p, R: RequestView + ?Sized>(
        &'p self,
        ip: &'p IpAllowlist,
        req: &R,
        path: RoutePath,
        table: Option<&IpTable>,
        pending: Option<UntilLoaded>,
        d: &mut Decision<'p>,
    ) {
        let headers = req.headers();
        let authority = headers.authority();
        let guarded = match &ip.protected {
            None => true,
            Some(routes) => routes
                .iter()
                .any(|(h, p)| route_matches(h, p, authority, path, true)),
        };
        let client = match ip.client_ip {
            ClientIpRule::Peer => req
                .source_address()
                .ok_or(ClientIpError::NoPeerAddress)
                .and_then(clientip::parse_peer_address),
            ClientIpRule::ForwardedFor { trusted_hops } => {
                clientip::from_forwarded_for(headers.get_all("x-forwarded-for"), trusted_hops)
            }
        };
        let outcome = match client {
            Err(e) => IpOutcome::Denied(IpDenyReason::ClientIpUnknown(e)),
            Ok(addr) => {
                d.client_ip = Some(addr);
                let members = table.map_or(&[][..], |t| t.lookup(addr));
                let allowed_here = members
                    .iter()
                    .filter_map(|&id| self.partners.get(id as usize))
                    .find(|p| p.may_reach(authority, path));
                d.partner = allowed_here.map(|p| p.name.as_str());
                match (allowed_here, members.is_empty()) {
                    (Some(_), _) => IpOutcome::Allowed,
                    // The lists, once loaded, may hold the address.
                    (None, _) if pending.is_some() => {
                        IpOutcome::Denied(IpDenyReason::ListsNotLoaded)
                    }
                    (None, true) => IpOutcome::Denied(IpDenyReason::NotAllowed),
                    (None, false) => IpOutcome::Denied(IpDenyReason::PartnerScope),
                }
            }
        };
        d.ip = match outcome {
            IpOutcome::Denied(_) if !guarded => IpOutcome::Public,
            o => o,
        };
        let waived = pending == Some(UntilLoaded::Allow)
            && d.ip == IpOutcome::Denied(IpDenyReason::ListsNotLoaded);
        d.ip_dry_run = ip.mode == Mode::DryRun || waived;
        if let (IpOutcome::Denied(reason), false) = (d.ip, d.ip_dry_run) {
            d.denial = Some(Denial::new(
                Check::IpAllowlist,
                reason.as_str(),
                match reason {
                    IpDenyReason::ClientIpUnknown(e) => Some(e.as_str()),
                    _ => None,
                },
            ));
        }
    }

    /// The local reply for a WAF intervention: the status the rule asked for (`deny` →
    /// 403 unless `status:` says otherwise), the rule that decided, its `msg`, every matched
    /// rule id and the anomaly score. `denial.body` / `denial.reason_header` apply as for the
    /// other checks.
    pub fn waf_reply(&self, outcome: &WafOutcome, request_id: Option<&str>) -> Option<LocalReply> {
        let i = outcome.intervention.as_ref()?;
        let mut headers = Vec::new();
        let body = match &self.denial.body {
            Some(b) => {
                headers.push(("content-type".into(), "text/plain".into()));
                b.clone().into_bytes()
            }
            None => {
                headers.push(("content-type".into(), "application/json".into()));
                let mut o = serde_json::Map::new();
                o.insert("reason".into(), WAF_REASON.into());
                o.insert("check".into(), Check::Waf.as_str().into());
                o.insert("rule".into(), i.rule_id.into());
                if let Some(msg) = &i.msg {
                    o.insert("msg".into(), msg.as_str().into());
                }
                o.insert(
                    "rule_ids".into(),
                    outcome
                        .matched
                        .iter()
                        .map(|id| serde_json::Value::from(*id))
                        .collect(),
                );
                o.insert("anomaly_score".into(), outcome.anomaly_score.into());
                if let Some(id) = request_id {
                    o.insert("request_id".into(), id.into());
                }
                serde_json::Value::Object(o).to_string().into_bytes()
            }
        };
        if let Some(HeaderName(h)) = &self.denial.reason_header {
            headers.push((
                h.clone(),
                format!("{}; check=waf; rule={}", WAF_REASON, i.rule_id),
            ));
        }
        Some(LocalReply {
            status: u32::from(i.status),
            headers,
            body,
            details: format!("portcullis_waf_{}[{}]", WAF_REASON, i.rule_id),
        })
    }

    /// The reply for a denied request. `request_id` is `x-request-id` when present.
    ///
    /// ```
    /// use portcullis_filter::{engine::Plan, request::StaticRequest};
    /// let plan = Plan::parse(br#"{"partners":[{"name":"a","cidrs":["10.0.0.0/8"]}],
    ///   "ip_allowlist":{"client_ip":{"source":"peer"}}}"#).unwrap();
    /// let d = plan.evaluate(&StaticRequest::new("GET", "h", "/", "192.0.2.1:1"));
    /// let r = plan.denial_reply(d.denial.as_ref().unwrap(), Some("abc"));
    /// assert_eq!(r.status, 403);
    /// assert_eq!(r.body, br#"{"check":"ip_allowlist","reason":"ip_not_allowed","request_id":"abc"}"#);
    /// ```
    pub fn denial_reply(&self, denial: &Denial, request_id: Option<&str>) -> LocalReply {
        let rule = denial.rule.and_then(|r| self.rule_name(r));
        let mut headers = Vec::new();
        let body = match &self.denial.body {
            Some(b) => {
                headers.push(("content-type".into(), "text/plain".into()));
                b.clone().into_bytes()
            }
            None => {
                headers.push(("content-type".into(), "application/json".into()));
                let mut o = serde_json::Map::new();
                o.insert("reason".into(), denial.reason.into());
                o.insert("check".into(), denial.check.as_str().into());
                if let Some(detail) = denial.detail {
                    o.insert("detail".into(), detail.into());
                }
                if let Some(rule) = rule {
                    o.insert("policy".into(), rule.into());
                }
                if let Some(id) = request_id {
                    o.insert("request_id".into(), id.into());
                }
                serde_json::Value::Object(o).to_string().into_bytes()
            }
        };
        if let Some(HeaderName(h)) = &self.denial.reason_header {
            let mut v = format!("{}; check={}", denial.reason, denial.check.as_str());
            if let Some(rule) = rule {
                v.push_str("; policy=");
                v.push_str(rule);
            }
            headers.push((h.clone(), v));
        }
        let mut details = format!("portcullis_{}_{}", denial.check.as_str(), denial.reason);
        if let Some(rule) = rule {
            // Like Envoy's `rbac_access_denied_matched_policy[<name>]`; names hold no spaces.
            details.push('[');
            details.push_str(rule);
            details.push(']');
        }
        LocalReply {
            status: u32::from(self.denial.status),
            headers,
            body,
            details,
        }
    }
}

/// `denial.status` must be an HTTP status Envoy can send.
fn check_denial(denial: &DenialSpec) -> Result<(), ConfigError> {
    if !(200..=599).contains(&denial.status) {
        return Err(ConfigError::new(
            "/denial/status",
            format!("{} is not an HTTP status (200-599)", denial.status),
        ));
    }
    Ok(())
}

/// The partners by [`PartnerId`]; names are unique.
fn compile_partners(specs: &[PartnerSpec]) -> Result<Vec<Partner>, ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in specs.iter().enumerate() {
        if let Some(first) = seen.insert(&p.name.0, i) {
            return Err(ConfigError::new(
                format!("/partners/{i}/name"),
                format!("{:?} is already the name of /partners/{first}", p.name.0),
            ));
        }
    }
    Ok(specs
        .iter()
        .map(|p| Partner {
            name: p.name.0.clone(),
            hosts: p.hosts.clone(),
            path_prefixes: p.path_prefixes.clone(),
        })
        .collect())
}

/// Every partner network, to the partner's id.
fn partner_table(specs: &[PartnerSpec]) -> IpTable {
    let mut b = IpTableBuilder::default();
    for (i, p) in specs.iter().enumerate() {
        for c in &p.cidrs {
            b.insert(c.0, i as PartnerId);
        }
    }
    b.build()
}

impl IpAllowlist {
    /// Compiles `/ip_allowlist`; also returns the partner header it sets.
    fn compile(
        a: IpAllowlistSpec,
        partners: &[PartnerSpec],
        fetched_lists: bool,
    ) -> Result<(IpAllowlist, String), ConfigError> {
        let client_ip = ClientIpRule::compile(a.client_ip.source, a.client_ip.trusted_hops)?;
        let protected = protected_routes(a.scope, a.protected_routes)?;
        if !fetched_lists && partners.iter().all(|p| p.cidrs.is_empty()) {
            return Err(ConfigError::new(
                "/partners",
                "no partner has \"cidrs\" and there are no \"partner_lists\": the IP allow-list would deny every request",
            ));
        }
        let HeaderName(header) = a.partner_header;
        let ip = IpAllowlist {
            mode: a.mode,
            client_ip,
            protected,
        };
        Ok((ip, header))
    }
}

impl ClientIpRule {
    /// `/ip_allowlist/client_ip`: `trusted_hops` goes with `x_forwarded_for` only.
    fn compile(source: ClientIpSource, trusted_hops: Option<u32>) -> Result<Self, ConfigError> {
        match (source, trusted_hops) {
            (ClientIpSource::Peer, None) => Ok(ClientIpRule::Peer),
            (ClientIpSource::Peer, Some(_)) => Err(ConfigError::new(
                "/ip_allowlist/client_ip/trusted_hops",
                "only meaningful with \"source\": \"x_forwarded_for\" (with \"peer\", set numTrustedProxies on the gateway instead)",
            )),
            (ClientIpSource::XForwardedFor, Some(n)) => {
                Ok(ClientIpRule::ForwardedFor { trusted_hops: n })
            }
            (ClientIpSource::XForwardedFor, None) => Err(ConfigError::new(
                "/ip_allowlist/client_ip",
                "\"trusted_hops\" is required with \"source\": \"x_forwarded_for\"",
            )),
        }
    }
}

/// `scope` and `protected_routes`: `None` = guard all traffic.
fn protected_routes(
    scope: Scope,
    routes: Option<Vec<RouteSpec>>,
) -> Result<Option<Routes>, ConfigError> {
    match (scope, routes) {
        (Scope::All, None) => Ok(None),
        (Scope::All, Some(_)) => Err(ConfigError::new(
            "/ip_allowlist/protected_routes",
            "conflicts with \"scope\": \"all\" (set \"scope\": \"routes\" to guard only these routes)",
        )),
        (Scope::Routes, None) => Err(ConfigError::new(
            "/ip_allowlist",
            "\"scope\": \"routes\" needs \"protected_routes\"",
        )),
        (Scope::Routes, Some(r)) if r.is_empty() => Err(ConfigError::new(
            "/ip_allowlist/protected_routes",
            "is empty: nothing would be guarded",
        )),
        (Scope::Routes, Some(r)) => Ok(Some(
            r.into_iter()
                .map(|RouteSpec { hosts, path_prefixes }| (hosts, path_prefixes))
                .collect(),
        )),
    }
}

/// True when the normalization settings beyond Envoy's (`%2F`/`%5C` decoding, slash
/// merging, `;params` stripping) can change how `raw` reads: only then is the path as
/// forwarded worth a second evaluation. A scan, no allocation.
fn may_read_differently(raw: &str) -> bool {
    let path = raw.split(['?', '#']).next().unwrap_or("");
    let b = path.as_bytes();
    b.windows(2).any(|w| w == b"//")
        || b.contains(&b';')
        || b.contains(&b'\\')
        || b.windows(3).any(|w| match w {
            [b'%', b'2', c] => c | 0x20 == b'f',
            [b'%', b'5', c] => c | 0x20 == b'c',
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::StaticRequest;

    const CFG: &str = r#"{
      "partners": [
        {"name": "acme", "cidrs": ["203.0.113.0/24", "2001:db8:ac::/48"]},
        {"name": "globex", "cidrs": ["198.51.100.0/24"], "hosts": ["partners.example.com"], "path_prefixes": ["/globex/"]},
        {"name": "wide", "cidrs": ["198.51.0.0/16"], "path_prefixes": ["/wide/"]}
      ],
      "ip_allowlist": {"client_ip": {"source": "peer"}, "scope": "routes",
        "protected_routes": [{"hosts": ["partners.example.com"]}, {"path_prefixes": ["/partner-api/"]}]}
    }"#;

    fn eval(cfg: &str, req: StaticRequest) -> (IpOutcome, Option<String>, Option<&'static str>) {
        let plan = Plan::parse(cfg.as_bytes()).unwrap();
        let d = plan.evaluate(&req);
        (
            d.ip,
            d.partner.map(str::to_owned),
            d.denial.map(|x| x.reason),
        )
    }

    #[test]
    fn partner_network_on_protected_route_is_allowed() {
        let (o, p, deny) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com", "/x", "203.0.113.7:4444"),
        );
        assert_eq!(
            (o, p.as_deref(), deny),
            (IpOutcome::Allowed, Some("acme"), None)
        );
        let (o, p, _) = eval(
            CFG,
            StaticRequest::new(
                "GET",
                "www.example.com",
                "/partner-api/v1",
                "[2001:db8:ac::1]:1",
            ),
        );
        assert_eq!((o, p.as_deref()), (IpOutcome::Allowed, Some("acme")));
    }

    #[test]
    fn unknown_network_on_protected_route_is_denied() {
        let (o, p, deny) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com:443", "/x", "192.0.2.1:1"),
        );
        assert_eq!(
            (o, p, deny),
            (
                IpOutcome::Denied(IpDenyReason::NotAllowed),
                None,
                Some("ip_not_allowed")
            )
        );
    }

    #[test]
    fn a_request_without_authority_is_guarded_and_outside_every_host_scope() {
        let no_authority = |path: &str, peer: &str| {
            let mut r = StaticRequest::new("GET", "", path, peer);
            r.headers = crate::request::Headers::new(
                r.headers
                    .pairs()
                    .iter()
                    .filter(|(k, _)| k != ":authority")
                    .cloned()
                    .collect(),
            );
            r
        };
        // Was public: the only host route could not match an empty authority.
        let (o, _, deny) = eval(CFG, no_authority("/", "192.0.2.1:1"));
        assert_eq!(
            (o, deny),
            (
                IpOutcome::Denied(IpDenyReason::NotAllowed),
                Some("ip_not_allowed")
            )
        );
        // A partner without a host scope is still allowed; one bound to a host is not.
        let (o, p, _) = eval(CFG, no_authority("/", "203.0.113.7:1"));
        assert_eq!((o, p.as_deref()), (IpOutcome::Allowed, Some("acme")));
        let (o, _, deny) = eval(CFG, no_authority("/globex/a", "198.51.100.9:1"));
        assert_eq!(
            (o, deny),
            (
                IpOutcome::Denied(IpDenyReason::PartnerScope),
                Some("partner_not_allowed_here")
            )
        );
    }

    #[test]
    fn public_routes_stay_open() {
        let (o, _, deny) = eval(
            CFG,
            StaticRequest::new("GET", "www.example.com", "/", "192.0.2.1:1"),
        );
        assert_eq!((o, deny), (IpOutcome::Public, None));
    }

    #[test]
    fn partner_scope_limits_hosts_and_paths() {
        // globex may only reach partners.example.com/globex/...
        let (o, p, _) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com", "/globex/a", "198.51.100.9:1"),
        );
        assert_eq!((o, p.as_deref()), (IpOutcome::Allowed, Some("globex")));
        let (o, p, deny) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com", "/other", "198.51.100.9:1"),
        );
        assert_eq!(
            (o, p, deny),
            (
                IpOutcome::Denied(IpDenyReason::PartnerScope),
                None,
                Some("partner_not_allowed_here")
            )
        );
        // Overlap: 198.51.100.9 is in both globex and wide; wide may reach /wide/.
        let (o, p, _) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com", "/wide/x", "198.51.100.9:1"),
        );
        assert_eq!((o, p.as_deref()), (IpOutcome::Allowed, Some("wide")));
    }

    #[test]
    fn query_does_not_change_the_route() {
        let (o, _, _) = eval(
            CFG,
            StaticRequest::new("GET", "www.example.com", "/partner-api/?a=1", "192.0.2.1:1"),
        );
        assert_eq!(o, IpOutcome::Denied(IpDenyReason::NotAllowed));
        let (o, _, _) = eval(
            CFG,
            StaticRequest::new(
                "GET",
                "www.example.com",
                "/public?/partner-api/",
                "192.0.2.1:1",
            ),
        );
        assert_eq!(o, IpOutcome::Public);
    }

    #[test]
    fn missing_or_bad_client_ip_fails_closed() {
        let mut r = StaticRequest::new("GET", "partners.example.com", "/", "");
        r.source_address = None;
        let (o, _, deny) = eval(CFG, r);
        assert_eq!(
            o,
            IpOutcome::Denied(IpDenyReason::ClientIpUnknown(ClientIpError::NoPeerAddress))
        );
        assert_eq!(deny, Some("client_ip_unknown"));
        let (o, _, _) = eval(
            CFG,
            StaticRequest::new("GET", "partners.example.com", "/", "garbage"),
        );
        assert_eq!(
            o,
            IpOutcome::Denied(IpDenyReason::ClientIpUnknown(ClientIpError::BadPeerAddress))
        );
    }

    #[test]
    fn forwarded_for_with_trusted_hops() {
        let cfg = r#"{"partners":[{"name":"acme","cidrs":["203.0.113.0/24"]}],
          "ip_allowlist":{"client_ip":{"source":"x_forwarded_for","trusted_hops":1}}}"#;
        let r = StaticRequest::new("GET", "h", "/", "10.0.0.1:1")
            .with_header("x-forwarded-for", "203.0.113.5, 10.0.0.1");
        assert_eq!(eval(cfg, r).0, IpOutcome::Allowed);
        // A client-supplied spoofed entry further left is ignored.
        let r = StaticRequest::new("GET", "h", "/", "10.0.0.1:1")
            .with_header("x-forwarded-for", "203.0.113.5, 192.0.2.66, 10.0.0.1");
        assert_eq!(eval(cfg, r).0, IpOutcome::Denied(IpDenyReason::NotAllowed));
        let r = StaticRequest::new("GET", "h", "/", "10.0.0.1:1")
            .with_header("x-forwarded-for", "10.0.0.1");
        assert_eq!(
            eval(cfg, r).0,
            IpOutcome::Denied(IpDenyReason::ClientIpUnknown(
                ClientIpError::ForwardedForTooShort
            ))
        );
    }

    /// Fails closed: a path that cannot be normalized (`%00`) is outside every partner's
    /// `path_prefixes` (denied, not let out of its scope) ...
    #[test]
    fn unnormalizable_path_leaves_no_partner_scope() {
        let cfg = r#"{"partners":[{"name":"globex","cidrs":["198.51.100.0/24"],"path_prefixes":["/globex/"]}],
          "ip_allowlist":{"client_ip":{"source":"peer"}}}"#;
        for path in ["/globex/../admin", "/globex/../admin%00", "/globex/%00"] {
            let (o, p, deny) = eval(cfg, StaticRequest::new("GET", "h", path, "198.51.100.9:1"));
            assert_eq!(
                (o, p, deny),
                (
                    IpOutcome::Denied(IpDenyReason::PartnerScope),
                    None,
                    Some("partner_not_allowed_here")
                ),
                "{path}"
            );
        }
        // A partner without path_prefixes may reach any path, unnormalizable or not.
        let cfg = r#"{"partners":[{"name":"acme","cidrs":["198.51.100.0/24"]}],
          "ip_allowlist":{"client_ip":{"source":"peer"}}}"#;
        let (o, _, _) = eval(
            cfg,
            StaticRequest::new("GET", "h", "/a%00", "198.51.100.9:1"),
        );
        assert_eq!(o, IpOutcome::Allowed);
    }

    /// ... and inside every guarded route (`scope: routes` cannot be escaped with it).
    #[test]
    fn unnormalizable_path_reaches_every_guarded_route() {
        for path in ["/partner-api%00", "/x/../partner-api/%00", "/public%00"] {
            let (o, _, deny) = eval(
                CFG,
                StaticRequest::new("GET", "www.example.com", path, "192.0.2.1:1"),
            );
            assert_eq!(
                (o, deny),
                (
                    IpOutcome::Denied(IpDenyReason::NotAllowed),
                    Some("ip_not_allowed")
                ),
                "{path}"
            );
        }
        // The host still decides: a route guarded by host only is not widened.
        let cfg = r#"{"partners":[{"name":"a","cidrs":["203.0.113.0/24"]}],
          "ip_allowlist":{"client_ip":{"source":"peer"},"scope":"routes",
            "protected_routes":[{"hosts":["partners.example.com"]}]}}"#;
        let (o, _, _) = eval(
            cfg,
            StaticRequest::new("GET", "www.example.com", "/%00", "192.0.2.1:1"),
        );
        assert_eq!(o, IpOutcome::Public);
    }

    #[test]
    fn dry_run_counts_but_does_not_deny() {
        let cfg = r#"{"partners":[{"name":"acme","cidrs":["203.0.113.0/24"]}],
          "ip_allowlist":{"mode":"dry_run","client_ip":{"source":"peer"}}}"#;
        let plan = Plan::parse(cfg.as_bytes()).unwrap();
        let d = plan.evaluate(&StaticRequest::new("GET", "h", "/", "192.0.2.1:1"));
        assert!(d.allowed());
        assert!(d.ip_dry_run);
        assert_eq!(d.ip, IpOutcome::Denied(IpDenyReason::NotAllowed));
    }

    #[test]
    fn conflicting_and_incomplete_settings_are_rejected() {
        let e = |s: &str| Plan::parse(s.as_bytes()).unwrap_err().to_string();
        let p = r#""partners":[{"name":"a","cidrs":["10.0.0.0/8"]}]"#;
        assert!(e(&format!(
            r#"{{{p},"ip_allowlist":{{"client_ip":{{"source":"x_forwarded_for"}}}}}}"#
        ))
        .starts_with("/ip_allowlist/client_ip: \"trusted_hops\" is required"));
        assert!(e(&format!(
            r#"{{{p},"ip_allowlist":{{"client_ip":{{"source":"peer","trusted_hops":1}}}}}}"#
        ))
        .starts_with("/ip_allowlist/client_ip/trusted_hops: "));
        assert!(e(&format!(
            r#"{{{p},"ip_allowlist":{{"client_ip":{{"source":"peer"}},"scope":"routes"}}}}"#
        ))
        .starts_with("/ip_allowlist: \"scope\": \"routes\" needs"));
        assert!(e(&format!(
            r#"{{{p},"ip_allowlist":{{"client_ip":{{"source":"peer"}},"protected_routes":[]}}}}"#
        ))
        .starts_with("/ip_allowlist/protected_routes: conflicts"));
        assert!(e(r#"{"partners":[{"name":"a"},{"name":"a"}]}"#)
            .starts_with("/partners/1/name: \"a\" is already"));
        assert!(
            e(r#"{"partners":[{"name":"a"}],"ip_allowlist":{"client_ip":{"source":"peer"}}}"#)
                .starts_with("/partners: no partner has")
        );
        assert!(e(r#"{"denial":{"status":42}}"#).starts_with("/denial/status: 42 is not"));
    }

    #[test]
    fn denial_reply_custom_body_and_reason_header() {
        let cfg = r#"{"partners":[{"name":"a","cidrs":["10.0.0.0/8"]}],
          "ip_allowlist":{"client_ip":{"source":"peer"}},
          "denial":{"status":451,"body":"no","reason_header":"X-Portcullis-Reason"}}"#;
        let plan = Plan::parse(cfg.as_bytes()).unwrap();
        let d = plan.evaluate(&StaticRequest::new("GET", "h", "/", "192.0.2.1:1"));
        let r = plan.denial_reply(d.denial.as_ref().unwrap(), None);
        assert_eq!(r.status, 451);
        assert_eq!(r.body, b"no");
        assert!(r.headers.contains(&(
            "x-portcullis-reason".into(),
            "ip_not_allowed; check=ip_allowlist".into()
        )));
        assert_eq!(r.details, "portcullis_ip_allowlist_ip_not_allowed");
    }
}
