//! The compiled matcher tree (after Envoy's RBAC `Permission`/`Principal`): small nodes
//! with one `matches`, built once by [`super::compile`], walked per request without
//! parsing the configuration again and without allocating (XFCC values with escapes and
//! escaped subject attributes are the only copies, and only when they occur).

use super::identity::{subject_attributes, Peer};
use super::spec::HostMatch;
use crate::clientip::{self, ClientIpError};
use crate::error::{CertificateError, Refusal, RequestFact};
use crate::iplist::{IpTable, PartnerId};
use crate::request::RequestView;
use regex::Regex;
use std::cell::{Cell, OnceCell};
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
    /// The full-match regex `spiffe://.*<tail>` (a principal `*<tail>`) for a tail whose only
    /// operator is `.` (any character but a newline): matched without a regex, with the
    /// same result. Each `Regex` costs ~8 KiB compiled and ~10 KiB more of cache on its
    /// first match, per VM: 20,000 such principals held 370 MiB and cost 3.7·10⁹ fuel on
    /// the first request (harness/tests/resource_bounds.rs). The count is the tail's
    /// length in characters.
    SpiffeTail(Box<str>, usize),
    /// The full-match regex `.*<literal>.*` (a namespace): no newline, and the literal
    /// somewhere; for a literal without regex operators.
    LineContaining(Box<str>),
}

/// True when `v` full-matches the regex `spiffe://.*<tail>` for a `tail` of `len`
/// characters in which `.` is the only operator ([`StrMatch::SpiffeTail`]).
fn spiffe_tail(v: &str, tail: &str, len: usize) -> bool {
    let Some(rest) = v.strip_prefix("spiffe://") else {
        return false;
    };
    // `.` (in `.*` too) matches anything but `\n`.
    if rest.contains('\n') {
        return false;
    }
    let start = match len.checked_sub(1) {
        None => rest.len(),
        Some(k) => match rest.char_indices().rev().nth(k) {
            Some((i, _)) => i,
            None => return false,
        },
    };
    rest.get(start..)
        .is_some_and(|t| t.chars().zip(tail.chars()).all(|(c, p)| p == '.' || c == p))
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
            StrMatch::SpiffeTail(tail, len) => spiffe_tail(v, tail, *len),
            StrMatch::LineContaining(x) => !v.contains('\n') && v.contains(&**x),
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
    /// Set with `peer` when the client's certificate cannot be read.
    pub(crate) peer_error: Cell<Option<CertificateError>>,
    pub(crate) remote_ip: OnceCell<Result<IpAddr, ClientIpError>>,
    /// Resolved before evaluation (`super::direct`): `Ok(None)` for no IP peer (never
    /// matches, as in RBAC), an error when Envoy does not say which peer it is.
    pub(crate) direct_ip: Result<Option<IpAddr>, Refusal>,
}

/// A matcher's answer. A fact that cannot be read (a bad client certificate, an address
/// that is not one) makes the answer [`Truth::Unknown`], never `false`: read as "absent"
/// it would make a negated field (`notIpBlocks`, `notPrincipals`) true and let an ALLOW
/// match (fail open). Kleene logic keeps it exact: `false AND unknown` is `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    False,
    True,
    /// Depends on a fact that cannot be read, for this reason.
    Unknown(Refusal),
}

impl From<bool> for Truth {
    fn from(b: bool) -> Self {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }
}

impl Truth {
    fn not(self) -> Truth {
        match self {
            Truth::False => Truth::True,
            Truth::True => Truth::False,
            u => u,
        }
    }
}

impl<'c, R: RequestView + ?Sized> Ctx<'c, R> {
    /// A context with nothing fetched yet.
    pub(crate) fn new(
        req: &'c R,
        path: &'c str,
        host_match: HostMatch,
        direct_ip: Result<Option<IpAddr>, Refusal>,
        client_ip: Option<IpAddr>,
        partners: Option<&'c IpTable>,
    ) -> Self {
        Ctx {
            req,
            path,
            host_match,
            client_ip,
            partners,
            peer: OnceCell::new(),
            peer_error: Cell::new(None),
            remote_ip: OnceCell::new(),
            direct_ip,
        }
    }

    /// The client identity (plaintext when the certificate cannot be read: see
    /// [`Self::peer_unreadable`]).
    pub(crate) fn peer(&self) -> &Peer<'c> {
        self.peer.get_or_init(|| match self.req.peer_certificate() {
            Ok(Some(c)) => Peer::Cert(c),
            Ok(None) => Peer::Plaintext,
            Err(e) => {
                self.peer_error.set(Some(e));
                Peer::Plaintext
            }
        })
    }

    /// Why the client presented a certificate that cannot be read, if it did.
    pub(crate) fn peer_unreadable(&self) -> Option<Refusal> {
        self.peer();
        self.peer_error.get().map(Refusal::Certificate)
    }

    /// `f` on the identity, unknown when the certificate cannot be read.
    fn on_peer(&self, f: impl FnOnce(&Peer<'c>) -> bool) -> Truth {
        let peer = self.peer();
        match self.peer_unreadable() {
            Some(why) => Truth::Unknown(why),
            None => f(peer).into(),
        }
    }

    /// What `hosts` compare with: `:authority` (or `host`), without the port under
    /// [`HostMatch::IgnorePort`].
    pub(crate) fn host(&self) -> Option<&'c str> {
        let h = self.req.headers();
        let a = h.get(":authority").or_else(|| h.get("host"))?;
        Some(match self.host_match {
            HostMatch::Authority => a,
            HostMatch::IgnorePort => crate::uri::split_authority(a).0,
        })
    }

    /// `:method`.
    pub(crate) fn method(&self) -> Option<&'c str> {
        self.req.headers().get(":method")
    }

    /// Envoy's `source.address`, or why it is missing or not an address.
    fn remote_ip(&self) -> Result<IpAddr, ClientIpError> {
        *self.remote_ip.get_or_init(|| {
            self.req
                .source_address()
                .ok_or(ClientIpError::NoPeerAddress)
                .and_then(clientip::parse_peer_address)
        })
    }

    /// `f` on the direct peer; false without an IP peer, unknown when Envoy hid it.
    fn on_direct_ip(&self, f: impl FnOnce(IpAddr) -> bool) -> Truth {
        match self.direct_ip {
            Ok(Some(ip)) => f(ip).into(),
            Ok(None) => Truth::False,
            Err(why) => Truth::Unknown(why),
        }
    }
}

/// `f` on a known address; unknown when the address is missing or not one.
fn on_ip(ip: Result<IpAddr, ClientIpError>, f: impl FnOnce(IpAddr) -> bool) -> Truth {
    match ip {
        Ok(ip) => f(ip).into(),
        Err(e) => Truth::Unknown(Refusal::ClientIp(e)),
    }
}

/// A request fact Envoy always supplies (`:authority`, `:method`, `destination.port`):
/// when a host does not, rules on it are unknown — a DENY on it denies, an ALLOW on it
/// (or on its negation) never grants.
fn on_fact<T>(fact: Option<T>, which: RequestFact, f: impl FnOnce(T) -> bool) -> Truth {
    match fact {
        Some(v) => f(v).into(),
        None => Truth::Unknown(Refusal::Missing(which)),
    }
}

impl Matcher {
    /// The node's answer for this request (Kleene logic, see [`Truth`]).
    pub(crate) fn truth<R: RequestView + ?Sized>(&self, cx: &Ctx<'_, R>) -> Truth {
        match self {
            Matcher::Any => Truth::True,
            Matcher::And(ms) => {
                let mut out = Truth::True;
                for m in ms.iter() {
                    match m.truth(cx) {
                        Truth::False => return Truth::False,
                        Truth::True => {}
                        u => out = u,
                    }
                }
                out
            }
            Matcher::Or(ms) => {
                let mut out = Truth::False;
                for m in ms.iter() {
                    match m.truth(cx) {
                        Truth::True => return Truth::True,
                        Truth::False => {}
                        u => out = u,
                    }
                }
                out
            }
            Matcher::Not(m) => m.truth(cx).not(),
            Matcher::Principal(m) => cx.on_peer(|p| p.any_principal(&mut |s| m.matches(s))),
            Matcher::DnsSan(m) => cx.on_peer(|p| p.any_dns_san(&mut |s| m.matches(s))),
            Matcher::Subject(m) => cx.on_peer(|p| p.subject(&mut |s| m.matches(s))),
            Matcher::CertSha256(hs) => cx.on_peer(|p| {
                p.sha256(&mut |h| {
                    hs.iter()
                        .any(|w| w.as_bytes().eq_ignore_ascii_case(h.as_bytes()))
                })
            }),
            Matcher::DirectIp(t) => cx.on_direct_ip(|ip| !t.lookup(ip).is_empty()),
            Matcher::RemoteIp(t) => on_ip(cx.remote_ip(), |ip| !t.lookup(ip).is_empty()),
            Matcher::Partners(ids) => {
                let ip = cx.client_ip.map_or_else(|| cx.remote_ip(), Ok);
                on_ip(ip, |ip| {
                    cx.partners
                        .is_some_and(|t| t.lookup(ip).iter().any(|p| ids.contains(p)))
                })
            }
            Matcher::Header { name, m } => {
                cx.req.headers().get_all(name).any(|v| m.matches(v)).into()
            }
            Matcher::Host(m) => on_fact(cx.host(), RequestFact::Authority, |h| m.matches(h)),
            Matcher::Method(m) => on_fact(cx.method(), RequestFact::Method, |v| m.matches(v)),
            Matcher::Path(m) => (!cx.path.is_empty() && m.matches(cx.path)).into(),
            Matcher::Port(ps) => on_fact(
                cx.req.destination_port(),
                RequestFact::DestinationPort,
                |p| ps.contains(&p),
            ),
            Matcher::Sni(m) => cx
                .req
                .requested_server_name()
                .is_some_and(|s| m.matches(s))
                .into(),
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

    /// The regex Envoy builds for what `SpiffeTail` / `LineContaining` match without one.
    fn full(re: &str) -> Regex {
        Regex::new(&format!("^(?:{re})$")).unwrap()
    }

    const TAILS: [&str; 10] = [
        "/sa/robot-1",
        ".example.com",
        "a.b",
        "é.",
        ".",
        "..",
        "x y#&-~",
        "/ns/a/sa/b",
        "\r",
        "\u{1F600}.z",
    ];

    /// Candidates near `tail`: the tail itself, its dots replaced by other characters
    /// (a newline among them), shortened, lengthened, behind other prefixes.
    fn near(tail: &str) -> Vec<String> {
        let mut tails = vec![tail.to_string(), format!("{tail}x"), format!("x{tail}")];
        for r in ["Z", "é", "\n", "", "ab", "\u{1F600}"] {
            tails.push(tail.replace('.', r));
        }
        let mut chars: Vec<char> = tail.chars().collect();
        chars.pop();
        tails.push(chars.iter().collect());
        let mut out = Vec::new();
        for prefix in ["spiffe://", "spiffe:/", "SPIFFE://", "", "xspiffe://"] {
            for middle in ["", "td/ns/a", "\n", "é", "a\nb", "spiffe://"] {
                for t in &tails {
                    out.push(format!("{prefix}{middle}{t}"));
                }
            }
        }
        out
    }

    #[test]
    fn spiffe_tail_agrees_with_envoys_regex() {
        for tail in TAILS {
            let m = sm(
                StrMatch::SpiffeTail(tail.into(), tail.chars().count()),
                false,
            );
            let re = full(&format!("spiffe://.*{tail}"));
            for v in near(tail) {
                assert_eq!(m.matches(&v), re.is_match(&v), "tail {tail:?} on {v:?}");
            }
        }
    }

    #[test]
    fn line_containing_agrees_with_envoys_regex() {
        for ns in ["default", "team-1", "a b", "é"] {
            let literal = format!("/ns/{ns}/");
            let m = sm(StrMatch::LineContaining(literal.clone().into()), false);
            let re = full(&format!(".*/ns/{ns}/.*"));
            for v in near(&literal) {
                assert_eq!(m.matches(&v), re.is_match(&v), "ns {ns:?} on {v:?}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn spiffe_tail_agrees_on_random_text(
            tail in "[a./é\n-]{0,4}",
            v in "(spiffe://)?[a./é\n-]{0,8}",
        ) {
            proptest::prop_assume!(!tail.contains('\n'));
            let m = sm(StrMatch::SpiffeTail(tail.as_str().into(), tail.chars().count()), false);
            let re = full(&format!("spiffe://.*{tail}"));
            proptest::prop_assert_eq!(m.matches(&v), re.is_match(&v));
        }
    }

    #[test]
    fn case_rules() {
        assert!(sm(StrMatch::Exact("example.com".into()), true).matches("EXAMPLE.com"));
        assert!(!sm(StrMatch::Exact("/admin".into()), false).matches("/ADMIN"));
        assert!(sm(StrMatch::Present, false).matches(""));
        assert!(!sm(StrMatch::NonEmpty, false).matches(""));
    }
}
