//! The release portcullis filter (`scripts/build-filter`, or `$PORTCULLIS_WASM` when set)
//! driven through the harness the way Envoy drives it: the IP allow-list and the glue
//! around it (partner header, denial reply, response code details, logs, metrics,
//! configuration errors, fail-closed on a missing peer address).

use std::sync::OnceLock;
use std::time::Duration;

use portcullis_harness::{Action, Error, Host, LogLevel, StreamProps, StreamRecord, Vm, VmConfig};

const PARTNERS: &str = r#"[
    {"name": "acme", "cidrs": ["203.0.113.0/24", "2001:db8:ac::/48"]},
    {"name": "globex", "cidrs": ["198.51.100.0/24"], "path_prefixes": ["/globex/"]}
]"#;

/// A host of its own per test (own metrics), all sharing one compiled module
/// (compiling the release filter takes a while).
fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| portcullis_harness::release::release_host().expect("the release filter loads"))
        .fork()
}

fn config(ip_allowlist: &str) -> String {
    format!(r#"{{"partners": {PARTNERS}, "ip_allowlist": {ip_allowlist}}}"#)
}

fn start(host: &Host, cfg: &str) -> Vm {
    host.start_vm(VmConfig {
        plugin_configuration: cfg.as_bytes().to_vec(),
        plugin_name: "istio-system.portcullis".into(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("start_vm: {e}"))
}

fn peer_vm(host: &Host) -> Vm {
    start(host, &config(r#"{"client_ip": {"source": "peer"}}"#))
}

fn from(addr: &str) -> StreamProps {
    StreamProps::default().source(addr.parse().unwrap())
}

/// Sends a GET for `path` with `extra` headers; returns the action and the record.
fn get(
    vm: &mut Vm,
    props: StreamProps,
    path: &str,
    extra: &[(&str, &str)],
) -> (Action, StreamRecord) {
    let mut headers = vec![
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "api.example.com"),
        (":path", path),
    ];
    headers.extend_from_slice(extra);
    let mut s = vm.http_stream(props).unwrap();
    let action = s.request_headers(&headers, true).unwrap();
    if action == Action::Continue {
        assert_eq!(
            s.response_headers([(":status", "200")], true).unwrap(),
            Action::Continue
        );
    }
    (action, s.finish().unwrap())
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
}

/// The log line starting with `prefix`, which must also hold every `field` (`key=value`).
fn assert_logged(r: &StreamRecord, prefix: &str, fields: &[&str]) {
    let line = r
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .find(|m| m.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}: {:?}", r.logs));
    for f in fields {
        assert!(
            line.split(' ').any(|w| w == *f),
            "{f:?} missing in {line:?}"
        );
    }
}

/// Counters reach the host on the filter's tick (`metrics.flush_interval_ms`, 1 s by
/// default): advance the virtual clock past it.
fn flush_metrics(vm: &mut Vm) {
    assert_eq!(vm.tick_period(), Some(Duration::from_secs(1)));
    vm.advance_time(Duration::from_secs(1)).expect("tick");
}

fn metric_name(decision: &str, reason: &str, partner: &str) -> String {
    format!("portcullis.check.ip_allowlist.decision.{decision}.reason.{reason}.partner.{partner}")
}

#[test]
fn configuration_is_loaded_at_start() {
    let host = host();
    let vm = peer_vm(&host);
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.level == LogLevel::Info && l.message == "configuration loaded (2 partners)"),
        "{:?}",
        vm.logs()
    );
}

#[test]
fn peer_in_partner_network_is_allowed_and_named_upstream() {
    let host = host();
    let mut vm = peer_vm(&host);
    for (addr, partner) in [
        ("203.0.113.9:40000", "acme"),
        ("[2001:db8:ac::7]:40000", "acme"),
    ] {
        let (action, r) = get(&mut vm, from(addr), "/orders", &[]);
        assert_eq!(action, Action::Continue, "{addr}: {:?}", r.logs);
        assert_eq!(r.local_reply, None);
        assert_eq!(r.request_header("x-portcullis-partner"), Some(partner));
        assert_eq!(r.response_header(":status"), Some("200"));
    }
    // globex may reach only /globex/.
    let (action, r) = get(&mut vm, from("198.51.100.20:1"), "/globex/report", &[]);
    assert_eq!(action, Action::Continue);
    assert_eq!(r.request_header("x-portcullis-partner"), Some("globex"));
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "acme")),
        Some(2)
    );
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "globex")),
        Some(1)
    );
}

#[test]
fn forged_partner_header_is_overwritten_or_removed() {
    let host = host();
    let mut vm = start(
        &host,
        &config(
            r#"{"client_ip": {"source": "peer"}, "scope": "routes",
                "protected_routes": [{"path_prefixes": ["/partner-api/"]}]}"#,
        ),
    );
    let forged = [("x-portcullis-partner", "globex")];
    // A partner: the forged value is replaced by the real partner (one value only).
    let (action, r) = get(&mut vm, from("203.0.113.9:1"), "/partner-api/x", &forged);
    assert_eq!(action, Action::Continue);
    let values: Vec<_> = r
        .request_headers
        .iter()
        .filter(|(k, _)| k == "x-portcullis-partner")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(values, ["acme"]);
    // Not a partner, public route: passes, the forged header is removed.
    let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/public", &forged);
    assert_eq!(action, Action::Continue);
    assert_eq!(r.request_header("x-portcullis-partner"), None);
    assert_eq!(r.request_header(":path"), Some("/public"));
}

#[test]
fn peer_outside_partner_networks_is_denied_with_a_json_reply() {
    let host = host();
    let mut vm = peer_vm(&host);
    let (action, r) = get(
        &mut vm,
        from("192.0.2.1:5555"),
        "/orders?id=1",
        &[("x-request-id", "req-123")],
    );
    assert_eq!(action, Action::LocalReply);
    let reply = r.local_reply.clone().expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "portcullis_ip_allowlist_ip_not_allowed");
    assert!(reply
        .headers
        .contains(&("content-type".to_string(), "application/json".to_string())));
    assert_eq!(
        json(&reply.body),
        serde_json::json!({
            "reason": "ip_not_allowed",
            "check": "ip_allowlist",
            "request_id": "req-123",
        })
    );
    // Envoy runs the local reply through the response path.
    assert_eq!(r.response_header(":status"), Some("403"));
    assert_eq!(r.response_body, reply.body);
    assert_logged(
        &r,
        "denied ",
        &[
            "check=ip_allowlist",
            "reason=ip_not_allowed",
            "client_ip=192.0.2.1",
            "partner=none",
            "authority=\"api.example.com\"",
            "path=\"/orders?id=1\"",
            "request_id=req-123",
        ],
    );
    // Without x-request-id the body has no request_id.
    let (_, r) = get(&mut vm, from("192.0.2.1:5555"), "/", &[]);
    let body = json(&r.local_reply.unwrap().body);
    assert_eq!(body.get("request_id"), None);
    assert_eq!(body["reason"], "ip_not_allowed");

    let name = metric_name("denied", "ip_not_allowed", "none");
    flush_metrics(&mut vm);
    assert_eq!(host.metric(&name), Some(2));
    let m = host.metrics().into_iter().find(|m| m.name == name).unwrap();
    assert_eq!(
        m.envoy_name(),
        "wasmcustom.portcullis.check.ip_allowlist.decision.denied.reason.ip_not_allowed.partner.none"
    );
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "acme")),
        None
    );
}

#[test]
fn partner_outside_its_routes_is_denied() {
    let host = host();
    let mut vm = peer_vm(&host);
    let (action, r) = get(&mut vm, from("198.51.100.20:1"), "/orders", &[]);
    assert_eq!(action, Action::LocalReply);
    let reply = r.local_reply.unwrap();
    assert_eq!(
        reply.details,
        "portcullis_ip_allowlist_partner_not_allowed_here"
    );
    assert_eq!(json(&reply.body)["reason"], "partner_not_allowed_here");
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("denied", "partner_not_allowed_here", "none")),
        Some(1)
    );
}

#[test]
fn missing_source_address_fails_closed() {
    let host = host();
    let mut vm = peer_vm(&host);
    let (action, r) = get(&mut vm, StreamProps::default(), "/", &[]);
    assert_eq!(action, Action::LocalReply);
    let reply = r.local_reply.clone().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "portcullis_ip_allowlist_client_ip_unknown");
    let body = json(&reply.body);
    assert_eq!(body["reason"], "client_ip_unknown");
    assert_eq!(body["detail"], "no_peer_address");
    assert_logged(
        &r,
        "denied ",
        &["reason=client_ip_unknown", "client_ip=unknown"],
    );
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("denied", "client_ip_unknown", "none")),
        Some(1)
    );
}

#[test]
fn x_forwarded_for_with_trusted_hops() {
    let host = host();
    let mut vm = start(
        &host,
        &config(r#"{"client_ip": {"source": "x_forwarded_for", "trusted_hops": 1}}"#),
    );
    // The peer (a load balancer) is not a partner; the client left of the trusted hop is.
    let lb = || from("10.0.0.2:443");
    let (action, r) = get(
        &mut vm,
        lb(),
        "/",
        &[("x-forwarded-for", "203.0.113.9, 10.0.0.2")],
    );
    assert_eq!(action, Action::Continue, "{:?}", r.logs);
    assert_eq!(r.request_header("x-portcullis-partner"), Some("acme"));
    // Several header lines form one list.
    let (action, _) = get(
        &mut vm,
        lb(),
        "/",
        &[
            ("x-forwarded-for", "192.0.2.50"),
            ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
        ],
    );
    assert_eq!(action, Action::Continue);
    // A client-written partner address further left does not count.
    let (action, r) = get(
        &mut vm,
        lb(),
        "/",
        &[("x-forwarded-for", "203.0.113.9, 192.0.2.1, 10.0.0.2")],
    );
    assert_eq!(action, Action::LocalReply);
    assert_logged(
        &r,
        "denied ",
        &["reason=ip_not_allowed", "client_ip=192.0.2.1"],
    );
    // Too short / missing: client IP unknown, denied.
    for (xff, detail) in [
        (Some("10.0.0.2"), "x_forwarded_for_too_short"),
        (None, "no_x_forwarded_for"),
        (Some("1.2.3.4:80, 10.0.0.2"), "bad_x_forwarded_for"),
    ] {
        let extra: Vec<(&str, &str)> = xff.map(|v| ("x-forwarded-for", v)).into_iter().collect();
        let (action, r) = get(&mut vm, lb(), "/", &extra);
        assert_eq!(action, Action::LocalReply, "{xff:?}");
        let body = json(&r.local_reply.unwrap().body);
        assert_eq!(body["reason"], "client_ip_unknown", "{xff:?}");
        assert_eq!(body["detail"], detail, "{xff:?}");
    }
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "acme")),
        Some(2)
    );
    assert_eq!(
        host.metric(&metric_name("denied", "client_ip_unknown", "none")),
        Some(3)
    );
}

#[test]
fn scope_routes_leaves_other_routes_public() {
    let host = host();
    let mut vm = start(
        &host,
        &config(
            r#"{"client_ip": {"source": "peer"}, "scope": "routes",
                "protected_routes": [{"path_prefixes": ["/partner-api/"]}]}"#,
        ),
    );
    let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/public/index.html", &[]);
    assert_eq!(action, Action::Continue);
    assert_eq!(r.local_reply, None);
    let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/partner-api/orders", &[]);
    assert_eq!(action, Action::LocalReply);
    assert_eq!(r.local_reply.unwrap().status, 403);
    let (action, r) = get(&mut vm, from("203.0.113.1:1"), "/partner-api/orders", &[]);
    assert_eq!(action, Action::Continue);
    assert_eq!(r.request_header("x-portcullis-partner"), Some("acme"));
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("public", "unprotected_route", "none")),
        Some(1)
    );
    assert_eq!(
        host.metric(&metric_name("denied", "ip_not_allowed", "none")),
        Some(1)
    );
}

#[test]
fn dry_run_passes_and_logs_what_it_would_deny() {
    let host = host();
    let mut vm = start(
        &host,
        &config(r#"{"client_ip": {"source": "peer"}, "mode": "dry_run"}"#),
    );
    let (action, r) = get(
        &mut vm,
        from("192.0.2.1:1"),
        "/admin",
        &[("x-request-id", "r1"), ("x-portcullis-partner", "acme")],
    );
    assert_eq!(action, Action::Continue);
    assert_eq!(r.local_reply, None);
    assert_eq!(r.response_header(":status"), Some("200"));
    assert_eq!(
        r.request_header("x-portcullis-partner"),
        None,
        "forged header kept"
    );
    assert_logged(
        &r,
        "dry-run, would deny ",
        &[
            "check=ip_allowlist",
            "reason=ip_not_allowed",
            "client_ip=192.0.2.1",
            "request_id=r1",
        ],
    );
    let (action, r) = get(&mut vm, from("203.0.113.9:1"), "/admin", &[]);
    assert_eq!(action, Action::Continue);
    assert!(!r.logged("would deny"), "{:?}", r.logs);
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("dry_run_denied", "ip_not_allowed", "none")),
        Some(1)
    );
    assert_eq!(
        host.metric(&metric_name("denied", "ip_not_allowed", "none")),
        None
    );
}

#[test]
fn denial_status_and_reason_header_follow_the_config() {
    let host = host();
    let cfg = format!(
        r#"{{"partners": {PARTNERS}, "ip_allowlist": {{"client_ip": {{"source": "peer"}}}},
            "denial": {{"status": 451, "body": "go away\n", "reason_header": "x-portcullis-reason"}}}}"#
    );
    let mut vm = start(&host, &cfg);
    let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/", &[]);
    assert_eq!(action, Action::LocalReply);
    let reply = r.local_reply.unwrap();
    assert_eq!(reply.status, 451);
    assert_eq!(reply.body_str(), "go away\n");
    assert_eq!(reply.details, "portcullis_ip_allowlist_ip_not_allowed");
    assert_eq!(
        reply
            .headers
            .iter()
            .find(|(k, _)| k == "x-portcullis-reason")
            .map(|(_, v)| v.as_str()),
        Some("ip_not_allowed; check=ip_allowlist")
    );
}

#[test]
fn bad_config_fails_the_vm_start_with_the_log_line() {
    let host = host();
    let cfg = r#"{"partners": [{"name": "a", "cidrs": ["10.0.0.0/33"]}],
                  "ip_allowlist": {"client_ip": {"source": "peer"}}}"#;
    match host.start_vm(VmConfig {
        plugin_configuration: cfg.as_bytes().to_vec(),
        ..Default::default()
    }) {
        Err(e @ Error::StartFailed { .. }) => {
            let Error::StartFailed { callback, logs } = &e else {
                unreachable!()
            };
            assert_eq!(*callback, "proxy_on_configure");
            let line = logs
                .iter()
                .find(|l| l.level == LogLevel::Error)
                .unwrap_or_else(|| panic!("no error log: {logs:?}"));
            assert!(
                line.message.starts_with(
                    "invalid configuration: /partners/0/cidrs/0: \"10.0.0.0/33\" is not a CIDR (prefix length 33 > 32)"
                ),
                "{}",
                line.message
            );
            assert!(
                e.to_string()
                    .contains("/partners/0/cidrs/0: \"10.0.0.0/33\" is not a CIDR"),
                "{e}"
            );
        }
        Err(e) => panic!("expected StartFailed, got {e}"),
        Ok(_) => panic!("expected StartFailed, the VM started"),
    }
    // An unknown field is an error too; an empty configuration as well.
    for (cfg, want) in [
        (
            r#"{"partners": [], "ip_allowlst": {}}"#,
            "unknown field `ip_allowlst`",
        ),
        ("", "the configuration is empty"),
    ] {
        let err = host
            .start_vm(VmConfig {
                plugin_configuration: cfg.as_bytes().to_vec(),
                ..Default::default()
            })
            .err()
            .unwrap_or_else(|| panic!("{cfg:?} started"));
        assert!(err.to_string().contains(want), "{cfg:?}: {err}");
    }
}

#[test]
fn many_streams_on_one_vm_count_exactly() {
    let host = host();
    let mut vm = peer_vm(&host);
    for i in 0..500u32 {
        let addr = if i % 2 == 0 {
            "203.0.113.9:1"
        } else {
            "192.0.2.1:1"
        };
        let (action, _) = get(&mut vm, from(addr), "/", &[]);
        let want = if i % 2 == 0 {
            Action::Continue
        } else {
            Action::LocalReply
        };
        assert_eq!(action, want, "stream {i}");
    }
    // Summed in the filter: nothing reached the host before the tick.
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "acme")),
        None
    );
    flush_metrics(&mut vm);
    assert_eq!(
        host.metric(&metric_name("allowed", "partner_network", "acme")),
        Some(250)
    );
    assert_eq!(
        host.metric(&metric_name("denied", "ip_not_allowed", "none")),
        Some(250)
    );
    assert!(vm.failure().is_none());
}

#[test]
fn flush_interval_zero_counts_on_every_request() {
    let host = host();
    let cfg = format!(
        r#"{{"partners": {PARTNERS}, "ip_allowlist": {{"client_ip": {{"source": "peer"}}}}, "metrics": {{"flush_interval_ms": 0}}}}"#
    );
    let mut vm = start(&host, &cfg);
    assert_eq!(vm.tick_period(), None, "no timer when counting per request");
    let (action, _) = get(&mut vm, from("192.0.2.1:1"), "/", &[]);
    assert_eq!(action, Action::LocalReply);
    assert_eq!(
        host.metric(&metric_name("denied", "ip_not_allowed", "none")),
        Some(1)
    );
}

/// A request header value that is not UTF-8 (Envoy's HTTP/1 codec passes `obs-text`
/// bytes such as Latin-1 through to filters): the filter decides the request — a partner
/// is let through, a stranger denied — and never traps, with the allow-list reading the
/// peer address and the WAF-free config reading every header.
#[test]
fn a_non_utf8_header_value_is_decided_never_trapped() {
    let host = host();
    let mut vm = peer_vm(&host);
    for (source, allowed) in [("203.0.113.7:5000", true), ("192.0.2.1:5000", false)] {
        let mut s = vm.http_stream(from(source)).unwrap();
        let headers: [(&str, &[u8]); 6] = [
            (":method", b"GET"),
            (":scheme", b"https"),
            (":authority", b"api.example.com"),
            (":path", b"/v1/items"),
            ("user-agent", b"caf\xe9 \xff\xfe client"),
            ("x-forwarded-for", b"\xc3\x28, 203.0.113.7"),
        ];
        let action = s
            .request_headers_bytes(headers, true)
            .unwrap_or_else(|e| panic!("the filter must not fail on bytes ({source}): {e}"));
        if allowed {
            assert_eq!(action, Action::Continue, "{source}");
            s.response_headers([(":status", "200")], true).unwrap();
        } else {
            assert_eq!(action, Action::LocalReply, "{source}");
        }
        let rec = s.finish().unwrap();
        assert_eq!(rec.local_reply.is_none(), allowed, "{source}: {rec:?}");
        assert!(
            vm.failure().is_none(),
            "the VM did not fail: {:?}",
            vm.failure()
        );
    }
}
