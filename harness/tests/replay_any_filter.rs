//! `portcullis replay` with a filter that is not portcullis (the conformance filter, built
//! with the proxy-wasm Rust SDK): plugin configuration as plain text, a scripted upstream,
//! a scripted `http_call` reply that arrives while the request waits, directories, an
//! unreadable file, and a report of what the filter did.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use portcullis_harness::build::build_wasm_crate;

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

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portcullis-any-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn portcullis(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env("PORTCULLIS_CACHE_DIR", cache)
        .output()
        .expect("portcullis runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A request whose authz `http_call` is answered 30 ms later, a virtual wait of 30 ms
/// while it is open, then an upstream answering 201 in two chunks.
const CALLOUT: &str = r#"{"id":"callout","path":"/callout","headers":{"x-remove-me":"1"},"http_calls":[{"cluster":"authz","path":"/check","status":200,"body":"alice","delay_ms":30}],"wait_ms":30,"response":{"status":201,"headers":{"x-up":"1"},"body_chunks":["he","llo"]},"expect":{"status":201}}"#;
/// The same call never answered: the filter's 500 ms timeout fires during a 1 s wait and
/// it replies 504.
const TIMEOUT: &str = r#"{"id":"timeout","path":"/callout","http_calls":[{"cluster":"authz","timeout":true}],"wait_ms":1000,"expect":{"status":504}}"#;
/// A local reply: nothing goes upstream.
const DENY: &str = r#"{"id":"deny","path":"/deny","expect":{"status":403}}"#;

#[test]
fn any_filter_with_scripted_upstream_and_calls() {
    let d = scratch("script");
    let traffic = d.join("traffic");
    std::fs::create_dir_all(traffic.join("nested")).unwrap();
    std::fs::write(traffic.join("a.jsonl"), format!("{CALLOUT}\n{TIMEOUT}\n")).unwrap();
    std::fs::write(traffic.join("nested/b.jsonl"), format!("{DENY}\n")).unwrap();
    std::fs::write(traffic.join("notes.txt"), "not traffic").unwrap();
    let w = wasm().to_str().unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "plain text, not JSON",
            "--vm-config",
            "vm text",
            "--root-id",
            "my_root",
            "--property",
            "xds.node.metadata.CLUSTER_ID=east",
            "--format",
            "json",
            traffic.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        report["summary"]["total"], 3,
        "the directory, recursively: {out}"
    );
    let reqs = report["requests"].as_array().unwrap();
    let by_id = |id: &str| {
        reqs.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {out}"))["result"]["verdict"]
            .clone()
    };

    let v = by_id("callout");
    assert_eq!(v["status"], 201, "the upstream's status: {v}");
    let e = &v["effects"];
    let added = e["request_headers"]["added"].to_string();
    assert!(added.contains("x-authz") && added.contains("alice"), "{e}");
    assert!(added.contains("x-added"), "{e}");
    assert!(
        e["request_headers"]["removed"]
            .to_string()
            .contains("x-remove-me"),
        "{e}"
    );
    assert!(
        e["response_headers"]["added"]
            .to_string()
            .contains("x-seen-by"),
        "{e}"
    );
    assert_eq!(e["calls"][0]["cluster"], "authz", "{e}");
    assert_eq!(e["calls"][0]["target"], "GET /check", "{e}");
    let logs = e["logs"].to_string();
    assert!(
        logs.contains("response body hello"),
        "both chunks reached it: {logs}"
    );
    assert!(logs.contains("response status 201"), "{logs}");

    let v = by_id("timeout");
    assert_eq!(v["status"], 504, "{v}");
    assert_eq!(v["effects"]["local_reply"]["body"], "callout failed", "{v}");

    let v = by_id("deny");
    assert_eq!(v["status"], 403);
    assert_eq!(
        v["effects"]["local_reply"]["headers"][0][0], "x-reason",
        "{v}"
    );
}

#[test]
fn table_and_junit_show_what_the_filter_did() {
    let d = scratch("forms");
    let f = d.join("t.jsonl");
    std::fs::write(&f, format!("{CALLOUT}\n{DENY}\n")).unwrap();
    let w = wasm().to_str().unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "x",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("filter did"), "{out}");
    assert!(out.contains("+req x-authz"), "{out}");
    assert!(out.contains("http authz GET /check"), "{out}");
    assert!(out.contains("reply 403"), "{out}");
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "x",
            "--format",
            "junit",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let out = text(&o.stdout);
    assert!(out.contains("<system-out>"), "{out}");
    assert!(
        out.contains("request header added: x-authz: alice"),
        "{out}"
    );
    assert!(out.contains("local reply 403"), "{out}");
}

#[test]
fn an_unreadable_file_is_reported_and_the_rest_run() {
    let d = scratch("unreadable");
    let good = d.join("good.jsonl");
    std::fs::write(&good, format!("{DENY}\n")).unwrap();
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"path\": \n").unwrap();
    let missing = d.join("missing.yaml");
    let w = wasm().to_str().unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--format",
            "json",
            bad.to_str().unwrap(),
            missing.to_str().unwrap(),
            good.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(2), "unusable input: {out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["summary"]["total"], 1, "good.jsonl still ran: {out}");
    assert_eq!(report["summary"]["passed"], 1);
    assert_eq!(report["summary"]["unreadable_files"], 2);
    let errors = report["file_errors"].to_string();
    assert!(errors.contains("bad.jsonl:1"), "{errors}");
    assert!(errors.contains("missing.yaml: cannot read"), "{errors}");
}

#[test]
fn portcullis_config_check_only_when_asked_for_other_filters() {
    let d = scratch("check");
    let f = d.join("t.jsonl");
    std::fs::write(&f, format!("{DENY}\n")).unwrap();
    let w = wasm().to_str().unwrap();
    // Not portcullis: plain text is that filter's business.
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "hello",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // Asked for: the portcullis parser refuses it, saying so.
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "hello",
            "--check-config",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("--plugin-config (inline)"), "{e}");
    assert!(e.contains("--no-config-check"), "{e}");
    // @FILE reads the file; a missing one is an input error naming it.
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "@/nonexistent/cfg",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("/nonexistent/cfg: cannot read"));
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--property",
            "novalue",
            f.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("expected PATH=VALUE"));
}

#[test]
fn the_second_run_loads_the_compiled_module_from_the_cache() {
    let d = scratch("cache");
    let cache = d.join("cache");
    let f = d.join("t.jsonl");
    std::fs::write(&f, format!("{DENY}\n")).unwrap();
    let w = wasm().to_str().unwrap();
    let args = ["replay", "--wasm", w, f.to_str().unwrap()];
    assert_eq!(portcullis(&args, &cache).status.code(), Some(0));
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].ends_with(".cwasm"), "{entries:?}");
    let o = portcullis(&args, &cache);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut no_cache = args.to_vec();
    no_cache.push("--no-cache");
    let o = portcullis(&no_cache, &d.join("unused"));
    assert_eq!(o.status.code(), Some(0));
    assert!(!d.join("unused").exists(), "--no-cache writes nothing");
}

/// `grpc_calls` answered by cluster, service and method (a message 20 ms later, a
/// failure status, no answer), expectations on headers, bodies, local replies and log
/// lines, and a trapping request answered as Envoy answers it under fail-close.
const GRPC_AND_EXPECT: &str = r#"{"id":"grpc-ok","path":"/grpc","grpc_calls":[{"cluster":"grpcbin","service":"other.Svc","status":5},{"cluster":"grpcbin","service":"svc.Svc","method":"Check","message":"granted","delay_ms":20}],"wait_ms":20,"response":{"body":"hello"},"expect":{"status":200,"local_reply":false,"upstream_headers":{"x-grpc":"granted","x-added":"1"},"no_upstream_headers":["x-remove-me"],"response_headers":{"x-seen-by":"conformance"},"body":"hello","log_contains":["grpc response status=0 size=7"],"no_log_contains":"status=14"}}
{"id":"grpc-denied","method":"POST","path":"/grpc","headers":{"content-type":"application/grpc"},"body_base64":"AAAAAAA=","grpc_calls":[{"cluster":"grpcbin","method":"Check","status":7,"grpc_message":"no way"}],"expect":{"local_reply":true,"status":200,"response_headers":{"grpc-status":"10","grpc-message":"no way","content-type":"application/grpc"},"log_contains":"grpc response status=7"}}
{"id":"grpc-timeout","method":"POST","path":"/grpc","headers":{"content-type":"application/grpc"},"body_base64":"AAAAAAA=","grpc_calls":[{"cluster":"grpcbin","timeout":true}],"wait_ms":1000,"expect":{"local_reply":true,"response_headers":{"grpc-status":"10"},"log_contains":"grpc response status=4"}}
{"id":"grpc-unscripted-method","method":"POST","path":"/grpc","headers":{"content-type":"application/grpc"},"body_base64":"AAAAAAA=","grpc_calls":[{"cluster":"grpcbin","method":"Other","message":"x"}],"expect":{"response_headers":{"grpc-status":"10"},"log_contains":"grpc response status=12"}}
{"id":"trap","path":"/panic","expect":{"status":503,"local_reply":true,"body":""}}
{"id":"wrong","path":"/deny","expect":{"status":403,"body":"allowed","body_contains":"granted","response_headers":{"x-reason":"other"},"no_response_headers":["x-reason"],"local_reply":false,"log_contains":"^never$","no_log_contains":"request /deny"}}
"#;

#[test]
fn grpc_calls_expectations_and_traps() {
    let d = scratch("grpc");
    let traffic = d.join("grpc.jsonl");
    std::fs::write(&traffic, GRPC_AND_EXPECT).unwrap();
    let w = wasm().to_str().unwrap();
    let run = |format: &str| {
        portcullis(
            &[
                "replay",
                "--wasm",
                w,
                "--format",
                format,
                traffic.to_str().unwrap(),
            ],
            &d.join("cache"),
        )
    };
    let o = run("json");
    let out = text(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "one request fails: {out}\n{}",
        text(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reqs = report["requests"].as_array().unwrap();
    let by_id = |id: &str| {
        reqs.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {out}"))
            .clone()
    };
    for id in [
        "grpc-ok",
        "grpc-denied",
        "grpc-timeout",
        "grpc-unscripted-method",
        "trap",
    ] {
        let r = by_id(id);
        assert_eq!(r["mismatches"], serde_json::json!([]), "{id}: {r}");
    }
    let ok = by_id("grpc-ok");
    assert_eq!(
        ok["result"]["verdict"]["effects"]["calls"][0]["target"], "svc.Svc/Check",
        "{ok}"
    );
    let trap = &by_id("trap")["result"]["verdict"];
    assert!(
        trap["vm_trapped"]
            .as_str()
            .is_some_and(|t| t.contains("conformance panic on purpose")),
        "{trap}"
    );
    assert_eq!(
        trap["effects"]["local_reply"]["details"],
        "wasm_fail_stream"
    );

    // Every expectation of `wrong` fails, each saying what was expected and what came.
    let m = by_id("wrong")["mismatches"].clone();
    let kinds: Vec<&str> = m
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "header",
            "header",
            "body",
            "body",
            "local_reply",
            "log",
            "log"
        ],
        "{m}"
    );
    assert_eq!(m[0]["expected"], "other");
    assert_eq!(m[0]["actual"], serde_json::json!(["policy"]));
    assert_eq!(m[1]["expected"], serde_json::Value::Null, "must be absent");
    assert_eq!(m[2]["check"], "equals");
    assert_eq!(m[2]["expected"], "allowed");
    assert_eq!(m[2]["actual"], "forbidden\n");
    assert_eq!(m[3]["check"], "contains");
    assert_eq!(m[3]["expected"], "granted");
    assert_eq!(m[4]["expected"], false);
    assert_eq!(m[5]["pattern"], "^never$");
    assert_eq!(m[6]["lines"][0], "#2 request /deny", "{m}");

    // The table and JUnit say the same, in words.
    let table = text(&run("table").stdout);
    assert!(
        table.contains("response header x-reason: [\"policy\"], expected \"other\""),
        "{table}"
    );
    assert!(table.contains("VM trapped"), "{table}");
    let junit = text(&run("junit").stdout);
    assert!(
        junit.contains("response body &quot;forbidden\\n&quot;, expected &quot;allowed&quot;"),
        "{junit}"
    );
    assert!(junit.contains("no log line matches /^never$/"), "{junit}");
}

/// `--property` takes the dotted form where it is unambiguous, the segments as a JSON
/// list otherwise, and refuses an ambiguous dotted path saying what to write instead.
#[test]
fn property_paths_from_the_cli() {
    let d = scratch("props");
    let traffic = d.join("props.jsonl");
    std::fs::write(
        &traffic,
        r#"{"path":"/props","expect":{"log_contains":["^prop lua\\.key=Some\\(\"whole\"\\)$","^prop cluster_id=Some\\(\"east\"\\)$","^prop lua\\.split=None$"]}}"#,
    )
    .unwrap();
    let w = wasm().to_str().unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--property",
            r#"["metadata","filter_metadata","envoy.filters.http.lua","key"]=whole"#,
            "--property",
            "xds.node.metadata.CLUSTER_ID=east",
            traffic.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--property",
            "metadata.filter_metadata.envoy.filters.http.lua.key=whole",
            traffic.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let err = text(&o.stderr);
    assert_ne!(o.status.code(), Some(0));
    assert!(err.contains("is ambiguous"), "{err}");
}

/// TCP connections from JSONL (`tcp` steps) through the conformance filter as a network
/// filter: held data handed back with the next read, data both ways, the filter closing,
/// a trap closing the connection under fail-close; a wrong expectation says what came.
#[test]
fn tcp_connections_from_jsonl() {
    let d = scratch("tcp");
    let traffic = d.join("tcp.jsonl");
    std::fs::write(
        &traffic,
        r#"{"id":"line","client_ip":"203.0.113.9","client_port":4242,"tcp":[{"downstream":"hel"},{"downstream":"lo\n"},{"upstream":"hi"},{"close":"downstream"}],"expect":{"to_upstream":"HELLO\n","to_downstream":"<hi","closed":false,"log_contains":["downstream size=6 ","^downstream close peer=2$","tcp new connection from Some\\(\"203.0.113.9:4242\"\\)"]}}
{"id":"closes","tcp":[{"downstream":"close\n"}],"expect":{"closed":true,"to_upstream":""}}
{"id":"trap","tcp":[{"downstream":"panic\n"},{"downstream":"more\n"}],"expect":{"closed":true,"to_upstream":""}}
{"id":"wrong","tcp":[{"downstream":"a\n"}],"expect":{"to_upstream":"b\n","closed":true}}
"#,
    )
    .unwrap();
    let w = wasm().to_str().unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "tcp",
            "--format",
            "json",
            traffic.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reqs = report["requests"].as_array().unwrap();
    let by_id = |id: &str| reqs.iter().find(|r| r["id"] == id).unwrap().clone();
    for id in ["line", "closes", "trap"] {
        assert_eq!(
            by_id(id)["mismatches"],
            serde_json::json!([]),
            "{id}: {out}"
        );
    }
    assert!(by_id("trap")["result"]["verdict"]["vm_trapped"].is_string());
    let m = by_id("wrong")["mismatches"].clone();
    assert_eq!(m[0]["kind"], "data", "{m}");
    assert_eq!(m[0]["expected"], "b\n");
    assert_eq!(m[0]["actual"], "A\n");
    assert_eq!(m[1]["kind"], "closed");

    // Bad steps are refused with the line and the field.
    std::fs::write(&traffic, "{\"tcp\":[{\"close\":\"sideways\"}]}\n").unwrap();
    let o = portcullis(
        &[
            "replay",
            "--wasm",
            w,
            "--plugin-config",
            "tcp",
            traffic.to_str().unwrap(),
        ],
        &d.join("cache"),
    );
    let err = text(&o.stderr);
    assert!(
        err.contains("tcp.jsonl:1: /tcp/0/close: \"sideways\" is neither"),
        "{err}"
    );
}
