//! The WAF in a real Envoy (1.40, V8) with the CRS embedded at build time (Debian's 3.3.4 on
//! a fresh machine), anomaly mode, paranoia level 1: attacks in every place a request carries
//! them are blocked by CRS's 949110 with the detecting rule's id in the denial and in Envoy's
//! access log; benign requests and their bodies reach upstream untouched.

use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};

const LIMIT: usize = 8192;

fn waf_config(mode: &str) -> String {
    format!(
        r#"{{"waf": {{"mode": "{mode}", "request_body": {{"limit_bytes": {LIMIT}, "limit_action": "reject"}}}},
            "metrics": {{"flush_interval_ms": 0}}}}"#
    )
}

fn envoy() -> Envoy {
    Envoy::start(&EnvoyConfig::with_plugin(&waf_config("enforce")))
}

/// Asserts `r` is the WAF's denial by CRS's blocking rule, after `detector` matched.
#[track_caller]
fn assert_blocked(r: &Response, detector: u64) {
    assert_eq!(r.status, 403, "expected a WAF denial, got: {}", r.text());
    assert_eq!(
        r.header("x-echo"),
        None,
        "a blocked request reached upstream"
    );
    let body = r.json();
    assert_eq!(body["check"], "waf", "{body}");
    assert_eq!(body["reason"], "rule_matched", "{body}");
    assert_eq!(body["rule"], 949110, "{body}");
    let ids: Vec<u64> = body["rule_ids"]
        .as_array()
        .expect("rule_ids")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(ids.contains(&detector), "{detector} not in {ids:?}");
    assert!(body["anomaly_score"].as_u64().unwrap_or(0) >= 5, "{body}");
}

#[track_caller]
fn assert_upstream(r: &Response, body_len: usize) {
    assert_eq!(
        r.status,
        200,
        "expected to reach upstream, got: {}",
        r.text()
    );
    assert_eq!(r.header("x-echo"), Some("1"));
    assert_eq!(r.json()["body_len"], body_len, "{}", r.text());
}

#[test]
fn benign_requests_and_their_bodies_reach_upstream() {
    let e = envoy();
    assert_upstream(
        &Request::get("/products?page=2&sort=price").send(e.addr()),
        0,
    );
    let form = b"name=Jane+Doe&email=jane%40example.com&comment=Great+service";
    assert_upstream(
        &Request::post("/contact", "application/x-www-form-urlencoded", form).send(e.addr()),
        form.len(),
    );
    let json = br#"{"user":{"name":"Jane","tags":["a","b"]},"page":2}"#;
    assert_upstream(
        &Request::post("/api/users", "application/json", json).send(e.addr()),
        json.len(),
    );
    // A body sent in many chunks is buffered whole, inspected, and forwarded whole.
    let big = vec![b'a'; 5000];
    let mut chunked = b"data=".to_vec();
    chunked.extend_from_slice(&big);
    assert_upstream(
        &Request::post("/upload", "application/x-www-form-urlencoded", &chunked)
            .chunked(700)
            .send(e.addr()),
        chunked.len(),
    );
}

#[test]
fn attacks_are_blocked_wherever_they_are() {
    let e = envoy();
    // SQL injection in the query string.
    assert_blocked(
        &Request::get("/search?q=1%27%20OR%20%271%27%3D%271").send(e.addr()),
        942100,
    );
    // A scanner's User-Agent header.
    assert_blocked(
        &Request::get("/")
            .header("user-agent", "sqlmap/1.7.2#stable")
            .send(e.addr()),
        913100,
    );
    // XSS in a urlencoded body.
    assert_blocked(
        &Request::post(
            "/comment",
            "application/x-www-form-urlencoded",
            b"text=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        )
        .send(e.addr()),
        941100,
    );
    // XSS in a multipart field.
    let multipart = b"--XyZ\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n<script>alert(document.cookie)</script>\r\n--XyZ--\r\n";
    assert_blocked(
        &Request::post("/profile", "multipart/form-data; boundary=XyZ", multipart).send(e.addr()),
        941100,
    );
    // SQL injection in a JSON body.
    assert_blocked(
        &Request::post(
            "/api/login",
            "application/json",
            br#"{"user":"admin' OR '1'='1' --","password":"x"}"#,
        )
        .send(e.addr()),
        942100,
    );
    // Remote command execution in a chunked body.
    assert_blocked(
        &Request::post(
            "/run",
            "application/x-www-form-urlencoded",
            b"cmd=%3Bcat%20%2Fetc%2Fpasswd",
        )
        .chunked(5)
        .send(e.addr()),
        932160,
    );
    let log = e.wait_for_access_log("portcullis_waf_rule_matched[949110]");
    assert!(
        log.contains("403 portcullis_waf_rule_matched[949110]"),
        "{log}"
    );
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let e = envoy();
    let body = vec![b'a'; LIMIT + 1000];
    let r = Request::post("/upload", "application/octet-stream", &body).send(e.addr());
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["reason"], "request_body_too_large");
    e.wait_for_access_log("413 portcullis_waf_request_body_too_large");
}

#[test]
fn dry_run_logs_what_it_would_block_and_lets_it_through() {
    let e = Envoy::start(&EnvoyConfig::with_plugin(&waf_config("dry_run")));
    let r = Request::get("/search?q=1%27%20OR%20%271%27%3D%271").send(e.addr());
    assert_upstream(&r, 0);
    let log = e.wait_for_log("dry-run, would deny check=waf");
    assert!(log.contains("rule=949110"), "{log}");
}
