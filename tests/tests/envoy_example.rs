//! policies/envoy/envoy.yaml, the example for users without Istio, started in a real Envoy
//! with the release filter: only addresses, file paths (module, TLS files) and one CIDR (the
//! loopback address the test sends from) are rewritten. Partner traffic over mTLS is then
//! decided as the example's comments say, over HTTP/1.1 and over h2 negotiated by ALPN (the
//! same decisions). Fails (never skips) without Envoy.

mod h2_client;

use h2_client::{case, decision, http1_bytes, post, send_h2};
use portcullis_e2e::multi::MultiEnvoy;
use portcullis_e2e::tls::{ClientIdentity, Pki, TlsClient};
use portcullis_e2e::{wasm_path, workspace_root, EchoServer, Request, Response};
use serde::Deserialize as _;
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

fn example() -> Value {
    let path = workspace_root().join("policies/envoy/envoy.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Value::deserialize(serde_yaml_ng::Deserializer::from_str(&text))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The wasm filter's typed config in the (only) listener.
fn wasm_config(bootstrap: &mut Value) -> &mut Value {
    bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        ["http_filters"]
        .as_array_mut()
        .expect("http_filters")
        .iter_mut()
        .find(|f| f["name"] == "envoy.filters.http.wasm")
        .expect("the wasm filter")
}

#[test]
fn the_examples_plugin_configuration_compiles() {
    let mut bootstrap = example();
    let plugin = wasm_config(&mut bootstrap)["typed_config"]["config"]["configuration"]["value"]
        .as_str()
        .expect("configuration.value")
        .to_string();
    if let Err(e) = portcullis_filter::engine::Plan::parse(plugin.as_bytes()) {
        panic!("policies/envoy/envoy.yaml: configuration: {e}");
    }
}

/// The example's Envoy, with the files its bootstrap names (TLS), removed on drop.
struct RunningEnvoy {
    envoy: MultiEnvoy,
    _files: tempfile::TempDir,
}

impl RunningEnvoy {
    fn log(&self) -> String {
        self.envoy.log()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.display().to_string()
}

fn get(client: &mut TlsClient, method: &str, path: &str) -> Response {
    let raw = format!(
        "{method} {path} HTTP/1.1\r\nhost: api.partners.example.com\r\ncontent-length: 0\r\n\r\n"
    );
    client
        .send_raw(raw.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn reason(r: &Response) -> String {
    assert_eq!(
        r.status,
        403,
        "expected a denial, got {}: {}",
        r.status,
        r.text()
    );
    r.json()["reason"].as_str().unwrap_or_default().to_string()
}

/// The example in Envoy, with the test's TLS files, module and upstream, and 127.0.0.2 added
/// to acme's networks.
fn start_example(pki: &Pki, echo: &EchoServer) -> (RunningEnvoy, SocketAddr) {
    let dir = tempfile::Builder::new()
        .prefix("portcullis-envoy-example-")
        .tempdir()
        .expect("tempdir");
    let server = pki.server();
    let mut bootstrap = example();

    // Addresses: the listener on loopback, any port (MultiEnvoy sets the admin's); the
    // upstream is the echo server.
    let listener = &mut bootstrap["static_resources"]["listeners"][0];
    listener["address"]["socket_address"] = json!({"address": "127.0.0.1", "port_value": 0});
    // TLS files.
    let tls =
        &mut listener["filter_chains"][0]["transport_socket"]["typed_config"]["common_tls_context"];
    tls["tls_certificates"][0] = json!({
        "certificate_chain": {"filename": write(dir.path(), "server.crt", &server.cert_pem)},
        "private_key": {"filename": write(dir.path(), "server.key", &server.key_pem)},
    });
    tls["validation_context"]["trusted_ca"]["filename"] =
        json!(write(dir.path(), "partners-ca.crt", &pki.ca_pem()));
    bootstrap["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]
        ["lb_endpoints"][0]["endpoint"]["address"]["socket_address"] =
        json!({"address": echo.addr().ip().to_string(), "port_value": echo.addr().port()});
    // The module, and acme's network: the example lists documentation ranges; the test's
    // client sends from 127.0.0.2.
    let config = &mut wasm_config(&mut bootstrap)["typed_config"]["config"];
    config["vm_config"]["code"]["local"]["filename"] = json!(wasm_path().display().to_string());
    let mut plugin: Value = serde_json::from_str(
        config["configuration"]["value"]
            .as_str()
            .expect("configuration"),
    )
    .expect("the example's configuration is JSON");
    let acme_cidrs = plugin["partners"]
        .as_array_mut()
        .expect("partners")
        .iter_mut()
        .find(|p| p["name"] == "acme")
        .expect("partner acme")["cidrs"]
        .as_array_mut()
        .expect("cidrs");
    acme_cidrs.push(json!("127.0.0.2/32"));
    config["configuration"]["value"] = json!(plugin.to_string());

    let envoy = MultiEnvoy::start(&bootstrap);
    let addr = envoy.listener("partner_api");
    (RunningEnvoy { envoy, _files: dir }, addr)
}

#[test]
fn the_envoy_example_runs_and_decides_partner_traffic() {
    let echo = EchoServer::start();
    let pki = Pki::new();
    let (envoy, addr) = start_example(&pki, &echo);

    let acme = pki.client(&ClientIdentity {
        uris: vec!["spiffe://acme.example/ns/partners/sa/acme-client".into()],
        ..Default::default()
    });
    let globex = pki.client(&ClientIdentity {
        uris: vec!["spiffe://globex.example/ns/partners/sa/globex-client".into()],
        ..Default::default()
    });
    let from = |ip: [u8; 4], cert| TlsClient::new(pki.client_config(cert), IpAddr::from(ip), addr);

    // acme, from its network, with its certificate, on its paths: through, tagged upstream.
    let mut c = from([127, 0, 0, 2], &acme);
    let r = get(&mut c, "GET", "/identity/v1/me");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert_eq!(r.upstream_header_values("x-portcullis-partner"), ["acme"]);
    assert_eq!(get(&mut c, "POST", "/identity/v1/tokens").status, 200);
    // Not a method or path its policy allows.
    assert_eq!(
        reason(&get(&mut c, "DELETE", "/identity/v1/me")),
        "no_allow_policy_matched"
    );
    assert_eq!(
        reason(&get(&mut c, "GET", "/identity/admin")),
        "no_allow_policy_matched"
    );
    // globex's certificate from acme's network: no policy binds that certificate there.
    let mut g = from([127, 0, 0, 2], &globex);
    assert_eq!(
        reason(&get(&mut g, "GET", "/identity/v1/users/42")),
        "no_allow_policy_matched"
    );
    // acme's certificate from outside every partner network.
    let mut outside = from([127, 0, 0, 3], &acme);
    assert_eq!(
        reason(&get(&mut outside, "GET", "/identity/v1/me")),
        "ip_not_allowed"
    );

    // No client certificate: the TLS handshake fails (require_client_certificate).
    let no_cert = Request::get("/identity/v1/me")
        .host("api.partners.example.com")
        .try_send(addr);
    assert!(
        no_cert.is_err() || no_cert.is_ok_and(|r| r.status != 200),
        "plain HTTP / no certificate must not reach the API"
    );
}

#[test]
fn h2_over_tls_with_alpn_decides_as_http1() {
    let echo = EchoServer::start();
    let pki = Pki::new();
    let (envoy, addr) = start_example(&pki, &echo);
    let acme = pki.client(&ClientIdentity {
        uris: vec!["spiffe://acme.example/ns/partners/sa/acme-client".into()],
        ..Default::default()
    });
    let host = "api.partners.example.com";
    let mut with_trailers = post(
        case(
            "POST with trailers",
            [127, 0, 0, 2],
            host,
            "/identity/v1/tokens",
            200,
        ),
        b"grant=x".to_vec(),
        Some(3),
    );
    with_trailers.trailers = vec![("x-checksum", "abc")];
    let mut forged = case(
        "forged partner header",
        [127, 0, 0, 2],
        host,
        "/identity/v1/me",
        200,
    );
    forged.headers = vec![
        ("x-portcullis-partner", "globex"),
        ("x-portcullis-partner", "initech"),
    ];
    let cases = vec![
        case(
            "acme on its path",
            [127, 0, 0, 2],
            host,
            "/identity/v1/me",
            200,
        ),
        case(
            "acme with the port in the authority",
            [127, 0, 0, 2],
            "api.partners.example.com:8443",
            "/identity/v1/me",
            200,
        ),
        {
            let mut c = case(
                "acme, a method it may not use",
                [127, 0, 0, 2],
                host,
                "/identity/v1/me",
                403,
            );
            c.method = "DELETE";
            c
        },
        case(
            "acme outside the partner networks",
            [127, 0, 0, 3],
            host,
            "/identity/v1/me",
            403,
        ),
        forged,
        with_trailers,
        post(
            case(
                "chunked body in many frames",
                [127, 0, 0, 2],
                host,
                "/identity/v1/tokens",
                200,
            ),
            vec![b'a'; 50_000],
            Some(1000),
        ),
        post(
            case(
                "body over the WAF's default limit",
                [127, 0, 0, 2],
                host,
                "/identity/v1/tokens",
                413,
            ),
            vec![b'a'; 200_000],
            Some(16_384),
        ),
    ];

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut mismatches = Vec::new();
    for c in &cases {
        let mut h1 = TlsClient::new(pki.client_config(&acme), IpAddr::from(c.source), addr);
        let one = decision(
            &h1.send_raw(&http1_bytes(c))
                .unwrap_or_else(|e| panic!("{}: {e}", c.name)),
        );
        let mut config = (*pki.client_config(&acme)).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let two = rt.block_on(async {
            let tcp =
                portcullis_e2e::http::connect_from(IpAddr::from(c.source), addr).expect("connect");
            tcp.set_nonblocking(true).expect("nonblocking");
            let tcp = tokio::net::TcpStream::from_std(tcp).expect("tokio stream");
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            assert_eq!(
                tls.get_ref().1.alpn_protocol(),
                Some(&b"h2"[..]),
                "ALPN did not pick h2"
            );
            send_h2(tls, "https", c).await
        });
        let two = decision(&two);
        if one.status != c.expect || one != two {
            mismatches.push(format!(
                "{}: expected {}, HTTP/1.1 {one:?}, h2 {two:?}",
                c.name, c.expect
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n--- envoy log ---\n{}",
        mismatches.join("\n"),
        envoy.log()
    );
}
