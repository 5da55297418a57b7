//! Shared pieces of the fuzz targets: a structure-aware request (`arbitrary`) and the fixed
//! requests and plans the targets decide with, so each target stays a few lines.

use arbitrary::Arbitrary;
use portcullis_filter::engine::Plan;
use portcullis_filter::request::{Headers, PeerCertificate, StaticRequest};

/// The example gateway configuration (partners, IP allow-list, Istio policies).
pub const GATEWAY_JSON: &[u8] = include_bytes!("../../policies/examples/gateway.json");

/// A second realistic plan: the client IP from `x-forwarded-for`, the identity from XFCC
/// (chains through a trusted hop), a header condition and a DENY on `/admin*`.
pub const XFCC_JSON: &[u8] = br#"{
  "partners": [
    {"name": "acme", "cidrs": ["203.0.113.0/24", "2001:db8:ac::/48"]},
    {"name": "globex", "cidrs": ["198.51.100.0/24"], "hosts": ["partners.example.com"], "path_prefixes": ["/globex/"]}
  ],
  "ip_allowlist": {
    "mode": "enforce",
    "client_ip": {"source": "x_forwarded_for", "trusted_hops": 1},
    "scope": "routes",
    "protected_routes": [{"path_prefixes": ["/partner-api/"]}],
    "partner_header": "x-portcullis-partner"
  },
  "authorization": {
    "trust_domain": "cluster.local",
    "identity": {"source": "xfcc", "xfcc_chain": true, "xfcc_trusted_by": ["spiffe://cluster.local/ns/istio-system/sa/front"]},
    "path_normalization": {"merge_slashes": true, "escaped_slashes": "decode", "strip_path_parameters": true, "reject_invalid_utf8": true},
    "policies": [
      {"name": "deny-admin", "namespace": "istio-system", "spec": {"action": "DENY",
        "rules": [{"to": [{"operation": {"paths": ["/admin", "/admin/*"]}}]}]}},
      {"name": "partners", "namespace": "istio-system", "spec": {"action": "ALLOW",
        "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/partners/sa/*"]}}],
                   "to": [{"operation": {"methods": ["GET", "POST"], "paths": ["/partner-api/*", "/status"]}}],
                   "when": [{"key": "request.headers[x-tenant]", "values": ["acme", "globex"]}]}]}},
      {"name": "public", "namespace": "istio-system", "spec": {"action": "ALLOW",
        "rules": [{"to": [{"operation": {"hosts": ["www.example.com"], "notPaths": ["/partner-api/*"]}}]}]}}
    ]
  }
}"#;

/// Both fixed plans, compiled.
pub fn fixed_plans() -> Vec<Plan> {
    [GATEWAY_JSON, XFCC_JSON]
        .iter()
        .map(|j| match Plan::parse(j) {
            Ok(p) => p,
            Err(e) => panic!("a fixed fuzz plan does not compile: {e}"),
        })
        .collect()
}

/// A header name the fixed plans never read (the "irrelevant header" of the properties).
pub const IRRELEVANT_HEADER: &str = "x-fuzz-irrelevant";

/// Names the fuzzer picks from, so that headers the engine reads are reached often.
const HEADER_NAMES: &[&str] = &[
    ":method",
    ":authority",
    ":path",
    "host",
    "x-forwarded-for",
    "x-forwarded-client-cert",
    "x-tenant",
    "x-portcullis-partner",
    "user-agent",
    "content-type",
];

/// A header: a known name or an arbitrary one.
#[derive(Debug, Arbitrary)]
pub enum FuzzHeaderName {
    /// One of [`HEADER_NAMES`].
    Known(u8),
    /// Anything.
    Other(String),
}

/// A request built from fuzz input.
#[derive(Debug, Arbitrary)]
pub struct FuzzRequest {
    pub method: String,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(FuzzHeaderName, String)>,
    pub source_address: Option<String>,
    pub certificate: Option<FuzzCertificate>,
    pub destination_port: Option<u16>,
    pub sni: Option<String>,
}

/// The certificate facts a connection may carry.
#[derive(Debug, Arbitrary)]
pub struct FuzzCertificate {
    pub uri_sans: Vec<String>,
    pub dns_sans: Vec<String>,
    pub subject: String,
}

impl FuzzRequest {
    /// The request, with `extra` headers appended.
    pub fn to_request(&self, extra: &[(&str, &str)]) -> StaticRequest {
        let mut pairs: Vec<(String, String)> = vec![
            (":method".into(), self.method.clone()),
            (":authority".into(), self.authority.clone()),
            (":path".into(), self.path.clone()),
        ];
        for (name, value) in &self.headers {
            let name = match name {
                FuzzHeaderName::Known(k) => HEADER_NAMES[usize::from(*k) % HEADER_NAMES.len()].to_owned(),
                FuzzHeaderName::Other(s) => s.clone(),
            };
            pairs.push((name, value.clone()));
        }
        for (n, v) in extra {
            pairs.push(((*n).to_owned(), (*v).to_owned()));
        }
        StaticRequest {
            headers: Headers::new(pairs),
            source_address: self.source_address.clone(),
            peer_certificate: self.certificate.as_ref().map(|c| PeerCertificate {
                uri_sans: c.uri_sans.clone(),
                dns_sans: c.dns_sans.clone(),
                subject: c.subject.clone(),
                sha256: None,
            }),
            invalid_certificate: None,
            destination_port: self.destination_port,
            requested_server_name: self.sni.clone(),
        }
    }

    /// True when an arbitrary header name equals `name` (case-insensitively).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| match n {
            FuzzHeaderName::Other(s) => s.eq_ignore_ascii_case(name),
            FuzzHeaderName::Known(_) => false,
        })
    }
}

/// A handful of requests covering every check of the fixed plans, for comparing two plans'
/// decisions.
pub fn probe_requests() -> Vec<StaticRequest> {
    let spiffe = |ns: &str, sa: &str| PeerCertificate {
        uri_sans: vec![format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")],
        ..Default::default()
    };
    let mut out = Vec::new();
    for (method, authority, path) in [
        ("GET", "www.example.com", "/"),
        ("GET", "www.example.com", "/admin/x"),
        ("GET", "partners.example.com", "/globex/a"),
        ("POST", "api.example.com", "/partner-api/v1?x=1"),
        ("GET", "api.example.com", "/status/ok"),
        ("DELETE", "api.example.com", "/%61dmin"),
        ("GET", "api.example.com", "//admin/..%2F"),
    ] {
        for src in ["203.0.113.7:4000", "198.51.100.2:1", "10.0.0.1:5", "[2001:db8:ac::1]:443", "192.0.2.20:0"] {
            let base = StaticRequest::new(method, authority, path, src);
            out.push(base.clone());
            out.push(base.clone().with_header("x-forwarded-for", "203.0.113.9, 10.0.0.2"));
            let mut m = base.clone().with_header(
                "x-forwarded-client-cert",
                "By=spiffe://cluster.local/ns/istio-system/sa/front;URI=spiffe://cluster.local/ns/partners/sa/acme",
            );
            m = m.with_header("x-tenant", "acme");
            out.push(m);
            let mut c = base;
            c.peer_certificate = Some(spiffe("default", "sleep"));
            out.push(c);
        }
    }
    out
}
