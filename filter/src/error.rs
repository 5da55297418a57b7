//! Every error type of the filter, in one leaf module: the configuration's
//! ([`ConfigError`]), the host's ([`HostError`], the only internal error), and why a
//! request is refused ([`Refusal`] and its causes), kept typed up to the
//! [`crate::engine::Decision`].

use std::fmt;

/// A configuration error: where (a JSON pointer into the config) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON pointer (RFC 6901) of the offending value; empty for the whole document.
    pub pointer: String,
    /// Why it is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{p}: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Why a path was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C` with `escaped_slashes: reject`.
    EscapedSlash,
    /// `%00`.
    NulByte,
    /// Percent-encoded bytes that are not UTF-8 (e.g. overlong `%C0%AF`).
    InvalidUtf8,
    /// Decoding formed a new escape (`%6%63` → `%6c`): double encoding.
    DoubleEncoding,
}

impl PathError {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PathError::EscapedSlash => "escaped_slash",
            PathError::NulByte => "nul_byte",
            PathError::InvalidUtf8 => "invalid_utf8",
            PathError::DoubleEncoding => "double_encoding",
        }
    }
}

/// Why the client IP could not be determined (the request is then denied: fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpError {
    /// The `source.address` property is absent.
    NoPeerAddress,
    /// `source.address` is not an `ip:port` / `ip` value.
    BadPeerAddress,
    /// No `x-forwarded-for` header.
    NoForwardedFor,
    /// `x-forwarded-for` has fewer entries than `trusted_hops + 1`.
    ForwardedForTooShort,
    /// The selected `x-forwarded-for` entry is not an IP address.
    BadForwardedFor,
}

impl ClientIpError {
    /// Stable snake_case name used in logs, metrics and the denial body.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientIpError::NoPeerAddress => "no_peer_address",
            ClientIpError::BadPeerAddress => "bad_peer_address",
            ClientIpError::NoForwardedFor => "no_x_forwarded_for",
            ClientIpError::ForwardedForTooShort => "x_forwarded_for_too_short",
            ClientIpError::BadForwardedFor => "bad_x_forwarded_for",
        }
    }
}

/// Why an XFCC header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XfccError {
    /// A pair without `=` or with an empty key.
    MalformedPair,
    /// A key other than By, Hash, Cert, Chain, Subject, URI, DNS.
    UnknownKey,
    /// A quoted value without its closing quote, or a bad escape.
    UnterminatedQuote,
    /// Characters between a closing quote and the next `;` or `,`.
    TrailingGarbage,
    /// `Hash` is not 64 hex digits.
    BadHash,
    /// An empty element (`a=b,,c=d`, leading or trailing comma).
    EmptyElement,
    /// More than one element where exactly one is expected (`xfcc_chain: false`). Envoy
    /// writes `URI=` values unescaped, so a client SAN holding `,URI=spiffe://…` shows up
    /// as a second element: a single trusted hop never writes two.
    MultipleElements,
    /// An element with more than [`crate::authz::xfcc::MAX_PAIRS`] pairs.
    TooManyPairs,
    /// Several `URI=` pairs and no `Cert=` to tell them apart: Envoy writes URI SANs
    /// unescaped, so one SAN `spiffe://x/a;URI=spiffe://td/ns/p/sa/acme` reads as two, the
    /// second forged (a SPIFFE SVID has exactly one URI SAN).
    AmbiguousUriSans,
}

impl XfccError {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            XfccError::MalformedPair => "xfcc_malformed_pair",
            XfccError::UnknownKey => "xfcc_unknown_key",
            XfccError::UnterminatedQuote => "xfcc_unterminated_quote",
            XfccError::TrailingGarbage => "xfcc_trailing_garbage",
            XfccError::BadHash => "xfcc_bad_hash",
            XfccError::EmptyElement => "xfcc_empty_element",
            XfccError::MultipleElements => "xfcc_multiple_elements",
            XfccError::TooManyPairs => "xfcc_too_many_pairs",
            XfccError::AmbiguousUriSans => "xfcc_ambiguous_uri_sans",
        }
    }
}

/// Why a `connection.peer_certificate` value could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateError {
    /// No `-----BEGIN CERTIFICATE-----` block (or its base64 is broken).
    NotPem,
    /// The block is not a DER X.509 certificate.
    NotX509,
    /// The subjectAltName extension is malformed or repeated.
    BadSubjectAltName,
}

impl CertificateError {
    /// A short stable name for logs and denial details.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateError::NotPem => "peer_certificate_not_pem",
            CertificateError::NotX509 => "peer_certificate_not_x509",
            CertificateError::BadSubjectAltName => "peer_certificate_bad_subject_alt_name",
        }
    }
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for CertificateError {}

/// A host call that did not return OK: the only internal error (`fail_open` may pass the
/// request). Errors caused by the request are [`Refusal`]s instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError {
    /// The import, e.g. `proxy_get_property`.
    pub call: &'static str,
    /// The proxy-wasm status the host returned.
    pub status: u32,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.status {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            6 => "InvalidMemoryAccess",
            7 => "Empty",
            8 => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => "unknown status",
        };
        write!(f, "{} failed: {name} ({})", self.call, self.status)
    }
}

impl std::error::Error for HostError {}

/// Why the direct peer (`ipBlocks`, `source.ip`: Envoy RBAC's `direct_remote_ip`) is not
/// known for sure (`crate::authz::direct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectPeerError {
    /// Envoy hid the TCP peer and no candidate is known.
    Unknown,
    /// The peer is one of a few candidates and they lead to different verdicts.
    Uncertain,
}

impl DirectPeerError {
    /// A short stable name: the denial reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DirectPeerError::Unknown => "direct_peer_unknown",
            DirectPeerError::Uncertain => "direct_peer_uncertain",
        }
    }
}

/// A fact about the request that a check needed and could not read: the request is
/// denied for it (never allowed, never an internal error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The path cannot be normalized.
    Path(PathError),
    /// The trusted `x-forwarded-client-cert` cannot be read.
    Xfcc(XfccError),
    /// The client certificate cannot be parsed.
    Certificate(CertificateError),
    /// An address a rule matches on (`source.address`, the last XFF entry) is missing or
    /// not an IP.
    ClientIp(ClientIpError),
    /// Rules depend on the direct peer and Envoy does not say which it is.
    DirectPeer(DirectPeerError),
    /// A fact Envoy always supplies is missing (another host, or a host-call failure
    /// read as absent).
    Missing(RequestFact),
}

/// Request facts Envoy always supplies; a rule on one that is missing is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFact {
    /// `:authority` (nor `host`).
    Authority,
    /// `:method`.
    Method,
    /// The `destination.port` property.
    DestinationPort,
}

impl RequestFact {
    /// The detail (stable snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestFact::Authority => "no_authority",
            RequestFact::Method => "no_method",
            RequestFact::DestinationPort => "no_destination_port",
        }
    }
}

impl Refusal {
    /// The denial reason (stable snake_case).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Path(_) => "path_rejected",
            Refusal::Xfcc(_) | Refusal::Certificate(_) => "identity_invalid",
            Refusal::ClientIp(_) => "client_ip_unknown",
            Refusal::DirectPeer(e) => e.as_str(),
            Refusal::Missing(_) => "request_incomplete",
        }
    }

    /// The finer detail (stable snake_case).
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Path(e) => e.as_str(),
            Refusal::Xfcc(e) => e.as_str(),
            Refusal::Certificate(e) => e.as_str(),
            Refusal::ClientIp(e) => e.as_str(),
            Refusal::DirectPeer(e) => e.as_str(),
            Refusal::Missing(f) => f.as_str(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail())
    }
}
