//! The compiled matcher tree (after Envoy's RBAC `Permission`/`Principal`): small nodes
//! with one `matches`, built once by [`super::compile`], walked per request without
//! parsing the configuration again and without allocating (XFCC values with escapes and
//! escaped subject attributes are the only copies, and only when they occur).

use super::identity::{subject_attributes, Peer};
use super::spec::HostMatch;
use crate::clientip;
use crate::iplist::{IpTable, PartnerId};
use crate::request::RequestView;
use regex::Regex;
use std::cell::OnceCell;
use std::net::IpAddr;

/// One string test (Istio's exact / prefix / suffix / presence, or a full-match regex).
#[derive(Debug, Clone)]
pub(crate) enum StrMatch {
    Exact(Box<str>),
    Prefix(Box<str>),
    Suffix(Box<str>),
    /// Any value, even empty (Envoy `present_match`).
    Present,
    /// Any non-empty value (Envoy safe_regex `.+`).
    NonEmpty,
    /// Anchored at compile time (`^(?:…)$`): Envoy's safe_regex is a full match.
    Regex(Regex),
}

/// A [`StrMatch`] with its case rule. Case-insensitive patterns are stored lower-case.
#[derive(Debug, Clone)]
pub(crate) struct StrMatcher {
    pub(crate) m: StrMatch,
    pub(crate) ignore_case: bool,
}

fn eq(a: &[u8], b: &[u8], ic: bool) -> bool {
    if ic {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl StrMatcher {
    pub(crate) fn matches(&self, v: &str) -> bool {
        let (vb, ic) = (v.as_bytes(), self.ignore_case);
        match &self.m {
            StrMatch::Exact(p) => eq(vb, p.as_bytes(), ic),
            StrMatch::Prefix(p) => vb.get(..p.len()).is_some_and(|h| eq(h, p.as_bytes(), ic)),
            StrMatch::Suffix(p) => vb
                .len()
                .checked_sub(p.len())
                .and_then(|at| vb.get(at..))
                .is_some_and(|t| eq(t, p.as_bytes(), ic)),
            StrMatch::Present => true,
            StrMatch::NonEmpty => !v.is_empty(),
            StrMatch::Regex(r) => r.is_match(v),
        }
    }
}

/// A subject DN pattern: every given field must match some attribute of that type.
#[derive(Debug, Clone)]
pub(crate) struct SubjectMatch {
    pub(crate) cn: Option<StrMatcher>,
    pub(crate) o: Option<StrMatcher>,
    pub(crate) ou: Option<StrMatcher>,
}

impl SubjectMatch {
    fn matches(&self, dn: &str) -> bool {
        let field = |ty: &str, m: &Option<StrMatcher>| match m {
            None => true,
            Some(m) => {
                subject_attributes(dn).any(|(t, v)| t.eq_ignore_ascii_case(ty) && m.matches(&v))
            }
        };
        field("CN", &self.cn) && field("O", &self.o) && field("OU", &self.ou)
    }
}

/// A node of the tree.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Always true.
    Any,
    And(Box<[Matcher]>),
    Or(Box<[Matcher]>),
    Not(Box<Matcher>),
    /// Envoy `authenticated.principal_name`: any URI SAN, DNS SAN or the subject; false
    /// without a client certificate.
    Principal(StrMatcher),
    /// Extension: any DNS SAN.
    DnsSan(StrMatcher),
    /// Extension: subject fields.
    Subject(SubjectMatch),
    /// Extension: certificate SHA-256, lower-case hex.
    CertSha256(Box<[Box<str>]>),
    /// `ipBlocks` / `source.ip`.
    DirectIp(IpTable),
    /// `remoteIpBlocks` / `remote.ip`.
    RemoteIp(IpTable),
    /// Extension: the client IP is in one of these partners' networks.
    Partners(Box<[PartnerId]>),
    /// `request.headers[name]`: any single value matches (Envoy ≥ CVE-2026-26308 fix).
    Header {
        name: Box<str>,
        m: StrMatcher,
    },
    /// `hosts`.
    Host(StrMatcher),
    /// `methods`.
    Method(StrMatcher),
    /// `paths`, `pathRegex`: the normalized path.
    Path(StrMatcher),
    /// `ports`, `destination.port`.
    Port(Box<[u16]>),
    /// `connection.sni`.
    Sni(StrMatcher),
}

/// Per-request facts, fetched at most once and only when a matcher asks.
pub(crate) struct Ctx<'c, R: RequestView + ?Sized> {
    pub(crate) req: &'c R,
    pub(crate) path: &'c str,
    pub(crate) host_match: HostMatch,
    /// The IP allow-list's client IP when it ran, for `partners`.
    pub(crate) client_ip: Option<IpAddr>,
    pub(crate) partners: Option<&'c IpTable>,
    /// Pre-set for XFCC; filled from the connection on first use otherwise.
    pub(crate) peer: OnceCell<Peer<'c>>,
    pub(crate) remote_ip: OnceCell<Option<IpAddr>>,
    /// Resolved before evaluation (`super::direct`).
    pub(crate) direct_ip: OnceCell<Option<IpAddr>>,
}

impl<'c, R: RequestView + ?Sized> Ctx<'c, R> {
    pub(crate) fn peer(&self) -> &Peer<'c> {
        self.peer.get_or_init(|| match self.req.peer_certificate() {
            Some(c) => Peer::Cert(c),
            None => Peer::Plaintext,
        })
    }

    /// What `hosts` compare with: `:authority` (or `host`), without the port under
    /// [`HostMatch::IgnorePort`].
    pub(crate) fn host(&self) -> Option<&'c str> {
        let h = self.req.headers();
        let a = h.get(":authority").or_else(|| h.get("host"))?;
        Some(match self.host_match {
            HostMatch::Authority => a,
            HostMatch::IgnorePort => crate::config::split_authority(a).0,
        })
    }

    /// `:method`.
    pub(crate) fn method(&self) -> Option<&'c str> {
        self.req.headers().get(":method")
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        *self.remote_ip.get_or_init(|| {
            self.req
                .source_address()
                .and_then(|a| clientip::parse_peer_address(a).ok())
        })
    }

    fn direct_ip(&self) -> Option<IpAddr> {
        self.direct_ip.get().copied().flatten()
    }
}

impl Matcher {
    pub(crate) fn matches<R: RequestView + ?Sized>(&self, cx: &Ctx<'_, R>) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::And(ms) => ms.iter().all(|m| m.matches(cx)),
            Matcher::Or(ms) => ms.iter().any(|m| m.matches(cx)),
            Matcher::Not(m) => !m.matches(cx),
            Matcher::Principal(m) => cx.peer().any_principal(&mut |s| m.matches(s)),
            Matcher::DnsSan(m) => cx.peer().any_dns_san(&mut |s| m.matches(s)),
            Matcher::Subject(m) => cx.peer().subject(&mut |s| m.matches(s)),
            Matcher::CertSha256(hs) => cx.peer().sha256(&mut |h| {
                hs.iter()
                    .any(|w| w.as_bytes().eq_ignore_ascii_case(h.as_bytes()))
            }),
            Matcher::DirectIp(t) => cx.direct_ip().is_some_and(|ip| !t.lookup(ip).is_empty()),
            Matcher::RemoteIp(t) => cx.remote_ip().is_some_and(|ip| !t.lookup(ip).is_empty()),
            Matcher::Partners(ids) => {
                let ip = cx.client_ip.or_else(|| cx.remote_ip());
                match (ip, cx.partners) {
                    (Some(ip), Some(table)) => table.lookup(ip).iter().any(|p| ids.contains(p)),
                    _ => false,
                }
            }
            Matcher::Header { name, m } => cx.req.headers().get_all(name).any(|v| m.matches(v)),
            Matcher::Host(m) => cx.host().is_some_and(|h| m.matches(h)),
            Matcher::Method(m) => cx.method().is_some_and(|v| m.matches(v)),
            Matcher::Path(m) => !cx.path.is_empty() && m.matches(cx.path),
            Matcher::Port(ps) => cx.req.destination_port().is_some_and(|p| ps.contains(&p)),
            Matcher::Sni(m) => cx.req.requested_server_name().is_some_and(|s| m.matches(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sm(m: StrMatch, ignore_case: bool) -> StrMatcher {
        StrMatcher { m, ignore_case }
    }

    #[test]
    fn prefix_and_suffix_never_slice_inside_a_character() {
        let p = sm(StrMatch::Prefix("é".into()), false);
        assert!(!p.matches("e"));
        assert!(p.matches("éa"));
        let s = sm(StrMatch::Suffix("a".into()), true);
        assert!(s.matches("éA"));
        assert!(!s.matches(""));
    }

    #[test]
    fn case_rules() {
        assert!(sm(StrMatch::Exact("example.com".into()), true).matches("EXAMPLE.com"));
        assert!(!sm(StrMatch::Exact("/admin".into()), false).matches("/ADMIN"));
        assert!(sm(StrMatch::Present, false).matches(""));
        assert!(!sm(StrMatch::NonEmpty, false).matches(""));
    }
}
