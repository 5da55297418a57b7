//! The request view: what the engine may ask about a request.
//!
//! The headers arrive in one piece (one host call in Envoy reads the whole map, which is
//! cheaper than two single-header reads). Connection facts are *asked for* through
//! [`RequestView`] so the proxy-wasm glue fetches a property only when a check needs it.

use crate::error::CertificateError;

/// Request headers, names lower-case, in arrival order, repeated names kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pairs: Vec<(String, String)>,
}

impl Headers {
    /// Builds from pairs; names are lower-cased (Envoy hands them lower-case already).
    ///
    /// ```
    /// use portcullis_filter::request::Headers;
    /// let h = Headers::new(vec![(":path".into(), "/x".into()), ("X-A".into(), "1".into())]);
    /// assert_eq!(h.get("x-a"), Some("1"));
    /// ```
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        for (k, _) in &mut pairs {
            if k.bytes().any(|b| b.is_ascii_uppercase()) {
                k.make_ascii_lowercase();
            }
        }
        Headers { pairs }
    }

    /// First value of `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (lower-case), in order.
    pub fn get_all<'a>(
        &'a self,
        name: &'a str,
    ) -> impl DoubleEndedIterator<Item = &'a str> + Clone + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True if `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// All pairs.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `:authority` (or `host`), empty if neither.
    pub fn authority(&self) -> &str {
        self.get(":authority")
            .or_else(|| self.get("host"))
            .unwrap_or("")
    }

    /// `:path` as received (query included), empty if absent.
    pub fn path(&self) -> &str {
        self.get(":path").unwrap_or("")
    }

    /// `:method`, empty if absent.
    pub fn method(&self) -> &str {
        self.get(":method").unwrap_or("")
    }
}

/// Facts about the client certificate of an mTLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// URI SANs (Envoy's property exposes only the first; XFCC or a parsed PEM gives all).
    pub uri_sans: Vec<String>,
    /// DNS SANs.
    pub dns_sans: Vec<String>,
    /// Subject in RFC 2253 form, e.g. `CN=client,O=Acme`.
    pub subject: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256: Option<String>,
}

/// What the engine may ask about one request. Implementations cache: the glue turns each
/// first call into one host call and later calls into a lookup.
pub trait RequestView {
    /// The request headers.
    fn headers(&self) -> &Headers;
    /// Envoy's `source.address` (`ip:port`), or `None` when not available.
    fn source_address(&self) -> Option<&str>;
    /// The client certificate when the connection is mTLS, else `None`; an error when the
    /// client presented one that cannot be read (the request is then denied).
    fn peer_certificate(&self) -> Result<Option<&PeerCertificate>, CertificateError>;
    /// The local port the connection arrived on (`destination.port`).
    fn destination_port(&self) -> Option<u16>;
    /// TLS SNI (`connection.requested_server_name`).
    fn requested_server_name(&self) -> Option<&str>;
}

/// A request whose facts are all known up front: for tests, the harness and the CLI.
#[derive(Debug, Clone, Default)]
pub struct StaticRequest {
    /// Headers including pseudo-headers.
    pub headers: Headers,
    /// `source.address`.
    pub source_address: Option<String>,
    /// Client certificate, when mTLS.
    pub peer_certificate: Option<PeerCertificate>,
    /// Set: the client presented a certificate that cannot be read (wins over
    /// `peer_certificate`).
    pub invalid_certificate: Option<CertificateError>,
    /// `destination.port`.
    pub destination_port: Option<u16>,
    /// SNI.
    pub requested_server_name: Option<String>,
}

impl StaticRequest {
    /// A request with `method`, `authority`, `path` from peer `source_address`.
    ///
    /// ```
    /// use portcullis_filter::request::{RequestView, StaticRequest};
    /// let r = StaticRequest::new("GET", "api.example.com", "/v1", "10.0.0.1:1234");
    /// assert_eq!(r.headers().path(), "/v1");
    /// ```
    pub fn new(method: &str, authority: &str, path: &str, source_address: &str) -> Self {
        StaticRequest {
            headers: Headers::new(vec![
                (":method".into(), method.into()),
                (":authority".into(), authority.into()),
                (":path".into(), path.into()),
            ]),
            source_address: Some(source_address.into()),
            ..Default::default()
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        let mut pairs = self.headers.pairs.clone();
        pairs.push((name.into(), value.into()));
        self.headers = Headers::new(pairs);
        self
    }
}

impl RequestView for StaticRequest {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn source_address(&self) -> Option<&str> {
        self.source_address.as_deref()
    }
    fn peer_certificate(&self) -> Result<Option<&PeerCertificate>, CertificateError> {
        match self.invalid_certificate {
            Some(e) => Err(e),
            None => Ok(self.peer_certificate.as_ref()),
        }
    }
    fn destination_port(&self) -> Option<u16> {
        self.destination_port
    }
    fn requested_server_name(&self) -> Option<&str> {
        self.requested_server_name.as_deref()
    }
}
