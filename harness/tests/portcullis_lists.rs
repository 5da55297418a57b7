//! `partner_lists` in the release filter, on the harness's virtual clock with scripted
//! list responses: the first fetch (requests that depend on the lists fail closed until
//! it lands), a refresh with a changed list, failed and invalid fetches that keep the last
//! good list, a second VM of the same process that uses the shared table without fetching
//! and takes the lease over when the fetcher stops, and the counters of all of it.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use portcullis_harness::{Action, Host, HttpReply, StreamProps, Vm, VmConfig};

fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| Host::from_file(common::release_filter()).expect("the release filter loads"))
        .fork()
}

/// acme has a static network and a fetched list, globex only a fetched list. Fetches
/// every 10 s (1 s timeout, 200 bytes at most), each VM looks for a new table every 500 ms;
/// counters go to the host on every event.
const CONFIG: &str = r#"{
  "metrics": {"flush_interval_ms": 0},
  "partners": [{"name": "acme", "cidrs": ["192.0.2.0/24"]}, {"name": "globex"}],
  "ip_allowlist": {"client_ip": {"source": "peer"}},
  "partner_lists": {"cluster": "lists", "authority": "lists.internal",
    "paths": {"acme": "/acme.txt", "globex": "/globex.txt"},
    "refresh_interval_ms": 10000, "timeout_ms": 1000, "max_bytes": 200,
    "poll_interval_ms": 500}
}"#;

const POLL: Duration = Duration::from_millis(500);
const REFRESH: Duration = Duration::from_secs(10);

/// What the list server answers, by path; changed by the test while VMs run.
type Script = Arc<Mutex<HashMap<String, HttpReply>>>;

fn script(acme: HttpReply, globex: HttpReply) -> Script {
    let s = Script::default();
    set(&s, acme, globex);
    s
}

fn set(s: &Script, acme: HttpReply, globex: HttpReply) {
    let mut m = s.lock().unwrap();
    m.insert("/acme.txt".into(), acme);
    m.insert("/globex.txt".into(), globex);
}

fn list(body: &str) -> HttpReply {
    HttpReply::ok(200, body.as_bytes().to_vec()).header("content-type", "text/plain")
}

/// A VM of `host` on a shared virtual start time, answering list fetches from `script`.
fn start(host: &Host, script: Option<&Script>) -> Vm {
    // Every VM's clock starts at the same instant, as worker VMs of one Envoy.
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: CONFIG.as_bytes().to_vec(),
            start_time: Some(t0),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("start_vm: {e}"));
    assert_eq!(vm.tick_period(), Some(POLL));
    if let Some(s) = script {
        let s = s.clone();
        vm.on_http_call("lists", move |call| {
            assert_eq!(call.header(":authority"), Some("lists.internal"));
            assert_eq!(call.header(":method"), Some("GET"));
            assert_eq!(call.timeout, Duration::from_secs(1));
            let path = call.header(":path").unwrap_or("");
            s.lock()
                .unwrap()
                .get(path)
                .cloned()
                .unwrap_or(HttpReply::ok(404, vec![]))
        });
    }
    vm
}

/// The decision for a GET from `ip`: `Ok(partner header)` or `Err((status, reason))`.
fn decide(vm: &mut Vm, ip: &str) -> Result<Option<String>, (u32, String)> {
    let props = StreamProps::default().source(format!("{ip}:40000").parse().unwrap());
    let mut s = vm.http_stream(props).unwrap();
    let action = s
        .request_headers(
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "api.example.com"),
                (":path", "/orders"),
            ],
            true,
        )
        .unwrap();
    let rec = s.finish().unwrap();
    match action {
        Action::Continue => Ok(rec
            .request_headers
            .iter()
            .find(|(k, _)| k == "x-portcullis-partner")
            .map(|(_, v)| v.clone())),
        Action::LocalReply => {
            let r = rec.local_reply.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            Err((r.status, body["reason"].as_str().unwrap_or("").to_string()))
        }
        other => panic!("unexpected action {other:?}"),
    }
}

fn allowed(partner: &str) -> Result<Option<String>, (u32, String)> {
    Ok(Some(partner.to_string()))
}

fn denied(reason: &str) -> Result<Option<String>, (u32, String)> {
    Err((403, reason.to_string()))
}

fn metric(host: &Host, decision: &str, reason: &str, source: &str) -> Option<i64> {
    host.metric(&format!(
        "portcullis.check.partner_lists.decision.{decision}.reason.{reason}.source.{source}"
    ))
}

fn log_text(vm: &Vm) -> String {
    vm.logs()
        .iter()
        .map(|l| l.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn lists_are_fetched_once_shared_refreshed_and_kept_on_bad_fetches() {
    let host = host();
    let lists = script(list("203.0.113.0/24\n"), list("# globex\n198.51.100.7\n"));
    let mut fetcher = start(&host, Some(&lists));
    let mut worker = start(&host, None);

    // Before the first lists: static networks decide, the rest fails closed.
    assert_eq!(decide(&mut fetcher, "192.0.2.1"), allowed("acme"));
    assert_eq!(
        decide(&mut fetcher, "203.0.113.9"),
        denied("partner_lists_not_loaded")
    );
    assert_eq!(
        decide(&mut worker, "198.51.100.7"),
        denied("partner_lists_not_loaded")
    );

    // The first tick: the fetcher takes the lease, fetches both lists, publishes version 1.
    fetcher.advance_time(POLL).unwrap();
    assert_eq!(fetcher.http_calls().len(), 2);
    assert_eq!(decide(&mut fetcher, "203.0.113.9"), allowed("acme"));
    assert_eq!(decide(&mut fetcher, "198.51.100.7"), allowed("globex"));
    assert_eq!(
        decide(&mut fetcher, "198.51.100.8"),
        denied("ip_not_allowed")
    );
    assert!(log_text(&fetcher).contains("partner lists: version 1 published"));

    // The other VM loads it from shared data on its next request, and never fetches:
    // its tick finds the lease held.
    assert_eq!(decide(&mut worker, "198.51.100.7"), allowed("globex"));
    worker.advance_time(POLL * 3).unwrap();
    assert!(worker.http_calls().is_empty(), "a second VM fetched");
    assert_eq!(
        metric(&host, "loaded", "new_version", "shared_data"),
        Some(1)
    );

    // A changed list: version 2 on the fetcher at the refresh, on the worker at its tick.
    set(&lists, list("203.0.113.0/24\n"), list("198.51.100.0/24\n"));
    fetcher.advance_time(REFRESH).unwrap();
    assert_eq!(fetcher.http_calls().len(), 4);
    assert_eq!(decide(&mut fetcher, "198.51.100.8"), allowed("globex"));
    assert_eq!(
        decide(&mut worker, "198.51.100.8"),
        denied("ip_not_allowed"),
        "the worker switched before its tick"
    );
    worker.advance_time(POLL).unwrap();
    assert_eq!(decide(&mut worker, "198.51.100.8"), allowed("globex"));

    // Bad fetches, one round each: the last good lists stay in force on both VMs.
    let rounds = [
        (HttpReply::ok(500, b"oops".to_vec()), HttpReply::Timeout),
        (
            list(&"203.0.113.0/24\n".repeat(20)),
            list("198.51.100.0/24\nnot-an-ip\n"),
        ),
        (HttpReply::Reset, list("")),
    ];
    for (acme, globex) in rounds {
        set(&lists, acme, globex);
        fetcher.advance_time(REFRESH).unwrap();
        worker.advance_time(REFRESH).unwrap();
        for vm in [&mut fetcher, &mut worker] {
            assert_eq!(decide(vm, "203.0.113.9"), allowed("acme"));
            assert_eq!(decide(vm, "198.51.100.8"), allowed("globex"));
            assert_eq!(decide(vm, "192.0.2.1"), allowed("acme"));
        }
    }
    let logs = log_text(&fetcher);
    for line in [
        "fetch of acme (lists/acme.txt) failed: status 500, expected 200; keeping its last good list (version 2 in force)",
        "fetch of globex (lists/globex.txt) failed: no response (timeout or connection failure)",
        "fetch of acme (lists/acme.txt) failed: body of 300 bytes is over max_bytes",
        "fetch of globex (lists/globex.txt) failed: line 2: \"not-an-ip\" is not a CIDR",
        "fetch of globex (lists/globex.txt) failed: the body is empty",
    ] {
        assert!(logs.contains(line), "no log line {line:?} in:\n{logs}");
    }
    assert!(worker.http_calls().is_empty());
    assert_eq!(fetcher.http_calls().len(), 10);

    // Every fetch, failure and version, counted across both VMs.
    assert_eq!(metric(&host, "fetched", "changed", "acme"), Some(1));
    assert_eq!(metric(&host, "fetched", "unchanged", "acme"), Some(1));
    assert_eq!(metric(&host, "fetched", "changed", "globex"), Some(2));
    assert_eq!(
        metric(&host, "fetch_failed", "http_status", "acme"),
        Some(1)
    );
    assert_eq!(metric(&host, "fetch_failed", "too_large", "acme"), Some(1));
    assert_eq!(
        metric(&host, "fetch_failed", "no_response", "acme"),
        Some(1)
    );
    assert_eq!(
        metric(&host, "fetch_failed", "no_response", "globex"),
        Some(1)
    );
    assert_eq!(
        metric(&host, "fetch_failed", "parse_error", "globex"),
        Some(2)
    );
    assert_eq!(
        metric(&host, "published", "new_version", "shared_data"),
        Some(2)
    );
    assert_eq!(
        metric(&host, "loaded", "new_version", "shared_data"),
        Some(2)
    );
    assert_eq!(host.metric("portcullis.partner_lists.version"), Some(2));
    let denials = host.metric(
        "portcullis.check.ip_allowlist.decision.denied.reason.partner_lists_not_loaded.partner.none",
    );
    assert_eq!(denials, Some(2));
}

#[test]
fn the_lease_moves_to_another_vm_when_the_fetcher_stops() {
    let host = host();
    let lists = script(list("203.0.113.0/24\n"), list("198.51.100.0/24\n"));
    let mut fetcher = start(&host, Some(&lists));
    let mut worker = start(&host, Some(&lists));
    fetcher.advance_time(POLL).unwrap();
    worker.advance_time(POLL).unwrap();
    assert_eq!(fetcher.http_calls().len(), 2);
    assert!(worker.http_calls().is_empty());
    assert_eq!(decide(&mut worker, "198.51.100.9"), allowed("globex"));

    // The fetcher stops ticking (a worker gone). The lease lapses after refresh + timeout
    // + two polls; the worker takes it, fetches, and, the lists being the same, publishes
    // no new version.
    assert!(fetcher.shutdown().unwrap());
    worker
        .advance_time(REFRESH + Duration::from_secs(1))
        .unwrap();
    assert!(worker.http_calls().is_empty(), "the lease was taken early");
    worker.advance_time(POLL * 4).unwrap();
    assert_eq!(worker.http_calls().len(), 2);
    assert_eq!(
        metric(&host, "published", "new_version", "shared_data"),
        Some(1)
    );

    // A change now reaches the new fetcher.
    set(
        &lists,
        list("203.0.113.0/24\n"),
        list("198.51.100.0/24\n10.9.0.0/16\n"),
    );
    worker.advance_time(REFRESH).unwrap();
    assert_eq!(decide(&mut worker, "10.9.1.1"), allowed("globex"));
    assert_eq!(host.metric("portcullis.partner_lists.version"), Some(2));
}

#[test]
fn an_unknown_cluster_is_a_failed_fetch_and_requests_fail_closed() {
    let host = host();
    let mut vm = start(&host, None);
    vm.advance_time(POLL).unwrap();
    assert_eq!(
        metric(&host, "fetch_failed", "dispatch_failed", "acme"),
        Some(1)
    );
    assert_eq!(
        metric(&host, "fetch_failed", "dispatch_failed", "globex"),
        Some(1)
    );
    let logs = log_text(&vm);
    assert!(
        logs.contains("fetch of acme (lists/acme.txt) failed: cannot send the request: proxy_http_call failed: BadArgument (2)"),
        "{logs}"
    );
    assert_eq!(
        decide(&mut vm, "203.0.113.9"),
        denied("partner_lists_not_loaded")
    );
    assert_eq!(decide(&mut vm, "192.0.2.1"), allowed("acme"));
    assert!(vm.failure().is_none());
}
