//! Authorization through the harness: the per-request cost of the release filter (wasm,
//! wasmtime) with 1, 100, 1,000 and 10,000 authorization rules, on an mTLS stream whose
//! properties are what Envoy 1.40 gives a filter (the whole peer certificate as PEM, first
//! SANs, subject, digest, SNI). One full stream per iteration: request headers (end of
//! stream), response headers when allowed, `finish` (log/done/delete).
//!
//! * `allowed`: only the last rule matches (ALLOW);
//! * `denied`: no rule matches (every rule is tried), `no_allow_policy_matched`;
//! * `allowed_without_pem`: `allowed` without `connection.peer_certificate` (older hosts:
//!   the filter falls back to the first-SAN properties), i.e. minus the PEM/X.509 parse;
//! * `no_authorization/0`: the same stream with an empty configuration (the baseline).
//!
//! `cargo bench -p portcullis-benches --bench authz_harness -- --warm-up-time 1 --measurement-time 3`
//!
//! The release filter is `$PORTCULLIS_WASM` when set, else built by `scripts/build-filter`.

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis_harness::{Action, Host, StreamProps, TlsInfo, Vm, VmConfig};

/// A self-signed P-256 client certificate: URI SAN
/// `spiffe://east.example.com/ns/team-0/sa/sa-0`, DNS SAN `client.team-0.example`,
/// subject `CN=client,O=Example` (`openssl req -x509 -newkey ec …`).
const CLIENT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIB7jCCAZSgAwIBAgIUB+jyv3Q/49TEwTqXyAUEraq9IzIwCgYIKoZIzj0EAwIw
IzEQMA4GA1UECgwHRXhhbXBsZTEPMA0GA1UEAwwGY2xpZW50MCAXDTI2MTEyMjAz
MTU0NFoYDzIxMjYxMDI5MDMxNTQ0WjAjMRAwDgYDVQQKDAdFeGFtcGxlMQ8wDQYD
VQQDDAZjbGllbnQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARYbO99i41E60lR
O+yxsBZW8X4qKkGiR25iSTgI3yNC4PWmCH0Qn3HbEWsWmNS6kntSLuHMRU6E9O0Z
cKQnD2LMo4GjMIGgMB0GA1UdDgQWBBRILCVxDFKlpKnnSQJaVSNGoCgD5jAfBgNV
HSMEGDAWgBRILCVxDFKlpKnnSQJaVSNGoCgD5jAPBgNVHRMBAf8EBTADAQH/ME0G
A1UdEQRGMESGK3NwaWZmZTovL2Vhc3QuZXhhbXBsZS5jb20vbnMvdGVhbS0wL3Nh
L3NhLTCCFWNsaWVudC50ZWFtLTAuZXhhbXBsZTAKBggqhkjOPQQDAgNIADBFAiAz
HljZ6vy/0ILku7QwKSE0JfIzjxp+Xbj6x+SPD7Nj4QIhAL8JU5SnxDWSN67gjhog
ClFI+Wqt86lSfZ8TArUvbhNf
-----END CERTIFICATE-----
";
const CLIENT_SHA256: &str = "76792e00b089fd23b90cebe27071b9f700f984547b1970172816659495bb2113";

/// The policies of `benches/benches/authz.rs` (one ALLOW policy per 10 rules; the rule for
/// `k` lets `sa-k` of `team-<k % 7>` GET `/svc-k/*` or POST `/svc-k/items`; a DENY on
/// `/admin*`), numbered down so that the **last** rule is always `sa-0`, the certificate
/// above: one certificate serves every size and still only the last rule matches.
fn config_with(rules: usize) -> String {
    let mut policies = Vec::new();
    for p in 0..rules.div_ceil(10) {
        let mut rs = Vec::new();
        for j in p * 10..((p + 1) * 10).min(rules) {
            let i = rules - 1 - j;
            rs.push(format!(
                r#"{{"from":[{{"source":{{"principals":["cluster.local/ns/team-{t}/sa/sa-{i}"]}}}}],
                   "to":[{{"operation":{{"methods":["GET"],"paths":["/svc-{i}/*"]}}}},
                         {{"operation":{{"methods":["POST"],"paths":["/svc-{i}/items"]}}}}]}}"#,
                t = i % 7
            ));
        }
        policies.push(format!(
            r#"{{"name":"p{p:05}","spec":{{"rules":[{}]}}}}"#,
            rs.join(",")
        ));
    }
    format!(
        r#"{{"authorization":{{"trust_domain_aliases":["east.example.com"],"policies":[
            {{"name":"deny-admin","spec":{{"action":"DENY","rules":[{{"to":[{{"operation":{{"paths":["/admin*"]}}}}]}}]}}}},
            {}]}}}}"#,
        policies.join(",")
    )
}

fn release_filter() -> PathBuf {
    portcullis_harness::release::release_filter().to_path_buf()
}

/// An mTLS downstream connection as Envoy describes it to a filter.
fn mtls_props() -> StreamProps {
    StreamProps::default()
        .source("192.0.2.1:40000".parse().unwrap())
        .destination("10.0.0.7:8443".parse().unwrap())
        .tls(TlsInfo {
            mtls: true,
            sni: Some("api.example.com".into()),
            version: Some("TLSv1.3".into()),
            uri_san_peer: Some("spiffe://east.example.com/ns/team-0/sa/sa-0".into()),
            dns_san_peer: Some("client.team-0.example".into()),
            subject_peer: Some("CN=client,O=Example".into()),
            sha256_peer_digest: Some(CLIENT_SHA256.into()),
            // Envoy 1.40 passes the PEM as is (policies/README.md, identity sources).
            peer_certificate: Some(CLIENT_PEM.into()),
        })
}

fn request(path: &str) -> [(&'static str, String); 6] {
    [
        (":method", "GET".into()),
        (":scheme", "https".into()),
        (":authority", "api.example.com".into()),
        (":path", path.into()),
        ("user-agent", "bench/1.0".into()),
        (
            "x-request-id",
            "0f5b7c9e-1d2a-4c3b-8e6f-7a8b9c0d1e2f".into(),
        ),
    ]
}

const RESPONSE: [(&str, &str); 2] = [(":status", "200"), ("content-type", "application/json")];

/// One full stream; the action on the request headers.
fn stream(vm: &mut Vm, props: &StreamProps, headers: &[(&'static str, String)]) -> Action {
    let mut s = vm.http_stream(props.clone()).unwrap();
    let a = s.request_headers(headers, true).unwrap();
    if a == Action::Continue {
        s.response_headers(RESPONSE, true).unwrap();
    }
    s.finish().unwrap();
    a
}

/// Checks once, outside the timing, that the request is decided as expected.
fn check(vm: &mut Vm, props: &StreamProps, headers: &[(&'static str, String)], allowed: bool) {
    let mut s = vm.http_stream(props.clone()).unwrap();
    let a = s.request_headers(headers, true).unwrap();
    let record = s.finish().unwrap();
    if allowed {
        assert_eq!(a, Action::Continue, "{:?}", record.local_reply);
    } else {
        let reply = record.local_reply.expect("a local reply");
        assert_eq!(reply.status, 403);
        assert!(
            reply.details.contains("no_allow_policy_matched"),
            "{}",
            reply.details
        );
    }
}

fn per_request(c: &mut Criterion) {
    let host = Host::from_file(release_filter()).unwrap();
    let props = mtls_props();
    let mut no_pem = props.clone();
    if let Some(tls) = no_pem.tls.as_mut() {
        tls.peer_certificate = None;
    }
    let allowed = request("/svc-0/x");
    let denied = request("/nowhere");
    let mut g = c.benchmark_group("authz_harness");
    g.throughput(Throughput::Elements(1));
    // Baseline: the same stream with no `authorization` block (nothing reads the
    // certificate); the rows below minus this one are authorization's share.
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"{}".to_vec(),
            ..Default::default()
        })
        .unwrap();
    check(&mut vm, &props, &allowed, true);
    g.bench_with_input(BenchmarkId::new("no_authorization", 0), &allowed, |b, h| {
        b.iter(|| assert_eq!(stream(&mut vm, black_box(&props), h), Action::Continue))
    });
    for n in [1usize, 100, 1_000, 10_000] {
        let mut vm = host
            .start_vm(VmConfig {
                plugin_configuration: config_with(n).into_bytes(),
                ..Default::default()
            })
            .unwrap();
        check(&mut vm, &props, &allowed, true);
        check(&mut vm, &props, &denied, false);
        g.bench_with_input(BenchmarkId::new("allowed", n), &allowed, |b, h| {
            b.iter(|| assert_eq!(stream(&mut vm, black_box(&props), h), Action::Continue))
        });
        g.bench_with_input(BenchmarkId::new("denied", n), &denied, |b, h| {
            b.iter(|| assert_eq!(stream(&mut vm, black_box(&props), h), Action::LocalReply))
        });
        check(&mut vm, &no_pem, &allowed, true);
        g.bench_with_input(
            BenchmarkId::new("allowed_without_pem", n),
            &allowed,
            |b, h| b.iter(|| assert_eq!(stream(&mut vm, black_box(&no_pem), h), Action::Continue)),
        );
    }
    g.finish();
}

criterion_group!(benches, per_request);
criterion_main!(benches);
