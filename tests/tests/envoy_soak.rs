//! The soak in CI: `benches/envoy/soak.py` (what `benches/envoy/soak.sh` runs for 10 million
//! requests) with 200k requests: a real Envoy (2 workers) with the release filter, 10,000
//! CIDRs and 50 authorization policies, wrk on loopback with allowed and denied requests.
//! The script checks every response and fails on its own; this test reads its verdict
//! again: zero unexpected responses, the filter's counters equal to what Envoy served,
//! both decisions present, and Envoy's RSS and the filter's linear memory within ±5% of
//! their post-warm-up baseline. Needs `wrk` and `python3` (scripts/setup) and Envoy: fails
//! without them.

use serde_json::Value;
use std::process::Command;

const REQUESTS: u64 = 200_000;

#[test]
fn soak_keeps_decisions_counters_and_memory_steady() {
    let root = portcullis_e2e::workspace_root();
    let out = tempfile::Builder::new()
        .prefix("portcullis-soak-")
        .tempdir()
        .expect("temp dir");
    let json = out.path().join("soak.json");
    let run = Command::new("python3")
        .arg(root.join("benches/envoy/soak.py"))
        .arg("--wasm")
        .arg(portcullis_e2e::wasm_path())
        .arg("--envoy")
        .arg(portcullis_e2e::envoy_binary())
        .args(["--requests", &REQUESTS.to_string(), "--interval", "5"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (scripts/setup installs it): {e}"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(run.status.success(), "soak failed:\n{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_slice(&std::fs::read(&json).expect("soak.json")).expect("json");
    let v = &report["verdict"];
    let n = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("verdict has no {k}: {v}"))
    };
    assert_eq!(v["failures"], serde_json::json!([]), "{v}");
    assert!(n("requests_checked") >= REQUESTS, "{v}");
    assert_eq!(n("unexpected"), 0, "{v}");
    assert_eq!(n("wrk_socket_errors"), 0, "{v}");
    // The work happens: both decisions, in about the mix sent (half and half).
    assert!(n("filter_allowed") > REQUESTS / 3, "{v}");
    assert!(n("filter_denied") > REQUESTS / 3, "{v}");
    // The filter decided every request Envoy received, as Envoy answered it.
    assert_eq!(
        n("filter_ip_allowlist_decisions"),
        n("envoy_requests"),
        "{v}"
    );
    assert_eq!(n("filter_allowed"), n("envoy_2xx"), "{v}");
    assert_eq!(n("filter_denied"), n("envoy_4xx"), "{v}");
    assert_eq!(n("wrk_non_2xx"), n("denials_checked"), "{v}");
    // wrk checked every response but those in flight when a round ended (its 32
    // connections' at most), and sent at least what Envoy received.
    let load = n("envoy_requests") - n("probe_requests");
    assert!(load >= n("requests_checked"), "{v}");
    assert!(load - n("requests_checked") <= 32 * n("rounds"), "{v}");
    assert!(n("wrk_sent") >= load, "{v}");
    // Memory flat after warm-up.
    let rows = report["rows"].as_array().expect("rows");
    let after: Vec<&Value> = rows.iter().filter(|r| r["warmup"] == false).collect();
    assert!(after.len() >= 3, "{rows:?}");
    for (key, base) in [
        ("rss", n("rss_baseline")),
        ("linear_memory", n("linear_memory_baseline")),
    ] {
        assert!(base > 0, "no {key} baseline: {v}");
        for r in &after {
            let x = r[key].as_u64().expect("a size") as f64;
            let drift = x / base as f64 - 1.0;
            assert!(drift.abs() <= 0.05, "{key} drifted {drift:+.3}: {r}");
        }
    }
}
