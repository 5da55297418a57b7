//! The client identity of one request: a certificate from the connection, an XFCC element
//! from a trusted hop, or nothing (plaintext). Matchers ask it questions through
//! callbacks so neither source needs copying.

use super::xfcc::{Key, XfccIdentity};
use crate::request::PeerCertificate;
use std::borrow::Cow;

/// Where this request's certificate facts come from.
#[derive(Debug, Clone)]
pub(crate) enum Peer<'a> {
    /// No client certificate (plaintext, or no trusted XFCC).
    Plaintext,
    /// The connection's certificate.
    Cert(&'a PeerCertificate),
    /// The certificate of the trusted XFCC element's `Cert=` (it has every SAN exactly as
    /// issued, where `URI=`/`DNS=` values are written unescaped and can be forged by a SAN
    /// holding `;URI=`).
    XfccCert(Box<PeerCertificate>),
    /// The trusted XFCC element, parsed once per request.
    Xfcc(XfccIdentity<'a>),
}

impl<'a> Peer<'a> {
    /// True for every URI SAN until `f` says yes.
    pub(crate) fn any_uri_san(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        match self {
            Peer::Plaintext => false,
            Peer::Cert(c) => c.uri_sans.iter().any(|s| f(s)),
            Peer::XfccCert(c) => c.uri_sans.iter().any(|s| f(s)),
            Peer::Xfcc(e) => e.values(Key::Uri).any(f),
        }
    }

    /// Like [`Self::any_uri_san`] for DNS SANs.
    pub(crate) fn any_dns_san(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        match self {
            Peer::Plaintext => false,
            Peer::Cert(c) => c.dns_sans.iter().any(|s| f(s)),
            Peer::XfccCert(c) => c.dns_sans.iter().any(|s| f(s)),
            Peer::Xfcc(e) => e.values(Key::Dns).any(f),
        }
    }

    /// `f` on the RFC 2253 subject (possibly empty), false on plaintext.
    pub(crate) fn subject(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        match self {
            Peer::Plaintext => false,
            Peer::Cert(c) => f(&c.subject),
            Peer::XfccCert(c) => f(&c.subject),
            Peer::Xfcc(e) => f(e.subject().unwrap_or("")),
        }
    }

    /// `f` on the SHA-256 hex digest, if known.
    pub(crate) fn sha256(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        match self {
            Peer::Plaintext => false,
            Peer::Cert(c) => c.sha256.as_deref().is_some_and(f),
            Peer::XfccCert(c) => c.sha256.as_deref().is_some_and(f),
            Peer::Xfcc(e) => e.values(Key::Hash).next().is_some_and(f),
        }
    }

    /// Envoy's `authenticated.principal_name` candidates: every URI SAN, every DNS SAN,
    /// then the subject.
    pub(crate) fn any_principal(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.any_uri_san(f) || self.any_dns_san(f) || self.subject(f)
    }
}

/// RFC 2253 attributes of a subject DN (`CN=a\,b,O=Acme+OU=x`): (type, unescaped value).
/// Escapes `\<char>` and `\XX` are undone; malformed input ends the iteration.
pub(crate) fn subject_attributes(dn: &str) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
    let mut rest = dn;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // Find the end of this attribute: an unescaped ',' or '+'.
        let b = rest.as_bytes();
        let mut i = 0;
        let mut escaped = false;
        while let Some(&c) = b.get(i) {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b',' || c == b'+' {
                break;
            }
            i += 1;
        }
        let attr = rest.get(..i)?;
        rest = rest.get(i + 1..).unwrap_or("");
        let (ty, value) = attr.split_once('=')?;
        Some((ty.trim(), unescape_dn(value.trim_start())))
    })
}

fn unescape_dn(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
        return Cow::Borrowed(v);
    }
    let b = v.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            let hx = |j: usize| b.get(j).and_then(|&x| (x as char).to_digit(16));
            if let (Some(h), Some(l)) = (hx(i + 1), hx(i + 2)) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
            if let Some(&n) = b.get(i + 1) {
                out.push(n);
                i += 2;
                continue;
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2253_subject_with_escapes_and_multivalued_rdn() {
        let a: Vec<_> = subject_attributes(r"CN=Steve Kille,O=Isode\, Limited+OU=R\2bD,C=GB")
            .map(|(t, v)| (t.to_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            a,
            [
                ("CN", "Steve Kille"),
                ("O", "Isode, Limited"),
                ("OU", "R+D"),
                ("C", "GB")
            ]
            .map(|(t, v)| (t.to_owned(), v.to_owned()))
        );
        assert_eq!(subject_attributes("").count(), 0);
        assert_eq!(subject_attributes("garbage").count(), 0);
    }

    #[test]
    fn principal_candidates_are_uri_then_dns_then_subject() {
        let c = PeerCertificate {
            uri_sans: vec!["spiffe://a".into(), "spiffe://b".into()],
            dns_sans: vec!["x.example".into()],
            subject: "CN=x".into(),
            sha256: None,
        };
        let mut seen = Vec::new();
        Peer::Cert(&c).any_principal(&mut |s| {
            seen.push(s.to_owned());
            false
        });
        assert_eq!(seen, ["spiffe://a", "spiffe://b", "x.example", "CN=x"]);
        assert!(!Peer::Plaintext.any_principal(&mut |_| true));
    }
}
