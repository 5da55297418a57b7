//! Envoy 1.40's behaviour where the harness once differed, each test naming what Envoy
//! does (tests/tests/envoy_local_reply.rs checks the same replies in a real Envoy):
//! virtual time moving while a request waits, local-reply headers in Envoy's order, gRPC
//! local replies and fail-close on gRPC requests as trailers-only responses.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use portcullis_harness::build::build_wasm_crate;
use portcullis_harness::{
    Action, Error, FailStrategy, Host, HttpReply, StreamProps, StreamRecord, VmConfig,
};

fn host() -> Host {
    static W: OnceLock<PathBuf> = OnceLock::new();
    static H: OnceLock<Host> = OnceLock::new();
    let wasm = W.get_or_init(|| {
        build_wasm_crate(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test-filters/conformance"
        ))
        .expect("conformance filter builds")
    });
    H.get_or_init(|| {
        Host::from_file_cached(wasm, &portcullis_harness::release::test_cache()).expect("loads")
    })
    .fork()
}

fn req(path: &str, grpc: bool) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (":method", "POST".to_string()),
        (":path", path.to_string()),
        (":authority", "example.com".to_string()),
        (":scheme", "http".to_string()),
    ];
    if grpc {
        h.push(("content-type", "application/grpc".to_string()));
    }
    h
}

fn pairs(r: &StreamRecord) -> Vec<(&str, &str)> {
    r.response_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Envoy: a request paused on an `http_call` waits while time passes; the reply reaches it
/// when it arrives (here 30 ms later) and the filter resumes it.
#[test]
fn a_delayed_call_reply_reaches_the_waiting_request() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    vm.on_http_call("authz", |_| {
        HttpReply::ok(200, b"alice".to_vec()).delayed(Duration::from_millis(30))
    });
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout", false), true).unwrap(),
        Action::Pause
    );
    assert_eq!(
        s.advance_time(Duration::from_millis(29)).unwrap(),
        Action::Pause,
        "not yet"
    );
    assert_eq!(
        s.advance_time(Duration::from_millis(1)).unwrap(),
        Action::Continue
    );
    let r = s.finish().unwrap();
    assert_eq!(r.request_header("x-authz"), Some("alice"));
}

/// Envoy: a call nobody answers fails when the filter's timeout (500 ms) elapses, and the
/// failure reaches the waiting request (the conformance filter then replies 504).
#[test]
fn a_call_timeout_reaches_the_waiting_request() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    vm.on_http_call("authz", |_| HttpReply::Timeout);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/callout", false), true).unwrap();
    assert_eq!(
        s.advance_time(Duration::from_millis(499)).unwrap(),
        Action::Pause
    );
    assert_eq!(
        s.advance_time(Duration::from_millis(1)).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    assert_eq!(r.local_reply.unwrap().status, 504);
    assert_eq!(r.response_body, b"callout failed");
}

/// Envoy (`Http::Utility::sendLocalReply`): `:status`, the filter's headers, then
/// `content-length` and `content-type: text/plain`; the filter's own response callback
/// then sees (and here adds to) that map.
#[test]
fn local_reply_headers_in_envoys_order() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/deny", false), true).unwrap();
    let r = s.finish().unwrap();
    assert_eq!(
        pairs(&r),
        [
            (":status", "403"),
            ("x-reason", "policy"),
            ("content-length", "10"),
            ("content-type", "text/plain"),
            ("x-seen-by", "conformance"),
        ]
    );
    assert_eq!(r.response_body, b"forbidden\n");
}

/// Envoy, for a gRPC request (`content-type: application/grpc`): a trailers-only reply,
/// HTTP 200, `content-type: application/grpc`, `grpc-status` mapped from the HTTP status
/// (403 → 7 PERMISSION_DENIED) when the filter gave none, `grpc-message` the body
/// percent-encoded (its newline too: `%0A`); no body, no `content-length`.
#[test]
fn grpc_local_reply_is_trailers_only() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/deny", true), true).unwrap();
    let r = s.finish().unwrap();
    assert_eq!(
        pairs(&r),
        [
            (":status", "200"),
            ("x-reason", "policy"),
            ("content-type", "application/grpc"),
            ("grpc-status", "7"),
            ("grpc-message", "forbidden%0A"),
            ("x-seen-by", "conformance"),
        ]
    );
    assert!(r.response_body.is_empty());
    assert!(
        r.logged("response status 200"),
        "the filter sees Envoy's reply: {:?}",
        r.logs
    );
}

/// Envoy's `failStream` on a failed VM under fail-close: 503 with no body, gRPC status
/// UNAVAILABLE (14) — for a gRPC request HTTP 200, `content-type: application/grpc`,
/// `grpc-status: 14`.
#[test]
fn fail_close_on_grpc_and_http_requests() {
    let host = host();
    let mut vm = host
        .start_vm(VmConfig {
            fail_strategy: FailStrategy::FailClose,
            ..Default::default()
        })
        .unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert!(matches!(
        s.request_headers(req("/panic", false), true),
        Err(Error::Trap { .. })
    ));
    drop(s);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/", true), true).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    assert_eq!(
        pairs(&r),
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
        ]
    );
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/", false), true).unwrap();
    let r = s.finish().unwrap();
    assert_eq!(pairs(&r), [(":status", "503")]);
    assert_eq!(r.local_reply.unwrap().details, "wasm_fail_stream");
}
