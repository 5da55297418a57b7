//! The harness's local replies against a real Envoy 1.40's: the conformance filter (the
//! proxy-wasm Rust SDK, harness/test-filters/conformance) replies 403 on `/deny` with a
//! header and a body; Envoy's answer — header order, and for a gRPC request the
//! trailers-only form — must be what the harness records for the same stream
//! (harness/tests/envoy_behaviour.rs pins the harness side).

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use portcullis_harness::{Host, StreamProps, VmConfig};

fn conformance() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        portcullis_harness::build::build_wasm_crate(
            portcullis_e2e::workspace_root().join("harness/test-filters/conformance"),
        )
        .expect("the conformance filter builds")
    })
}

/// What the harness sends back for `/deny`, as (name, value) pairs in order.
fn harness_reply(grpc: bool) -> Vec<(String, String)> {
    let host = Host::from_file(conformance()).unwrap();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    let mut h = vec![
        (":method", "POST"),
        (":path", "/deny"),
        (":authority", "example.com"),
        (":scheme", "http"),
    ];
    if grpc {
        h.push(("content-type", "application/grpc"));
    }
    s.request_headers(h, false).unwrap();
    s.finish().unwrap().response_headers
}

/// Envoy's response headers restricted to the names the harness reply has (Envoy adds
/// `date`, `server` and the codec's framing on the wire), with the status line as
/// `:status`.
fn envoy_pairs(r: &Response, names: &[String]) -> Vec<(String, String)> {
    let mut out = vec![(":status".to_string(), r.status.to_string())];
    out.extend(r.headers.iter().filter(|(k, _)| names.contains(k)).cloned());
    out
}

#[test]
fn local_reply_as_envoy_sends_it() {
    let envoy = Envoy::start(&EnvoyConfig {
        wasm: Some(conformance().clone()),
        ..EnvoyConfig::with_plugin("conformance")
    });
    for grpc in [false, true] {
        let mut req = Request::post("/deny", "text/plain", b"x");
        if grpc {
            req = Request::post("/deny", "application/grpc", b"\0\0\0\0\0");
        }
        let r = req.send(envoy.addr());
        let harness = harness_reply(grpc);
        let names: Vec<String> = harness.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            envoy_pairs(&r, &names),
            harness,
            "grpc={grpc}: Envoy's reply (left) against the harness's; all Envoy headers: {:?}",
            r.headers
        );
        if grpc {
            assert_eq!(r.status, 200, "gRPC local replies are HTTP 200");
            assert_eq!(r.header("grpc-status"), Some("7"));
            assert!(r.body.is_empty(), "trailers-only: {:?}", r.text());
        } else {
            assert_eq!(r.text(), "forbidden\n");
        }
    }
}
