//! The conformance filter (Rust SDK 0.2) built to wasm and driven like Envoy drives it.

use portcullis_harness::{
    Action, Error, FailStrategy, GrpcReply, Host, HttpReply, StreamProps, TlsInfo, VmConfig,
};

mod conformance_filter;
use conformance_filter::host;

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
        vec![("my\0key".to_string(), b"v1".to_vec())]
    );
}

/// Envoy receives a property path as its segments joined by `\0` and resolves them one by
/// one (source/extensions/common/wasm/context.cc `Context::getProperty`: `absl::StrSplit`
/// on `\0`, then `findValue` for the first segment and a map/message lookup per later
/// one), so a segment may hold dots (`envoy.filters.http.lua`) and the same dotted text
/// split otherwise names another value. The harness keys values set by segments exactly,
/// reads a dotted key as one segment per `.`, and refuses a dotted key that could be
/// read both ways.
#[test]
fn property_paths_are_segment_lists() {
    let host = host();
    let mut vm = host
        .start_vm(VmConfig {
            // Unambiguous dotted form: one key below xds.node.metadata.
            properties: vec![("xds.node.metadata.CLUSTER_ID".into(), b"east".to_vec())],
            ..Default::default()
        })
        .unwrap();
    vm.set_property(
        &[
            "metadata",
            "filter_metadata",
            "envoy.filters.http.lua",
            "key",
        ],
        b"whole".to_vec(),
    );
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/props"), true).unwrap();
    let r = s.finish().unwrap();
    for want in [
        "prop lua.key=Some(\"whole\")",
        "prop lua.split=None",
        "prop cluster_id=Some(\"east\")",
        "prop legacy node=None",
        "prop legacy route_name=None",
    ] {
        assert!(r.logged(want), "missing {want}: {:#?}", r.logs);
    }

    // Attributes Envoy 1.40 no longer has are refused in both forms, naming the xds path.
    for path in ["node.metadata.CLUSTER_ID", "node\0metadata\0CLUSTER_ID"] {
        let e = host
            .start_vm(VmConfig {
                properties: vec![(path.into(), b"east".to_vec())],
                ..Default::default()
            })
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("Envoy 1.40 has no `node` attribute"), "{e}");
        assert!(e.contains("xds"), "{e}");
    }

    // Per stream, by segments: the split reading is another property.
    let props = StreamProps::default().property_at(
        &[
            "metadata",
            "filter_metadata",
            "envoy",
            "filters",
            "http",
            "lua",
            "key",
        ],
        b"split".to_vec(),
    );
    let mut s = vm.http_stream(props).unwrap();
    s.request_headers(req("/props"), true).unwrap();
    let r = s.finish().unwrap();
    assert!(r.logged("prop lua.split=Some(\"split\")"), "{:#?}", r.logs);
    assert!(r.logged("prop lua.key=Some(\"whole\")"), "{:#?}", r.logs);

    // The ambiguous dotted form is refused, saying why and what to write instead.
    let e = host
        .start_vm(VmConfig {
            properties: vec![(
                "metadata.filter_metadata.envoy.filters.http.lua.key".into(),
                b"v".to_vec(),
            )],
            ..Default::default()
        })
        .err()
        .expect("an ambiguous path is refused")
        .to_string();
    assert!(e.contains("is ambiguous"), "{e}");
    assert!(
        e.contains(r#"["metadata","filter_metadata","envoy.filters.http.lua.key"]"#),
        "{e}"
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
    for i in 0..2000u32 {
        let mut s = vm.http_stream(StreamProps::default()).unwrap();
        assert_eq!(s.context_id(), i + 2);
        assert_eq!(
            s.request_headers([(":path", "/")], true).unwrap(),
            Action::Continue
        );
        let r = s.finish().unwrap();
        assert_eq!(r.request_header("x-added"), Some("1"), "stream {i}");
        let want = format!("#{} request /", i + 2);
        assert!(r.logged(&want), "stream {i}: {:?}", r.logs);
        assert_eq!(r.logs.len(), 2, "only this stream's lines: {:?}", r.logs);
    }
    assert!(vm.failure().is_none());
}

#[test]
fn header_map_size_is_envoys_byte_size() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/map-size"), true).unwrap();
    let r = s.finish().unwrap();
    // The size the filter saw: its own edits (x-added, x-replaced, x-remove-me) included.
    let size: usize = r
        .request_headers
        .iter()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    assert_eq!(size, 66, "{:?}", r.request_headers);
    // BAD_ARGUMENT (2) for an unknown map type and for response headers that have not
    // arrived.
    let want = format!("map_size status=0 size={size} pairs_sum={size} bad_type=2 response_now=2");
    assert!(r.logged(&want), "{want}: {:?}", r.logs);
}

#[test]
fn buffer_status_reports_the_buffered_size() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let plugin = vm
        .logs()
        .iter()
        .any(|l| l.message == "plugin config buffer status=0 len=0 flags=0");
    assert!(plugin, "{:?}", vm.logs());
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/buffer-status"), false).unwrap();
    assert_eq!(s.request_body(b"abc", false).unwrap(), Action::Pause);
    assert_eq!(s.request_body(b"defg", true).unwrap(), Action::Continue);
    let r = s.finish().unwrap();
    // Total buffered body, flags 0; response body not there yet (NOT_FOUND = 1),
    // unknown type BAD_ARGUMENT (2).
    assert!(
        r.logged("buffer_status status=0 len=7 flags=0 response=1 bad_type=2"),
        "{:?}",
        r.logs
    );
    let host = host.fork();
    let vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"12345".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.message == "plugin config buffer status=0 len=5 flags=0"),
        "{:?}",
        vm.logs()
    );
}

#[test]
fn grpc_call_success_failure_and_unknown_cluster() {
    let host = host();
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut fail = false;
    vm.on_grpc_call("grpcbin", move |c| {
        assert_eq!(
            (c.service.as_str(), c.method.as_str()),
            ("svc.Svc", "Check")
        );
        assert_eq!(c.messages, vec![b"req".to_vec()]);
        let r = if fail {
            GrpcReply::status(7, "permission denied")
        } else {
            GrpcReply::message(b"pong".to_vec())
        };
        fail = true;
        r
    });
    // Success: proxy_on_grpc_receive, the message readable, the request resumed.
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/grpc"), true).unwrap(),
        Action::Continue
    );
    let r = s.finish().unwrap();
    assert!(r.logged("grpc dispatch true"), "{:?}", r.logs);
    assert!(
        r.logged("grpc response status=0 size=4 buffer_status=0 len=4"),
        "{:?}",
        r.logs
    );
    assert_eq!(r.request_header("x-grpc"), Some("pong"));
    assert_eq!(r.grpc_calls.len(), 1);
    assert_eq!(r.grpc_calls[0].cluster, "grpcbin");
    // Failure: proxy_on_grpc_close with the status; the filter replies with a gRPC error.
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/grpc"), true).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    assert!(r.logged("grpc response status=7 size=0"), "{:?}", r.logs);
    let lr = r.local_reply.as_ref().unwrap();
    assert_eq!(lr.grpc_status, Some(10), "Aborted");
    assert_eq!(r.request_header("x-grpc"), None);
    // Unknown cluster: PARSE_FAILURE (4), nothing recorded.
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/grpc-unknown"), true).unwrap();
    let r = s.finish().unwrap();
    assert!(
        r.logged("grpc unknown cluster err=Some(ParseFailure)"),
        "{:?}",
        r.logs
    );
    assert!(r.grpc_calls.is_empty());
    assert_eq!(vm.grpc_calls().len(), 2);
}

fn queue_vm(host: &Host, config: &str) -> portcullis_harness::Vm {
    host.start_vm(VmConfig {
        plugin_configuration: config.as_bytes().to_vec(),
        vm_id: "q".into(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn shared_queue_notifies_the_owner_vm() {
    let host = host();
    let mut owner = queue_vm(&host, "queue-owner");
    assert!(
        owner
            .logs()
            .iter()
            .any(|l| l.message.starts_with("registered queue Ok(")),
        "{:?}",
        owner.logs()
    );
    let mut producer = queue_vm(&host, "");
    for _ in 0..2 {
        let mut s = producer.http_stream(StreamProps::default()).unwrap();
        s.request_headers(req("/enqueue"), true).unwrap();
        let r = s.finish().unwrap();
        assert!(r.logged("enqueue Ok(Some(true))"), "{:?}", r.logs);
    }
    // Nothing is delivered to the owner until it runs.
    let ready = |vm: &portcullis_harness::Vm| {
        vm.logs()
            .iter()
            .filter(|l| l.message.starts_with("queue_ready"))
            .map(|l| l.message.clone())
            .collect::<Vec<_>>()
    };
    assert!(ready(&owner).is_empty());
    assert!(ready(&producer).is_empty(), "the producer is not notified");
    owner.dispatch().unwrap();
    let got = ready(&owner);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("item=hello from #2"), "{got:?}");
    assert!(got[1].ends_with("item=hello from #3"), "{got:?}");
    // Delivered once.
    owner.dispatch().unwrap();
    assert_eq!(ready(&owner).len(), 2);
    // Queues belong to one host (an Envoy process): another host does not see it.
    let other_host = host.fork();
    let mut other = queue_vm(&other_host, "");
    let mut s = other.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/enqueue"), true).unwrap();
    let r = s.finish().unwrap();
    assert!(r.logged("enqueue Ok(None)"), "{:?}", r.logs);
}

#[test]
fn root_resumes_a_stream_with_set_effective_context() {
    let host = host();
    let mut vm = queue_vm(&host, "queue-owner");
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    let id = s.context_id();
    // The stream pauses and queues its id; proxy_on_queue_ready runs on the root context
    // right after the callback, switches to the stream and resumes it.
    assert_eq!(
        s.request_headers(req("/effective-hold"), true).unwrap(),
        Action::Continue
    );
    let r = s.finish().unwrap();
    assert!(r.logged("enqueued self ok=true"), "{:?}", r.logs);
    assert_eq!(r.request_header("x-resumed-by"), Some("root"));
    let logs: Vec<_> = vm.logs().iter().map(|l| l.message.clone()).collect();
    assert!(
        logs.contains(&format!("queue_ready queue=1 item=resume:{id}")),
        "{logs:?}"
    );
    // BAD_ARGUMENT (2) for an unknown context id, OK for the stream; from then on the
    // root's log lines are the stream's (the effective context).
    assert!(
        r.logged("set_effective_context unknown=2 stream=0"),
        "{:?}",
        r.logs
    );
}

#[test]
fn proxy_done_after_a_deferred_on_done() {
    let host = host();
    // Not deferred: proxy_done is NOT_FOUND (1) and shutdown deletes the root at once.
    let mut vm = host.start_vm(VmConfig::default()).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(req("/done-early"), true).unwrap();
    assert!(s.finish().unwrap().logged("early proxy_done status=1"));
    assert!(vm.shutdown().unwrap());
    assert!(vm.is_deleted());

    // Deferred: on_done returns false; the filter calls proxy_done on its next tick, then
    // the host deletes the root context and no more ticks run.
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"defer-done".to_vec(),
            ..Default::default()
        })
        .unwrap();
    assert!(!vm.shutdown().unwrap());
    assert!(!vm.is_deleted());
    let count = |vm: &portcullis_harness::Vm, p: &str| {
        vm.logs()
            .iter()
            .filter(|l| l.message.starts_with(p))
            .count()
    };
    assert_eq!(count(&vm, "on_done: deferring"), 1);
    vm.advance_time(std::time::Duration::from_millis(100))
        .unwrap();
    assert_eq!(count(&vm, "proxy_done status=0"), 1, "{:?}", vm.logs());
    assert!(vm.is_deleted());
    vm.advance_time(std::time::Duration::from_millis(500))
        .unwrap();
    assert_eq!(count(&vm, "tick "), 1, "no ticks after deletion");
    assert!(vm.shutdown().unwrap(), "already deleted");
}
