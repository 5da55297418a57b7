//! `portcullis replay` / `portcullis check` as a user runs them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    // The compiled release filter is shared with the library's tests (the same engine
    // settings, so the same cache entry) instead of the user's cache.
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .env(
            portcullis_harness::CACHE_DIR_ENV,
            portcullis_harness::release::test_cache().dir(),
        )
        .args(args)
        .output()
        .expect("portcullis runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("portcullis-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn help_on_every_subcommand() {
    for args in [&["--help"][..], &["replay", "--help"], &["check", "--help"]] {
        let o = portcullis(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).contains("Usage: portcullis"), "{args:?}");
    }
    let o = portcullis(&["replay", "--help"]);
    for flag in [
        "--wasm",
        "--config",
        "--format",
        "--fail-open",
        "--format-in",
    ] {
        assert!(stdout(&o).contains(flag), "replay --help lists {flag}");
    }
    let o = portcullis(&["replay", "x.jsonl"]);
    assert_eq!(o.status.code(), Some(2), "--wasm and --config are required");
}

#[test]
fn check_validates_with_the_filter_parser() {
    let good = repo().join("policies/examples/gateway.json");
    let o = portcullis(&["check", "--config", s(&good)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with(": ok\n"), "{}", stdout(&o));

    let d = scratch("check");
    let bad = d.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"partners": [{"name": "a", "cidrs": ["10.0.0.0/33"]}]}"#,
    )
    .unwrap();
    let o = portcullis(&["check", "--config", s(&bad)]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with(&format!("{}: /partners/0/cidrs/0: ", bad.display())),
        "{e}"
    );

    let o = portcullis(&["check", "--config", s(&d.join("missing.json"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));

    // Valid, but stricter than Envoy RBAC where Envoy hides the TCP peer: a warning.
    let peer = d.join("peer.json");
    std::fs::write(
        &peer,
        r#"{"authorization": {"direct_peer": "last_forwarded_for", "policies": [
            {"name": "p", "spec": {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}}]}}"#,
    )
    .unwrap();
    let o = portcullis(&["check", "--config", s(&peer)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: ipBlocks/source.ip") && e.contains("envoy_local_addresses"),
        "{e}"
    );
}

#[test]
fn check_names_the_embedded_crs_version_for_a_waf_config() {
    let d = scratch("check-waf");
    let waf = d.join("waf.json");
    std::fs::write(&waf, r#"{"waf": {}}"#).unwrap();
    let o = portcullis(&["check", "--config", s(&waf)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let version = portcullis_filter::waf::Waf::crs_version().expect("a CRS embedded");
    let line = out
        .lines()
        .find(|l| l.contains(": waf: "))
        .unwrap_or_else(|| panic!("no waf line: {out}"));
    assert!(
        line.contains(&format!("OWASP CRS {version} embedded"))
            && line.contains(&format!("CRS {version} loaded")),
        "{line}"
    );
    assert!(out.ends_with(": ok\n"), "{out}");

    // No `waf` section: no WAF line.
    let plain = d.join("plain.json");
    std::fs::write(&plain, r#"{"partners": []}"#).unwrap();
    let o = portcullis(&["check", "--config", s(&plain)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("waf:"), "{}", stdout(&o));
}

#[test]
fn dry_run_reads_and_reports_bad_traffic() {
    let d = scratch("dry");
    let ok = d.join("t.jsonl");
    std::fs::write(&ok, "{\"path\":\"/a\"}\n{\"path\":\"/b\"}\n").unwrap();
    let o = portcullis(&["replay", "--dry-run", s(&ok)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("jsonl, 2 requests"), "{}", stdout(&o));

    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"path\":\"/a\"}\n{\"paht\":\"/b\"}\n").unwrap();
    let o = portcullis(&["replay", "--dry-run", s(&ok), s(&bad)]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains(&format!("{}:2: ", bad.display())), "{e}");
    assert!(e.contains("unknown field `paht`"), "{e}");
}

/// Five requests through the WAT test filter (decides by header count):
/// pass, 403 with reason, 429 with rule ids, a trap, and one whose
/// expectation is wrong.
const TRAFFIC: &str = r#"{"id":"pass","expect":{"status":200}}
{"id":"deny","headers":{"a":"1"},"expect":{"status":403,"reason":"denied_by_test","rule_ids":["t1"]}}
{"id":"limit","headers":{"a":"1","b":"2"},"expect":{"status":429,"rule_ids":["a"],"no_rule_ids":["c"]}}
{"id":"trap","headers":{"a":"1","b":"2","c":"3"},"expect":{"status":200}}
{"id":"wrong","headers":{"a":"1"},"expect":{"status":200,"no_rule_ids":["t1"]}}
"#;

#[test]
fn replay_through_a_wat_filter() {
    let d = scratch("wat");
    let wasm = d.join("filter.wat");
    std::fs::copy(repo().join("harness/tests/data/replay-filter.wat"), &wasm).unwrap();
    let config = d.join("config.json");
    std::fs::write(&config, "{}").unwrap();
    let traffic = d.join("t.jsonl");
    std::fs::write(&traffic, TRAFFIC).unwrap();
    let base = [
        "replay",
        "--no-config-check",
        "--wasm",
        s(&wasm),
        "--config",
        s(&config),
    ];

    let o = portcullis(&[&base[..], &["--format", "json", s(&traffic)]].concat());
    assert_eq!(
        o.status.code(),
        Some(1),
        "mismatches exit 1: {}",
        stderr(&o)
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let sum = &j["summary"];
    assert_eq!(
        (sum["total"].as_u64(), sum["passed"].as_u64()),
        (Some(5), Some(3))
    );
    // The trap is answered as Envoy answers it under fail-close (503), which its
    // expectation of 200 does not accept: a failure, not an error.
    assert_eq!(
        (sum["failed"].as_u64(), sum["errors"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(sum["latency"]["samples"], 5);
    let reqs = j["requests"].as_array().unwrap();
    assert_eq!(reqs[1]["result"]["verdict"]["reason"], "denied_by_test");
    assert_eq!(
        reqs[2]["result"]["verdict"]["rule_ids"],
        serde_json::json!(["a", "b"])
    );
    assert!(reqs[3]["result"]["verdict"]["vm_trapped"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert_eq!(reqs[3]["result"]["verdict"]["status"], 503);
    let kinds: Vec<&str> = reqs[4]["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["status", "unexpected_rule"]);
    assert!(stderr(&o).contains("5 requests: 3 passed, 2 failed, 0 errors"));

    // Table, only failures.
    let o = portcullis(&[&base[..], &["--only-failures", s(&traffic)]].concat());
    assert_eq!(o.status.code(), Some(1));
    let t = stdout(&o);
    assert!(
        t.contains("wrong") && t.contains("trap") && !t.contains("limit"),
        "{t}"
    );
    assert!(t.contains("status 403, expected 200"), "{t}");
    assert!(t.contains("status 503, expected 200"), "{t}");
    assert!(t.contains("VM trapped"), "{t}");

    // JUnit to a file.
    let xml = d.join("report.xml");
    let o = portcullis(
        &[
            &base[..],
            &["--format", "junit", "-o", s(&xml), s(&traffic)],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(1));
    let x = std::fs::read_to_string(&xml).unwrap();
    assert!(
        x.contains(r#"tests="5""#) && x.contains(r#"failures="2""#) && x.contains(r#"errors="0""#),
        "{x}"
    );

    // --fuel: each verdict counts its WebAssembly work; the totals say which cost most.
    let o = portcullis(&[&base[..], &["--fuel", "--format", "json", s(&traffic)]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let fuel: Vec<u64> = j["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["result"]["verdict"]["fuel"].as_u64())
        .collect();
    assert_eq!(
        fuel.len(),
        5,
        "every verdict has its fuel, the trapped one too: {j}"
    );
    assert!(fuel.iter().all(|&f| f > 0), "{fuel:?}");
    assert_eq!(j["summary"]["fuel"]["max"], *fuel.iter().max().unwrap());
    assert!(
        stderr(&o).contains("fuel per request (5 samples)"),
        "{}",
        stderr(&o)
    );
    let o = portcullis(&[&base[..], &["--format", "json", s(&traffic)]].concat());
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert!(j["summary"].get("fuel").is_none(), "no fuel without --fuel");

    // --fail-open: the trap lets its request through, which that request expects.
    let ok = d.join("ok.jsonl");
    std::fs::write(&ok, TRAFFIC.lines().take(4).collect::<Vec<_>>().join("\n")).unwrap();
    let o = portcullis(&[&base[..], &["--fail-open", s(&ok)]].concat());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("failed open"), "{}", stdout(&o));
    let o = portcullis(&[&base[..], &[s(&ok)]].concat());
    assert_eq!(
        o.status.code(),
        Some(1),
        "without --fail-open the trap fails closed (503)"
    );
}

/// The release filter (`$PORTCULLIS_WASM`, else built by scripts/build-filter) on the
/// example gateway policy.
#[test]
fn replay_the_real_filter() {
    let wasm = common::release_filter();
    let d = scratch("real");
    let traffic = d.join("t.jsonl");
    std::fs::write(
        &traffic,
        r#"{"id":"acme","client_ip":"203.0.113.7","authority":"partners.example.com","path":"/orders/42","expect":{"status":200}}
{"id":"stranger","client_ip":"100.64.10.1","authority":"partners.example.com","path":"/orders","expect":{"status":403,"reason":"ip_not_allowed"}}
{"id":"stranger-says-200","client_ip":"100.64.10.1","authority":"partners.example.com","path":"/orders","expect":{"status":200}}
"#,
    )
    .unwrap();
    let config = repo().join("policies/examples/gateway.json");
    let o = portcullis(&[
        "replay",
        "--wasm",
        wasm.to_str().unwrap(),
        "--config",
        s(&config),
        "--format",
        "json",
        s(&traffic),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    let reqs = j["requests"].as_array().unwrap();
    assert_eq!(
        reqs[0]["mismatches"],
        serde_json::json!([]),
        "{:#}",
        reqs[0]
    );
    assert_eq!(
        reqs[1]["mismatches"],
        serde_json::json!([]),
        "{:#}",
        reqs[1]
    );
    assert_eq!(reqs[2]["mismatches"][0]["kind"], "status");
    assert_eq!(reqs[2]["result"]["verdict"]["reason"], "ip_not_allowed");
}
