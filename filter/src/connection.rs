//! The request as the host shows it: the header map read once, connection properties
//! fetched on first use through [`Properties`] (the glue's host calls; a fake in tests).
//! A failing property read is remembered as the request's [`HostError`] (an internal
//! error); a client certificate that cannot be parsed is the request's fault.

use crate::authz::CertificateCache;
use crate::error::{CertificateError, HostError};
use crate::request::{Headers, PeerCertificate, RequestView};
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

/// Reads one host property: `Ok(None)` when the host does not have it.
pub trait Properties {
    /// The property at `path` (e.g. `["source", "address"]`).
    fn get(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError>;
}

/// Headers from the host's map; values that are not UTF-8 are read lossily (U+FFFD),
/// so they can never equal a configured ASCII pattern by accident.
pub fn headers_from_map(pairs: Vec<(String, Vec<u8>)>) -> Headers {
    Headers::new(
        pairs
            .into_iter()
            .map(|(k, v)| match String::from_utf8(v) {
                Ok(v) => (k, v),
                Err(e) => (k, String::from_utf8_lossy(e.as_bytes()).into_owned()),
            })
            .collect(),
    )
}

/// A [`RequestView`] over host properties; each is fetched once, when a check asks.
pub struct PropertyRequest<'a, P: Properties> {
    /// The request headers.
    pub headers: Headers,
    properties: P,
    certificates: &'a RefCell<CertificateCache>,
    source_address: OnceCell<Option<String>>,
    peer: OnceCell<Result<Option<Rc<PeerCertificate>>, CertificateError>>,
    destination_port: OnceCell<Option<u16>>,
    sni: OnceCell<Option<String>>,
    /// First host-call failure, turned into an internal error after evaluation.
    error: RefCell<Option<HostError>>,
}

impl<'a, P: Properties> PropertyRequest<'a, P> {
    /// A request with `headers`; properties come from `properties`, certificates are
    /// parsed through `certificates`.
    pub fn new(
        headers: Headers,
        properties: P,
        certificates: &'a RefCell<CertificateCache>,
    ) -> Self {
        PropertyRequest {
            headers,
            properties,
            certificates,
            source_address: OnceCell::new(),
            peer: OnceCell::new(),
            destination_port: OnceCell::new(),
            sni: OnceCell::new(),
            error: RefCell::new(None),
        }
    }

    /// The first property read that failed, if any (an internal error).
    pub fn host_error(&self) -> Option<HostError> {
        *self.error.borrow()
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        match self.properties.get(path) {
            Ok(v) => v,
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                None
            }
        }
    }

    fn string_property(&self, path: &[&str]) -> Option<String> {
        self.property(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// The client certificate. One that the client presented and that cannot be parsed
    /// is the request's fault: the rules that need it deny the request (with fewer SANs
    /// than Envoy sees, a DENY on a later SAN would silently not match).
    fn fetch_peer_certificate(&self) -> Result<Option<Rc<PeerCertificate>>, CertificateError> {
        // One host call gives the whole client certificate (all SANs); Envoy sets it only
        // when the client presented one. Parsed once per certificate.
        if let Some(pem) = self.property(&["connection", "peer_certificate"]) {
            if !pem.is_empty() {
                return self.certificates.borrow_mut().get_or_parse(&pem).map(Some);
            }
        }
        // Hosts without `connection.peer_certificate`: Envoy's per-field properties, which
        // expose only the first URI and DNS SAN.
        let mtls = self.property(&["connection", "mtls"]);
        if mtls.as_deref() != Some(&[1]) {
            return Ok(None);
        }
        let list = |name: &str| -> Vec<String> {
            self.string_property(&["connection", name])
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect()
        };
        Ok(Some(Rc::new(PeerCertificate {
            uri_sans: list("uri_san_peer_certificate"),
            dns_sans: list("dns_san_peer_certificate"),
            subject: self
                .string_property(&["connection", "subject_peer_certificate"])
                .unwrap_or_default(),
            sha256: self.string_property(&["connection", "sha256_peer_certificate_digest"]),
        })))
    }
}

/// `destination.port` as Envoy encodes it (a little-endian i64); `None` if malformed.
pub fn port_from_property(b: &[u8]) -> Option<u16> {
    let arr: [u8; 8] = b.get(..8)?.try_into().ok()?;
    u16::try_from(i64::from_le_bytes(arr)).ok()
}

impl<P: Properties> RequestView for PropertyRequest<'_, P> {
    fn headers(&self) -> &Headers {
        &self.headers
    }

    fn source_address(&self) -> Option<&str> {
        self.source_address
            .get_or_init(|| self.string_property(&["source", "address"]))
            .as_deref()
    }

    fn peer_certificate(&self) -> Result<Option<&PeerCertificate>, CertificateError> {
        match self.peer.get_or_init(|| self.fetch_peer_certificate()) {
            Ok(c) => Ok(c.as_deref()),
            Err(e) => Err(*e),
        }
    }

    fn destination_port(&self) -> Option<u16> {
        *self.destination_port.get_or_init(|| {
            self.property(&["destination", "port"])
                .and_then(|b| port_from_property(&b))
        })
    }

    fn requested_server_name(&self) -> Option<&str> {
        self.sni
            .get_or_init(|| self.string_property(&["connection", "requested_server_name"]))
            .as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        values: HashMap<String, Vec<u8>>,
        failing: Option<&'static str>,
        reads: RefCell<Vec<String>>,
    }

    impl Properties for &Fake {
        fn get(&self, path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
            let key = path.join(".");
            self.reads.borrow_mut().push(key.clone());
            if self.failing.is_some_and(|f| f == "*" || f == key) {
                return Err(HostError {
                    call: "proxy_get_property",
                    status: 10,
                });
            }
            Ok(self.values.get(&key).cloned())
        }
    }

    fn cache() -> RefCell<CertificateCache> {
        RefCell::new(CertificateCache::new(4))
    }

    #[test]
    fn properties_are_read_once_and_only_when_asked() {
        let mut f = Fake::default();
        f.values
            .insert("source.address".into(), b"10.0.0.1:5".to_vec());
        f.values
            .insert("destination.port".into(), 8443i64.to_le_bytes().to_vec());
        let c = cache();
        let r = PropertyRequest::new(Headers::default(), &f, &c);
        assert!(f.reads.borrow().is_empty());
        assert_eq!(r.source_address(), Some("10.0.0.1:5"));
        assert_eq!(r.source_address(), Some("10.0.0.1:5"));
        assert_eq!(r.destination_port(), Some(8443));
        assert_eq!(r.requested_server_name(), None);
        assert_eq!(
            *f.reads.borrow(),
            [
                "source.address",
                "destination.port",
                "connection.requested_server_name"
            ]
        );
        assert_eq!(r.host_error(), None);
    }

    #[test]
    fn a_failing_property_is_a_host_error_not_a_value() {
        let f = Fake {
            failing: Some("*"),
            ..Default::default()
        };
        let c = cache();
        let r = PropertyRequest::new(Headers::default(), &f, &c);
        assert_eq!(r.source_address(), None);
        assert_eq!(
            r.host_error(),
            Some(HostError {
                call: "proxy_get_property",
                status: 10
            })
        );
    }

    #[test]
    fn an_unparsable_certificate_is_the_requests_fault() {
        let mut f = Fake::default();
        f.values.insert(
            "connection.peer_certificate".into(),
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
        );
        let c = cache();
        let r = PropertyRequest::new(Headers::default(), &f, &c);
        assert_eq!(r.peer_certificate(), Err(CertificateError::NotX509));
        assert_eq!(r.host_error(), None);
    }

    #[test]
    fn per_field_properties_without_the_pem() {
        let mut f = Fake::default();
        f.values.insert("connection.mtls".into(), vec![1]);
        f.values.insert(
            "connection.uri_san_peer_certificate".into(),
            b"spiffe://td/ns/a/sa/b".to_vec(),
        );
        f.values.insert(
            "connection.subject_peer_certificate".into(),
            b"CN=x".to_vec(),
        );
        let c = cache();
        let r = PropertyRequest::new(Headers::default(), &f, &c);
        let p = r.peer_certificate().unwrap().unwrap();
        assert_eq!(p.uri_sans, ["spiffe://td/ns/a/sa/b"]);
        assert!(p.dns_sans.is_empty());
        assert_eq!(p.subject, "CN=x");
        // Plaintext.
        let f = Fake::default();
        let r = PropertyRequest::new(Headers::default(), &f, &c);
        assert_eq!(r.peer_certificate(), Ok(None));
    }

    #[test]
    fn ports_and_header_values() {
        assert_eq!(port_from_property(&443i64.to_le_bytes()), Some(443));
        assert_eq!(port_from_property(&(-1i64).to_le_bytes()), None);
        assert_eq!(port_from_property(&[1, 2]), None);
        let h = headers_from_map(vec![("x".into(), vec![b'a', 0xff])]);
        assert_eq!(h.get("x"), Some("a\u{fffd}"));
    }
}
