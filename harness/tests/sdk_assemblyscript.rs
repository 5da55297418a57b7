//! A filter from another SDK: `test-filters/assemblyscript` (AssemblyScript, SDK
//! `@solo-io/proxy-runtime` 0.1.8, ABI 0.2.0) built with npm and driven like Envoy drives it.
//! Needs Node.js and npm (`scripts/setup`); fails, never skips, without them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use portcullis_harness::{Action, Error, Host, HttpReply, StreamProps, VmConfig};

const CONFIG: &str = "deny_prefix /admin\n\
add_request_header x-filter assemblyscript\n\
remove_request_header x-remove-me\n\
add_response_header x-seen-by assemblyscript\n\
authz_cluster authz\n";

fn wasm() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        portcullis_harness::build::build_assemblyscript(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test-filters/assemblyscript"
        ))
        .unwrap_or_else(|e| panic!("the AssemblyScript filter must build (Node.js + npm): {e}"))
    })
}

fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| Host::from_file(wasm()).expect("the AssemblyScript filter loads"))
        .fork()
}

fn config(text: &str) -> VmConfig {
    VmConfig {
        plugin_configuration: text.as_bytes().to_vec(),
        root_id: "portcullis_as".into(),
        ..VmConfig::default()
    }
}

fn req(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":authority", "example.com".into()),
        (":path", path.into()),
        (":method", "GET".into()),
        (":scheme", "http".into()),
        ("x-remove-me", "1".into()),
        (
            "x-request-id",
            "3e1b0c2a-0000-4000-8000-000000000001".into(),
        ),
    ]
}

#[test]
fn headers_added_and_removed_both_ways() {
    let mut vm = host().start_vm(config(CONFIG)).unwrap();
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.message == "assemblyscript filter configured: deny_prefix=/admin"),
        "{:?}",
        vm.logs()
    );
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(s.request_headers(req("/"), true).unwrap(), Action::Continue);
    s.response_headers([(":status", "200"), ("content-length", "0")], true)
        .unwrap();
    let r = s.finish().unwrap();
    assert_eq!(r.request_header("x-filter"), Some("assemblyscript"));
    assert_eq!(r.request_header("x-remove-me"), None);
    // The pairs the SDK read (proxy_get_header_map_pairs) after its edits: 4 pseudo-headers,
    // x-request-id, x-filter.
    assert_eq!(r.request_header("x-header-count"), Some("6"));
    // A dotted path without \0 separators is one segment to Envoy: NotFound (1).
    assert_eq!(r.request_header("x-dotted-property"), Some("1"));
    assert_eq!(r.response_header("x-seen-by"), Some("assemblyscript"));
    assert!(r.logged("request GET / (6 headers)"), "{:?}", r.logs);
    assert!(r.logged("response 200"), "{:?}", r.logs);
    assert!(
        r.logged("done /"),
        "on_log reads the request headers: {:?}",
        r.logs
    );
    assert!(r.local_reply.is_none());
}

#[test]
fn denied_path_gets_the_local_reply() {
    let mut vm = host().start_vm(config(CONFIG)).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/admin/users"), true).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    let lr = r.local_reply.clone().expect("a local reply");
    assert_eq!(lr.status, 403);
    assert_eq!(lr.body_str(), "denied by assemblyscript\n");
    assert_eq!(lr.details, "as_denied");
    // The SDK passes grpc_status -1 (no gRPC status), as Rust's `None`.
    assert_eq!(lr.grpc_status, None);
    assert_eq!(
        lr.headers,
        vec![("x-denied-by".to_string(), "assemblyscript".to_string())]
    );
    // The reply runs through the filter's response path, as in Envoy.
    assert_eq!(r.response_header(":status"), Some("403"));
    assert_eq!(r.response_header("x-denied-by"), Some("assemblyscript"));
    assert_eq!(r.response_header("x-seen-by"), Some("assemblyscript"));
    assert!(r.logged("response 403"), "{:?}", r.logs);
}

/// The SDK makes the call from the root context, is answered on the root context
/// (proxy_on_http_call_response(root id, …)), makes the waiting request the effective
/// context with proxy_set_effective_context, then edits its headers and resumes it.
#[test]
fn http_call_answered_on_the_root_context_resumes_the_request() {
    let mut vm = host().start_vm(config(CONFIG)).unwrap();
    vm.on_http_call("authz", |call| {
        assert_eq!(call.header(":path"), Some("/check"));
        assert_eq!(call.header(":authority"), Some("authz"));
        HttpReply::ok(200, b"alice".to_vec()).delayed(Duration::from_millis(20))
    });
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout"), true).unwrap(),
        Action::Pause
    );
    assert_eq!(
        s.advance_time(Duration::from_millis(20)).unwrap(),
        Action::Continue
    );
    s.response_headers([(":status", "200")], true).unwrap();
    let r = s.finish().unwrap();
    assert_eq!(r.http_calls.len(), 1);
    assert_eq!(r.http_calls[0].cluster, "authz");
    assert_eq!(r.http_calls[0].timeout, Duration::from_millis(500));
    assert_eq!(r.request_header("x-authz"), Some("alice"));
    assert!(r.local_reply.is_none());
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.message == "authz answered 200 alice")
            || r.logged("authz answered 200 alice"),
        "stream {:?}\nvm {:?}",
        r.logs,
        vm.logs()
    );
}

#[test]
fn http_call_timeout_replies_503() {
    let mut vm = host().start_vm(config(CONFIG)).unwrap();
    vm.on_http_call("authz", |_| HttpReply::Timeout);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(req("/callout"), true).unwrap(),
        Action::Pause
    );
    assert_eq!(
        s.advance_time(Duration::from_millis(500)).unwrap(),
        Action::LocalReply
    );
    let r = s.finish().unwrap();
    let lr = r.local_reply.clone().expect("a local reply");
    assert_eq!(lr.status, 503);
    assert_eq!(lr.body_str(), "authz unavailable\n");
}

#[test]
fn ticks_count_a_metric() {
    let host = host();
    let mut vm = host
        .start_vm(config(&format!("{CONFIG}tick_ms 100\n")))
        .unwrap();
    assert_eq!(vm.tick_period(), Some(Duration::from_millis(100)));
    vm.advance_time(Duration::from_millis(350)).unwrap();
    assert_eq!(host.metric("as_ticks"), Some(3));
}

#[test]
fn a_bad_config_line_fails_the_start() {
    let e = host()
        .start_vm(config("deny_prefix /admin\nfrobnicate yes\n"))
        .err()
        .expect("the start fails");
    let msg = e.to_string();
    assert!(
        matches!(e, Error::StartFailed { .. }) || msg.contains("proxy_on_configure"),
        "{msg}"
    );
    assert!(
        msg.contains("config line 2: cannot read `frobnicate yes`"),
        "{msg}"
    );
}

/// The SDK picks its root context by the `plugin_root_id` property: an unknown root id
/// throws, which the SDK's abort turns into a critical log and `proc_exit(255)`, then a trap.
#[test]
fn an_unknown_root_id_fails_the_start() {
    let e = host()
        .start_vm(VmConfig {
            root_id: "other".into(),
            ..config(CONFIG)
        })
        .err()
        .expect("the start fails");
    let msg = e.to_string();
    assert!(
        msg.contains("Missing root context factory for root id: other"),
        "{msg}"
    );
}

/// The same filter through the CLI alone: plugin configuration from a file, a JSONL file
/// with a scripted `http_call` reply, a denied path and expectations on headers and logs.
#[test]
fn replay_cli_runs_the_assemblyscript_filter() {
    let d = std::env::temp_dir().join(format!("portcullis-as-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let cfg = d.join("config.txt");
    std::fs::write(&cfg, CONFIG).unwrap();
    let traffic = d.join("as.jsonl");
    std::fs::write(
        &traffic,
        [
            r#"{"id":"plain","path":"/","headers":{"x-remove-me":"1"},"expect":{"status":200,"upstream_headers":{"x-filter":"assemblyscript","x-dotted-property":"1"},"no_upstream_headers":["x-remove-me"],"response_headers":{"x-seen-by":"assemblyscript"},"log_contains":"^request GET / "}}"#,
            r#"{"id":"deny","path":"/admin/x","expect":{"status":403,"local_reply":true,"body":"denied by assemblyscript\n","response_headers":{"x-denied-by":"assemblyscript","x-seen-by":"assemblyscript"}}}"#,
            r#"{"id":"callout","path":"/callout","http_calls":[{"cluster":"authz","path":"/check","status":200,"body":"alice","delay_ms":30}],"wait_ms":30,"expect":{"status":200,"upstream_headers":{"x-authz":"alice"},"log_contains":"authz answered 200 alice"}}"#,
            r#"{"id":"timeout","path":"/callout","http_calls":[{"cluster":"authz","timeout":true}],"wait_ms":1000,"expect":{"status":503,"body":"authz unavailable\n"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "replay",
            "--wasm",
            wasm().to_str().unwrap(),
            "--plugin-config",
            &format!("@{}", cfg.display()),
            "--root-id",
            "portcullis_as",
            "--format",
            "json",
            traffic.to_str().unwrap(),
        ])
        .env("PORTCULLIS_CACHE_DIR", d.join("cache"))
        .output()
        .expect("portcullis runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["summary"]["total"], 4, "{out}");
    assert_eq!(report["summary"]["passed"], 4, "{out}");
    let callout = report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "callout")
        .unwrap_or_else(|| panic!("{out}"));
    let e = &callout["result"]["verdict"]["effects"];
    assert_eq!(e["calls"][0]["cluster"], "authz", "{e}");
    assert_eq!(e["calls"][0]["target"], "GET /check", "{e}");
}
