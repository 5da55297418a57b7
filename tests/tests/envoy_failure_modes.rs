//! Failure behaviour in a real Envoy 1.40 that no other suite pins (policies/README.md, "When
//! the filter itself fails"):
//! * an oversized request header block: Envoy answers 431 itself, before any filter runs
//!   (the filter decides nothing and counts nothing); just under the limit the filter
//!   decides as always;
//! * a request whose client IP cannot be determined: denied (403, `client_ip_unknown` with
//!   a detail), counted, and logged with the detail; and what `source: peer` does instead
//!   when Envoy finds no client address in `x-forwarded-for` (it falls back to the TCP
//!   peer, which the filter cannot tell apart).
//!
//! Elsewhere: a trap in the filter (envoy_trap.rs), host-call failures and `fail_open`
//! (envoy_fail_open.rs), bad configurations at start-up and on update
//! (envoy_config_mistakes.rs, envoy_config_update.rs), an unreachable list server
//! (envoy_partner_lists.rs).

use portcullis_e2e::{portcullis_total, Envoy, EnvoyConfig, Request, Response};
use serde_json::Value;

const ACME: &str = "127.0.0.2";
const STRANGER: &str = "127.0.0.4";
const LB: &str = "127.0.0.9";

/// Partner `acme`, counters handed to Envoy on every request (so a scrape is exact).
fn config(client_ip: &str, more_partners: &str) -> String {
    format!(
        r#"{{"metrics": {{"flush_interval_ms": 0}},
          "partners": [{{"name": "acme", "cidrs": ["{ACME}/32"]}}{more_partners}],
          "ip_allowlist": {{"client_ip": {client_ip}}}}}"#
    )
}

#[track_caller]
fn assert_upstream(r: &Response, partner: &str) {
    assert_eq!(r.status, 200, "expected to reach upstream: {}", r.text());
    assert_eq!(r.header("x-echo"), Some("1"));
    assert_eq!(r.upstream_header_values("x-portcullis-partner"), [partner]);
}

#[track_caller]
fn assert_denied(r: &Response, reason: &str, detail: Option<&str>) {
    assert_eq!(r.status, 403, "expected a denial: {}", r.text());
    assert_eq!(
        r.header("x-echo"),
        None,
        "a denied request reached upstream"
    );
    let body = r.json();
    assert_eq!(body["reason"], Value::from(reason), "{body}");
    assert_eq!(body["detail"].as_str(), detail, "{body}");
}

/// A request from `from` with `n` bytes of header values in `x-pad-*` headers of at most
/// 8 KiB each (Envoy's limit is on the whole block; one header line may be any size).
fn padded(from: &str, n: usize) -> Request {
    let mut r = Request::get("/api").from(from);
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let len = left.min(8 * 1024);
        r = r.header(&format!("x-pad-{i}"), &"a".repeat(len));
        left -= len;
        i += 1;
    }
    r
}

/// Envoy's default `max_request_headers_kb` is 60: a block over it never reaches the
/// filter; one a little under it is decided as any other. The same with a configured
/// limit, and with more headers than `max_request_headers_count` (100).
#[test]
fn oversized_header_blocks_get_431_from_envoy_before_the_filter() {
    let peer = r#"{"source": "peer"}"#;
    let envoys = Envoy::start_many(&[
        EnvoyConfig::with_plugin(&config(peer, "")),
        EnvoyConfig::with_plugin(&config(peer, "")).max_request_headers_kb(8),
    ]);
    for (envoy, limit_kb) in envoys.iter().zip([60usize, 8]) {
        let at = envoy.addr();
        let counted = || portcullis_total(&envoy.stats("wasmcustom"));
        // Near the limit (2 KiB under it, room for the request line and Envoy's own
        // headers): decided by the filter.
        let near = (limit_kb - 2) * 1024;
        assert_upstream(&padded(ACME, near).send(at), "acme");
        assert_denied(&padded(STRANGER, near).send(at), "ip_not_allowed", None);
        let before = counted();
        assert_eq!(before, 2, "one decision per request near the limit");
        // Over it: Envoy's 431, for partners and strangers alike; nothing decided.
        for who in [ACME, STRANGER] {
            let r = padded(who, limit_kb * 1024 + 1).send(at);
            assert_eq!(r.status, 431, "{limit_kb} KiB: {}", r.text());
            assert_eq!(r.header("x-echo"), None);
        }
        let access = envoy.wait_for_access_log("431 ");
        assert!(
            access
                .lines()
                .filter(|l| l.starts_with("431 "))
                .all(|l| l.starts_with("431 http1.headers_too_large ")),
            "Envoy's reason for the 431s: {access}"
        );
        assert_eq!(counted(), before, "the filter decided an oversized request");
        assert!(
            !envoy.log().contains("x-pad"),
            "the filter logged an oversized request"
        );
    }
    // Too many headers (101 > max_request_headers_count 100), however small.
    let envoy = &envoys[0];
    let mut r = Request::get("/api").from(ACME);
    for i in 0..101 {
        r = r.header(&format!("x-h{i}"), "1");
    }
    let r = r.send(envoy.addr());
    assert_eq!(r.status, 431, "{}", r.text());
    assert_eq!(r.header("x-echo"), None);
    assert_eq!(portcullis_total(&envoy.stats("wasmcustom")), 2);
}

/// `source: x_forwarded_for` behind one trusted hop: every way the client IP can be
/// missing denies with `client_ip_unknown` and the detail, in the body, the counters and
/// the log line.
#[test]
fn no_determinable_client_ip_fails_closed_with_a_reason_and_a_log_line() {
    let xff = r#"{"source": "x_forwarded_for", "trusted_hops": 1}"#;
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&config(xff, "")).trusted_hops(1));
    let at = envoy.addr();
    let via_lb = |xff: Option<&str>, case: &str| {
        let mut r = Request::get(&format!("/api/{case}")).from(LB);
        if let Some(v) = xff {
            r = r.header("x-forwarded-for", v);
        }
        r.send(at)
    };
    let cases = [
        (None, "x_forwarded_for_too_short", "no-xff"),
        (Some(""), "x_forwarded_for_too_short", "empty-xff"),
        (Some("not-an-ip"), "bad_x_forwarded_for", "garbage"),
        (Some("127.0.0.2:443"), "bad_x_forwarded_for", "with-port"),
        (Some("127.0.0.2 127.0.0.3"), "bad_x_forwarded_for", "spaces"),
    ];
    for (value, detail, case) in cases {
        assert_denied(&via_lb(value, case), "client_ip_unknown", Some(detail));
        envoy.wait_for_log(&format!(
            "denied check=ip_allowlist reason=client_ip_unknown detail={detail} policy=- \
             client_ip=unknown partner=none authority=\"example.com\" path=\"/api/{case}\" "
        ));
    }
    // The partner behind the same load balancer still gets in.
    assert_upstream(&via_lb(Some(ACME), "acme"), "acme");
    let stats = envoy.stats("wasmcustom");
    assert_eq!(
        stats.get(
            "wasmcustom.portcullis.check.ip_allowlist.decision.denied.reason.client_ip_unknown.partner.none"
        ),
        Some(&(cases.len() as u64)),
        "{stats:?}"
    );
}

/// With `source: peer` the filter reads Envoy's `source.address`. When Envoy (trusting
/// one hop) finds no client entry in `x-forwarded-for`, it keeps the TCP peer — here the
/// load balancer — and the filter cannot tell: the request is decided on the load
/// balancer's address. A partner network that contains the load balancer then lets such
/// requests in; `source: x_forwarded_for` denies them instead.
#[test]
fn peer_source_falls_back_to_the_load_balancer_without_forwarded_for() {
    let lb_partner = format!(r#", {{"name": "lb-net", "cidrs": ["{LB}/32"]}}"#);
    let envoys = Envoy::start_many(&[
        EnvoyConfig::with_plugin(&config(r#"{"source": "peer"}"#, &lb_partner)).trusted_hops(1),
        EnvoyConfig::with_plugin(&config(
            r#"{"source": "x_forwarded_for", "trusted_hops": 1}"#,
            &lb_partner,
        ))
        .trusted_hops(1),
    ]);
    let no_xff = |envoy: &Envoy| Request::get("/api").from(LB).send(envoy.addr());
    assert_upstream(&no_xff(&envoys[0]), "lb-net");
    assert_denied(
        &no_xff(&envoys[1]),
        "client_ip_unknown",
        Some("x_forwarded_for_too_short"),
    );
    // With a client entry both read the client.
    for envoy in &envoys {
        let r = Request::get("/api")
            .from(LB)
            .header("x-forwarded-for", STRANGER)
            .send(envoy.addr());
        assert_denied(&r, "ip_not_allowed", None);
    }
}
