//! Every JSONL traffic field reaches the release filter (or is an error): for each field
//! a policy decided by it, and two lines that differ only in that field, replayed through
//! the filter in this crate's host. Fields the filter does not decide on (`scheme`,
//! `protocol`, `server_addr`, `body`) are checked in what the host hands the filter.

use portcullis_harness::replay::host::stream_props;
use portcullis_harness::replay::{jsonl, HostTarget, Target};
use portcullis_harness::Host;
use serde_json::{json, Value};
use std::sync::OnceLock;

fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| portcullis_harness::release::release_host().expect("the release filter loads"))
        .fork()
}

/// The status the filter gives `line` under an ALLOW policy with `source` / `operation`.
fn status(authz: Value, line: &str) -> u16 {
    let cfg = json!({ "authorization": authz }).to_string();
    let mut t = HostTarget::with_host(host(), cfg.into_bytes(), false).expect("starts");
    let reqs = jsonl::parse("t.jsonl", line).unwrap_or_else(|e| panic!("{line}: {e}"));
    t.send(&reqs[0])
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .status
}

fn allow(rule: Value) -> Value {
    json!({"policies": [{"name": "p", "spec": {"rules": [rule]}}]})
}

/// `with` is allowed and `without` denied under `authz`.
fn decides(field: &str, authz: Value, with: &str, without: &str) {
    assert_eq!(status(authz.clone(), with), 200, "{field}: {with}");
    assert_eq!(status(authz, without), 403, "{field}: {without}");
}

#[test]
fn connection_fields_reach_the_filter() {
    decides(
        "client_ip",
        allow(json!({"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]})),
        r#"{"client_ip":"203.0.113.7"}"#,
        r#"{"client_ip":"198.51.100.7"}"#,
    );
    // The port tells the TCP peer (non-zero) from an address Envoy took from XFF (0).
    decides(
        "client_port",
        allow(json!({"from": [{"source": {"ipBlocks": ["203.0.113.7"]}}]})),
        r#"{"client_ip":"203.0.113.7","client_port":40000}"#,
        r#"{"client_ip":"203.0.113.7","client_port":0}"#,
    );
    let ports = allow(json!({"to": [{"operation": {"ports": ["8443"]}}]}));
    // The replay pitfall: a port without an IP server_addr.
    decides(
        "server_port",
        ports.clone(),
        r#"{"server_port":8443}"#,
        r#"{"server_port":9443}"#,
    );
    decides(
        "server_port",
        ports,
        r#"{"server_addr":"10.0.0.2","server_port":8443}"#,
        r#"{"server_addr":"10.0.0.2"}"#,
    );
}

#[test]
fn certificate_fields_reach_the_filter() {
    decides(
        "tls.uri_sans",
        allow(json!({"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]})),
        r#"{"tls":{"uri_sans":["spiffe://cluster.local/ns/a/sa/b"]}}"#,
        r#"{"tls":{"uri_sans":["spiffe://cluster.local/ns/a/sa/c"]}}"#,
    );
    decides(
        "tls.mtls",
        allow(json!({"from": [{"source": {"notPrincipals": ["*"]}}]})),
        r#"{"tls":{"mtls":false}}"#,
        r#"{"tls":{"uri_sans":["spiffe://x/ns/a/sa/b"]}}"#,
    );
    decides(
        "tls.dns_sans",
        allow(json!({"from": [{"source": {"dnsSans": ["a.example"]}}]})),
        r#"{"tls":{"dns_sans":["a.example"]}}"#,
        r#"{"tls":{"dns_sans":["b.example"]}}"#,
    );
    decides(
        "tls.subject",
        allow(json!({"from": [{"source": {"subjects": [{"cn": "partner-a"}]}}]})),
        r#"{"tls":{"subject":"CN=partner-a,O=Example"}}"#,
        r#"{"tls":{"subject":"CN=partner-b,O=Example"}}"#,
    );
    let sha = "ab".repeat(32);
    decides(
        "tls.sha256",
        allow(json!({"from": [{"source": {"certSha256": [sha.clone()]}}]})),
        &format!(r#"{{"tls":{{"sha256":"{}"}}}}"#, sha.to_uppercase()),
        &format!(r#"{{"tls":{{"sha256":"{}"}}}}"#, "cd".repeat(32)),
    );
}

#[test]
fn request_fields_reach_the_filter() {
    let op = |o: Value| allow(json!({"to": [{"operation": o}]}));
    decides(
        "method",
        op(json!({"methods": ["POST"]})),
        r#"{"method":"POST"}"#,
        r#"{"method":"GET"}"#,
    );
    decides(
        "authority",
        op(json!({"hosts": ["api.example.com"]})),
        r#"{"authority":"api.example.com"}"#,
        r#"{"authority":"www.example.com"}"#,
    );
    decides(
        "headers.host",
        op(json!({"hosts": ["api.example.com"]})),
        r#"{"headers":{"host":"api.example.com"}}"#,
        r#"{"headers":{"host":"www.example.com"}}"#,
    );
    decides(
        "path",
        op(json!({"paths": ["/files/{**}/"]})),
        r#"{"path":"/files/a/b/?q=1"}"#,
        r#"{"path":"/files/a/b.txt"}"#,
    );
    decides(
        "headers",
        allow(json!({"when": [{"key": "request.headers[x-partner]", "values": ["acme"]}]})),
        r#"{"headers":[["x-partner","acme"]]}"#,
        r#"{"headers":[["x-partner","globex"]]}"#,
    );
}

#[test]
fn fields_the_filter_does_not_decide_on_are_still_handed_over() {
    let r = &jsonl::parse(
        "t.jsonl",
        r#"{"scheme":"https","protocol":"HTTP/2","server_addr":"10.0.0.2","server_port":8443,"body":"x=1"}"#,
    )
    .expect("parses")[0];
    let p = stream_props(r);
    assert_eq!(p.protocol, "HTTP/2");
    assert_eq!(p.destination, Some("10.0.0.2:8443".parse().unwrap()));
    assert!(p.tls.is_some(), "https is a TLS connection");
    assert!(r
        .envoy_headers()
        .contains(&(":scheme".to_string(), "https".to_string())));
    assert_eq!(r.body, b"x=1");
}

#[test]
fn fields_that_cannot_reach_the_filter_are_errors() {
    for (line, why) in [
        (r#"{"server_addr":"gw.example"}"#, "/server_addr"),
        (
            r#"{"authority":"a.example","headers":{"host":"b.example"}}"#,
            "/authority",
        ),
        (
            r#"{"tls":{"uri_sans":["spiffe://a/ns/x/sa/y","spiffe://b/ns/x/sa/y"]}}"#,
            "/tls/uri_sans",
        ),
        (
            r#"{"tls":{"dns_sans":["a.example","b.example"]}}"#,
            "/tls/dns_sans",
        ),
        (r#"{"tls":{"mtls":false,"subject":"CN=a"}}"#, "/tls"),
    ] {
        let e = jsonl::parse("bad.jsonl", line).expect_err(line).to_string();
        assert!(e.contains(why), "{line}: {e}");
    }
}
