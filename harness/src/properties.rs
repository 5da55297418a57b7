//! `proxy_get_property`: the attributes Envoy derives for a stream (connection, request,
//! plugin), with Envoy's byte encodings, plus values a test sets explicitly.

use std::net::SocketAddr;

use crate::context::StreamState;
use crate::types::{encode_pairs, Headers};
use crate::vm::VmSettings;

/// Downstream TLS facts of a connection (Envoy `connection.*` attributes).
///
/// ```
/// use portcullis_harness::TlsInfo;
/// let tls = TlsInfo { mtls: true, uri_san_peer: Some("spiffe://x/ns/a/sa/b".into()), ..Default::default() };
/// assert!(tls.mtls);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// A client certificate was presented (`connection.mtls`).
    pub mtls: bool,
    /// `connection.requested_server_name` (SNI).
    pub sni: Option<String>,
    /// `connection.tls_version`, e.g. "TLSv1.3".
    pub version: Option<String>,
    /// First URI SAN of the peer certificate.
    pub uri_san_peer: Option<String>,
    /// First DNS SAN of the peer certificate.
    pub dns_san_peer: Option<String>,
    /// RFC 2253 subject of the peer certificate.
    pub subject_peer: Option<String>,
    /// Hex SHA-256 of the peer certificate.
    pub sha256_peer_digest: Option<String>,
    /// URL-encoded PEM of the peer certificate.
    pub peer_certificate: Option<String>,
}

/// What a stream's properties are derived from. Request attributes (`request.path`,
/// `request.host`, …) come from the request headers the test feeds; everything else here.
///
/// ```
/// use portcullis_harness::StreamProps;
/// let p = StreamProps::default()
///     .source("203.0.113.7:4242".parse().unwrap())
///     .property_at(&["metadata", "filter_metadata", "envoy.filters.http.lua", "k"], b"v".to_vec());
/// assert_eq!(p.source.unwrap().port(), 4242);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamProps {
    /// Downstream (trusted) remote address: `source.address` / `source.port`.
    pub source: Option<SocketAddr>,
    /// Local address: `destination.address` / `destination.port`.
    pub destination: Option<SocketAddr>,
    /// `destination.port` when only the port is known (`destination` wins when set).
    pub destination_port: Option<u16>,
    /// Downstream TLS; `None` = plaintext.
    pub tls: Option<TlsInfo>,
    /// `request.protocol` ("HTTP/1.1", "HTTP/2", …).
    pub protocol: String,
    /// `connection.id`.
    pub connection_id: u64,
    /// Explicit values, taking precedence over derived ones, by path: segments joined by
    /// `\0` ([`property_path`]), or a dotted path whose every `.` separates segments.
    pub extra: Vec<(String, Vec<u8>)>,
}

impl Default for StreamProps {
    fn default() -> Self {
        StreamProps {
            source: None,
            destination: None,
            destination_port: None,
            tls: None,
            protocol: "HTTP/1.1".to_string(),
            connection_id: 1,
            extra: Vec::new(),
        }
    }
}

impl StreamProps {
    /// Sets the downstream address.
    ///
    /// ```
    /// # use portcullis_harness::StreamProps;
    /// let p = StreamProps::default().source("10.0.0.1:1000".parse().unwrap());
    /// assert!(p.source.is_some());
    /// ```
    pub fn source(mut self, addr: SocketAddr) -> Self {
        self.source = Some(addr);
        self
    }

    /// Sets the local address.
    ///
    /// ```
    /// # use portcullis_harness::StreamProps;
    /// let p = StreamProps::default().destination("10.0.0.2:8080".parse().unwrap());
    /// assert_eq!(p.destination.unwrap().port(), 8080);
    /// ```
    pub fn destination(mut self, addr: SocketAddr) -> Self {
        self.destination = Some(addr);
        self
    }

    /// Sets the local port alone, when the local address is not known.
    ///
    /// ```
    /// # use portcullis_harness::StreamProps;
    /// let p = StreamProps::default().destination_port(8443);
    /// assert_eq!(p.destination_port, Some(8443));
    /// ```
    pub fn destination_port(mut self, port: u16) -> Self {
        self.destination_port = Some(port);
        self
    }

    /// Sets downstream TLS facts.
    ///
    /// ```
    /// # use portcullis_harness::{StreamProps, TlsInfo};
    /// let p = StreamProps::default().tls(TlsInfo { mtls: true, ..Default::default() });
    /// assert!(p.tls.unwrap().mtls);
    /// ```
    pub fn tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets an explicit property value (raw bytes, already in Envoy's encoding) at a
    /// dotted path, every `.` separating segments.
    ///
    /// # Panics
    ///
    /// When the dotted form is ambiguous (a path into metadata or filter state whose key
    /// may itself hold dots, see [`check_dotted_path`]): give the segments to
    /// [`StreamProps::property_at`] instead.
    ///
    /// ```
    /// # use portcullis_harness::StreamProps;
    /// let p = StreamProps::default().property("xds.cluster_name", b"backend".to_vec());
    /// assert_eq!(p.extra.len(), 1);
    /// ```
    pub fn property(mut self, path: &str, value: Vec<u8>) -> Self {
        if let Err(e) = check_dotted_path(path) {
            panic!("StreamProps::property: {e}");
        }
        self.extra.push((path.to_string(), value));
        self
    }

    /// Sets an explicit property value at a path given as its segments, as the filter
    /// asks for it (`get_property(vec!["metadata", "filter_metadata",
    /// "envoy.filters.http.lua", "key"])`): segments may hold dots.
    ///
    /// ```
    /// # use portcullis_harness::StreamProps;
    /// let p = StreamProps::default()
    ///     .property_at(&["filter_state", "my.plugin.key"], b"v".to_vec());
    /// assert_eq!(p.extra[0].0, "filter_state\0my.plugin.key");
    /// ```
    ///
    /// # Panics
    ///
    /// Under an attribute Envoy 1.40 no longer has (see [`check_dotted_path`]).
    pub fn property_at(mut self, segments: &[&str], value: Vec<u8>) -> Self {
        let path = property_path(segments);
        if let Err(e) = check_dotted_path(&path) {
            panic!("StreamProps::property_at: {e}");
        }
        self.extra.push((path, value));
        self
    }
}

/// A property path as Envoy receives it from a filter: the segments joined by `\0`
/// (proxy-wasm ABI; Envoy's `getProperty` splits the path on `\0`). Use it for
/// [`VmConfig::properties`](crate::VmConfig::properties) entries whose segments hold dots.
///
/// ```
/// let p = portcullis_harness::property_path(&["xds", "node", "metadata", "CLUSTER_ID"]);
/// assert_eq!(p, "xds\0node\0metadata\0CLUSTER_ID");
/// ```
pub fn property_path(segments: &[&str]) -> String {
    segments.join("\0")
}

/// Maps whose keys are free-form names that may hold dots (filter names such as
/// `envoy.filters.http.lua`, filter-state keys): below them a dotted path cannot say where
/// one segment ends.
const FREE_FORM_MAPS: [&str; 7] = [
    "metadata.filter_metadata",
    "metadata.typed_filter_metadata",
    "filter_state",
    "upstream_filter_state",
    "xds.node.metadata",
    "xds.cluster_metadata.filter_metadata",
    "xds.route_metadata.filter_metadata",
];

/// Top-level attributes older Envoys gave filters that Envoy 1.40 answers `NotFound`
/// for, with the `xds.*` attribute that holds the value now (`node` and `route_name`
/// checked against Envoy 1.40 by tests/tests/envoy_property_paths.rs; the others went
/// with them when Envoy moved these to its `xds` CEL attributes).
const GONE_IN_ENVOY_1_40: [(&str, &str); 8] = [
    ("node", "xds.node"),
    ("cluster_name", "xds.cluster_name"),
    ("cluster_metadata", "xds.cluster_metadata"),
    ("route_name", "xds.route_name"),
    ("route_metadata", "xds.route_metadata"),
    ("listener_direction", "xds.listener_direction"),
    ("listener_metadata", "xds.listener_metadata"),
    ("upstream_host_metadata", "xds.upstream_host_metadata"),
];

/// Accepts a property path a test may give a value: not under an attribute Envoy 1.40
/// no longer has (`node.…`: a filter reading it gets `NotFound` in Envoy, so a value the
/// harness served would pass a test Envoy fails; the error names the `xds.…` path); in
/// dotted form only where unambiguous: non-empty segments, and at most one segment
/// below a map with free-form keys (`metadata.filter_metadata.<ns>`, `filter_state.<key>`,
/// `xds.node.metadata.<key>`, …), whose names may hold dots. A path in segment form
/// (holding `\0`) is never ambiguous.
///
/// ```
/// use portcullis_harness::check_dotted_path;
/// assert!(check_dotted_path("xds.cluster_name").is_ok());
/// assert!(check_dotted_path("xds.node.metadata.CLUSTER_ID").is_ok());
/// let e = check_dotted_path("metadata.filter_metadata.envoy.filters.http.lua.key").unwrap_err();
/// assert!(e.contains("ambiguous"), "{e}");
/// let e = check_dotted_path("node.metadata.CLUSTER_ID").unwrap_err();
/// assert!(e.contains("xds.node.metadata.CLUSTER_ID"), "{e}");
/// ```
pub fn check_dotted_path(path: &str) -> Result<(), String> {
    let segment_form = path.contains('\0');
    let first = path.split(['.', '\0']).next().unwrap_or_default();
    if let Some((_, now)) = GONE_IN_ENVOY_1_40.iter().find(|(gone, _)| *gone == first) {
        let rest = &path[first.len()..];
        let sep = if segment_form { "\\0" } else { "." };
        return Err(format!(
            "property path {:?}: Envoy 1.40 has no `{first}` attribute (a filter reading it \
             gets NotFound); it is `{now}`: write {:?}",
            path.replace('\0', "\\0"),
            format!("{}{}", now.replace('.', sep), rest.replace('\0', "\\0"))
        ));
    }
    if segment_form {
        return Ok(());
    }
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "property path {path:?}: needs non-empty segments joined by '.'"
        ));
    }
    for map in FREE_FORM_MAPS {
        let Some(rest) = path.strip_prefix(map).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        if rest.contains('.') {
            return Err(format!(
                "property path {path:?} is ambiguous: the keys of {map} may hold dots, so \
                 {rest:?} may be one segment or several; give the segments instead \
                 (e.g. [\"{}\",\"{rest}\"] if it is one key)",
                map.split('.').collect::<Vec<_>>().join("\",\"")
            ));
        }
    }
    Ok(())
}

/// Whether a stored property key names the path the filter asked for (`raw`: segments
/// joined by `\0`). A key holding `\0` is in segment form and compared as is; a dotted
/// key's every `.` stands for a segment boundary (so it never names a segment with a dot).
pub(crate) fn key_matches(key: &str, raw: &[u8]) -> bool {
    let k = key.as_bytes();
    if k.len() != raw.len() {
        return false;
    }
    if k.contains(&0) {
        return k == raw;
    }
    k.iter()
        .zip(raw)
        .all(|(a, b)| a == b || (*a == b'.' && *b == 0))
}

/// Joins the `\0`-separated ABI path into a dotted path.
pub(crate) fn dotted(path: &[u8]) -> String {
    String::from_utf8_lossy(path).replace('\0', ".")
}

fn s(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

fn i64le(v: i64) -> Option<Vec<u8>> {
    Some(v.to_le_bytes().to_vec())
}

fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    crate::context::header_value(h, name)
}

/// Resolves a property for the effective context (`raw`: the filter's path, segments
/// joined by `\0`). `stream` is `None` in the root context.
pub(crate) fn get_property(
    raw: &[u8],
    settings: &VmSettings,
    stream: Option<&StreamState>,
    now_ns: u64,
) -> Option<Vec<u8>> {
    if let Some(st) = stream {
        if let Some((_, v)) = st
            .props
            .extra
            .iter()
            .rev()
            .find(|(k, _)| key_matches(k, raw))
        {
            return Some(v.clone());
        }
        if let Some((_, v)) = st
            .record
            .properties_set
            .iter()
            .rev()
            .find(|(k, _)| key_matches(k, raw))
        {
            return Some(v.clone());
        }
    }
    if let Some((_, v)) = settings
        .properties
        .iter()
        .rev()
        .find(|(k, _)| key_matches(k, raw))
    {
        return Some(v.clone());
    }
    // Envoy splits the path on `\0` only and looks its first segment up as a whole: a
    // path given with dots and no `\0` ("request.path", as the AssemblyScript SDK passes
    // it) is one unknown attribute → NotFound. Attribute names and their fields hold no
    // dots (a header name, the third segment of `request\0headers\0…`, may).
    if raw
        .split(|b| *b == 0)
        .take(2)
        .any(|seg| seg.contains(&b'.'))
    {
        return None;
    }
    let path = &dotted(raw);
    let path = path.as_str();
    match path {
        "plugin_name" => return s(&settings.plugin_name),
        "plugin_root_id" => return s(&settings.root_id),
        "plugin_vm_id" => return s(&settings.vm_id),
        _ => {}
    }
    let st = stream?;
    let p = &st.props;
    let req = &st.record.request_headers;
    let resp = &st.record.response_headers;
    let tls = p.tls.as_ref();
    let (seg0, rest) = path.split_once('.').unwrap_or((path, ""));
    match (seg0, rest) {
        ("source", "address") => p.source.map(|a| a.to_string().into_bytes()),
        ("source", "port") => p.source.and_then(|a| i64le(a.port() as i64)),
        ("destination", "address") => p.destination.map(|a| a.to_string().into_bytes()),
        ("destination", "port") => p
            .destination
            .map(|a| a.port())
            .or(p.destination_port)
            .and_then(|port| i64le(port as i64)),
        ("connection", "id") => Some(p.connection_id.to_le_bytes().to_vec()),
        ("connection", "mtls") => Some(vec![u8::from(tls.is_some_and(|t| t.mtls))]),
        ("connection", "requested_server_name") => {
            s(tls.and_then(|t| t.sni.as_deref()).unwrap_or(""))
        }
        ("connection", "tls_version") => tls.and_then(|t| t.version.as_deref()).and_then(s),
        ("connection", "uri_san_peer_certificate") => {
            tls.and_then(|t| t.uri_san_peer.as_deref()).and_then(s)
        }
        ("connection", "dns_san_peer_certificate") => {
            tls.and_then(|t| t.dns_san_peer.as_deref()).and_then(s)
        }
        ("connection", "subject_peer_certificate") => {
            tls.and_then(|t| t.subject_peer.as_deref()).and_then(s)
        }
        ("connection", "sha256_peer_certificate_digest") => tls
            .and_then(|t| t.sha256_peer_digest.as_deref())
            .filter(|d| !d.is_empty())
            .and_then(s),
        ("connection", "peer_certificate") => {
            tls.and_then(|t| t.peer_certificate.as_deref()).and_then(s)
        }
        ("request", "path") => header(req, ":path").and_then(s),
        ("request", "url_path") => {
            header(req, ":path").and_then(|v| s(v.split('?').next().unwrap_or("")))
        }
        ("request", "query") => header(req, ":path").map(|v| {
            v.split_once('?')
                .map(|(_, q)| q)
                .unwrap_or("")
                .as_bytes()
                .to_vec()
        }),
        ("request", "host") => header(req, ":authority").and_then(s),
        ("request", "scheme") => header(req, ":scheme").and_then(s),
        ("request", "method") => header(req, ":method").and_then(s),
        ("request", "referer") => header(req, "referer").and_then(s),
        ("request", "useragent") => header(req, "user-agent").and_then(s),
        ("request", "id") => header(req, "x-request-id").and_then(s),
        ("request", "protocol") => s(&p.protocol),
        ("request", "time") => i64le(st.request_started_ns as i64),
        ("request", "duration") => {
            i64le(now_ns.saturating_sub(st.request_started_ns) as i64).filter(|_| st.in_log)
        }
        ("request", "headers") => Some(encode_pairs(req)),
        ("request", "size") => header(req, "content-length")
            .and_then(|v| v.parse::<i64>().ok())
            .or(Some(st.record.request_body.len() as i64))
            .and_then(i64le),
        ("request", r) if r.starts_with("headers.") => joined(req, &r["headers.".len()..]),
        ("response", "code") => header(resp, ":status")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(i64le),
        ("response", "code_details") => st
            .record
            .local_reply
            .as_ref()
            .map(|l| l.details.as_bytes().to_vec()),
        ("response", "headers") if st.dirs[1].headers_seen => Some(encode_pairs(resp)),
        ("response", r) if r.starts_with("headers.") => joined(resp, &r["headers.".len()..]),
        ("response", "trailers") if st.dirs[1].headers_seen => {
            Some(encode_pairs(&st.record.response_trailers))
        }
        ("response", "size") if st.dirs[1].headers_seen => {
            i64le(st.record.response_body.len() as i64)
        }
        _ => None,
    }
}

fn joined(h: &Headers, name: &str) -> Option<Vec<u8>> {
    let vals: Vec<&str> = h
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    if vals.is_empty() {
        None
    } else {
        Some(vals.join(",").into_bytes())
    }
}
