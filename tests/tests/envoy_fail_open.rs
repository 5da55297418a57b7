//! `fail_open` in a real Envoy (1.40, V8), both settings, on every internal-error path a
//! real Envoy can be made to take: Envoy's `capability_restriction_config` refuses the
//! filter one host call ([`EnvoyConfig::restrict_host_calls`]; Envoy answers it with
//! `InternalFailure`). An internal error fails closed (403 `internal_error`) unless
//! `fail_open: true`, which lets the request through; a failing host call never traps the
//! VM (the next request is served). The failures the glue tolerates (counters, the metrics
//! tick) change no decision, and an error caused by the request itself denies whatever
//! `fail_open` says.
//!
//! Not reachable here (the harness covers them, harness/tests/portcullis_faults.rs): no
//! configuration (Envoy creates no stream for a plugin whose `on_configure` failed, and
//! `fail_open` is then unknown anyway: it fails closed), reading the request body (the
//! WAF's, needs `proxy_get_buffer_bytes`, which `on_configure` needs too), and
//! `proxy_send_local_response` failing (the denial itself: it resets the stream).

use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use serde_json::Value;

const ACME: &str = "127.0.0.2";
const STRANGER: &str = "127.0.0.4";
const LB: &str = "127.0.0.9";

/// Partner `acme`, the allow-list on Envoy's `source.address`; metrics per request, so
/// every decision calls `proxy_increment_metric`.
fn config(fail_open: bool) -> String {
    format!(
        r#"{{"fail_open": {fail_open}, "metrics": {{"flush_interval_ms": 0}},
          "partners": [{{"name": "acme", "cidrs": ["{ACME}/32"]}}],
          "ip_allowlist": {{"client_ip": {{"source": "peer"}}}}}}"#
    )
}

#[track_caller]
fn assert_internal_error(r: &Response) {
    assert_eq!(
        r.status,
        403,
        "expected the internal-error reply: {}",
        r.text()
    );
    assert_eq!(
        r.header("x-echo"),
        None,
        "a failed request reached upstream"
    );
    assert_eq!(r.json(), serde_json::json!({"reason": "internal_error"}));
}

#[track_caller]
fn assert_upstream(r: &Response) {
    assert_eq!(r.status, 200, "expected to reach upstream: {}", r.text());
    assert_eq!(
        r.header("x-echo"),
        Some("1"),
        "not answered by the upstream"
    );
}

#[track_caller]
fn assert_denied(r: &Response, reason: &str) {
    assert_eq!(r.status, 403, "expected a denial: {}", r.text());
    assert_eq!(
        r.header("x-echo"),
        None,
        "a denied request reached upstream"
    );
    let body = r.json();
    assert_eq!(body["reason"], Value::from(reason), "{body}");
}

/// Envoy with `call` refused, for fail_open false then true.
fn envoys(cfg: impl Fn(bool) -> EnvoyConfig) -> Vec<(bool, Envoy)> {
    let envoys = Envoy::start_many(&[cfg(false), cfg(true)]);
    [false, true].into_iter().zip(envoys).collect()
}

/// The host call fails on every request: fail closed denies partners and strangers alike
/// with `internal_error`; `fail_open` lets both through. Logged with the call's name.
fn internal_error_on_every_request(call: &str, doing: &str) {
    let es = envoys(|open| EnvoyConfig::with_plugin(&config(open)).restrict_host_calls(&[call]));
    for (fail_open, envoy) in &es {
        let at = envoy.addr();
        // Twice: the VM survives the failure.
        for _ in 0..2 {
            for who in [ACME, STRANGER] {
                let r = Request::get("/api").from(who).send(at);
                if *fail_open {
                    assert_upstream(&r);
                } else {
                    assert_internal_error(&r);
                }
            }
        }
        let log = envoy.wait_for_log(&format!("{doing}: {call} failed: InternalFailure (10)"));
        let verdict = if *fail_open {
            "internal error, request allowed (fail_open)"
        } else {
            "internal error, request denied (fail closed)"
        };
        assert!(log.contains(verdict), "fail_open {fail_open}: {log}");
    }
}

#[test]
fn reading_request_headers_fails() {
    internal_error_on_every_request("proxy_get_header_map_pairs", "reading request headers");
}

#[test]
fn reading_a_property_fails() {
    // `source.address` for the allow-list.
    internal_error_on_every_request("proxy_get_property", "reading a property");
}

/// Only an allowed request edits headers (it sets the partner header): a partner gets the
/// internal error (or passes with `fail_open`), a stranger is denied as always.
#[test]
fn editing_request_headers_fails() {
    let call = "proxy_replace_header_map_value";
    let es = envoys(|open| EnvoyConfig::with_plugin(&config(open)).restrict_host_calls(&[call]));
    for (fail_open, envoy) in &es {
        let at = envoy.addr();
        for _ in 0..2 {
            let r = Request::get("/api").from(ACME).send(at);
            if *fail_open {
                assert_upstream(&r);
            } else {
                assert_internal_error(&r);
            }
            assert_denied(
                &Request::get("/api").from(STRANGER).send(at),
                "ip_not_allowed",
            );
        }
        envoy.wait_for_log(&format!(
            "editing request headers: {call} failed: InternalFailure (10)"
        ));
    }
}

/// Counters and the metrics tick are not the request's business: their failures are
/// logged and every decision stays what it is, whatever `fail_open` says.
#[test]
fn tolerated_failures_change_no_decision() {
    for call in [
        "proxy_increment_metric",
        "proxy_set_tick_period_milliseconds",
    ] {
        let flush = if call == "proxy_increment_metric" {
            0
        } else {
            1000
        };
        let es = envoys(|open| {
            let cfg = config(open).replace(
                r#""flush_interval_ms": 0"#,
                &format!(r#""flush_interval_ms": {flush}"#),
            );
            EnvoyConfig::with_plugin(&cfg).restrict_host_calls(&[call])
        });
        for (fail_open, envoy) in &es {
            let at = envoy.addr();
            for _ in 0..2 {
                assert_upstream(&Request::get("/api").from(ACME).send(at));
                assert_denied(
                    &Request::get("/api").from(STRANGER).send(at),
                    "ip_not_allowed",
                );
            }
            let log = envoy.wait_for_log(call);
            assert!(
                !log.contains("internal error"),
                "{call}, fail_open {fail_open}: {log}"
            );
        }
    }
}

/// A client-caused error (an `x-forwarded-for` entry that is not an address) denies with
/// its reason under both settings: `fail_open` passes host failures only.
#[test]
fn request_errors_deny_whatever_fail_open_says() {
    let es = envoys(|open| {
        let cfg = config(open).replace(
            r#"{"source": "peer"}"#,
            r#"{"source": "x_forwarded_for", "trusted_hops": 1}"#,
        );
        EnvoyConfig::with_plugin(&cfg).trusted_hops(1)
    });
    for (fail_open, envoy) in &es {
        let at = envoy.addr();
        let r = Request::get("/api")
            .from(LB)
            .header("x-forwarded-for", "not-an-ip")
            .send(at);
        assert_denied(&r, "client_ip_unknown");
        assert_eq!(
            r.json()["detail"],
            "bad_x_forwarded_for",
            "fail_open {fail_open}"
        );
        let r = Request::get("/api")
            .from(LB)
            .header("x-forwarded-for", ACME)
            .send(at);
        assert_upstream(&r);
    }
}
