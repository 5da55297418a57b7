//! Shared pieces of the fuzz targets: a request decoded line by line from fuzz input and the fixed
//! requests and plans the targets decide with, so each target stays a few lines.

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

/// A request decoded from fuzz input, one field per line (so the project's own traffic
/// files seed it, see `fuzz/seeds.py`, and every byte the fuzzer changes lands in a field):
///
/// ```text
/// METHOD
/// AUTHORITY
/// PATH
/// SOURCE ADDRESS            ("-" for none)
/// IRRELEVANT HEADER VALUE
/// name: value               (any number of headers; the first ": " splits)
/// @uri-san: spiffe://...    (connection facts: @uri-san, @dns-san, @subject, @port, @sni)
/// ```
#[derive(Debug, Default)]
pub struct FuzzRequest {
    pub method: String,
    pub authority: String,
    pub path: String,
    pub source_address: Option<String>,
    pub irrelevant_value: String,
    pub headers: Vec<(String, String)>,
    pub certificate: Option<PeerCertificate>,
    pub destination_port: Option<u16>,
    pub sni: Option<String>,
}

impl FuzzRequest {
    /// Decodes `data`; `None` when it is not UTF-8.
    pub fn from_bytes(data: &[u8]) -> Option<FuzzRequest> {
        let text = std::str::from_utf8(data).ok()?;
        let mut lines = text.split('\n');
        let mut next = || lines.next().unwrap_or_default().to_owned();
        let mut r = FuzzRequest {
            method: next(),
            authority: next(),
            path: next(),
            source_address: Some(next()).filter(|s| s != "-"),
            irrelevant_value: next(),
            ..Default::default()
        };
        for line in lines {
            let (name, value) = line.split_once(": ").unwrap_or((line, ""));
            let cert = || PeerCertificate::default();
            match name {
                "@uri-san" => r
                    .certificate
                    .get_or_insert_with(cert)
                    .uri_sans
                    .push(value.into()),
                "@dns-san" => r
                    .certificate
                    .get_or_insert_with(cert)
                    .dns_sans
                    .push(value.into()),
                "@subject" => r.certificate.get_or_insert_with(cert).subject = value.into(),
                "@port" => r.destination_port = value.parse().ok(),
                "@sni" => r.sni = Some(value.into()),
                _ => r.headers.push((name.into(), value.into())),
            }
        }
        Some(r)
    }

    /// The request, with `extra` headers appended.
    pub fn to_request(&self, extra: &[(&str, &str)]) -> StaticRequest {
        let mut pairs: Vec<(String, String)> = vec![
            (":method".into(), self.method.clone()),
            (":authority".into(), self.authority.clone()),
            (":path".into(), self.path.clone()),
        ];
        pairs.extend(self.headers.iter().cloned());
        for (n, v) in extra {
            pairs.push(((*n).to_owned(), (*v).to_owned()));
        }
        StaticRequest {
            headers: Headers::new(pairs),
            source_address: self.source_address.clone(),
            peer_certificate: self.certificate.clone(),
            invalid_certificate: None,
            destination_port: self.destination_port,
            requested_server_name: self.sni.clone(),
        }
    }

    /// True when a header of the request is named `name` (case-insensitively).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
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
        for src in [
            "203.0.113.7:4000",
            "198.51.100.2:1",
            "10.0.0.1:5",
            "[2001:db8:ac::1]:443",
            "192.0.2.20:0",
        ] {
            let base = StaticRequest::new(method, authority, path, src);
            out.push(base.clone());
            out.push(
                base.clone()
                    .with_header("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
            );
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
