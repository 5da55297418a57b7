//! The conformance filter (Rust SDK 0.2) built to wasm and driven like Envoy drives it.

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_harness::build::build_wasm_crate;
use portcullis_harness::{
    Action, Error, FailStrategy, Host, HttpReply, StreamProps, TlsInfo, VmConfig,
};

fn wasm() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        build_wasm_crate(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test-filters/conformance"
        ))
        .expect("conformance filter builds")
    })
}

fn host() -> Host {
    Host::from_file(wasm()).expect("loads")
}

fn req(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "GET".into()),
        (":path", path.into()),
        (":authority", "example.com".into()),
        ("x-remove-me", "1".into()),
    ]
}

#[test]
fn header_edits_and_response_path() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(s.request_headers(req("/"), true).unwrap(), Action::Continue);
    assert_eq!(
        s.response_headers([(":status", "200")], true).unwrap(),
        Action::Continue
    );
    let r = s.finish().unwrap();
    assert_eq!(r.request_header("x-added"), Some("1"));
    assert_eq!(r.request_header("x-replaced"), Some("new"));
    assert_eq!(r.request_header("x-remove-me"), None);
    assert_eq!(r.response_header("x-seen-by"), Some("conformance"));
    assert!(
        r.logged("on_log path=/ status=200"),
        "all maps readable in on_log: {:?}",
        r.logs
    );
}

#[test]
fn local_reply_runs_the_response_path() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/deny"), true).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    let lr = r.local_reply.clone().unwrap();
    assert_eq!(lr.status, 403);
    assert_eq!(lr.body_str(), "forbidden\n");
    assert_eq!(
        lr.headers,
        vec![("x-reason".to_string(), "policy".to_string())]
    );
    assert_eq!(r.response_header(":status"), Some("403"));
    assert_eq!(r.response_header("x-seen-by"), Some("conformance"));
    assert!(r.logged("response body forbidden"), "{:?}", r.logs);
}

#[test]
fn body_buffering_and_set_buffer_rules() {
    let host = host();
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"rewrite-body".to_vec(),
            ..Default::default()
        })
        .unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/"), false).unwrap();
    assert_eq!(s.request_body(b"abc", false).unwrap(), Action::Pause);
    assert_eq!(s.request_body(b"def", true).unwrap(), Action::Continue);
    let r = s.finish().unwrap();
    assert!(r.logged("request body 6 bytes"), "{:?}", r.logs);
    assert_eq!(r.request_body, b"<REPLACED>");
}

#[test]
fn http_callout_resumes_or_denies() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut allow = true;
    vm.on_http_call("authz", move |c| {
        assert_eq!(c.header(":path"), Some("/check"));
        let r = if allow {
            HttpReply::ok(200, b"alice".to_vec())
        } else {
            HttpReply::ok(403, vec![])
        };
        allow = false;
        r
    });
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout"), true).unwrap(),
        Action::Continue
    );
    let r = s.finish().unwrap();
    assert_eq!(r.http_calls.len(), 1);
    assert_eq!(r.request_header("x-authz"), Some("alice"));
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout"), true).unwrap(),
        Action::LocalReply
    );
    assert_eq!(s.finish().unwrap().local_reply.unwrap().status, 403);
}

#[test]
fn http_callout_timeout_fires_on_the_virtual_clock() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    vm.on_http_call("authz", |_| HttpReply::Timeout);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout"), true).unwrap(),
        Action::Pause
    );
    drop(s);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout-unknown"), true).unwrap(),
        Action::Continue
    );
    assert!(s.finish().unwrap().logged("unknown cluster err=true"));
}

#[test]
fn properties_follow_envoy_encodings() {
    let host = host();
    let mut vm = host
        .start_vm(VmConfig {
            plugin_name: "ns.portcullis".into(),
            root_id: "root-a".into(),
            ..Default::default()
        })
        .unwrap();
    let props = StreamProps::default()
        .source("203.0.113.9:4242".parse().unwrap())
        .tls(TlsInfo {
            mtls: true,
            uri_san_peer: Some("spiffe://c/ns/a/sa/b".into()),
            ..Default::default()
        });
    let mut s = vm.http_stream(props).unwrap();
    s.request_headers(req("/props"), true).unwrap();
    let r = s.finish().unwrap();
    for want in [
        "prop source.address=Some(\"203.0.113.9:4242\")",
        "prop request.path=Some(\"/props\")",
        "prop request.method=Some(\"GET\")",
        "prop plugin_name=Some(\"ns.portcullis\")",
        "prop plugin_root_id=Some(\"root-a\")",
        "prop connection.uri_san_peer_certificate=Some(\"spiffe://c/ns/a/sa/b\")",
        // Empty string: host writes ptr 0 / size 0, which the Rust SDK maps to None.
        "prop connection.requested_server_name=None",
        "prop source.port.len=8 value=4242",
        "prop mtls=[1]",
        "prop my.key back=Some(\"v1\")",
    ] {
        assert!(r.logged(want), "missing {want}: {:#?}", r.logs);
    }
    assert_eq!(
        r.properties_set,
        vec![("my.key".to_string(), b"v1".to_vec())]
    );
}

#[test]
fn shared_data_queues_metrics_foreign() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    vm.register_foreign_function("echo", |a| Ok(a.to_vec()));
    for path in ["/shared", "/metrics", "/foreign"] {
        let mut s = vm.http_stream(StreamProps::default()).unwrap();
        s.request_headers(req(path), true).unwrap();
        let r = s.finish().unwrap();
        match path {
            "/shared" => {
                assert!(
                    r.logged("shared v=Some(\"v1\") stale_err=true fresh_ok=true"),
                    "{:?}",
                    r.logs
                );
                assert!(
                    r.logged("queue first=Some(\"item\") second_none=true"),
                    "{:?}",
                    r.logs
                );
            }
            "/metrics" => assert!(
                r.logged("metrics counter=Some(1) bad_decrement_err=true"),
                "{:?}",
                r.logs
            ),
            _ => {
                assert!(r.logged("foreign not_found=true"), "{:?}", r.logs);
                assert!(r.logged("foreign echo=Some(\"ping\")"), "{:?}", r.logs);
            }
        }
    }
    assert_eq!(host.metric("requests"), Some(1));
    assert_eq!(host.metric("level"), Some(42));
    assert_eq!(host.shared_data()[0].1, b"v3");
}

#[test]
fn ticks_fire_on_advance_time() {
    let host = host();
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"tick".to_vec(),
            ..Default::default()
        })
        .unwrap();
    vm.advance_time(std::time::Duration::from_millis(350))
        .unwrap();
    let ticks = vm
        .logs()
        .iter()
        .filter(|l| l.message.starts_with("tick "))
        .count();
    assert_eq!(ticks, 3);
}

#[test]
fn configure_false_carries_the_filter_log() {
    let host = host();
    match host.start_vm(VmConfig {
        plugin_configuration: b"reject".to_vec(),
        ..Default::default()
    }) {
        Err(e @ Error::StartFailed { .. }) => {
            assert!(e.to_string().contains("bad configuration: reject"), "{e}")
        }
        other => panic!("expected StartFailed, got {:?}", other.err()),
    }
}

#[test]
fn panic_is_reported_and_vm_fails_closed_or_open() {
    for strategy in [FailStrategy::FailClose, FailStrategy::FailOpen] {
        let host = host();
        let mut vm = host
            .start_vm(VmConfig {
                fail_strategy: strategy,
                ..Default::default()
            })
            .unwrap();
        let mut s = vm.http_stream(StreamProps::default()).unwrap();
        match s.request_headers(req("/panic"), true) {
            Err(Error::Trap { message, .. }) => assert!(
                message.contains("conformance panic on purpose"),
                "{message}"
            ),
            other => panic!("expected trap, got {other:?}"),
        }
        drop(s);
        assert!(vm.failure().is_some());
        let mut s = vm.http_stream(StreamProps::default()).unwrap();
        let a = s.request_headers(req("/"), true).unwrap();
        let r = s.finish().unwrap();
        match strategy {
            FailStrategy::FailClose => {
                assert_eq!(a, Action::LocalReply);
                assert_eq!(r.local_reply.unwrap().status, 503);
            }
            FailStrategy::FailOpen => {
                assert_eq!(a, Action::Continue);
                assert!(r.failed_open);
                assert_eq!(r.request_header("x-added"), None);
            }
        }
    }
}

#[test]
fn many_streams_on_one_vm() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..2000 {
        let mut s = vm.http_stream(StreamProps::default()).unwrap();
        s.request_headers([(":path", "/")], true).unwrap();
        s.finish().unwrap();
    }
    eprintln!("per stream: {:?}", t.elapsed() / 2000);
}
