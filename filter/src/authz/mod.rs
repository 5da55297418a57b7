//! Client-certificate principal and path authorization with Istio `AuthorizationPolicy`
//! semantics (authz.md), compiled once into matcher trees and evaluated DENY → ALLOW → AUDIT.
//!
//! Semantics kept from Istio/Envoy RBAC: AND across fields, OR within one; exact / `x*` /
//! `*x` / `*` patterns per field; principals tried on every URI SAN, every DNS SAN, then
//! the subject; `notPrincipals` true on plaintext; no ALLOW policy ⇒ allow, ALLOW policies
//! but none matched ⇒ deny; `spec: {}` allows nothing, `rules: [{}]` everything; rules
//! reported by Envoy's name `ns[<ns>]-policy[<name>]-rule[<i>]`, the lexicographically
//! first match winning. Differences (all documented in `policies/README.md`): stricter
//! path normalization by default, `ipBlocks` on a direct peer derived from `source.address`
//! and XFF that fails closed where Envoy hides it ([`direct`]),
//! XFCC as an identity source, and the extensions in [`spec::SourceSpec`].

mod certificate;
mod compile;
mod direct;
mod identity;
mod index;
mod matcher;
pub mod xfcc;

/// The `authorization` block as configured (spec types live in the configuration).
pub use crate::config::authorization as spec;
use crate::config::{Cidr, PartnerSpec};
use crate::error::{ConfigError, DirectPeerError, Refusal, XfccError};
use crate::iplist::IpTable;
use crate::path::PathNormalization;
use crate::request::RequestView;
pub use certificate::{
    peer_certificate_from_der, peer_certificate_from_pem, CertificateCache, CertificateError,
};
use compile::{check_policy, Compiler, Needs};
use direct::DirectView;
use identity::Peer;
use index::Group;
pub(crate) use index::Lookup;
use matcher::{Ctx, Matcher};
use spec::{
    Action, AuthorizationSpec, DirectPeer, HostMatch, IdentitySource, IdentitySpec, PolicySpec,
};
use std::cell::OnceCell;
use std::collections::HashSet;
use std::net::IpAddr;

/// The XFCC header name.
pub const XFCC: &str = "x-forwarded-client-cert";

/// Index of a compiled rule; [`crate::engine::Plan::rule_name`] gives its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(pub(crate) u32);

#[derive(Debug, Clone)]
struct Rule {
    name: Box<str>,
    matcher: Matcher,
}

/// The compiled `authorization` block.
#[derive(Debug, Clone)]
pub struct Authz {
    rules: Vec<Rule>,
    /// The rules per action, in name order (Envoy reports the first match by name),
    /// indexed by what each rule requires.
    deny: Group,
    deny_dry: Group,
    allow: Group,
    allow_dry: Group,
    audit: Group,
    /// An enforced ALLOW policy exists (even without rules: then nothing is allowed).
    has_allow: bool,
    /// A dry-run ALLOW policy exists.
    has_allow_dry: bool,
    has_dry: bool,
    identity: IdentitySource,
    keep_xfcc: bool,
    xfcc_trusted_by: Vec<String>,
    xfcc_chain: bool,
    direct_peer: DirectPeer,
    /// `envoy_local_addresses`.
    envoy_local: Option<IpTable>,
    host_match: HostMatch,
    path_normalization: PathNormalization,
    needs: Needs,
    /// How a group finds its first matching rule.
    lookup: Lookup,
}

/// The authorization verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzVerdict {
    /// No `authorization` block.
    NotConfigured,
    /// Not evaluated: an earlier check already denied the request.
    Skipped,
    /// Allowed (by the rule in `rule`, or because no ALLOW policy applies).
    Allowed,
    /// Denied (by the DENY rule in `rule`; `None` = no ALLOW rule matched, or an error).
    Denied,
}

/// What authorization decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthzOutcome<'p> {
    /// The enforced verdict.
    pub verdict: AuthzVerdict,
    /// The deciding rule (`ns[..]-policy[..]-rule[..]`): the matched DENY or ALLOW rule.
    pub rule: Option<&'p str>,
    /// What the verdict would be with the dry-run policies enforced too, and the deciding
    /// rule; `None` when no policy is in dry-run.
    pub dry_run: Option<(AuthzVerdict, Option<&'p str>)>,
    /// The first AUDIT rule that matched (log it; never changes the decision).
    pub audit: Option<&'p str>,
    /// Why the request was refused: a fact the rules needed cannot be read (the path,
    /// XFCC, the client certificate, an address).
    pub error: Option<Refusal>,
}

impl AuthzOutcome<'_> {
    pub(crate) const NOT_CONFIGURED: AuthzOutcome<'static> = AuthzOutcome {
        verdict: AuthzVerdict::NotConfigured,
        rule: None,
        dry_run: None,
        audit: None,
        error: None,
    };
}

/// Internal result with rule ids (for the [`crate::engine::Denial`]).
pub(crate) struct Evaluated<'p> {
    pub(crate) outcome: AuthzOutcome<'p>,
    pub(crate) rule_id: Option<RuleId>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

/// The compiled rule ids per action group, filled policy by policy.
#[derive(Default)]
struct GroupIds {
    deny: Vec<u32>,
    deny_dry: Vec<u32>,
    allow: Vec<u32>,
    allow_dry: Vec<u32>,
    audit: Vec<u32>,
}

impl GroupIds {
    fn of(&mut self, action: Action, dry_run: bool) -> &mut Vec<u32> {
        match (action, dry_run) {
            (Action::Deny, false) => &mut self.deny,
            (Action::Deny, true) => &mut self.deny_dry,
            (Action::Allow, false) => &mut self.allow,
            (Action::Allow, true) => &mut self.allow_dry,
            _ => &mut self.audit,
        }
    }
}

const BASE: &str = "/authorization";

/// A trust domain is a host-like name: no `/`, `*`, whitespace or control characters.
fn trust_domain_ok(td: &str) -> bool {
    !td.is_empty()
        && !td
            .chars()
            .any(|c| c == '/' || c == '*' || c.is_whitespace() || c.is_control())
}

/// `trust_domain` (default `cluster.local`) then its aliases, deduplicated.
fn trust_domains(spec: &AuthorizationSpec) -> Result<Vec<String>, ConfigError> {
    let td = spec
        .trust_domain
        .clone()
        .unwrap_or_else(|| "cluster.local".into());
    if !trust_domain_ok(&td) {
        return Err(ConfigError::new(
            format!("{BASE}/trust_domain"),
            format!("{td:?} is not a trust domain"),
        ));
    }
    let mut trust_domains = vec![td];
    for (i, a) in spec.trust_domain_aliases.iter().enumerate() {
        if !trust_domain_ok(a) {
            return Err(ConfigError::new(
                format!("{BASE}/trust_domain_aliases/{i}"),
                format!("{a:?} is not a trust domain"),
            ));
        }
        if !trust_domains.contains(a) {
            trust_domains.push(a.clone());
        }
    }
    Ok(trust_domains)
}

/// The `identity` settings that only go with one source.
fn check_identity(id: &IdentitySpec) -> Result<(), ConfigError> {
    let (field, only_with) = match id.source {
        IdentitySource::Connection if id.xfcc_chain => ("xfcc_chain", "\"source\": \"xfcc\""),
        IdentitySource::Connection if !id.xfcc_trusted_by.is_empty() => {
            ("xfcc_trusted_by", "\"source\": \"xfcc\"")
        }
        IdentitySource::Xfcc if id.keep_xfcc => (
            "keep_xfcc",
            "\"source\": \"connection\" (with \"xfcc\" the header is kept)",
        ),
        _ => return Ok(()),
    };
    Err(ConfigError::new(
        format!("{BASE}/identity/{field}"),
        format!("only meaningful with {only_with}"),
    ))
}

/// A policy's name and namespace (default `istio-system`), valid and not seen before.
fn policy_key(
    pp: &str,
    p: &PolicySpec,
    seen: &mut HashSet<(String, String)>,
) -> Result<String, ConfigError> {
    if !valid_name(&p.name) {
        return Err(ConfigError::new(
            format!("{pp}/name"),
            format!("{:?} is not a valid policy name", p.name),
        ));
    }
    let ns = p.namespace.clone().unwrap_or_else(|| "istio-system".into());
    if !valid_name(&ns) {
        return Err(ConfigError::new(
            format!("{pp}/namespace"),
            format!("{ns:?} is not a valid namespace"),
        ));
    }
    if !seen.insert((ns.clone(), p.name.clone())) {
        return Err(ConfigError::new(
            format!("{pp}/name"),
            format!("policy {:?} in namespace {ns:?} is defined twice", p.name),
        ));
    }
    Ok(ns)
}

impl Authz {
    /// Compiles `spec` (at `/authorization`); `partners` are the config's partners, `listed`
    /// their fetched lists.
    /// Steps: the settings, each policy's rules into matchers, then the per-action
    /// indexes in name order.
    pub(crate) fn compile(
        spec: &AuthorizationSpec,
        partners: &[PartnerSpec],
        listed: Option<&crate::lists::ListPlan>,
    ) -> Result<Authz, ConfigError> {
        let mut c = Compiler {
            partners,
            listed,
            trust_domains: trust_domains(spec)?,
            namespace: String::new(),
            needs: Needs::default(),
        };
        check_identity(&spec.identity)?;
        let mut a = Authz::settings(spec)?;
        if spec.policies.is_empty() {
            return Err(ConfigError::new(
                format!("{BASE}/policies"),
                "is empty: no policy would be enforced (remove \"authorization\" to run without it)",
            ));
        }
        let ids = a.compile_policies(&mut c, &spec.policies)?;
        a.index(ids);
        a.needs = c.needs;
        Ok(a)
    }

    /// Everything but the rules.
    fn settings(spec: &AuthorizationSpec) -> Result<Authz, ConfigError> {
        let id = &spec.identity;
        Ok(Authz {
            rules: Vec::new(),
            deny: Group::default(),
            deny_dry: Group::default(),
            allow: Group::default(),
            allow_dry: Group::default(),
            audit: Group::default(),
            has_allow: false,
            has_allow_dry: false,
            has_dry: false,
            identity: id.source,
            keep_xfcc: id.keep_xfcc,
            xfcc_trusted_by: id.xfcc_trusted_by.clone(),
            xfcc_chain: id.xfcc_chain,
            direct_peer: spec.direct_peer,
            envoy_local: envoy_local_addresses(spec)?,
            host_match: spec.host_match,
            path_normalization: spec.path_normalization,
            needs: Needs::default(),
            lookup: Lookup::DEFAULT,
        })
    }

    /// Compiles every policy's rules into `self.rules`; returns their ids per action.
    fn compile_policies(
        &mut self,
        c: &mut Compiler<'_>,
        policies: &[PolicySpec],
    ) -> Result<GroupIds, ConfigError> {
        let mut seen = HashSet::new();
        let mut ids = GroupIds::default();
        for (pi, p) in policies.iter().enumerate() {
            let pp = format!("{BASE}/policies/{pi}");
            let ns = policy_key(&pp, p, &mut seen)?;
            check_policy(&format!("{pp}/spec"), &p.spec)?;
            c.namespace = ns.clone();
            match (p.spec.action, p.dry_run) {
                (Action::Allow, false) => self.has_allow = true,
                (Action::Allow, true) => self.has_allow_dry = true,
                _ => {}
            }
            self.has_dry |= p.dry_run;
            for (ri, r) in p.spec.rules.iter().flatten().enumerate() {
                let matcher = c.rule(&format!("{pp}/spec/rules/{ri}"), r)?;
                let id = self.rules.len() as u32;
                self.rules.push(Rule {
                    name: format!("ns[{ns}]-policy[{}]-rule[{ri}]", p.name).into(),
                    matcher,
                });
                ids.of(p.spec.action, p.dry_run).push(id);
            }
        }
        Ok(ids)
    }

    /// Indexes each action's rules in name order (Envoy reports the first match by name).
    fn index(&mut self, ids: GroupIds) {
        let rules = &self.rules;
        let group = |mut g: Vec<u32>| {
            g.sort_by(|x, y| {
                let n = |i: &u32| rules.get(*i as usize).map(|r| &*r.name);
                n(x).cmp(&n(y))
            });
            Group::build(g, rules)
        };
        let (deny, deny_dry, allow, allow_dry, audit) = (
            group(ids.deny),
            group(ids.deny_dry),
            group(ids.allow),
            group(ids.allow_dry),
            group(ids.audit),
        );
        (
            self.deny,
            self.deny_dry,
            self.allow,
            self.allow_dry,
            self.audit,
        ) = (deny, deny_dry, allow, allow_dry, audit);
    }

    /// The path normalization settings.
    pub fn path_normalization(&self) -> &PathNormalization {
        &self.path_normalization
    }

    /// True when the glue must remove `x-forwarded-client-cert` from incoming requests.
    pub fn strips_xfcc(&self) -> bool {
        self.identity == IdentitySource::Connection && !self.keep_xfcc
    }

    /// True when rules may ask for `source.address`.
    pub fn needs_source_address(&self) -> bool {
        self.needs.source_address
    }

    /// True when rules may ask for the client certificate.
    pub fn needs_identity(&self) -> bool {
        self.needs.identity
    }

    /// True when rules reference partners (the plan's partner table must exist).
    pub(crate) fn needs_partners(&self) -> bool {
        self.needs.partners
    }

    /// The name of a rule.
    pub fn rule_name(&self, id: RuleId) -> Option<&str> {
        self.rules.get(id.0 as usize).map(|r| &*r.name)
    }

    fn first<R: RequestView + ?Sized>(
        &self,
        group: &Group,
        cx: &Ctx<'_, R>,
    ) -> Result<Option<u32>, Refusal> {
        group.first(&self.rules, cx, self.lookup)
    }

    /// Tests: evaluate with `lookup` instead of [`Lookup::DEFAULT`].
    #[cfg(test)]
    pub(crate) fn set_lookup(&mut self, lookup: Lookup) {
        self.lookup = lookup;
    }

    fn name(&self, id: Option<u32>) -> Option<&str> {
        id.and_then(|i| self.rules.get(i as usize))
            .map(|r| &*r.name)
    }

    /// Evaluates the policies on a request whose path is already normalized.
    pub(crate) fn evaluate<'p, R: RequestView + ?Sized>(
        &'p self,
        req: &R,
        path: &str,
        client_ip: Option<IpAddr>,
        partners: Option<&IpTable>,
    ) -> Evaluated<'p> {
        if !self.needs.direct_peer {
            return self.evaluate_as(req, path, client_ip, partners, Ok(None));
        }
        match direct::resolve(req, self.direct_peer, self.envoy_local.as_ref()) {
            DirectView::Known(ip) => self.evaluate_as(req, path, client_ip, partners, Ok(ip)),
            DirectView::OneOf([first, rest @ ..]) => {
                // The peer is one of these; RBAC decides as one of them does.
                let e = self.evaluate_as(req, path, client_ip, partners, Ok(Some(first)));
                for ip in rest {
                    let other = self.evaluate_as(req, path, client_ip, partners, Ok(Some(ip)));
                    if other.outcome.verdict != e.outcome.verdict {
                        return self.refused(Refusal::DirectPeer(DirectPeerError::Uncertain));
                    }
                }
                e
            }
            // Kleene logic (`Truth`): a DENY rule that may match denies, an ALLOW rule
            // must match for sure.
            DirectView::Unknown(why) => self.evaluate_as(req, path, client_ip, partners, Err(why)),
        }
    }

    /// Evaluates with the direct peer as resolved, the client identity from XFCC when so
    /// configured.
    fn evaluate_as<'p, R: RequestView + ?Sized>(
        &'p self,
        req: &R,
        path: &str,
        client_ip: Option<IpAddr>,
        partners: Option<&IpTable>,
        direct_ip: Result<Option<IpAddr>, Refusal>,
    ) -> Evaluated<'p> {
        let peer = OnceCell::new();
        if self.identity == IdentitySource::Xfcc && self.needs.identity {
            let values = req.headers().get_all(XFCC);
            let element = if self.xfcc_chain {
                xfcc::last_element(values)
            } else {
                xfcc::single_element(values)
            };
            let identity = match element {
                Err(e) => return self.refused(Refusal::Xfcc(e)),
                Ok(Some(el)) => Some(el.parse()),
                Ok(None) => None,
            };
            let trusted = identity.filter(|id| {
                self.xfcc_trusted_by.is_empty()
                    || id
                        .values(xfcc::Key::By)
                        .any(|b| self.xfcc_trusted_by.iter().any(|t| t == b))
            });
            // Envoy writes `URI=`/`DNS=` values unescaped: a SAN holding `;URI=…` forges a
            // second URI SAN (found by tests/tests/evasion_catalogue.rs). The element's
            // `Cert=` (Envoy's `set_current_client_cert_details.cert`) is authoritative when
            // present; without it several URI SANs cannot be told apart from a forgery.
            let identity = match trusted {
                None => Peer::Plaintext,
                Some(id) => {
                    let cert = id
                        .values(xfcc::Key::Cert)
                        .next()
                        .map(|pem| certificate::peer_certificate_from_pem(pem.as_bytes()));
                    match cert {
                        Some(Ok(c)) => Peer::XfccCert(Box::new(c)),
                        Some(Err(e)) => return self.refused(Refusal::Certificate(e)),
                        None if id.values(xfcc::Key::Uri).nth(1).is_some() => {
                            return self.refused(Refusal::Xfcc(XfccError::AmbiguousUriSans));
                        }
                        None => Peer::Xfcc(id),
                    }
                }
            };
            let _ = peer.set(identity);
        }
        let mut cx = Ctx::new(req, path, self.host_match, direct_ip, client_ip, partners);
        cx.peer = peer;
        // An AUDIT rule never decides: one that depends on an unreadable fact is dropped.
        let audit = if self.audit.is_empty() {
            None
        } else {
            self.first(&self.audit, &cx).ok().flatten()
        };
        let (verdict, rule, dry_run) = match self.first(&self.deny, &cx) {
            Ok(Some(d)) => {
                let dry = self.has_dry.then_some((AuthzVerdict::Denied, Some(d)));
                (AuthzVerdict::Denied, Some(d), dry)
            }
            // A DENY rule might match: deny for the fact that cannot be read.
            Err(why) => return self.refused(why),
            Ok(None) => {
                let allow = if self.has_allow {
                    match self.first(&self.allow, &cx) {
                        Ok(a) => a,
                        // No ALLOW rule surely matches: denied either way, say why.
                        Err(why) => return self.refused(why),
                    }
                } else {
                    None
                };
                let (verdict, rule) = match (self.has_allow, allow) {
                    (false, _) => (AuthzVerdict::Allowed, None),
                    (true, Some(a)) => (AuthzVerdict::Allowed, Some(a)),
                    (true, None) => (AuthzVerdict::Denied, None),
                };
                let dry = self.has_dry.then(|| self.dry_run(&cx, allow));
                (verdict, rule, dry)
            }
        };
        Evaluated {
            outcome: AuthzOutcome {
                verdict,
                rule: self.name(rule),
                dry_run: dry_run.map(|(v, r)| (v, self.name(r))),
                audit: self.name(audit),
                error: None,
            },
            rule_id: rule.map(RuleId),
        }
    }

    /// The verdict with the dry-run policies enforced too, when no enforced DENY matched;
    /// an unreadable fact denies.
    fn dry_run<R: RequestView + ?Sized>(
        &self,
        cx: &Ctx<'_, R>,
        allow: Option<u32>,
    ) -> (AuthzVerdict, Option<u32>) {
        match self.first(&self.deny_dry, cx) {
            Ok(Some(d)) => return (AuthzVerdict::Denied, Some(d)),
            Err(_) => return (AuthzVerdict::Denied, None),
            Ok(None) => {}
        }
        if !self.has_allow && !self.has_allow_dry {
            return (AuthzVerdict::Allowed, None);
        }
        let allow = match allow {
            Some(a) => Ok(Some(a)),
            None => self.first(&self.allow_dry, cx),
        };
        match allow {
            Ok(Some(a)) => (AuthzVerdict::Allowed, Some(a)),
            Ok(None) | Err(_) => (AuthzVerdict::Denied, None),
        }
    }

    /// A denial for a fact of the request that cannot be read.
    pub(crate) fn refused(&self, why: Refusal) -> Evaluated<'_> {
        Evaluated {
            outcome: AuthzOutcome {
                verdict: AuthzVerdict::Denied,
                rule: None,
                dry_run: None,
                audit: None,
                error: Some(why),
            },
            rule_id: None,
        }
    }
}

/// `envoy_local_addresses` → a table; only meaningful with `last_forwarded_for`.
fn envoy_local_addresses(spec: &AuthorizationSpec) -> Result<Option<IpTable>, ConfigError> {
    let Some(vals) = &spec.envoy_local_addresses else {
        return Ok(None);
    };
    let ptr = format!("{BASE}/envoy_local_addresses");
    if spec.direct_peer != DirectPeer::LastForwardedFor {
        return Err(ConfigError::new(
            ptr,
            "only meaningful with \"direct_peer\": \"last_forwarded_for\"",
        ));
    }
    let mut b = crate::iplist::IpTableBuilder::default();
    for (i, v) in vals.iter().enumerate() {
        match v.parse::<Cidr>() {
            Ok(Cidr(n)) => b.insert(n, 0),
            Err(e) => return Err(ConfigError::new(format!("{ptr}/{i}"), e)),
        }
    }
    Ok(Some(b.build()))
}

impl Authz {
    /// Cases where this configuration is stricter than Envoy RBAC because Envoy does not
    /// tell a wasm filter what it needs (for `portcullis check`).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.needs.direct_peer {
            return out;
        }
        match (self.direct_peer, &self.envoy_local) {
            (DirectPeer::SourceAddress, _) => out.push(
                "ipBlocks/source.ip with direct_peer \"source_address\": when Envoy takes the client \
                 address from x-forwarded-for (numTrustedProxies >= 1) the filter cannot see the TCP \
                 peer, and rules whose result depends on it fail closed (direct_peer_unknown); with \
                 Istio's gateway XFF handling set \"direct_peer\": \"last_forwarded_for\""
                    .into(),
            ),
            (DirectPeer::LastForwardedFor, None) => out.push(
                "ipBlocks/source.ip with direct_peer \"last_forwarded_for\" and no \
                 envoy_local_addresses: for a request that brings its own x-forwarded-for, any last \
                 entry may be Envoy's stand-in for a 127.0.0.1/::1 peer, so rules whose result differs \
                 for a loopback peer deny (direct_peer_uncertain); set envoy_local_addresses to the \
                 gateway's own addresses (e.g. the pod network)"
                    .into(),
            ),
            (DirectPeer::LastForwardedFor, Some(_)) => out.push(
                "ipBlocks/source.ip with direct_peer \"last_forwarded_for\": a request from \
                 127.0.0.1, ::1 or one of envoy_local_addresses that brings its own x-forwarded-for \
                 is denied (direct_peer_uncertain) when the rules decide differently for those \
                 peers: Envoy gives the filter no way to tell them apart"
                    .into(),
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fail_closed;
#[cfg(test)]
mod tests_index;
