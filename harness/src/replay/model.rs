//! The one request model every traffic format is read into.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::script::Script;

/// The client address used when a traffic format does not carry one
/// (go-ftw tests, HAR exports).
pub const DEFAULT_CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The client port used when a traffic format does not carry one.
pub const DEFAULT_CLIENT_PORT: u16 = 54321;

/// Where a request came from, for error messages and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLoc {
    /// The traffic file as given on the command line.
    pub file: String,
    /// Where in that file.
    pub at: Locator,
}

/// A position inside a traffic file, in the terms of its format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Locator {
    /// 1-based line (JSONL).
    Line(usize),
    /// JSON pointer (HAR), e.g. `/log/entries/3`.
    Pointer(String),
    /// YAML path (go-ftw), e.g. `tests[2].stages[0]`.
    YamlPath(String),
}

impl fmt::Display for SourceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Locator::Line(n) => write!(f, "{}:{}", self.file, n),
            Locator::Pointer(p) => write!(f, "{}#{}", self.file, p),
            Locator::YamlPath(p) => write!(f, "{}: {}", self.file, p),
        }
    }
}

/// Facts about the TLS peer certificate, as Envoy exposes them to a filter
/// (`connection.mtls`, `connection.uri_san_peer_certificate`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerCert {
    /// The peer presented a certificate that the listener validated.
    pub mtls: bool,
    /// URI SANs of the peer certificate (e.g. SPIFFE ids), in order; the first is
    /// exposed to the filter as `connection.uri_san_peer_certificate`.
    pub uri_sans: Vec<String>,
    /// DNS SANs of the peer certificate, in order; the first is exposed to the
    /// filter as `connection.dns_san_peer_certificate`.
    pub dns_sans: Vec<String>,
    /// Subject DN, e.g. `CN=partner-a,O=Example`.
    pub subject: Option<String>,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub sha256: Option<String>,
    /// The certificate itself, PEM, when the traffic carries it.
    pub pem: Option<String>,
}

/// What a request is expected to produce. Every field is optional; a request
/// with no expectation is replayed and reported but cannot mismatch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expectation {
    /// Any of these statuses is accepted (go-ftw allows a list).
    pub status: Vec<u16>,
    /// The decision reason, compared exactly.
    pub reason: Option<String>,
    /// Rule ids that must be reported.
    pub rule_ids: Vec<String>,
    /// Rule ids that must not be reported.
    pub no_rule_ids: Vec<String>,
    /// The request is expected to fail in the host (go-ftw `expect_error`).
    pub error: bool,
    /// Patterns kept for the report and never checked (none today; go-ftw fields this
    /// replay cannot check would land here).
    pub unchecked: Vec<String>,
    /// Response headers that must reach the client with this value (one of a repeated
    /// header's values); names compared case-insensitively.
    pub response_headers: Vec<(String, String)>,
    /// Response headers that must not reach the client.
    pub no_response_headers: Vec<String>,
    /// Request headers that must go upstream with this value (after the filter's edits).
    pub upstream_headers: Vec<(String, String)>,
    /// Request headers that must not go upstream.
    pub no_upstream_headers: Vec<String>,
    /// The exact response body that reached the client.
    pub body: Option<Vec<u8>>,
    /// Substrings the response body must contain.
    pub body_contains: Vec<String>,
    /// go-ftw `response_contains`: substrings of the whole response as go-ftw reads it
    /// off the wire (`HTTP/1.1 <status>`, header lines, a blank line, the body).
    pub response_contains: Vec<String>,
    /// Whether the filter (or the host, failing closed) must answer with a local reply.
    pub local_reply: Option<bool>,
    /// Regexes (RE2 syntax, as go-ftw's Go `regexp`) at least one log line of the
    /// request must match (go-ftw `log_contains`, `log.match_regex`).
    pub log_matches: Vec<String>,
    /// Regexes no log line of the request may match (go-ftw `no_log_contains`,
    /// `log.no_match_regex`).
    pub no_log_matches: Vec<String>,
    /// TCP: the bytes the filter must have let through to the upstream.
    pub to_upstream: Option<Vec<u8>>,
    /// TCP: the bytes the filter must have let through to the client.
    pub to_downstream: Option<Vec<u8>>,
    /// TCP: whether the filter (or the fail strategy) must have closed the connection.
    pub closed: Option<bool>,
}

impl Expectation {
    /// True when nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
            && self.reason.is_none()
            && self.rule_ids.is_empty()
            && self.no_rule_ids.is_empty()
            && !self.error
            && self.response_headers.is_empty()
            && self.no_response_headers.is_empty()
            && self.upstream_headers.is_empty()
            && self.no_upstream_headers.is_empty()
            && self.body.is_none()
            && self.body_contains.is_empty()
            && self.response_contains.is_empty()
            && self.local_reply.is_none()
            && self.log_matches.is_empty()
            && self.no_log_matches.is_empty()
            && self.to_upstream.is_none()
            && self.to_downstream.is_none()
            && self.closed.is_none()
    }
}

/// One HTTP request to replay through the filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayRequest {
    /// A name for reports: the JSONL `id` (else `file:line`); for HAR
    /// `file#/log/entries/N`; for go-ftw the test title (v3), else `<rule_id>-<test_id>`
    /// (v4), else `tests[i]`, with `/stageN` appended when a test has several stages.
    pub id: String,
    /// Where the request was read from.
    pub source: SourceLoc,
    /// The downstream client address (`source.address`): JSONL `client_ip`, else
    /// [`DEFAULT_CLIENT_IP`] (HAR and go-ftw carry none).
    pub client_ip: IpAddr,
    /// The downstream client port: JSONL `client_port`, else [`DEFAULT_CLIENT_PORT`].
    pub client_port: u16,
    /// The server side of the connection when the traffic knows it
    /// (go-ftw `dest_addr`, HAR `serverIPAddress`), as written there.
    pub server_addr: Option<String>,
    /// The server port when the traffic gives one (JSONL `server_port`, go-ftw
    /// `port`): `destination.port`. `None` with an IP `server_addr` means the scheme's
    /// default, 80 or 443.
    pub server_port: Option<u16>,
    /// `None` for a plaintext connection or TLS without a client certificate.
    pub tls: Option<PeerCert>,
    /// `http` or `https`.
    pub scheme: String,
    /// The HTTP method (`:method`), e.g. `GET`.
    pub method: String,
    /// The HTTP version as the client sent it (`request.protocol`), e.g. `HTTP/1.1`.
    pub protocol: String,
    /// The `:authority` pseudo-header (the Host header).
    pub authority: String,
    /// The `:path` pseudo-header: path and query, exactly as given.
    pub path: String,
    /// Regular headers, multi-valued, in order, without pseudo-headers.
    pub headers: Vec<(String, String)>,
    /// The request body; empty for none (the headers then end the stream).
    pub body: Vec<u8>,
    /// What the filter is expected to decide.
    pub expect: Expectation,
    /// The upstream's response, call replies and time steps played around the request.
    pub script: Script,
}

impl ReplayRequest {
    /// A GET / with defaults, for building requests in code and tests.
    pub fn new(id: impl Into<String>, source: SourceLoc) -> Self {
        ReplayRequest {
            id: id.into(),
            source,
            client_ip: DEFAULT_CLIENT_IP,
            client_port: DEFAULT_CLIENT_PORT,
            server_addr: None,
            server_port: None,
            tls: None,
            scheme: "http".into(),
            method: "GET".into(),
            protocol: "HTTP/1.1".into(),
            authority: "localhost".into(),
            path: "/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            expect: Expectation::default(),
            script: Script::default(),
        }
    }

    /// Headers as Envoy hands them to a filter: pseudo-headers first.
    pub fn envoy_headers(&self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.headers.len() + 4);
        out.push((":method".into(), self.method.clone()));
        out.push((":scheme".into(), self.scheme.clone()));
        out.push((":authority".into(), self.authority.clone()));
        out.push((":path".into(), self.path.clone()));
        out.extend(
            self.headers
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        out
    }
}
