//! The release filter's WAF glue through the harness: the start-up log names the embedded
//! CRS, and the response phases (`waf.response`, off by default) run CRS's outbound rules on
//! the response headers and the buffered response body, replacing the response on a block.

use std::sync::OnceLock;

use portcullis_harness::{Action, Host, LocalReply, StreamProps, StreamRecord, Vm, VmConfig};

/// One compiled module shared by the tests (compiling the release filter takes a while).
fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| portcullis_harness::release::release_host().expect("the release filter loads"))
        .fork()
}

fn start(cfg: &str) -> Vm {
    host()
        .start_vm(VmConfig {
            plugin_configuration: cfg.as_bytes().to_vec(),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("start_vm: {e}"))
}

/// A directory listing (CRS 950130, phase 4, PL1: outbound score 5, blocked by 959100).
const LISTING: &[u8] = b"<html><head><title>Index of /backup</title></head><body><h1>Index of /backup</h1><ul><li><a href=\"db.sql\">db.sql</a></li></ul></body></html>";
const PAGE: &[u8] = b"<html><body><h1>Welcome</h1></body></html>";

/// A GET answered with `status`, `headers` and `body` (in one chunk, or two when `split`).
fn exchange(
    vm: &mut Vm,
    extra: &[(&str, &str)],
    body: &[u8],
    split: bool,
) -> (Vec<Action>, StreamRecord) {
    let mut s = vm
        .http_stream(StreamProps::default().source("203.0.113.9:40000".parse().unwrap()))
        .unwrap();
    let mut actions = vec![s
        .request_headers(
            [
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "shop.example.com"),
                (":path", "/backup/"),
                ("user-agent", "Mozilla/5.0"),
                ("accept", "text/html"),
                ("x-request-id", "req-7"),
            ],
            true,
        )
        .unwrap()];
    let mut headers = vec![(":status", "200"), ("content-type", "text/html")];
    headers.extend_from_slice(extra);
    actions.push(s.response_headers(headers, body.is_empty()).unwrap());
    if !body.is_empty() {
        if split {
            let (a, b) = body.split_at(body.len() / 2);
            actions.push(s.response_body(a, false).unwrap());
            actions.push(s.response_body(b, true).unwrap());
        } else {
            actions.push(s.response_body(body, true).unwrap());
        }
    }
    (actions, s.finish().unwrap())
}

fn denial(reply: &LocalReply) -> serde_json::Value {
    serde_json::from_slice(&reply.body).expect("a JSON denial body")
}

#[test]
fn start_up_log_names_the_embedded_crs() {
    let vm = start(r#"{"waf": {}}"#);
    let version = portcullis_filter::waf::Waf::crs_version().expect("a CRS embedded");
    let line = vm
        .logs()
        .iter()
        .find(|l| l.message.starts_with("waf: "))
        .unwrap_or_else(|| panic!("no waf line in {:?}", vm.logs()));
    assert!(
        line.message
            .starts_with(&format!("waf: OWASP CRS {version} embedded")),
        "{}",
        line.message
    );
    assert!(
        line.message.contains("response phases off"),
        "{}",
        line.message
    );
    // Without a `waf` section there is no such line.
    let vm = start(r#"{}"#);
    assert!(!vm.logs().iter().any(|l| l.message.starts_with("waf: ")));
}

#[test]
fn response_phases_off_let_a_leak_through() {
    let mut vm = start(r#"{"waf": {}}"#);
    let (actions, rec) = exchange(&mut vm, &[], LISTING, true);
    assert!(
        actions.iter().all(|a| *a == Action::Continue),
        "{actions:?}"
    );
    assert_eq!(rec.local_reply, None);
    assert_eq!(rec.response_body, LISTING);
}

#[test]
fn response_body_leak_is_replaced_by_the_denial() {
    let mut vm = start(r#"{"waf": {"response": {"enabled": true}}}"#);
    // The body is held (paused) until its end, then inspected: 950130 → 959100 blocks.
    let (actions, rec) = exchange(&mut vm, &[], LISTING, true);
    assert_eq!(actions[1], Action::Continue, "response headers go on");
    assert_eq!(actions[2], Action::Pause, "the first chunk is held");
    assert_eq!(actions[3], Action::LocalReply, "{actions:?}");
    let reply = rec.local_reply.as_ref().expect("the response is replaced");
    assert_eq!(reply.status, 403);
    let body = denial(reply);
    assert_eq!(body["rule"], 959100, "{body}");
    let ids: Vec<u64> = body["rule_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    assert!(ids.contains(&950130), "{body}");
    assert_eq!(body["request_id"], "req-7");
    assert_ne!(
        rec.response_body, LISTING,
        "the listing never reaches the client"
    );
    assert!(
        rec.logs.iter().any(|l| l
            .message
            .starts_with("denied check=waf reason=rule_matched rule=959100")),
        "{:?}",
        rec.logs
    );

    // A benign page passes whole.
    let (actions, rec) = exchange(&mut vm, &[], PAGE, false);
    assert_eq!(rec.local_reply, None, "{actions:?}");
    assert_eq!(rec.response_body, PAGE);
}

#[test]
fn a_body_it_does_not_inspect_streams_through() {
    let mut vm = start(r#"{"waf": {"response": {"enabled": true}}}"#);
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(
        [
            (":method", "GET"),
            (":authority", "h"),
            (":path", "/logo.png"),
        ],
        true,
    )
    .unwrap();
    s.response_headers([(":status", "200"), ("content-type", "image/png")], false)
        .unwrap();
    // Not a MIME type phase 4 reads: no buffering, even for a listing-looking body.
    assert_eq!(s.response_body(LISTING, false).unwrap(), Action::Continue);
    assert_eq!(s.response_body(b"", true).unwrap(), Action::Continue);
    assert_eq!(s.finish().unwrap().local_reply, None);
}

#[test]
fn only_the_first_body_limit_bytes_are_inspected() {
    let cfg = r#"{"waf": {"response": {"enabled": true, "body_limit_bytes": 64}}}"#;
    let mut vm = start(cfg);
    // The listing starts after the limit: inspected part is padding, the rest passes.
    let mut body = vec![b' '; 100];
    body.extend_from_slice(LISTING);
    let (actions, rec) = exchange(&mut vm, &[], &body, false);
    assert_eq!(rec.local_reply, None, "{actions:?}");
    assert_eq!(rec.response_body, body);
    // Within the limit it is caught.
    let cfg = r#"{"waf": {"response": {"enabled": true, "body_limit_bytes": 4096}}}"#;
    let mut vm = start(cfg);
    let (_, rec) = exchange(&mut vm, &[], &body, false);
    assert_eq!(rec.local_reply.map(|r| r.status), Some(403));
}

#[test]
fn a_phase_3_rule_replaces_the_response_at_its_headers() {
    let rule = r#"SecRule RESPONSE_HEADERS:X-Debug-Token \"@rx .\" \"id:1003,phase:3,deny,status:502,log,msg:'debug token leaked'\""#;
    let cfg = format!(
        r#"{{"waf": {{"response": {{"enabled": {{ENABLED}}}}, "directives": [
            "Include @recommended.conf", "Include @crs-setup.conf", "Include @owasp_crs/*.conf",
            "{rule}"]}}}}"#
    );
    let mut vm = start(&cfg.replace("{ENABLED}", "true"));
    let (actions, rec) = exchange(&mut vm, &[("x-debug-token", "abc")], PAGE, false);
    assert_eq!(actions[1], Action::LocalReply, "{actions:?}");
    let reply = rec.local_reply.as_ref().unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(denial(reply)["rule"], 1003);
    assert_eq!(denial(reply)["msg"], "debug token leaked");

    // Off: the same rule never runs.
    let mut vm = start(&cfg.replace("{ENABLED}", "false"));
    let (_, rec) = exchange(&mut vm, &[("x-debug-token", "abc")], PAGE, false);
    assert_eq!(rec.local_reply, None);
    assert_eq!(rec.response_body, PAGE);
}

#[test]
fn response_phases_in_dry_run_log_and_pass() {
    let mut vm = start(r#"{"waf": {"mode": "dry_run", "response": {"enabled": true}}}"#);
    let (_, rec) = exchange(&mut vm, &[], LISTING, false);
    assert_eq!(rec.local_reply, None);
    assert_eq!(rec.response_body, LISTING);
    assert!(
        rec.logs.iter().any(|l| l
            .message
            .starts_with("dry-run, would deny check=waf reason=rule_matched rule=959100")),
        "{:?}",
        rec.logs
    );
}
