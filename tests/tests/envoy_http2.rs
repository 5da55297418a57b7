//! HTTP/2 through a real Envoy with the release filter: the same requests sent over HTTP/1.1
//! and over h2c (prior knowledge) must get the same decisions, covering `:authority`
//! without `Host`, repeated headers, trailers, and large and chunked (multi-frame) bodies.
//! h2 over TLS with ALPN is in envoy_example.rs (the TLS listener lives there).

mod h2_client;

use h2_client::{case, decision, post, send_h2, Case};
use portcullis_e2e::http::connect_from;
use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use std::net::{IpAddr, SocketAddr};

const PLUGIN: &str = r#"{
  "partners": [
    {"name": "acme", "cidrs": ["127.0.0.2/32"]},
    {"name": "globex", "cidrs": ["127.0.0.3/32"], "path_prefixes": ["/globex/"]}
  ],
  "ip_allowlist": {"mode": "enforce", "client_ip": {"source": "peer"}, "scope": "routes",
                   "protected_routes": [{"hosts": ["partners.example.com"]}]},
  "authorization": {"policies": [
    {"name": "deny-debug", "spec": {"action": "DENY", "rules": [
      {"when": [{"key": "request.headers[x-debug]", "values": ["on"]}]}]}},
    {"name": "deny-admin", "spec": {"action": "DENY", "rules": [
      {"to": [{"operation": {"paths": ["/admin*"]}}]}]}}
  ]},
  "waf": {"mode": "enforce",
          "directives": ["Include @recommended.conf",
                         "SecRule ARGS \"@contains attack\" \"id:1001,phase:2,deny,status:403,msg:'test'\""],
          "request_body": {"limit_bytes": 65536, "limit_action": "reject"}}
}"#;

fn cases() -> Vec<Case> {
    let www = "www.example.com";
    let partners = "partners.example.com";
    let mut forged = case(
        "forged partner header, repeated",
        [127, 0, 0, 9],
        www,
        "/",
        200,
    );
    forged.headers = vec![
        ("x-portcullis-partner", "acme"),
        ("x-portcullis-partner", "globex"),
    ];
    let mut debug = case(
        "repeated header, one value denied",
        [127, 0, 0, 9],
        www,
        "/",
        403,
    );
    debug.headers = vec![("x-debug", "off"), ("x-debug", "on")];
    let mut debug_off = case(
        "repeated header, no value denied",
        [127, 0, 0, 9],
        www,
        "/",
        200,
    );
    debug_off.headers = vec![("x-debug", "off"), ("x-debug", "maybe")];
    let clean: Vec<u8> = format!("q={}", "a".repeat(10_000)).into_bytes();
    let mut trailers_clean = post(
        case("trailers, clean body", [127, 0, 0, 9], www, "/form", 200),
        clean.clone(),
        Some(4096),
    );
    trailers_clean.trailers = vec![("x-checksum", "abc")];
    let mut trailers_attack = post(
        case("trailers, attack body", [127, 0, 0, 9], www, "/form", 403),
        b"q=attack".to_vec(),
        None,
    );
    trailers_attack.trailers = vec![("x-checksum", "abc")];
    vec![
        case("public host", [127, 0, 0, 9], www, "/index.html", 200),
        case(
            "partner host, not a partner",
            [127, 0, 0, 9],
            partners,
            "/api",
            403,
        ),
        case("partner host, acme", [127, 0, 0, 2], partners, "/api", 200),
        case(
            "partner host with port, acme",
            [127, 0, 0, 2],
            "partners.example.com:443",
            "/api",
            200,
        ),
        case(
            "globex outside its prefix",
            [127, 0, 0, 3],
            partners,
            "/api",
            403,
        ),
        case(
            "globex on its prefix",
            [127, 0, 0, 3],
            partners,
            "/globex/orders",
            200,
        ),
        forged,
        debug,
        debug_off,
        case("denied path", [127, 0, 0, 9], www, "/admin/users", 403),
        post(
            case("attack in a body", [127, 0, 0, 9], www, "/form", 403),
            b"q=attack".to_vec(),
            None,
        ),
        post(
            case(
                "attack in a chunked body",
                [127, 0, 0, 9],
                www,
                "/form",
                403,
            ),
            format!("{}&q=attack", "a=b&".repeat(2000)).into_bytes(),
            Some(1000),
        ),
        post(
            case("clean chunked body", [127, 0, 0, 9], www, "/form", 200),
            clean,
            Some(1500),
        ),
        post(
            case("body over the limit", [127, 0, 0, 9], www, "/form", 413),
            vec![b'a'; 100_000],
            None,
        ),
        post(
            case(
                "chunked body over the limit",
                [127, 0, 0, 9],
                www,
                "/form",
                413,
            ),
            vec![b'a'; 100_000],
            Some(16_000),
        ),
        trailers_clean,
        trailers_attack,
    ]
}

fn send_h1(c: &Case, to: SocketAddr) -> Response {
    let source = IpAddr::from(c.source).to_string();
    let mut r = match &c.body {
        Some(b) => Request::post(c.path, "application/x-www-form-urlencoded", b),
        None => Request::get(c.path),
    }
    .from(&source)
    .host(c.authority);
    for (k, v) in &c.headers {
        if *k != "content-type" {
            r = r.header(k, v);
        }
    }
    if let Some(n) = c.chunk {
        r = r.chunked(n);
    }
    r.send(to)
}

fn h2c(c: &Case, to: SocketAddr) -> Response {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let std_stream = connect_from(IpAddr::from(c.source), to).expect("connect");
        std_stream.set_nonblocking(true).expect("nonblocking");
        let io = tokio::net::TcpStream::from_std(std_stream).expect("tokio stream");
        send_h2(io, "http", c).await
    })
}

#[test]
fn h2c_decides_as_http1() {
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(PLUGIN));
    let mut mismatches = Vec::new();
    for c in cases() {
        let one = decision(&send_h1(&c, envoy.addr()));
        let two = decision(&h2c(&c, envoy.addr()));
        if one.status != c.expect || one != two {
            mismatches.push(format!(
                "{}: expected {}, HTTP/1.1 {one:?}, h2c {two:?}",
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
    // Every h2c request arrived as HTTP/2 (the access log would show a downgrade as a
    // codec error) and the filter saw each request once per protocol.
    let stats = envoy.stats("http.ingress.downstream_cx_http2_total");
    assert_eq!(
        stats.get("http.ingress.downstream_cx_http2_total").copied(),
        Some(cases().len() as u64),
        "{stats:?}"
    );
}
