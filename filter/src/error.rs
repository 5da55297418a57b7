//! Why a request is refused before (or while) rules run: typed errors caused by the
//! request itself, kept typed up to the [`crate::engine::Decision`].

use crate::authz::xfcc::XfccError;
use crate::clientip::ClientIpError;
use crate::path::PathError;
use std::fmt;

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
}

impl Refusal {
    /// The denial reason (stable snake_case).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Path(_) => "path_rejected",
            Refusal::Xfcc(_) | Refusal::Certificate(_) => "identity_invalid",
            Refusal::ClientIp(_) => "client_ip_unknown",
            Refusal::DirectPeer(e) => e.as_str(),
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
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail())
    }
}
