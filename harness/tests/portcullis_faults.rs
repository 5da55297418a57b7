//! The release filter with failing host calls (`Vm::fail_host_call`): every failure takes
//! the path the glue claims — an internal error that fails closed (403) unless
//! `fail_open`, or a logged and tolerated one — and none traps the VM. Also the request's
//! own faults (a client certificate that does not parse) that must deny whatever
//! `fail_open` says.

use std::sync::OnceLock;

use portcullis_harness::{Action, Host, Status, StreamProps, StreamRecord, TlsInfo, Vm, VmConfig};

fn host() -> Host {
    static H: OnceLock<Host> = OnceLock::new();
    H.get_or_init(|| portcullis_harness::release::release_host().expect("the release filter loads"))
        .fork()
}

/// Partners, a route-scoped allow-list (so `/public` passes and strips a forged partner
/// header), and an authorization block that reads the client certificate.
fn config(fail_open: bool, flush_ms: u32) -> String {
    format!(
        r#"{{"fail_open": {fail_open}, "metrics": {{"flush_interval_ms": {flush_ms}}},
          "partners": [{{"name": "acme", "cidrs": ["203.0.113.0/24"]}}],
          "ip_allowlist": {{"client_ip": {{"source": "peer"}}, "scope": "routes",
            "protected_routes": [{{"path_prefixes": ["/partner-api/"]}}]}},
          "authorization": {{"policies": [{{"name": "no-evil", "spec": {{"action": "DENY",
            "rules": [{{"from": [{{"source": {{"principals": ["evil.example/*"]}}}}]}}]}}}}]}}}}"#
    )
}

fn start(fail_open: bool) -> (Host, Vm) {
    start_with(fail_open, 0, Vec::new())
}

fn start_with(fail_open: bool, flush_ms: u32, faults: Vec<(String, Status)>) -> (Host, Vm) {
    let host = host();
    let vm = host
        .start_vm(VmConfig {
            plugin_configuration: config(fail_open, flush_ms).into_bytes(),
            host_call_faults: faults,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("start_vm: {e}"));
    (host, vm)
}

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
    (action, s.finish().unwrap())
}

fn from(addr: &str) -> StreamProps {
    StreamProps::default().source(addr.parse().unwrap())
}

const INTERNAL: &str = "portcullis_internal_error";

/// The request with `call` failing: the VM survives; fail closed answers 403
/// `internal_error`, `fail_open` lets it through; the counter says which.
fn internal_error_path(
    call: &str,
    props: impl Fn() -> StreamProps,
    path: &str,
    extra: &[(&str, &str)],
) {
    for fail_open in [false, true] {
        let (host, mut vm) = start(fail_open);
        // Sanity: without the fault the request is allowed (so a 403 below is the fault's).
        let (action, r) = get(&mut vm, props(), path, extra);
        assert_eq!(action, Action::Continue, "{call}: {:?}", r.logs);
        vm.fail_host_call(call, Status::InternalFailure);
        let (action, r) = get(&mut vm, props(), path, extra);
        vm.clear_host_call_faults();
        assert_eq!(vm.failure(), None, "{call} trapped the VM");
        let want = if fail_open {
            "allowed (fail_open)"
        } else {
            "denied (fail closed)"
        };
        assert!(
            r.logs.iter().any(|l| l
                .message
                .starts_with(&format!("internal error, request {want}"))
                && l.message.contains(call)),
            "{call}, fail_open {fail_open}: {:?}",
            r.logs
        );
        if fail_open {
            assert_eq!(action, Action::Continue, "{call}");
            assert_eq!(r.local_reply, None);
        } else {
            assert_eq!(action, Action::LocalReply, "{call}");
            let reply = r.local_reply.expect("a 403");
            assert_eq!(
                (reply.status, reply.details.as_str()),
                (403, INTERNAL),
                "{call}"
            );
        }
        let decision = if fail_open { "allowed" } else { "denied" };
        assert_eq!(
            host.metric(&format!(
                "portcullis.check.internal.decision.{decision}.reason.internal_error.partner.none"
            )),
            Some(1),
            "{call}"
        );
        // The VM goes on serving.
        let (action, _) = get(&mut vm, props(), path, extra);
        assert_eq!(action, Action::Continue, "{call}: after the fault");
    }
}

#[test]
fn failing_header_map_read_is_an_internal_error() {
    internal_error_path(
        "proxy_get_header_map_pairs",
        || from("203.0.113.9:1"),
        "/partner-api/x",
        &[],
    );
}

#[test]
fn failing_property_read_is_an_internal_error() {
    internal_error_path(
        "proxy_get_property",
        || from("203.0.113.9:1"),
        "/partner-api/x",
        &[],
    );
}

#[test]
fn failing_partner_header_set_is_an_internal_error() {
    internal_error_path(
        "proxy_replace_header_map_value",
        || from("203.0.113.9:1"),
        "/partner-api/x",
        &[],
    );
}

#[test]
fn failing_forged_header_removal_is_an_internal_error() {
    internal_error_path(
        "proxy_remove_header_map_value",
        || from("192.0.2.1:1"),
        "/public",
        &[("x-portcullis-partner", "acme")],
    );
}

#[test]
fn failing_local_reply_resets_the_request() {
    for fail_open in [false, true] {
        let (_host, mut vm) = start(fail_open);
        vm.fail_host_call("proxy_send_local_response", Status::InternalFailure);
        let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/partner-api/x", &[]);
        assert_eq!(vm.failure(), None);
        assert_eq!(
            action,
            Action::Reset,
            "the denied request must be closed: {:?}",
            r.logs
        );
        assert_eq!(r.local_reply, None);
        assert!(r.reset);
        // And if even that fails, the VM still lives (the host times the stream out).
        vm.fail_host_call("proxy_close_stream", Status::InternalFailure);
        let (action, _) = get(&mut vm, from("192.0.2.1:1"), "/partner-api/x", &[]);
        assert_eq!((action, vm.failure()), (Action::Pause, None));
    }
}

#[test]
fn failing_logs_and_metrics_never_change_a_decision() {
    let (host, mut vm) = start(false);
    for call in ["proxy_log", "proxy_define_metric", "proxy_increment_metric"] {
        vm.fail_host_call(call, Status::InternalFailure);
    }
    let (action, r) = get(&mut vm, from("192.0.2.1:1"), "/partner-api/x", &[]);
    assert_eq!(vm.failure(), None);
    assert_eq!(action, Action::LocalReply);
    assert_eq!(r.local_reply.map(|l| l.status), Some(403));
    let (action, _) = get(&mut vm, from("203.0.113.9:1"), "/partner-api/x", &[]);
    assert_eq!(action, Action::Continue);
    // A count that could not be defined is kept and handed over once the host works.
    vm.clear_host_call_faults();
    let (action, _) = get(&mut vm, from("203.0.113.9:1"), "/partner-api/x", &[]);
    assert_eq!(action, Action::Continue);
    assert_eq!(
        host.metric(
            "portcullis.check.ip_allowlist.decision.allowed.reason.partner_network.partner.acme"
        ),
        Some(2)
    );
}

#[test]
fn failing_tick_period_counts_per_request() {
    let (host, mut vm) = start_with(
        false,
        1000,
        vec![(
            "proxy_set_tick_period_milliseconds".into(),
            Status::InternalFailure,
        )],
    );
    assert_eq!(vm.failure(), None);
    assert!(
        vm.logs()
            .iter()
            .any(|l| l.message.starts_with("cannot set the metrics tick")),
        "{:?}",
        vm.logs()
    );
    let (action, _) = get(&mut vm, from("203.0.113.9:1"), "/partner-api/x", &[]);
    assert_eq!(action, Action::Continue);
    // No tick: counted at once.
    assert_eq!(
        host.metric(
            "portcullis.check.ip_allowlist.decision.allowed.reason.partner_network.partner.acme"
        ),
        Some(1)
    );
}

#[test]
fn failing_configuration_read_fails_the_start_with_a_log_line() {
    let err = host()
        .start_vm(VmConfig {
            plugin_configuration: config(false, 0).into_bytes(),
            host_call_faults: vec![("proxy_get_buffer_bytes".into(), Status::InternalFailure)],
            ..Default::default()
        })
        .err()
        .expect("the start fails");
    assert!(
        err.to_string()
            .contains("cannot read the plugin configuration"),
        "{err}"
    );
}

/// A certificate that does not parse is the client's fault: denied with the reason,
/// under `fail_open` too (it used to be an internal error that `fail_open` let through).
#[test]
fn unparsable_client_certificate_denies_even_with_fail_open() {
    let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for fail_open in [false, true] {
        let (_host, mut vm) = start(fail_open);
        let props = from("192.0.2.1:1").tls(TlsInfo {
            mtls: true,
            peer_certificate: Some(bad.into()),
            ..Default::default()
        });
        let (action, r) = get(&mut vm, props, "/public", &[]);
        assert_eq!(vm.failure(), None);
        assert_eq!(
            action,
            Action::LocalReply,
            "fail_open {fail_open}: {:?}",
            r.logs
        );
        let reply = r.local_reply.expect("a denial");
        assert_eq!(reply.status, 403);
        assert_eq!(reply.details, "portcullis_authorization_identity_invalid");
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["detail"], "peer_certificate_not_x509");
    }
}
