//! What Envoy 1.40 does when a filter's VM traps, under each failure setting of the Wasm
//! filter's `PluginConfig`: `failure_policy` (FAIL_CLOSED, FAIL_OPEN, FAIL_RELOAD), the
//! deprecated `fail_open`, and neither (what Istio's `failStrategy: FAIL_CLOSE` gives).
//! portcullis never traps on input (no panics reachable from requests or config), so the
//! VM here is `tests/data/trap-filter.wat`: it traps on a request with an `x-trap` header
//! and otherwise adds `x-trap-filter: seen` (the upstream echo shows whether the filter
//! ran or was bypassed), and logs each VM start.
//!
//! Pinned (policies/README.md, "When the filter itself fails"): the trapping request gets
//! 503 except with `fail_open: true`, which lets it through. Then, per worker (each has its
//! own VM; one worker's trap leaves the others' VMs serving):
//! * FAIL_CLOSED and the default: every later request on that worker gets 503; no VM is
//!   started again (until a config change or restart replaces the plugin);
//! * FAIL_OPEN and `fail_open: true`: every later request bypasses the filter: nothing
//!   is checked;
//! * FAIL_RELOAD: requests get 503 until the backoff (1 s by default) has passed; then the
//!   next request starts a new VM, which serves it.

use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The trap filter, compiled once per test binary.
fn trap_module() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let wat = portcullis_e2e::workspace_root().join("tests/data/trap-filter.wat");
        let wasm = wat::parse_file(&wat).unwrap_or_else(|e| panic!("{}: {e}", wat.display()));
        let dir = std::env::temp_dir().join(format!("portcullis-trap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("trap-filter.wasm");
        std::fs::write(&path, wasm).expect("write the trap filter");
        path
    })
}

const VM_STARTED: &str = "trap filter: vm started";

fn config(option: Option<(&str, Value)>) -> EnvoyConfig {
    let cfg = EnvoyConfig::with_plugin("{}").module(trap_module());
    match option {
        Some((k, v)) => cfg.wasm_option(k, v),
        None => cfg,
    }
}

fn trap(envoy: &Envoy) -> Response {
    Request::get("/trap")
        .header("x-trap", "1")
        .send(envoy.addr())
}

fn plain(envoy: &Envoy) -> Response {
    Request::get("/plain").send(envoy.addr())
}

/// Served upstream with the filter having run.
#[track_caller]
fn assert_filtered(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-echo"), Some("1"), "not from upstream");
    assert_eq!(
        r.upstream_header_values("x-trap-filter"),
        ["seen"],
        "the filter did not run"
    );
}

/// Served upstream without the filter running.
#[track_caller]
fn assert_bypassed(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-echo"), Some("1"), "not from upstream");
    assert!(
        r.upstream_header_values("x-trap-filter").is_empty(),
        "the filter ran"
    );
}

/// Envoy's own 503 for a failed VM, never upstream.
#[track_caller]
fn assert_failed(r: &Response) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("x-echo"), None, "a request reached upstream");
}

fn vm_starts(envoy: &Envoy) -> usize {
    envoy.log().matches(VM_STARTED).count()
}

/// Starts Envoy, checks the filter runs, traps it once; the trapping request's response
/// and the number of VM starts before the trap.
fn trapped(cfg: &EnvoyConfig) -> (Envoy, Response, usize) {
    let envoy = Envoy::start(cfg);
    assert_filtered(&plain(&envoy));
    let starts = vm_starts(&envoy);
    assert!(starts > 0, "no VM start logged:\n{}", envoy.log());
    let r = trap(&envoy);
    envoy.wait_for_log(
        "Function: proxy_on_request_headers failed: Uncaught RuntimeError: unreachable",
    );
    (envoy, r, starts)
}

/// Longer than Envoy's default reload backoff (1 s): a VM that would be reloaded is by now.
const PAST_RELOAD_BACKOFF: Duration = Duration::from_millis(2500);

fn stays_closed(option: Option<(&str, Value)>) {
    let (envoy, r, starts) = trapped(&config(option));
    assert_failed(&r);
    for _ in 0..3 {
        assert_failed(&plain(&envoy));
    }
    std::thread::sleep(PAST_RELOAD_BACKOFF);
    for _ in 0..3 {
        assert_failed(&plain(&envoy));
    }
    assert_eq!(vm_starts(&envoy), starts, "a VM was started again");
    let access = envoy.wait_for_access_log("503 ");
    assert!(
        access
            .lines()
            .any(|l| l.starts_with("503 wasm_fail_stream ")),
        "Envoy's reason for the 503: {access}"
    );
}

#[test]
fn default_fails_closed_for_good() {
    stays_closed(None);
}

#[test]
fn fail_closed_fails_closed_for_good() {
    stays_closed(Some(("failure_policy", json!("FAIL_CLOSED"))));
}

#[test]
fn fail_open_bypasses_the_filter_after_the_trap() {
    let (envoy, r, starts) = trapped(&config(Some(("failure_policy", json!("FAIL_OPEN")))));
    assert_failed(&r);
    for _ in 0..3 {
        assert_bypassed(&plain(&envoy));
    }
    // Even a request that would trap is no longer seen by the filter.
    assert_bypassed(&trap(&envoy));
    std::thread::sleep(PAST_RELOAD_BACKOFF);
    assert_bypassed(&plain(&envoy));
    assert_eq!(vm_starts(&envoy), starts, "a VM was started again");
}

#[test]
fn deprecated_fail_open_lets_even_the_trapping_request_through() {
    let (envoy, r, starts) = trapped(&config(Some(("fail_open", json!(true)))));
    assert_bypassed(&r);
    for _ in 0..3 {
        assert_bypassed(&plain(&envoy));
    }
    std::thread::sleep(PAST_RELOAD_BACKOFF);
    assert_bypassed(&plain(&envoy));
    assert_eq!(vm_starts(&envoy), starts, "a VM was started again");
}

#[test]
fn fail_reload_starts_a_new_vm_after_the_backoff() {
    let (envoy, r, starts) = trapped(&config(Some(("failure_policy", json!("FAIL_RELOAD")))));
    assert_failed(&r);
    // Within the backoff: 503 (the VM is not reloaded yet). Then a request reloads it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let served = loop {
        let r = plain(&envoy);
        if r.status == 200 {
            break r;
        }
        assert_failed(&r);
        assert!(Instant::now() < deadline, "no VM reload:\n{}", envoy.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_filtered(&served);
    assert_eq!(vm_starts(&envoy), starts + 1, "one new VM");
    let stats = envoy.stats("vm_reload");
    let reloaded: u64 = stats
        .iter()
        .filter(|(k, _)| k.ends_with(".vm_reload_success"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(reloaded, 1, "{stats:?}");
    // The new VM traps like the first, and is reloaded again.
    assert_failed(&trap(&envoy));
}

/// Each worker has its own VM: a trap fails one worker's VM, the other keeps serving with
/// the filter running. Connections go to workers by the kernel's hash of their addresses:
/// 40 new connections all on one of two workers is a 1-in-10^12 event.
#[test]
fn a_trap_fails_one_worker_only() {
    let (envoy, r, _) = trapped(&config(None).workers(2));
    assert_failed(&r);
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..40 {
        let r = plain(&envoy);
        if r.status == 200 {
            assert_filtered(&r);
            ok += 1;
        } else {
            assert_failed(&r);
            failed += 1;
        }
    }
    assert!(ok > 0 && failed > 0, "{ok} served, {failed} failed");
}
