//! Behaviour tests: Istio/Envoy RBAC semantics (authz.md §1, §6, §8), extensions,
//! identity sources, evasion, validation errors.

use crate::authz::{AuthzVerdict, Lookup};
use crate::engine::{Check, Plan};
use crate::error::{ConfigError, Refusal};
use crate::request::{PeerCertificate, StaticRequest};
use serde_json::{json, Value};

const SLEEP: &str = "spiffe://cluster.local/ns/default/sa/sleep";
const HASH: &str = "3e6c8e1f0c5b2b8a2f3d7c9a1b0e4d6f8a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b";

/// The denial reason of an authorization refusal.
fn reason(error: Option<Refusal>) -> Option<&'static str> {
    error.map(Refusal::reason)
}

/// A plan whose every authorization rule group goes through the index, however small
/// (the filter scans groups under [`Lookup::DEFAULT`]'s size), so these tests exercise it.
fn parse_indexed(json: &[u8]) -> Result<Plan, ConfigError> {
    Plan::parse(json).map(|p| p.with_authz_lookup(Lookup::INDEX_EVERY_GROUP))
}

fn plan_with(authz: Value) -> Plan {
    let cfg = json!({
        "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}, {"name": "globex", "cidrs": ["198.51.100.0/24"]}],
        "authorization": authz,
    });
    match parse_indexed(cfg.to_string().as_bytes()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn plan(policies: Value) -> Plan {
    plan_with(json!({ "policies": policies }))
}

fn cfg_err(authz: Value) -> String {
    let cfg = json!({"partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}], "authorization": authz});
    match parse_indexed(cfg.to_string().as_bytes()) {
        Ok(_) => panic!("accepted: {authz}"),
        Err(e) => e.to_string(),
    }
}

fn allow(spec_rules: Value) -> Value {
    json!([{ "name": "p", "spec": { "rules": spec_rules } }])
}

fn cert(uris: &[&str], dns: &[&str], subject: &str) -> PeerCertificate {
    PeerCertificate {
        uri_sans: uris.iter().map(|s| s.to_string()).collect(),
        dns_sans: dns.iter().map(|s| s.to_string()).collect(),
        subject: subject.into(),
        sha256: Some(HASH.into()),
    }
}

fn req(method: &str, path: &str) -> StaticRequest {
    StaticRequest::new(method, "api.example.com", path, "192.0.2.10:4000")
}

fn mtls(method: &str, path: &str, uri: &str) -> StaticRequest {
    let mut r = req(method, path);
    r.peer_certificate = Some(cert(&[uri], &[], ""));
    r
}

fn allowed(p: &Plan, r: &StaticRequest) -> bool {
    p.evaluate(r).allowed()
}

fn sleep_policy() -> Plan {
    plan(allow(json!([
        {"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}],
         "to": [{"operation": {"methods": ["GET"], "paths": ["/status*"]}}, {"operation": {"methods": ["POST"], "paths": ["/headers"]}}]}
    ])))
}

#[test]
fn seed_sleep_may_get_status_and_post_headers_only() {
    let p = sleep_policy();
    assert!(allowed(&p, &mtls("GET", "/status/200", SLEEP)));
    assert!(allowed(&p, &mtls("POST", "/headers", SLEEP)));
    assert!(!allowed(&p, &mtls("POST", "/status/200", SLEEP)));
    assert!(!allowed(&p, &mtls("GET", "/headers", SLEEP)));
    assert!(!allowed(
        &p,
        &mtls(
            "GET",
            "/status/200",
            "spiffe://cluster.local/ns/default/sa/other"
        )
    ));
    // Plaintext: no principal.
    assert!(!allowed(&p, &req("GET", "/status/200")));
    let d = p.evaluate(&mtls("GET", "/headers", SLEEP));
    let denial = d.denial.unwrap();
    assert_eq!(
        (denial.check, denial.reason, denial.rule),
        (Check::Authorization, "no_allow_policy_matched", None)
    );
}

#[test]
fn no_allow_policy_means_allow_and_deny_wins_over_allow() {
    let p = plan(json!([
        {"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}},
        {"name": "audit-all", "spec": {"action": "AUDIT", "rules": [{}]}}
    ]));
    let d = p.evaluate(&req("GET", "/x"));
    assert!(d.allowed());
    assert_eq!(d.authz.verdict, AuthzVerdict::Allowed);
    assert_eq!(
        d.authz.audit,
        Some("ns[istio-system]-policy[audit-all]-rule[0]")
    );
    let d = p.evaluate(&req("GET", "/admin/users"));
    let denial = d.denial.unwrap();
    assert_eq!(denial.reason, "denied_by_policy");
    assert_eq!(
        p.rule_name(denial.rule.unwrap()),
        Some("ns[istio-system]-policy[deny-admin]-rule[0]")
    );
    // DENY before ALLOW even when an ALLOW rule matches everything.
    let p = plan(json!([
        {"name": "all", "spec": {"rules": [{}]}},
        {"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}}
    ]));
    assert!(!allowed(&p, &req("GET", "/admin")));
    assert!(allowed(&p, &req("GET", "/other")));
}

#[test]
fn empty_spec_allows_nothing_and_empty_rule_allows_everything() {
    let p = plan(json!([{"name": "nothing", "spec": {}}]));
    assert!(!allowed(&p, &req("GET", "/")));
    let p =
        plan(json!([{"name": "nothing", "spec": {}}, {"name": "all", "spec": {"rules": [{}]}}]));
    assert!(allowed(&p, &req("GET", "/")));
    let p = plan(json!([{"name": "deny-all", "spec": {"action": "DENY", "rules": [{}]}}]));
    assert!(!allowed(&p, &req("GET", "/")));
}

#[test]
fn fields_and_values_combine_as_and_of_ors() {
    let p = plan(allow(
        json!([{"to": [{"operation": {"methods": ["GET", "HEAD"], "paths": ["/a", "/b"]}}]}]),
    ));
    assert!(allowed(&p, &req("HEAD", "/b")));
    assert!(!allowed(&p, &req("POST", "/a")));
    assert!(!allowed(&p, &req("GET", "/c")));
    // when: all conditions must hold.
    let p = plan(allow(json!([{"when": [
        {"key": "request.headers[x-a]", "values": ["1"]},
        {"key": "request.headers[X-B]", "notValues": ["bad*"]}
    ]}])));
    assert!(allowed(&p, &req("GET", "/").with_header("x-a", "1")));
    assert!(!allowed(
        &p,
        &req("GET", "/")
            .with_header("x-a", "1")
            .with_header("x-b", "bad-ish")
    ));
    assert!(!allowed(&p, &req("GET", "/")));
}

#[test]
fn istio_pattern_language_per_field() {
    let p = plan(allow(
        json!([{"to": [{"operation": {"paths": ["/exact", "/pre/*", "*.png", "/a*b"]}}]}]),
    ));
    assert!(allowed(&p, &req("GET", "/exact")));
    assert!(!allowed(&p, &req("GET", "/exact/")));
    assert!(allowed(&p, &req("GET", "/pre/x/y")));
    assert!(allowed(&p, &req("GET", "/img/logo.png")));
    // A wildcard in the middle is a literal.
    assert!(!allowed(&p, &req("GET", "/axb")));
    assert!(allowed(&p, &req("GET", "/a*b")));
    // Paths are case-sensitive, hosts are not.
    assert!(!allowed(&p, &req("GET", "/EXACT")));
    let p = plan(allow(
        json!([{"to": [{"operation": {"hosts": ["API.example.com", "*.internal"]}}]}]),
    ));
    assert!(allowed(&p, &req("GET", "/")));
    let mut r = req("GET", "/");
    r.headers = crate::request::Headers::new(vec![
        (":authority".into(), "svc.INTERNAL".into()),
        (":path".into(), "/".into()),
    ]);
    assert!(allowed(&p, &r));
}

#[test]
fn hosts_include_the_port_unless_ignore_port_is_set() {
    let rules = json!([{"to": [{"operation": {"hosts": ["api.example.com"]}}]}]);
    let p = plan(allow(rules.clone()));
    let with_port = StaticRequest::new("GET", "api.example.com:443", "/", "192.0.2.1:1");
    assert!(
        !allowed(&p, &with_port),
        "Istio: the authority is compared as received"
    );
    let p = plan_with(json!({"host_match": "ignore_port", "policies": allow(rules)}));
    assert!(allowed(&p, &with_port));
    assert!(allowed(&p, &req("GET", "/")));
}

#[test]
fn principal_matches_any_uri_san_then_dns_san_then_subject() {
    let p = plan(allow(
        json!([{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}]}]),
    ));
    let mut r = req("GET", "/");
    r.peer_certificate = Some(cert(&["spiffe://other/ns/x/sa/y", SLEEP], &[], "CN=x"));
    assert!(allowed(&p, &r), "the second URI SAN counts");
    r.peer_certificate = Some(cert(&[], &[SLEEP], ""));
    assert!(
        allowed(&p, &r),
        "a DNS SAN is a candidate too (Envoy `authenticated`)"
    );
    r.peer_certificate = Some(cert(&[], &[], SLEEP));
    assert!(allowed(&p, &r), "and the subject");
}

#[test]
fn principal_prefix_suffix_and_presence() {
    let p = plan(allow(
        json!([{"from": [{"source": {"principals": ["cluster.local/ns/team-*"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://cluster.local/ns/team-a/sa/x")
    ));
    assert!(
        !allowed(&p, &mtls("GET", "/", "cluster.local/ns/team-a/sa/x")),
        "spiffe:// is implied"
    );
    // §8: the suffix becomes the unescaped regex `spiffe://.*<x>`: '.' matches any character.
    let p = plan(allow(
        json!([{"from": [{"source": {"principals": ["*partner.example/ns/p/sa/a"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://partner.example/ns/p/sa/a")
    ));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://partner-example/ns/p/sa/a")
    ));
    assert!(!allowed(
        &p,
        &mtls("GET", "/", "https://partner.example/ns/p/sa/a")
    ));
    // `*` needs some non-empty candidate.
    let p = plan(allow(
        json!([{"from": [{"source": {"principals": ["*"]}}]}]),
    ));
    assert!(allowed(&p, &mtls("GET", "/", "anything")));
    let mut r = req("GET", "/");
    r.peer_certificate = Some(cert(&[], &[], ""));
    assert!(!allowed(&p, &r), "§8: no SANs and an empty subject");
    assert!(!allowed(&p, &req("GET", "/")));
}

#[test]
fn not_principals_is_true_on_plaintext() {
    let p = plan(
        json!([{"name": "d", "spec": {"action": "DENY", "rules": [{"from": [{"source": {"notPrincipals": ["cluster.local/ns/default/sa/sleep"]}}]}]}}]),
    );
    assert!(
        !allowed(&p, &req("GET", "/")),
        "plaintext has no principal: NOT(principal) holds"
    );
    assert!(allowed(&p, &mtls("GET", "/", SLEEP)));
    assert!(!allowed(
        &p,
        &mtls("GET", "/", "spiffe://cluster.local/ns/default/sa/x")
    ));
}

#[test]
fn namespaces_match_through_uri_and_subject() {
    let p = plan(allow(
        json!([{"from": [{"source": {"namespaces": ["bookinfo"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://cluster.local/ns/bookinfo/sa/x")
    ));
    assert!(!allowed(
        &p,
        &mtls("GET", "/", "spiffe://cluster.local/ns/default/sa/x")
    ));
    let mut r = req("GET", "/");
    r.peer_certificate = Some(cert(&[], &[], "CN=a/ns/bookinfo/b"));
    assert!(
        allowed(&p, &r),
        "§8: the subject is a candidate even for namespaces"
    );
}

#[test]
fn trust_domain_aliases_expand_local_principals() {
    let rules =
        json!([{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}]}]);
    let p = plan_with(
        json!({"trust_domain": "west.example", "trust_domain_aliases": ["east.example"], "policies": allow(rules)}),
    );
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://west.example/ns/default/sa/sleep")
    ));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://east.example/ns/default/sa/sleep")
    ));
    assert!(!allowed(
        &p,
        &mtls("GET", "/", "spiffe://north.example/ns/default/sa/sleep")
    ));
    // cluster.local itself is a pointer to the local domain, not kept verbatim.
    assert!(!allowed(&p, &mtls("GET", "/", SLEEP)));
    // Foreign trust domains are kept as written.
    let rules =
        json!([{"from": [{"source": {"principals": ["north.example/ns/default/sa/sleep"]}}]}]);
    let p = plan_with(json!({"trust_domain_aliases": ["east.example"], "policies": allow(rules)}));
    assert!(allowed(
        &p,
        &mtls("GET", "/", "spiffe://north.example/ns/default/sa/sleep")
    ));
    assert!(!allowed(
        &p,
        &mtls("GET", "/", "spiffe://east.example/ns/default/sa/sleep")
    ));
}

#[test]
fn ip_blocks_and_remote_ip_blocks() {
    let p = plan(allow(
        json!([{"from": [{"source": {"remoteIpBlocks": ["192.0.2.0/24"], "notRemoteIpBlocks": ["192.0.2.66"]}}]}]),
    ));
    assert!(allowed(&p, &req("GET", "/")));
    assert!(!allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "192.0.2.66:1")
    ));
    assert!(!allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "198.51.100.1:1")
    ));
    // ipBlocks via the last XFF entry (opt-in), outside Envoy's own addresses.
    let rules = json!([{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]);
    let p = plan_with(json!({"direct_peer": "last_forwarded_for",
        "envoy_local_addresses": ["192.0.2.2"], "policies": allow(rules.clone())}));
    let r = StaticRequest::new("GET", "h", "/", "203.0.113.5:0")
        .with_header("x-forwarded-for", "203.0.113.5, 10.1.2.3");
    assert!(allowed(&p, &r));
    // Without envoy_local_addresses 10.1.2.3 might stand for a loopback peer.
    let p =
        plan_with(json!({"direct_peer": "last_forwarded_for", "policies": allow(rules.clone())}));
    assert_eq!(
        reason(p.evaluate(&r).authz.error),
        Some("direct_peer_uncertain")
    );
    // Default: ipBlocks read source.address, which came from XFF here (port 0).
    let p = plan(allow(rules));
    assert!(!allowed(&p, &r));
    assert_eq!(
        reason(p.evaluate(&r).authz.error),
        Some("direct_peer_unknown")
    );
    assert!(allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "10.9.9.9:1")
    ));
    assert!(p.needs_peer_address());
}

#[test]
fn when_keys_source_and_connection_facts() {
    let p = plan(allow(json!([{"when": [
        {"key": "destination.port", "values": ["8443"]},
        {"key": "connection.sni", "values": ["*.example.com"]},
        {"key": "source.principal", "values": ["cluster.local/ns/default/*"]},
        {"key": "source.namespace", "notValues": ["kube-*"]},
        {"key": "remote.ip", "values": ["192.0.2.0/24"]}
    ]}])));
    let mut r = mtls("GET", "/", SLEEP);
    r.destination_port = Some(8443);
    r.requested_server_name = Some("api.example.com".into());
    assert!(allowed(&p, &r));
    r.destination_port = Some(443);
    assert!(!allowed(&p, &r));
    r.destination_port = Some(8443);
    r.requested_server_name = None;
    assert!(!allowed(&p, &r));
}

#[test]
fn headers_are_matched_value_by_value() {
    // §8: a comma-joined single value does not match exact `acme`; repeated headers do.
    let p = plan(allow(
        json!([{"when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}]}]),
    ));
    assert!(!allowed(
        &p,
        &req("GET", "/").with_header("x-tenant", "acme,globex")
    ));
    assert!(allowed(
        &p,
        &req("GET", "/")
            .with_header("x-tenant", "globex")
            .with_header("x-tenant", "acme")
    ));
    let p = plan(allow(
        json!([{"when": [{"key": "request.headers[x-e]", "values": ["*"]}]}]),
    ));
    assert!(
        allowed(&p, &req("GET", "/").with_header("x-e", "")),
        "present_match matches an empty value"
    );
}

#[test]
fn path_templates() {
    let p = plan(allow(
        json!([{"to": [{"operation": {"paths": ["/api/{*}/items", "/files/{**}"]}}]}]),
    ));
    assert!(allowed(&p, &req("GET", "/api/v1/items")));
    assert!(!allowed(&p, &req("GET", "/api/v1/x/items")));
    assert!(!allowed(&p, &req("GET", "/api//items")));
    assert!(allowed(&p, &req("GET", "/files/a/b.txt")));
    assert!(allowed(&p, &req("GET", "/files/")));
    assert!(!allowed(&p, &req("GET", "/files")));
    assert!(allowed(&p, &req("GET", "/api/v1/items?x=1")));
    // Envoy 1.40: `=` and `*` are in the segment class.
    assert!(allowed(&p, &req("GET", "/api/a=b/items")));
    assert!(allowed(&p, &req("GET", "/api/*/items")));
    assert!(allowed(&p, &req("GET", "/files/a=b/*/c")));
}

#[test]
fn path_regex_extension_is_a_full_match() {
    let p = plan(allow(
        json!([{"to": [{"operation": {"pathRegex": ["/v[0-9]+/users/[^/]+"], "notPathRegex": [".*/admin"]}}]}]),
    ));
    assert!(allowed(&p, &req("GET", "/v2/users/bob")));
    assert!(!allowed(&p, &req("GET", "/v2/users/bob/x")));
    assert!(!allowed(&p, &req("GET", "/x/v2/users/bob")));
}

#[test]
fn dns_san_subject_and_fingerprint_extensions() {
    let p = plan(allow(json!([
        {"from": [{"source": {"dnsSans": ["*.partner.example"]}}]},
        {"from": [{"source": {"subjects": [{"cn": "billing", "o": "Acme Corp", "ou": "Finance*"}]}}]},
        {"from": [{"source": {"certSha256": [HASH.to_uppercase()]}}]}
    ])));
    let mut r = req("GET", "/");
    r.peer_certificate = Some(PeerCertificate {
        dns_sans: vec!["API.Partner.example".into()],
        ..Default::default()
    });
    assert!(allowed(&p, &r));
    let d = p.evaluate(&r);
    assert_eq!(d.authz.rule, Some("ns[istio-system]-policy[p]-rule[0]"));
    r.peer_certificate = Some(PeerCertificate {
        subject: "CN=billing,OU=Finance EU,O=Acme Corp,C=DE".into(),
        ..Default::default()
    });
    assert!(allowed(&p, &r));
    r.peer_certificate = Some(PeerCertificate {
        subject: "CN=billing,OU=Sales,O=Acme Corp".into(),
        ..Default::default()
    });
    assert!(!allowed(&p, &r));
    r.peer_certificate = Some(PeerCertificate {
        sha256: Some(HASH.into()),
        ..Default::default()
    });
    assert_eq!(
        p.evaluate(&r).authz.rule,
        Some("ns[istio-system]-policy[p]-rule[2]")
    );
}

#[test]
fn partners_reuse_the_partner_networks() {
    let p = plan(allow(
        json!([{"from": [{"source": {"partners": ["acme"]}}], "to": [{"operation": {"paths": ["/acme/*"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &StaticRequest::new("GET", "h", "/acme/x", "203.0.113.9:1")
    ));
    assert!(!allowed(
        &p,
        &StaticRequest::new("GET", "h", "/acme/x", "198.51.100.9:1")
    ));
    assert!(cfg_err(json!({"policies": allow(json!([{"from": [{"source": {"partners": ["nobody"]}}]}]))}))
        .starts_with("/authorization/policies/0/spec/rules/0/from/0/source/partners/0: \"nobody\" is not the name of a partner"));
}

#[test]
fn partners_use_the_ip_allowlist_client_ip() {
    let cfg = json!({
        "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
        "ip_allowlist": {"client_ip": {"source": "x_forwarded_for", "trusted_hops": 1}},
        "authorization": {"policies": allow(json!([{"from": [{"source": {"partners": ["acme"]}}]}]))}
    });
    let p = parse_indexed(cfg.to_string().as_bytes()).unwrap();
    let r = StaticRequest::new("GET", "h", "/", "10.0.0.1:1")
        .with_header("x-forwarded-for", "203.0.113.5, 10.0.0.1");
    assert!(allowed(&p, &r));
}

#[test]
fn authorization_is_skipped_when_the_ip_check_denied() {
    let cfg = json!({
        "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
        "ip_allowlist": {"client_ip": {"source": "peer"}},
        "authorization": {"policies": [{"name": "d", "spec": {"action": "DENY", "rules": [{}]}}]}
    });
    let p = parse_indexed(cfg.to_string().as_bytes()).unwrap();
    let d = p.evaluate(&StaticRequest::new("GET", "h", "/", "192.0.2.1:1"));
    assert_eq!(d.denial.unwrap().check, Check::IpAllowlist);
    assert_eq!(d.authz.verdict, AuthzVerdict::Skipped);
    let d = p.evaluate(&StaticRequest::new("GET", "h", "/", "203.0.113.1:1"));
    assert_eq!(d.denial.unwrap().check, Check::Authorization);
}

#[test]
fn dry_run_records_the_would_be_decision() {
    let p = plan(json!([
        {"name": "deny-admin", "dry_run": true, "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}},
        {"name": "only-get", "dry_run": true, "spec": {"rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]}}
    ]));
    let d = p.evaluate(&req("GET", "/admin"));
    assert!(d.allowed());
    assert_eq!(
        d.authz.dry_run,
        Some((
            AuthzVerdict::Denied,
            Some("ns[istio-system]-policy[deny-admin]-rule[0]")
        ))
    );
    let d = p.evaluate(&req("POST", "/x"));
    assert!(d.allowed());
    assert_eq!(d.authz.dry_run, Some((AuthzVerdict::Denied, None)));
    let d = p.evaluate(&req("GET", "/x"));
    assert_eq!(
        d.authz.dry_run,
        Some((
            AuthzVerdict::Allowed,
            Some("ns[istio-system]-policy[only-get]-rule[0]")
        ))
    );
    // Without dry-run policies there is no dry-run outcome.
    assert_eq!(
        sleep_policy().evaluate(&req("GET", "/")).authz.dry_run,
        None
    );
}

#[test]
fn first_matching_rule_by_name_is_reported_like_envoy() {
    let p = plan(json!([
        {"name": "zeta", "spec": {"action": "DENY", "rules": [{}]}},
        {"name": "alpha", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/x"]}}]}, {}]}}
    ]));
    let d = p.evaluate(&req("GET", "/y"));
    assert_eq!(d.authz.rule, Some("ns[istio-system]-policy[alpha]-rule[1]"));
}

#[test]
fn denial_reply_names_the_policy() {
    let cfg = json!({
        "denial": {"reason_header": "x-portcullis-reason"},
        "authorization": {"policies": [{"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}}]}
    });
    let p = parse_indexed(cfg.to_string().as_bytes()).unwrap();
    let d = p.evaluate(&req("GET", "/admin"));
    let r = p.denial_reply(d.denial.as_ref().unwrap(), Some("id1"));
    assert_eq!(
        r.details,
        "portcullis_authorization_denied_by_policy[ns[istio-system]-policy[deny-admin]-rule[0]]"
    );
    assert!(r.headers.contains(&(
        "x-portcullis-reason".into(),
        "denied_by_policy; check=authorization; policy=ns[istio-system]-policy[deny-admin]-rule[0]"
            .into()
    )));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["policy"],
        "ns[istio-system]-policy[deny-admin]-rule[0]"
    );
}

#[test]
fn evasion_attempts_against_a_deny_on_admin() {
    let p = plan(
        json!([{"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin", "/admin/*"]}}]}]}}]),
    );
    for path in [
        "/admin/../admin",
        "//admin",
        "/%61dmin",
        "/admin/.",
        "/x%2F../admin",
        "/x%5c../admin",
        "/./admin",
        "/admin?x",
        "/admin#x",
        "/a/..//admin/",
    ] {
        assert!(!allowed(&p, &req("GET", path)), "{path} slipped through");
    }
    // Overlong UTF-8 is refused outright, not decoded.
    let d = p.evaluate(&req("GET", "/x%c0%af../admin"));
    assert_eq!(
        d.denial.map(|x| (x.reason, x.detail)),
        Some(("path_rejected", Some("invalid_utf8")))
    );
    // Case and matrix parameters are not folded: Istio semantics, documented.
    assert!(allowed(&p, &req("GET", "/ADMIN")));
    assert!(allowed(&p, &req("GET", "/admin;x")));
    let strict = plan_with(
        json!({"path_normalization": {"strip_path_parameters": true}, "policies": [{"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}}]}),
    );
    assert!(!allowed(&strict, &req("GET", "/admin;x")));
    // Envoy's defaults (no merge, %2F kept) let `//admin` and `/x%2F../admin` past an exact rule.
    let envoy = plan_with(
        json!({"path_normalization": {"merge_slashes": false, "escaped_slashes": "keep", "reject_invalid_utf8": false}, "policies": [{"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}}]}),
    );
    assert!(allowed(&envoy, &req("GET", "//admin")));
    assert!(allowed(&envoy, &req("GET", "/x%2F../admin")));
    let reject = plan_with(
        json!({"path_normalization": {"escaped_slashes": "reject"}, "policies": [{"name": "a", "spec": {"rules": [{}]}}]}),
    );
    let d = reject.evaluate(&req("GET", "/x%2F../admin"));
    assert_eq!(d.denial.map(|x| x.detail), Some(Some("escaped_slash")));
}

#[test]
fn ip_allowlist_routes_use_the_normalized_path() {
    let cfg = json!({
        "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
        "ip_allowlist": {"client_ip": {"source": "peer"}, "scope": "routes", "protected_routes": [{"path_prefixes": ["/partner-api/"]}]}
    });
    let p = parse_indexed(cfg.to_string().as_bytes()).unwrap();
    for path in [
        "/public/../partner-api/x",
        "/%70artner-api/x",
        "/partner-api/./x",
    ] {
        assert!(
            !allowed(&p, &StaticRequest::new("GET", "h", path, "192.0.2.1:1")),
            "{path}"
        );
    }
}

fn xfcc_plan(extra: Value) -> Plan {
    let mut a = json!({"identity": {"source": "xfcc"}, "policies": allow(json!([{"from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}]}]))});
    if let (Some(a), Some(e)) = (a.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            a.insert(k.clone(), v.clone());
        }
    }
    plan_with(a)
}

#[test]
fn xfcc_identity_uses_the_last_element() {
    let p = xfcc_plan(json!({"identity": {"source": "xfcc", "xfcc_chain": true}}));
    let good = format!("Hash={HASH};Subject=\"\";URI={SLEEP}");
    assert!(allowed(
        &p,
        &req("GET", "/").with_header("x-forwarded-client-cert", &good)
    ));
    let spoof = format!("URI={SLEEP},Hash={HASH};URI=spiffe://cluster.local/ns/x/sa/y");
    assert!(!allowed(
        &p,
        &req("GET", "/").with_header("x-forwarded-client-cert", &spoof)
    ));
    assert!(!allowed(&p, &req("GET", "/")), "no header: no identity");
    // The connection certificate is ignored in xfcc mode.
    assert!(!allowed(&p, &mtls("GET", "/", SLEEP)));
    let d =
        p.evaluate(&req("GET", "/").with_header("x-forwarded-client-cert", "URI=\"unterminated"));
    assert_eq!(
        d.denial.map(|x| (x.reason, x.detail)),
        Some(("identity_invalid", Some("xfcc_unterminated_quote")))
    );
    assert!(p.strip_headers().is_empty());
}

#[test]
fn xfcc_identity_refuses_several_elements_by_default() {
    // Envoy writes URI SANs unescaped: a SAN `x,URI=<sleep>` would become a second element.
    let p = xfcc_plan(json!({}));
    let good = format!("Hash={HASH};Subject=\"\";URI={SLEEP}");
    assert!(allowed(
        &p,
        &req("GET", "/").with_header("x-forwarded-client-cert", &good)
    ));
    let injected = format!("Hash={HASH};URI=https://p.example/x,URI={SLEEP}");
    let d = p.evaluate(&req("GET", "/").with_header("x-forwarded-client-cert", &injected));
    assert_eq!(
        d.denial.map(|x| (x.reason, x.detail)),
        Some(("identity_invalid", Some("xfcc_multiple_elements")))
    );
}

#[test]
fn xfcc_trusted_by_pins_the_hop() {
    let p = xfcc_plan(
        json!({"identity": {"source": "xfcc", "xfcc_trusted_by": ["spiffe://lb.example/tls"]}}),
    );
    let ok = format!("By=spiffe://lb.example/tls;Hash={HASH};URI={SLEEP}");
    assert!(allowed(
        &p,
        &req("GET", "/").with_header("x-forwarded-client-cert", &ok)
    ));
    let other = format!("By=spiffe://evil;Hash={HASH};URI={SLEEP}");
    assert!(!allowed(
        &p,
        &req("GET", "/").with_header("x-forwarded-client-cert", &other)
    ));
}

#[test]
fn xfcc_is_stripped_unless_trusted_or_kept() {
    let p = sleep_policy();
    assert_eq!(p.strip_headers(), ["x-forwarded-client-cert"]);
    let p = plan_with(
        json!({"identity": {"keep_xfcc": true}, "policies": [{"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin"]}}]}]}}]}),
    );
    assert!(p.strip_headers().is_empty());
    let p = parse_indexed(br#"{"partners":[{"name":"a","cidrs":["10.0.0.0/8"]}],"ip_allowlist":{"client_ip":{"source":"peer"}}}"#).unwrap();
    assert_eq!(p.strip_headers(), ["x-portcullis-partner"]);
    assert!(!p.needs_peer_certificate());
    assert!(sleep_policy().needs_peer_certificate());
}

#[test]
fn bad_configs_get_pointers_and_reasons() {
    let pol = |spec: Value| json!({"policies": [{"name": "p", "spec": spec}]});
    let cases: Vec<(Value, &str)> = vec![
        (pol(json!({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/33"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/from/0/source/ipBlocks/0: \"10.0.0.0/33\" is not a CIDR"),
        (pol(json!({"rules": [{"to": [{"operation": {"paths": ["/a/{*}x"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/to/0/operation/paths/0: invalid or unsupported path a/{*}x, found in Paths. Contains '{' or '}' beyond a supported path template"),
        (pol(json!({"rules": [{"to": [{"operation": {"notPaths": ["/{**}/a/{*}"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/to/0/operation/notPaths/0: invalid or unsupported path {**}/a/{*}, found in NotPaths. {**} is not the last operator"),
        (pol(json!({"rules": [{"when": [{"key": "destination.labels[app]", "values": ["x"]}]}]})),
            "/authorization/policies/0/spec/rules/0/when/0/key: unknown attribute \"destination.labels[app]\""),
        (pol(json!({"rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]})),
            "/authorization/policies/0/spec/rules/0/when/0/key: \"request.auth.claims[iss]\" is not supported"),
        (pol(json!({"rules": [{"when": [{"key": "source.ip"}]}]})),
            "/authorization/policies/0/spec/rules/0/when/0: condition \"source.ip\" needs"),
        (pol(json!({"action": "DENY"})), "/authorization/policies/0/spec/rules: a DENY policy without rules is meaningless"),
        (pol(json!({"action": "DENY", "rules": []})), "/authorization/policies/0/spec/rules: a DENY policy"),
        (pol(json!({"action": "CUSTOM", "provider": {"name": "x"}, "rules": [{}]})), "/authorization/policies/0/spec/action: CUSTOM"),
        (pol(json!({"rules": [{"from": []}]})), "/authorization/policies/0/spec/rules/0/from: is empty"),
        (pol(json!({"rules": [{"from": [{"source": {}}]}]})), "/authorization/policies/0/spec/rules/0/from/0/source: source is empty"),
        (pol(json!({"rules": [{"to": [{"operation": {"methods": ["GET", ""]}}]}]})),
            "/authorization/policies/0/spec/rules/0/to/0/operation/methods/1: empty value"),
        (pol(json!({"rules": [{"from": [{"source": {"principals": ["a"], "serviceAccounts": ["b"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/from/0/source/serviceAccounts: cannot be combined"),
        (pol(json!({"selector": {}, "targetRefs": [{}], "rules": [{}]})), "/authorization/policies/0/spec/selector: conflicts"),
        (pol(json!({"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/to/0/operation/ports/0: \"http\" is not a port"),
        (pol(json!({"rules": [{"to": [{"operation": {"pathRegex": ["(unclosed"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/to/0/operation/pathRegex/0: \"(unclosed\" is not a valid RE2 regex"),
        (pol(json!({"rules": [{"from": [{"source": {"subjects": [{}]}}]}]})),
            "/authorization/policies/0/spec/rules/0/from/0/source/subjects/0: a subject needs"),
        (pol(json!({"rules": [{"from": [{"source": {"certSha256": ["abc"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/from/0/source/certSha256/0: \"abc\" is not a SHA-256"),
        (pol(json!({"rules": [{"from": [{"source": {"principal": ["x"]}}]}]})),
            "/authorization/policies/0/spec/rules/0/from/0/source/principal: unknown field `principal`"),
        (pol(json!({"action": "MAYBE"})), "/authorization/policies/0/spec/action: unknown variant `MAYBE`"),
        (json!({"policies": [{"name": "p", "spec": {}}, {"name": "p", "spec": {}}]}), "/authorization/policies/1/name: policy \"p\""),
        (json!({"policies": [{"name": "bad name", "spec": {}}]}), "/authorization/policies/0/name: \"bad name\" is not a valid policy name"),
        (json!({"identity": {"source": "connection", "xfcc_trusted_by": ["x"]}, "policies": []}), "/authorization/identity/xfcc_trusted_by: only meaningful"),
        (json!({"trust_domain_aliases": [""], "policies": []}), "/authorization/trust_domain_aliases/0: \"\" is not a trust domain"),
        (json!({"path_normalization": {"escaped_slashes": "maybe"}, "policies": []}), "/authorization/path_normalization/escaped_slashes: unknown variant"),
    ];
    for (cfg, want) in cases {
        let got = cfg_err(cfg.clone());
        assert!(
            got.starts_with(want),
            "config {cfg}\n  got:  {got}\n  want: {want}"
        );
    }
}

#[test]
fn examples_gateway_json_compiles_and_behaves() {
    let text = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/examples/gateway.json"
    ))
    .unwrap();
    let p = parse_indexed(&text).unwrap();
    let bookinfo = "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-user";
    let at = |m: &str, path: &str, who: Option<&str>| {
        let mut r = StaticRequest::new(m, "api.example.com", path, "192.0.2.10:1");
        r.peer_certificate = who.map(|u| cert(&[u], &[], ""));
        p.evaluate(&r).allowed()
    };
    assert!(at("GET", "/status/200", Some(SLEEP)));
    assert!(at("POST", "/headers", Some(SLEEP)));
    assert!(!at("DELETE", "/headers", Some(SLEEP)));
    assert!(at("GET", "/static/app.js", Some(bookinfo)));
    assert!(at("GET", "/api/v1/products", Some(bookinfo)));
    assert!(!at("GET", "/api/v1/products/1/reviews", Some(bookinfo)));
    assert!(!at("GET", "/status/200", Some(bookinfo)));
    // Seed 003: the remote cluster's trust domain is an alias.
    assert!(at(
        "GET",
        "/status/200",
        Some("spiffe://east.example.com/ns/default/sa/sleep")
    ));
    assert!(!at(
        "GET",
        "/status/200",
        Some("spiffe://unknown.example.com/ns/default/sa/sleep")
    ));
    assert!(!at("GET", "/status/200", None));
}

/// Istio's `CheckValidPathTemplate` cases (pkg/config/security) and Envoy 1.40's
/// `uri_template` matching, each checked in a real Envoy 1.40 (tests/tests/differential_authz.rs
/// generates the accepted ones).
#[test]
fn path_templates_with_literal_tails_and_istio_validation() {
    let accepted = |t: &str| {
        parse_indexed(
            json!({"authorization": {"policies": [{"name": "p", "spec": {"rules": [
                {"to": [{"operation": {"paths": [t]}}]}]}}]}})
            .to_string()
            .as_bytes(),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    for ok in [
        "/{*}/foo",
        "/{*}/foo/",
        "/foo/{**}/bar",
        "/foo/bar/{**}",
        "/files/{**}/",
        "/{**}/health",
        "/api/v1/{**}/export",
        "/a=b/{*}",
        "/-._~%20!$&'()+,;:@=/{*}",
        "/{**}",
    ] {
        assert_eq!(accepted(ok), Ok(()), "{ok}");
    }
    // Istio's rejections, with its reasons.
    for (bad, why) in [
        (
            "/foo/{**}buzz/bar",
            "Contains '{' or '}' beyond a supported path template",
        ),
        ("/{*}/foo/{}/bar", "Contains '{' or '}'"),
        (
            "/foo/{*}/bar/*",
            "Contains segment * with invalid string literal",
        ),
        (
            "/foo/{*}/bar/**/buzz",
            "Contains segment ** with invalid string literal",
        ),
        ("/foo/{buzz}/bar", "Contains '{' or '}'"),
        ("/{buzz}", "Contains '{' or '}'"),
        ("/foo/{buzz=*}/bar/{**}", "Contains '{' or '}'"),
        ("/{*}/foo/{**}bar", "Contains '{' or '}'"),
        ("/{*}/foo/{*}.txt", "Contains '{' or '}'"),
        ("/{*}/foo/{temp", "Contains '{' or '}'"),
        ("/{*}/foo/temp}/bar", "Contains '{' or '}'"),
        ("/{**}/foo/temp/{*}/bar", "{**} is not the last operator"),
        ("/{**}/{**}", "{**} is not the last operator"),
        ("/{**}/foo/temp/{**}/bar", "{**} is not the last operator"),
        (
            "/{*}/foo/?abc",
            "Contains segment ?abc with invalid string literal",
        ),
        ("/a//{*}", "Contains segment  with invalid string literal"),
        ("/a{b}", "Contains '{' or '}'"),
    ] {
        let e = accepted(bad).expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
        assert!(e.contains("invalid or unsupported path"), "{bad}: {e}");
    }
    // Istio trims every leading/trailing `/` and accepts these; Envoy 1.40 aborts on them.
    for envoy_refuses in ["files/{*}", "//files/{*}", "/files/{*}//"] {
        let e = accepted(envoy_refuses).expect_err(envoy_refuses);
        assert!(
            e.contains("Envoy 1.40 cannot load it"),
            "{envoy_refuses}: {e}"
        );
    }

    // Istio's normalization (no slash merging), as the differential test runs it.
    let p = plan_with(json!({
        "path_normalization": {"merge_slashes": false, "escaped_slashes": "keep"},
        "policies": allow(json!([{"to": [{"operation": {"paths": [
            "/files/{**}/", "/{**}/health", "/api/v1/{**}/export", "/api/{**}"
        ]}}]}]))
    }));
    for yes in [
        "/files/a/b/",
        "/files//",
        "//health",
        "/a/b/health",
        "/api/v1/export",
        "/api/v1/x/y/export",
        "/api/",
        "/api/x?q=1",
    ] {
        assert!(allowed(&p, &req("GET", yes)), "{yes}");
    }
    for no in [
        "/files/a/b.txt",
        "/health",
        "/api",
        "/x/api/v1/export",
        "/files",
        "/healthz",
    ] {
        assert!(!allowed(&p, &req("GET", no)), "{no}");
    }
    let not = plan(allow(
        json!([{"to": [{"operation": {"notPaths": ["/{**}/health"]}}]}]),
    ));
    assert!(allowed(&not, &req("GET", "/health")));
    assert!(!allowed(&not, &req("GET", "/x/health")));
}

/// `ipBlocks` / `source.ip` exactly as Envoy RBAC's `direct_remote_ip`, or stricter where
/// Envoy hides the peer (authz/direct.rs; measured in tests/tests/differential_authz.rs).
#[test]
fn direct_peer_as_rbac_or_stricter() {
    let cfg = |mode: &str, local: Option<&str>, spec: Value| {
        let mut a = json!({"direct_peer": mode, "policies": [{"name": "p", "spec": spec}]});
        if let Some(l) = local {
            a["envoy_local_addresses"] = json!([l]);
        }
        plan_with(a)
    };
    let from = |src: &str, xff: &str| {
        StaticRequest::new("GET", "h", "/", src).with_header("x-forwarded-for", xff)
    };
    let deny_lo =
        json!({"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.1"]}}]}]});
    let allow_not_lo = json!({"rules": [{"from": [{"source": {"notIpBlocks": ["127.0.0.1"]}}]}]});
    for mode in ["source_address", "last_forwarded_for"] {
        // A peer of exactly 127.0.0.1 without its own XFF: source.address keeps its port.
        let lo = from("127.0.0.1:41000", "192.0.2.2");
        let lo6 = from("[::1]:41000", "192.0.2.2");
        for local in [None, Some("192.0.2.2")]
            .into_iter()
            .filter(|l| l.is_none() || mode != "source_address")
        {
            assert!(!allowed(&cfg(mode, local, deny_lo.clone()), &lo), "{mode}");
            assert!(
                !allowed(&cfg(mode, local, allow_not_lo.clone()), &lo),
                "{mode}"
            );
            assert!(allowed(&cfg(mode, local, deny_lo.clone()), &lo6), "{mode}");
            // The host's own address (what Envoy appends for 127.0.0.1) is itself a peer.
            let host = from("192.0.2.2:41000", "192.0.2.2");
            assert!(allowed(&cfg(mode, local, deny_lo.clone()), &host), "{mode}");
        }
    }
    // With its own XFF a 127.0.0.1 peer looks like the host: never allowed where RBAC denies.
    let lo_xff = from("203.0.113.9:0", "203.0.113.9,192.0.2.2");
    for local in [None, Some("192.0.2.2")] {
        let p = cfg("last_forwarded_for", local, deny_lo.clone());
        let d = p.evaluate(&lo_xff);
        assert_eq!(reason(d.authz.error), Some("direct_peer_uncertain"));
        assert!(!d.allowed());
    }
    // Other 127/8 peers are appended as they are.
    let other = from("203.0.113.9:0", "203.0.113.9,127.0.0.3");
    let deny_8 = json!({"action": "DENY", "rules": [{"from": [{"source": {"ipBlocks": ["127.0.0.0/30"]}}]}]});
    assert!(!allowed(
        &cfg("last_forwarded_for", Some("192.0.2.2"), deny_8.clone()),
        &other
    ));
    let allow_3 = json!({"rules": [{"when": [{"key": "source.ip", "values": ["127.0.0.3"]}]}]});
    assert!(allowed(
        &cfg("last_forwarded_for", Some("192.0.2.2"), allow_3.clone()),
        &other
    ));
    // Unknown peer (source_address behind numTrustedProxies): Kleene logic.
    let unknown = from("203.0.113.9:0", "203.0.113.9,127.0.0.3");
    let p = cfg("source_address", None, allow_3);
    assert_eq!(
        reason(p.evaluate(&unknown).authz.error),
        Some("direct_peer_unknown")
    );
    assert!(!p.evaluate(&unknown).allowed());
    // A rule decided by other fields still decides: DENY on a path, ALLOW on a method.
    let p = cfg(
        "source_address",
        None,
        json!({"action": "DENY", "rules": [
        {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}], "to": [{"operation": {"paths": ["/admin"]}}]}]}),
    );
    assert!(allowed(&p, &unknown), "the path rules the DENY rule out");
    let p = cfg(
        "source_address",
        None,
        json!({"rules": [
        {"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}, {"to": [{"operation": {"methods": ["GET"]}}]}]}),
    );
    assert!(allowed(&p, &unknown), "the second rule allows for sure");
    // envoy_local_addresses only with last_forwarded_for.
    let e = cfg_err(json!({"envoy_local_addresses": ["10.0.0.1"], "policies": []}));
    assert!(e.contains("/authorization/envoy_local_addresses"), "{e}");
    assert_eq!(cfg("last_forwarded_for", None, deny_8).warnings().len(), 1);
    assert!(sleep_policy().warnings().is_empty());
}

/// Found by the evasion catalogue (tests/tests/evasion_catalogue.rs): with `%2F` decoded
/// for matching, `/admin%2F..%2Findex.html` was `/index.html` to the rules while Envoy
/// forwards it as sent — and Envoy's RBAC, like an upstream routing on the raw path, sees
/// `/admin…`. An allow now has to hold for the path as forwarded too.
#[test]
fn an_allow_must_hold_for_the_path_as_envoy_forwarded_it() {
    let p = plan(json!([
        {"name": "deny-admin", "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}},
        {"name": "public", "spec": {"rules": [{"to": [{"operation": {"notPaths": ["/partners/*"]}}]}]}},
        {"name": "acme", "spec": {"rules": [{"to": [{"operation": {"paths": ["/partners/acme/*"]}}]},]}}
    ]));
    let d = p.evaluate(&req("GET", "/admin%2F..%2Findex.html"));
    assert_eq!(d.denial.map(|x| x.reason), Some("denied_by_policy"));
    // Decoded it is acme's route; as forwarded it is globex's, which no rule allows.
    let d = p.evaluate(&req("GET", "/partners/globex%2F..%2Facme/orders"));
    assert_eq!(d.denial.map(|x| x.reason), Some("no_allow_policy_matched"));
    // Decoded it is a partner route: denied as before.
    assert!(!allowed(
        &p,
        &req("GET", "/x%2F..%2Fpartners/globex/orders")
    ));
    // Both readings allow.
    assert!(allowed(&p, &req("GET", "/index.html")));
    assert!(allowed(&p, &req("GET", "/partners/acme/orders")));
    assert!(allowed(&p, &req("GET", "/a%2Fb")));
}

/// Found by the evasion catalogue: `x-forwarded-for: ::ffff:203.0.113.7` matched
/// `remoteIpBlocks: 203.0.113.0/24`; Envoy's RBAC keeps the families apart.
#[test]
fn ipv4_mapped_addresses_are_not_in_ipv4_blocks() {
    let p = plan(allow(
        json!([{"from": [{"source": {"remoteIpBlocks": ["203.0.113.0/24"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "203.0.113.7:0")
    ));
    assert!(!allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "[::ffff:203.0.113.7]:0")
    ));
    let p = plan(allow(
        json!([{"from": [{"source": {"remoteIpBlocks": ["::ffff:203.0.113.0/120"]}}]}]),
    ));
    assert!(allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "[::ffff:203.0.113.7]:0")
    ));
    assert!(!allowed(
        &p,
        &StaticRequest::new("GET", "h", "/", "203.0.113.7:0")
    ));
}

/// `s` as Envoy writes a PEM into XFCC `Cert=` (URL-encoded).
fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Found by the evasion catalogue: a URI SAN `spiffe://x/a;URI=<principal>` is written
/// unescaped into XFCC and read as two URI SANs, the second forged. `Cert=` now decides
/// when present; without it several `URI=` pairs are refused.
#[test]
fn xfcc_uri_pairs_forged_by_a_san_are_refused_and_cert_decides() {
    const PARTNER_A: &str = include_str!("testdata/partner-a.pem");
    let second = "spiffe://cluster.local/ns/default/sa/second";
    let p = plan_with(
        json!({"identity": {"source": "xfcc"}, "policies": allow(json!([
        {"from": [{"source": {"principals": ["cluster.local/ns/default/sa/second"]}}]}]))}),
    );
    let xfcc = |v: &str| req("GET", "/").with_header("x-forwarded-client-cert", v);
    let forged = format!("Hash={HASH};Subject=\"\";URI=spiffe://x.example/a;URI={second}");
    let d = p.evaluate(&xfcc(&forged));
    assert_eq!(
        d.denial.map(|x| (x.reason, x.detail)),
        Some(("identity_invalid", Some("xfcc_ambiguous_uri_sans")))
    );
    // One URI pair, no Cert: as before.
    assert!(allowed(&p, &xfcc(&format!("Hash={HASH};URI={second}"))));
    // With Cert=, the certificate's SANs decide, whatever the URI pairs say: partner-a.pem
    // has two URI SANs, the second one allowed.
    let cert = url_encoded(PARTNER_A);
    let with_cert = format!("Hash={HASH};Cert=\"{cert}\";URI=spiffe://x.example/a;URI=spiffe://y");
    assert!(allowed(&p, &xfcc(&with_cert)));
    let p2 = plan_with(
        json!({"identity": {"source": "xfcc"}, "policies": allow(json!([
        {"from": [{"source": {"principals": ["x.example/forged"]}}]}]))}),
    );
    let claims = format!("Hash={HASH};Cert=\"{cert}\";URI=spiffe://x.example/forged");
    assert!(!allowed(&p2, &xfcc(&claims)));
    let d = p.evaluate(&xfcc(&format!("Hash={HASH};Cert=\"garbage\";URI={second}")));
    assert_eq!(d.denial.map(|x| x.reason), Some("identity_invalid"));
}
