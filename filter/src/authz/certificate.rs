//! The whole client certificate: Envoy's `connection.peer_certificate` property (the
//! leaf certificate in PEM) → [`PeerCertificate`] with *every* URI and DNS SAN, the
//! subject exactly as Envoy prints it, and the SHA-256 — so `principals` see all SANs as
//! Envoy's RBAC does, where the `*_san_peer_certificate` properties give only the first.
//!
//! The subject string must equal Envoy's `subject_peer_certificate` (BoringSSL
//! `X509_NAME_print_ex(.., XN_FLAG_RFC2253)`): RDNs last to first, `,` between RDNs and
//! `+` inside one, short names, unknown OIDs as `1.2.3.4=#<DER hex>`, RFC 2253 escapes,
//! non-ASCII as `\XX` per UTF-8 byte. The tests pin strings captured from Envoy 1.40.

use crate::request::PeerCertificate;
use crate::uri::percent_decode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::rc::Rc;
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::X509Name;

pub use crate::error::CertificateError;

/// Reads the value of Envoy's `connection.peer_certificate` property into the facts the
/// authorization rules use. Accepts the PEM as Envoy 1.40 returns it through proxy-wasm
/// (plain text) and URL-encoded (`%0A`, `%2B`, ..., as Envoy's attribute docs describe).
/// The first certificate block is the client's (leaf) certificate.
///
/// ```
/// use portcullis_filter::authz::peer_certificate_from_pem;
/// assert!(peer_certificate_from_pem(b"not a certificate").is_err());
/// ```
pub fn peer_certificate_from_pem(pem: &[u8]) -> Result<PeerCertificate, CertificateError> {
    let pem = percent_decode(pem);
    let block = Pem::iter_from_buffer(&pem)
        .find_map(|p| p.ok().filter(|p| p.label == "CERTIFICATE"))
        .ok_or(CertificateError::NotPem)?;
    peer_certificate_from_der(&block.contents)
}

/// Like [`peer_certificate_from_pem`] for a DER certificate.
pub fn peer_certificate_from_der(der: &[u8]) -> Result<PeerCertificate, CertificateError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|_| CertificateError::NotX509)?;
    let mut out = PeerCertificate {
        subject: rfc2253(cert.subject()),
        sha256: Some(hex(&Sha256::digest(der))),
        ..PeerCertificate::default()
    };
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertificateError::BadSubjectAltName)?;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        match name {
            GeneralName::URI(u) => out.uri_sans.push((*u).to_owned()),
            GeneralName::DNSName(d) => out.dns_sans.push((*d).to_owned()),
            _ => {}
        }
    }
    Ok(out)
}

/// Parsed client certificates by their PEM, so that requests on a kept-alive or HTTP/2
/// connection (and other connections of the same partner) parse each certificate once.
/// The PEM still comes from one `connection.peer_certificate` read per request (the key
/// is the certificate itself, so nothing needs trusting about connection ids); a hit
/// costs one hash of ~1.5 KB instead of an X.509 parse. Bounded: when `capacity`
/// certificates are held, the cache is cleared and refilled (one re-parse per live
/// certificate, no LRU bookkeeping on the hot path). Failures are not cached.
///
/// ```
/// use portcullis_filter::authz::CertificateCache;
/// let mut cache = CertificateCache::new(16);
/// assert!(cache.get_or_parse(b"not a certificate").is_err());
/// assert_eq!(cache.len(), 0);
/// ```
#[derive(Debug)]
pub struct CertificateCache {
    by_pem: HashMap<Box<[u8]>, Rc<PeerCertificate>>,
    capacity: usize,
}

impl CertificateCache {
    /// A cache holding at most `capacity` certificates (at least one).
    pub fn new(capacity: usize) -> Self {
        CertificateCache {
            by_pem: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The parsed certificate for `pem`, parsing it on first sight.
    pub fn get_or_parse(&mut self, pem: &[u8]) -> Result<Rc<PeerCertificate>, CertificateError> {
        if let Some(c) = self.by_pem.get(pem) {
            return Ok(c.clone());
        }
        let cert = Rc::new(peer_certificate_from_pem(pem)?);
        if self.by_pem.len() >= self.capacity {
            self.by_pem.clear();
        }
        self.by_pem.insert(pem.into(), cert.clone());
        Ok(cert)
    }

    /// Certificates held.
    pub fn len(&self) -> usize {
        self.by_pem.len()
    }

    /// True when no certificate is held.
    pub fn is_empty(&self) -> bool {
        self.by_pem.is_empty()
    }
}

fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(H[usize::from(x >> 4)]));
        s.push(char::from(H[usize::from(x & 15)]));
    }
    s
}

/// BoringSSL's short names (`OBJ_nid2sn`) for the attribute types seen in subjects.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// The subject as Envoy prints it (see the module comment).
fn rfc2253(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        let attrs: Vec<_> = rdn.iter().collect();
        for (j, a) in attrs.iter().rev().enumerate() {
            if j > 0 {
                out.push('+');
            } else if i > 0 {
                out.push(',');
            }
            let oid = a.attr_type().to_id_string();
            match short_name(&oid) {
                Some(sn) => {
                    out.push_str(sn);
                    out.push('=');
                    value(&mut out, a.attr_value());
                }
                None => {
                    // XN_FLAG_DUMP_UNKNOWN_FIELDS: unknown types as DER hex.
                    out.push_str(&oid);
                    out.push('=');
                    dump_der(&mut out, a.attr_value());
                }
            }
        }
    }
    out
}

/// One attribute value: decoded per string type, UTF-8 encoded, escaped.
fn value(out: &mut String, v: &Any<'_>) {
    let data = v.as_bytes();
    let chars: Option<Vec<u32>> = match v.tag() {
        Tag::Utf8String => std::str::from_utf8(data)
            .ok()
            .map(|s| s.chars().map(u32::from).collect()),
        // One byte per character (BoringSSL's tag2nbyte = 1).
        Tag::NumericString
        | Tag::PrintableString
        | Tag::T61String
        | Tag::Ia5String
        | Tag::UtcTime
        | Tag::GeneralizedTime
        | Tag::VisibleString
        | Tag::GeneralString => Some(data.iter().map(|&b| u32::from(b)).collect()),
        Tag::BmpString if data.len().is_multiple_of(2) => Some(
            data.chunks_exact(2)
                .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)))
                .collect(),
        ),
        Tag::UniversalString if data.len().is_multiple_of(4) => Some(
            data.chunks_exact(4)
                .map(|c| c.iter().fold(0u32, |a, &b| a << 8 | u32::from(b)))
                .collect(),
        ),
        _ => None,
    };
    let Some(chars) = chars else {
        return dump_der(out, v);
    };
    let mut utf8 = Vec::with_capacity(chars.len());
    for c in chars {
        let mut buf = [0u8; 4];
        let ch = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
        utf8.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    let last = utf8.len().saturating_sub(1);
    for (i, &b) in utf8.iter().enumerate() {
        let first_or_last_space = b == b' ' && (i == 0 || i == last);
        if !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02X}"));
        } else if matches!(b, b'\\' | b'"' | b',' | b'+' | b'<' | b'>' | b';')
            || first_or_last_space
            || (b == b'#' && i == 0)
        {
            out.push('\\');
            out.push(char::from(b));
        } else {
            out.push(char::from(b));
        }
    }
}

/// `#` and the hex of the value's DER encoding (tag, length, content), upper-case.
fn dump_der(out: &mut String, v: &Any<'_>) {
    let data = v.as_bytes();
    let class = match v.class() {
        Class::Universal => 0u8,
        Class::Application => 1,
        Class::ContextSpecific => 2,
        Class::Private => 3,
    };
    let mut der = Vec::with_capacity(data.len() + 6);
    let constructed = u8::from(v.header.is_constructed());
    match u8::try_from(v.tag().0) {
        Ok(t) if t < 31 => der.push(class << 6 | constructed << 5 | t),
        _ => {
            // High tag numbers: base-128, most significant group first.
            der.push(class << 6 | constructed << 5 | 0x1f);
            let t = v.tag().0;
            let groups: Vec<u8> = (0..5)
                .rev()
                .map(|k| ((t >> (7 * k)) & 0x7f) as u8)
                .skip_while(|&g| g == 0)
                .collect();
            let n = groups.len();
            for (k, g) in groups.into_iter().enumerate() {
                der.push(if k + 1 < n { g | 0x80 } else { g });
            }
        }
    }
    let len = data.len();
    if len < 0x80 {
        der.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        der.push(0x80 | bytes.len() as u8);
        der.extend(bytes);
    }
    der.extend_from_slice(data);
    out.push('#');
    out.push_str(&hex(&der).to_ascii_uppercase());
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTNER_A: &str = include_str!("testdata/partner-a.pem");
    const ESCAPES: &str = include_str!("testdata/escapes.pem");

    fn parse(pem: &str) -> PeerCertificate {
        match peer_certificate_from_pem(pem.as_bytes()) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn cache_parses_each_certificate_once_and_stays_bounded() {
        let mut cache = CertificateCache::new(1);
        let a1 = cache.get_or_parse(PARTNER_A.as_bytes()).unwrap();
        let a2 = cache.get_or_parse(PARTNER_A.as_bytes()).unwrap();
        assert!(Rc::ptr_eq(&a1, &a2), "second lookup must be a hit");
        assert_eq!(*a1, parse(PARTNER_A));
        let e = cache.get_or_parse(ESCAPES.as_bytes()).unwrap();
        assert_eq!(*e, parse(ESCAPES));
        assert_eq!(
            cache.len(),
            1,
            "capacity 1: the first certificate was dropped"
        );
        let a3 = cache.get_or_parse(PARTNER_A.as_bytes()).unwrap();
        assert!(!Rc::ptr_eq(&a1, &a3), "re-parsed after eviction");
        assert_eq!(*a3, *a1);
        let bad = PARTNER_A.replace("MII", "MIX");
        assert!(cache.get_or_parse(bad.as_bytes()).is_err());
        assert_eq!(cache.len(), 1, "failures are not cached");
    }

    /// Expected values: Envoy 1.40.0's `connection.*` properties for the same certificate
    /// (a debug proxy-wasm filter printing them behind a TLS listener, 2026-11-22).
    #[test]
    fn all_sans_subject_and_digest_as_envoy_1_40_reports_them() {
        let c = parse(PARTNER_A);
        assert_eq!(
            c.uri_sans,
            [
                "spiffe://partner-a.example/ns/partners/sa/first",
                "spiffe://cluster.local/ns/default/sa/second"
            ]
        );
        assert_eq!(c.dns_sans, ["a.partner.example", "b.partner.example"]);
        assert_eq!(c.subject, r"C=GB,O=Acme+OU=R&D,CN=Partner A\, Inc.");
        assert_eq!(
            c.sha256.as_deref(),
            Some("3b4ce2c34f0058aa3963a3c488dd3e9691217574ad548eb011a4d89a8bccfe00")
        );
    }

    #[test]
    fn subject_escapes_multivalued_rdns_and_unknown_oids_match_envoy() {
        let c = parse(ESCAPES);
        assert_eq!(
            c.subject,
            r#"CN=\ #lead\, trail\ ,OU=\C3\9Cnit,O=Zo\C3\AB \"q\"\;s\<t\>=\+\\,ST=x\01y+C=GB,1.2.3.4=#0C07666F6F20626172,DC=example"#
        );
        // Envoy's properties give only the first of each; the email SAN is neither.
        assert_eq!(c.uri_sans, ["spiffe://td/ns/n/sa/s"]);
        assert_eq!(c.dns_sans, ["only.dns.example", "second.dns.example"]);
        assert_eq!(
            c.sha256.as_deref(),
            Some("5255d504adecdbbab4325acb0f8dad8143cf89ad84b0ce2bd79289fffb161953")
        );
    }

    #[test]
    fn url_encoded_pem_is_accepted_too() {
        let enc: String = PARTNER_A
            .bytes()
            .map(|b| match b {
                b'\n' => "%0A".to_owned(),
                b'+' => "%2B".to_owned(),
                b'/' => "%2F".to_owned(),
                b'=' => "%3D".to_owned(),
                b' ' => "%20".to_owned(),
                b => char::from(b).to_string(),
            })
            .collect();
        assert_eq!(parse(&enc), parse(PARTNER_A));
    }

    #[test]
    fn garbage_is_a_typed_error_never_a_panic() {
        assert_eq!(
            peer_certificate_from_pem(b""),
            Err(CertificateError::NotPem)
        );
        assert_eq!(
            peer_certificate_from_pem(
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            ),
            Err(CertificateError::NotX509)
        );
        let mut truncated = PARTNER_A.to_owned();
        truncated.truncate(PARTNER_A.len() / 2);
        assert!(peer_certificate_from_pem(truncated.as_bytes()).is_err());
        assert!(peer_certificate_from_pem(b"%%%%0").is_err());
    }

    /// The DER of the test certificate; the tests below are void without it.
    fn partner_a_der() -> Vec<u8> {
        match Pem::iter_from_buffer(PARTNER_A.as_bytes()).next() {
            Some(Ok(block)) => block.contents,
            other => panic!("testdata/partner-a.pem does not parse: {other:?}"),
        }
    }

    /// `tag` with a DER length (long form when needed) around `body`.
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn the_fuzz_inputs_reach_past_the_outer_tags() {
        let der = partner_a_der();
        assert!(peer_certificate_from_der(&der).is_ok());
        // A byte inside the subject's CN string changes the subject, not the outcome:
        // mutated certificates get all the way through the parser.
        let at = der
            .windows(b"Partner A".len())
            .position(|w| w == b"Partner A")
            .expect("the CN is in the DER");
        let mut m = der.clone();
        m[at] = b'Q';
        let c = peer_certificate_from_der(&m).expect("still a certificate");
        assert!(c.subject.contains("CN=Qartner A"), "{}", c.subject);
        // Random bodies in a well-formed Certificate/TBSCertificate SEQUENCE pass the
        // outer tag and length checks and fail inside the TBSCertificate.
        let wrapped = tlv(
            0x30,
            &tlv(0x30, &[0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07]),
        );
        assert_eq!(
            peer_certificate_from_der(&wrapped),
            Err(CertificateError::NotX509)
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_der_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = peer_certificate_from_der(&bytes);
        }

        /// Structure-aware: a Certificate SEQUENCE holding a TBSCertificate SEQUENCE that
        /// starts like a real one (version, serial), then arbitrary bytes — the parser
        /// reaches the fields inside.
        #[test]
        fn arbitrary_tbs_certificate_never_panics(
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut tbs = vec![0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07];
            tbs.extend_from_slice(&tail);
            let mut cert = tlv(0x30, &tbs);
            cert.extend_from_slice(&rest);
            let _ = peer_certificate_from_der(&tlv(0x30, &cert));
        }

        /// Up to 8 bytes anywhere in a real certificate replaced: lengths stay consistent,
        /// so every field's parser is reached.
        #[test]
        fn mutated_real_certificates_never_panic(
            edits in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), proptest::num::u8::ANY), 1..8),
        ) {
            let mut der = partner_a_der();
            let n = der.len();
            for (at, b) in edits {
                der[at.index(n)] = b;
            }
            let _ = peer_certificate_from_der(&der);
        }

        /// Truncated anywhere.
        #[test]
        fn truncated_real_certificates_never_panic(at in proptest::prelude::any::<proptest::sample::Index>()) {
            let der = partner_a_der();
            let cut = at.index(der.len());
            proptest::prop_assert!(peer_certificate_from_der(&der[..cut]).is_err());
        }
    }
}
