//! The release filter's authorization through the harness: principals from the whole
//! client certificate (a later SAN), DENY and ALLOW with Envoy's policy names in the
//! reply, XFCC stripped when the identity is the connection's, XFCC as the identity, and
//! hostile sizes (a huge `x-forwarded-for`, a huge XFCC) answered without a trap.

use std::sync::OnceLock;

use portcullis_harness::{Action, Host, StreamProps, StreamRecord, TlsInfo, Vm, VmConfig};

const PARTNER_A: &str = include_str!("../../filter/src/authz/testdata/partner-a.pem");

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

fn plain() -> StreamProps {
    StreamProps::default().source("192.0.2.10:40000".parse().unwrap())
}

fn mtls() -> StreamProps {
    plain().tls(TlsInfo {
        mtls: true,
        peer_certificate: Some(PARTNER_A.into()),
        ..Default::default()
    })
}

const POLICIES: &str = r#"{"authorization": {"policies": [
    {"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}},
    {"name": "second-san", "spec": {"rules": [{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/second"]}}],
        "to": [{"operation": {"methods": ["GET"], "paths": ["/api/*"]}}]}]}}
]}}"#;

#[test]
fn a_later_san_of_the_client_certificate_is_a_principal() {
    let mut vm = start(POLICIES);
    let (action, r) = get(&mut vm, mtls(), "/api/x", &[]);
    assert_eq!(action, Action::Continue, "{:?}", r.logs);
    // No certificate: no ALLOW rule matches.
    let (action, r) = get(&mut vm, plain(), "/api/x", &[]);
    assert_eq!(action, Action::LocalReply);
    let reply = r.local_reply.unwrap();
    assert_eq!(
        reply.details,
        "portcullis_authorization_no_allow_policy_matched"
    );
    // A DENY wins and is named as Envoy names it.
    let (action, r) = get(&mut vm, mtls(), "/admin/../admin/users", &[]);
    assert_eq!(action, Action::LocalReply);
    assert_eq!(
        r.local_reply.unwrap().details,
        "portcullis_authorization_denied_by_policy[ns[istio-system]-policy[deny-admin]-rule[0]]"
    );
    // An unnormalizable path is refused, not matched as written.
    let (action, r) = get(&mut vm, mtls(), "/api/x%00", &[]);
    assert_eq!(action, Action::LocalReply);
    assert_eq!(
        r.local_reply.unwrap().details,
        "portcullis_authorization_path_rejected"
    );
}

#[test]
fn xfcc_is_stripped_unless_it_is_the_identity() {
    let mut vm = start(POLICIES);
    let forged = [(
        "x-forwarded-client-cert",
        "By=spiffe://x;URI=spiffe://cluster.local/ns/default/sa/second",
    )];
    // The connection is the identity: a client-sent XFCC grants nothing and is removed.
    let (action, r) = get(&mut vm, plain(), "/api/x", &forged);
    assert_eq!(action, Action::LocalReply, "{:?}", r.logs);
    let (action, r) = get(&mut vm, mtls(), "/api/x", &forged);
    assert_eq!(action, Action::Continue);
    assert_eq!(r.request_header("x-forwarded-client-cert"), None);
    // XFCC as the identity (a trusted hop in front): kept and used.
    let cfg = POLICIES.replace(
        r#""authorization": {"#,
        r#""authorization": {"identity": {"source": "xfcc"}, "#,
    );
    let mut vm = start(&cfg);
    let (action, r) = get(&mut vm, plain(), "/api/x", &forged);
    assert_eq!(action, Action::Continue, "{:?}", r.logs);
    assert_eq!(
        r.request_header("x-forwarded-client-cert"),
        Some(forged[0].1)
    );
}

#[test]
fn hostile_sizes_are_decided_without_a_trap() {
    // ~60 KiB, Envoy's default header-size limit is 60 KiB in total.
    let xff: String = (0..4000)
        .map(|i| format!("10.{}.{}.1, ", i / 250, i % 250))
        .collect::<String>()
        + "203.0.113.9";
    let cfg = r#"{"partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
        "ip_allowlist": {"client_ip": {"source": "x_forwarded_for", "trusted_hops": 0}}}"#;
    let mut vm = start(cfg);
    let (action, r) = get(&mut vm, plain(), "/", &[("x-forwarded-for", &xff)]);
    assert_eq!(action, Action::Continue, "{:?}", r.logs);
    assert_eq!(vm.failure(), None);
    let (action, _) = get(
        &mut vm,
        plain(),
        "/",
        &[("x-forwarded-for", &(xff.clone() + ", 192.0.2.1"))],
    );
    assert_eq!(action, Action::LocalReply);

    // An XFCC element with thousands of URI pairs: decided (by the cap), no trap.
    let cfg = POLICIES.replace(
        r#""authorization": {"#,
        r#""authorization": {"identity": {"source": "xfcc"}, "#,
    );
    let mut vm = start(&cfg);
    let many: String = (0..3000)
        .map(|i| format!(";URI=spiffe://x/ns/n/sa/s{i}"))
        .collect();
    let xfcc = format!("By=spiffe://gw{many};URI=spiffe://cluster.local/ns/default/sa/second");
    let (action, r) = get(
        &mut vm,
        plain(),
        "/api/x",
        &[("x-forwarded-client-cert", &xfcc)],
    );
    assert_eq!(vm.failure(), None);
    assert_eq!(action, Action::LocalReply, "{:?}", r.logs);
    let reply = r.local_reply.unwrap();
    assert_eq!(reply.details, "portcullis_authorization_identity_invalid");
    let (action, r) = get(
        &mut vm,
        plain(),
        "/api/x",
        &[(
            "x-forwarded-client-cert",
            "By=spiffe://gw;URI=spiffe://cluster.local/ns/default/sa/second",
        )],
    );
    assert_eq!(action, Action::Continue, "{:?}", r.logs);
}
