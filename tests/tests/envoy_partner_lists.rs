//! `partner_lists` in a real Envoy (1.40, V8) with a local list server (a thread in the
//! test, behind a static cluster): the list changes while traffic flows and no request is
//! dropped or decided on anything but a whole list version; the counters match the
//! requests sent and the fetches served. And with the list server unreachable: requests
//! that depend on the lists fail closed with `partner_lists_not_loaded` and a log line.

use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Static partner (never in a list).
const ACME: &str = "127.0.0.2";
/// In list version A only.
const OLD: &str = "127.0.0.3";
/// In list version B only.
const NEW: &str = "127.0.0.4";
/// In both versions.
const BOTH: &str = "127.0.0.5";
/// In no list.
const STRANGER: &str = "127.0.0.6";

const LIST_A: &str = "# globex, version A\n127.0.0.3\n127.0.0.5/32\n";
const LIST_B: &str = "# globex, version B\n127.0.0.4/32\n127.0.0.5\n";

/// A one-path HTTP/1.1 server: answers `GET /globex.txt` with the current list
/// (`connection: close`), counts what it served.
struct ListServer {
    addr: SocketAddr,
    list: Arc<Mutex<String>>,
    served: Arc<AtomicU64>,
}

impl ListServer {
    fn start(list: &str) -> ListServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the list server");
        let addr = listener.local_addr().expect("its address");
        let list = Arc::new(Mutex::new(list.to_string()));
        let served = Arc::new(AtomicU64::new(0));
        let (l, n) = (list.clone(), served.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut first = String::new();
                if reader.read_line(&mut first).is_err() {
                    continue;
                }
                // Skip the rest of the head.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let (status, body) = if first.starts_with("GET /globex.txt ") {
                    n.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", l.lock().unwrap().clone())
                } else {
                    ("404 Not Found", String::new())
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        ListServer { addr, list, served }
    }

    fn set(&self, list: &str) {
        *self.list.lock().unwrap() = list.to_string();
    }
}

/// acme static, globex from the list server; fetches every 300 ms, each worker looks for
/// a new table every 100 ms; counters per request.
fn config() -> String {
    format!(
        r#"{{"metrics": {{"flush_interval_ms": 0}},
          "partners": [{{"name": "acme", "cidrs": ["{ACME}/32"]}}, {{"name": "globex"}}],
          "ip_allowlist": {{"client_ip": {{"source": "peer"}}}},
          "partner_lists": {{"cluster": "lists", "authority": "lists.internal",
            "paths": {{"globex": "/globex.txt"}},
            "refresh_interval_ms": 300, "timeout_ms": 250, "poll_interval_ms": 100}}}}"#
    )
}

fn get(envoy: &Envoy, from: &str) -> Response {
    Request::get("/orders").from(from).send(envoy.addr())
}

/// `Ok(partner)` for a request that reached upstream, `Err(reason)` for a denial; panics on
/// anything else (another status, a request upstream did not answer).
fn decision(r: &Response) -> Result<String, String> {
    match r.status {
        200 => {
            assert_eq!(r.header("x-echo"), Some("1"), "200 not from upstream");
            let partner = r.upstream_header_values("x-portcullis-partner");
            Ok(partner.first().cloned().unwrap_or_default())
        }
        403 => {
            assert_eq!(
                r.header("x-echo"),
                None,
                "a denied request reached upstream"
            );
            Err(r.json()["reason"].as_str().unwrap_or("").to_string())
        }
        s => panic!("unexpected status {s}: {}", r.text()),
    }
}

/// Requests until `from` is decided as `want`; every decision before it must be `before`.
/// Returns the number of requests sent.
fn until(
    envoy: &Envoy,
    from: &str,
    want: &Result<String, String>,
    before: &Result<String, String>,
) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    loop {
        let d = decision(&get(envoy, from));
        sent += 1;
        if &d == want {
            return sent;
        }
        assert_eq!(&d, before, "from {from}");
        assert!(
            Instant::now() < deadline,
            "{from} never got {want:?}:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ok(p: &str) -> Result<String, String> {
    Ok(p.to_string())
}

fn no(reason: &str) -> Result<String, String> {
    Err(reason.to_string())
}

fn lists_stat(stats: &BTreeMap<String, u64>, decision: &str, reason: &str) -> u64 {
    let name = format!(
        "wasmcustom.portcullis.check.partner_lists.decision.{decision}.reason.{reason}.source.globex"
    );
    stats.get(&name).copied().unwrap_or(0)
}

#[test]
fn a_list_changes_while_traffic_flows_and_no_request_is_dropped() {
    let server = ListServer::start(LIST_A);
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&config()).cluster("lists", server.addr));
    let mut sent = 0u64;

    // Until the first list lands, only the list-dependent requests are refused.
    sent += until(&envoy, OLD, &ok("globex"), &no("partner_lists_not_loaded"));
    envoy.wait_for_log("partner lists: version 1 published");

    // Traffic from every kind of client, in rounds; the list flips to B during it. Each
    // response is a whole version's decision: BOTH always passes, STRANGER never, OLD
    // passes until the switch and never after, NEW the other way round: one switch each.
    let clients = [ACME, OLD, NEW, BOTH, STRANGER];
    let mut history: BTreeMap<&str, Vec<Result<String, String>>> = BTreeMap::new();
    let started = Instant::now();
    let mut switched_at = None;
    let mut rounds = 0;
    loop {
        for c in clients {
            let d = decision(&get(&envoy, c));
            sent += 1;
            history.entry(c).or_default().push(d);
        }
        rounds += 1;
        if rounds == 60 {
            server.set(LIST_B);
            switched_at = Some(history[NEW].len());
        }
        // Both sides of the switch seen: OLD is sent before NEW in a round, so a version
        // that lands between them shows only on NEW until the next round.
        let new_allowed = history[NEW].last() == Some(&ok("globex"));
        let old_denied = history[OLD].last() == Some(&no("ip_not_allowed"));
        if switched_at.is_some() && new_allowed && old_denied && rounds > 60 + 40 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "list B never applied"
        );
    }
    assert!(history[ACME].iter().all(|d| d == &ok("acme")));
    assert!(
        history[BOTH].iter().all(|d| d == &ok("globex")),
        "{:?}",
        history[BOTH]
    );
    assert!(history[STRANGER].iter().all(|d| d == &no("ip_not_allowed")));
    let switch = |c: &str, before: Result<String, String>, after: Result<String, String>| {
        let h = &history[c];
        let n = h.iter().take_while(|d| **d == before).count();
        assert!(n >= 60, "{c} switched before the list changed: {h:?}");
        assert!(
            h[n..].iter().all(|d| *d == after),
            "{c} did not switch once: {h:?}"
        );
        assert!(n < h.len(), "{c} never switched");
    };
    switch(OLD, ok("globex"), no("ip_not_allowed"));
    switch(NEW, no("ip_not_allowed"), ok("globex"));

    // Counters: one decision per request; fetches as served; two versions.
    let fetched = server.served.load(Ordering::SeqCst);
    let stats = envoy.stats_when("portcullis", |s| {
        let decisions: u64 = s
            .iter()
            .filter(|(k, _)| k.starts_with("wasmcustom.portcullis.check.ip_allowlist."))
            .map(|(_, v)| v)
            .sum();
        decisions == sent
            && lists_stat(s, "fetched", "changed") + lists_stat(s, "fetched", "unchanged")
                >= fetched
    });
    let decisions: u64 = stats
        .iter()
        .filter(|(k, _)| k.starts_with("wasmcustom.portcullis.check.ip_allowlist."))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(decisions, sent, "{stats:#?}");
    assert_eq!(lists_stat(&stats, "fetched", "changed"), 2, "{stats:#?}");
    let fetches =
        lists_stat(&stats, "fetched", "changed") + lists_stat(&stats, "fetched", "unchanged");
    // The server may have answered one more fetch since `fetched` was read.
    let served = server.served.load(Ordering::SeqCst);
    assert!(
        (fetched..=served).contains(&fetches),
        "{fetches} fetches counted, {fetched}..={served} served: {stats:#?}"
    );
    assert_eq!(
        stats.get("wasmcustom.portcullis.check.partner_lists.decision.published.reason.new_version.source.shared_data"),
        Some(&2),
        "{stats:#?}"
    );
    assert_eq!(
        stats.get("wasmcustom.portcullis.partner_lists.version"),
        Some(&2)
    );
    assert_eq!(
        stats.get("wasmcustom.portcullis.check.ip_allowlist.decision.allowed.reason.partner_network.partner.globex").copied().unwrap_or(0),
        history[BOTH].len() as u64
            + history[OLD].iter().filter(|d| d.is_ok()).count() as u64
            + history[NEW].iter().filter(|d| d.is_ok()).count() as u64
            + 1, // the request that saw the first list land
    );
    let log = envoy.log();
    assert!(log.contains("partner lists: version 2 published"), "{log}");
}

#[test]
fn an_unreachable_list_server_fails_closed_with_a_log_line() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&config()).cluster("lists", closed));
    let log = envoy.wait_for_log("partner lists: fetch of globex (lists/globex.txt) failed: ");
    assert!(log.contains("no list in force yet"), "{log}");
    for _ in 0..3 {
        assert_eq!(decision(&get(&envoy, OLD)), no("partner_lists_not_loaded"));
        assert_eq!(
            decision(&get(&envoy, STRANGER)),
            no("partner_lists_not_loaded")
        );
        // The static partner does not depend on the lists.
        assert_eq!(decision(&get(&envoy, ACME)), ok("acme"));
    }
    let body = get(&envoy, OLD).json();
    assert_eq!(body["check"], "ip_allowlist", "{body}");
    assert_eq!(body["reason"], "partner_lists_not_loaded", "{body}");
    let stats = envoy.stats("partner_lists");
    let failed: u64 = stats
        .iter()
        .filter(|(k, _)| k.contains("decision.fetch_failed.") && k.ends_with(".source.globex"))
        .map(|(_, v)| v)
        .sum();
    assert!(failed >= 1, "{stats:#?}");
    eprintln!("unreachable list server: {stats:#?}");
    assert_eq!(
        stats.get("wasmcustom.portcullis.partner_lists.version"),
        None
    );
}
