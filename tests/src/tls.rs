//! Test PKI and an HTTPS client with a client certificate.
//!
//! * [`Pki`] is a CA generated at test time (rcgen) that issues a server certificate for
//!   Envoy (`localhost`, `127.0.0.1`) and client certificates with chosen URI SANs, DNS SANs
//!   and subject ([`ClientIdentity`]);
//! * [`TlsClient`] sends raw HTTP/1.1 requests over TLS (rustls) with a client certificate,
//!   from a chosen loopback source address, reusing its connection (keep-alive) and
//!   reconnecting when Envoy closed it.

use crate::http::{connect_from, read_body, read_head, Response};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{self, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;

/// What a client certificate says.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity {
    /// URI SANs, in order.
    pub uris: Vec<String>,
    /// DNS SANs, in order.
    pub dns: Vec<String>,
    /// Subject attributes in encoding order, e.g. `[("CN", "acme"), ("O", "Acme")]`
    /// (`CN`, `O`, `OU`, `C` are supported). Empty = an empty subject.
    pub subject: Vec<(String, String)>,
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// A test CA.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    /// A new CA (`CN=portcullis test CA`).
    pub fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "portcullis test CA");
        params.distinguished_name = dn;
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Pki { ca }
    }

    /// The CA certificate (PEM), for Envoy's `trusted_ca`.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        self.sign(params)
    }

    /// A client certificate saying `id`.
    pub fn client(&self, id: &ClientIdentity) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        for u in &id.uris {
            params
                .subject_alt_names
                .push(SanType::URI(u.clone().try_into().expect("URI SAN is IA5")));
        }
        for d in &id.dns {
            params.subject_alt_names.push(SanType::DnsName(
                d.clone().try_into().expect("DNS SAN is IA5"),
            ));
        }
        let mut dn = DistinguishedName::new();
        for (ty, v) in &id.subject {
            let ty = match ty.as_str() {
                "CN" => DnType::CommonName,
                "O" => DnType::OrganizationName,
                "OU" => DnType::OrganizationalUnitName,
                "C" => DnType::CountryName,
                other => panic!("unsupported subject attribute {other}"),
            };
            dn.push(ty, v.as_str());
        }
        params.distinguished_name = dn;
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A rustls client configuration trusting this CA and presenting no certificate.
    pub fn anonymous_client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA into the roots");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(cfg)
    }

    /// A rustls client configuration trusting this CA and presenting `client`.
    pub fn client_config(&self, client: &Issued) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("CA into the roots");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![client.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client.key_der.clone())),
            )
            .expect("client auth certificate");
        Arc::new(cfg)
    }
}

type Tls = BufReader<StreamOwned<ClientConnection, TcpStream>>;

/// An HTTPS/1.1 client: one keep-alive connection from `source` to `to`, presenting the
/// configured client certificate (server name `localhost`).
pub struct TlsClient {
    config: Arc<ClientConfig>,
    source: IpAddr,
    to: SocketAddr,
    conn: Option<Tls>,
}

impl TlsClient {
    /// A client (not yet connected) to a loopback listener, from `source`: a loopback
    /// address or one of this host's own addresses.
    pub fn new(config: Arc<ClientConfig>, source: IpAddr, to: SocketAddr) -> TlsClient {
        assert!(to.ip().is_loopback());
        TlsClient {
            config,
            source,
            to,
            conn: None,
        }
    }

    fn connect(&self) -> io::Result<Tls> {
        let tcp = connect_from(self.source, self.to)?;
        let name = ServerName::try_from("localhost").expect("server name");
        let conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(BufReader::new(StreamOwned::new(conn, tcp)))
    }

    /// Sends `raw` (a whole HTTP/1.1 request, keep-alive) and reads the response. Retries
    /// once on a fresh connection when a reused connection fails.
    pub fn send_raw(&mut self, raw: &[u8]) -> io::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_send(raw) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                self.conn = None;
                self.try_send(raw)
            }
            Err(e) => Err(e),
        }
    }

    fn try_send(&mut self, raw: &[u8]) -> io::Result<Response> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let conn = self.conn.as_mut().expect("connected");
        let result = (|| {
            conn.get_mut().write_all(raw)?;
            conn.get_mut().flush()?;
            let (status_line, headers) = read_head(conn)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response")
            })?;
            let status = status_line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad status line {status_line:?}"),
                    )
                })?;
            let body = read_body(conn, &headers, true)?;
            Ok(Response {
                status,
                headers,
                body,
            })
        })();
        match &result {
            Ok(r)
                if r.header("connection")
                    .is_none_or(|c| !c.eq_ignore_ascii_case("close")) => {}
            _ => self.conn = None,
        }
        result
    }
}
