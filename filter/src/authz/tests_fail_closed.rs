//! Every fact a rule may need and not be able to read fails closed: the request is denied
//! with the reason, never allowed because a negated field read the fact as absent, and
//! never turned into an internal error (which `fail_open` could pass).

use super::Lookup;
use crate::engine::{Decision, Plan};
use crate::error::CertificateError;
use crate::request::{PeerCertificate, StaticRequest};
use serde_json::{json, Value};

fn plan(authz: Value) -> Plan {
    let cfg = json!({
        "partners": [{"name": "acme", "cidrs": ["203.0.113.0/24"]}],
        "authorization": authz,
    });
    Plan::parse(cfg.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn policy(action: &str, rules: Value) -> Value {
    json!({"name": action.to_lowercase(), "spec": {"action": action, "rules": rules}})
}

fn req(path: &str) -> StaticRequest {
    StaticRequest::new("GET", "api.example.com", path, "192.0.2.10:4000")
}

/// A request whose `source.address` Envoy took from `x-forwarded-for` (port 0): the direct
/// peer is then the last entry (`last_forwarded_for`).
fn behind_xff() -> StaticRequest {
    StaticRequest::new("GET", "api.example.com", "/", "192.0.2.10:0")
}

fn bad_cert(path: &str) -> StaticRequest {
    let mut r = req(path);
    r.invalid_certificate = Some(CertificateError::NotX509);
    r
}

/// (allowed, reason, detail) — evaluated with the index and with the reference scan,
/// which must agree.
fn outcome(p: &Plan, r: &StaticRequest) -> (bool, Option<&'static str>, Option<&'static str>) {
    let pick = |d: Decision| {
        (
            d.allowed(),
            d.denial.map(|x| x.reason),
            d.denial.and_then(|x| x.detail),
        )
    };
    let scanned = p.clone().with_authz_lookup(Lookup::SCAN_EVERY_GROUP);
    let indexed = p.clone().with_authz_lookup(Lookup::INDEX_EVERY_GROUP);
    let (scanned, indexed) = (pick(scanned.evaluate(r)), pick(indexed.evaluate(r)));
    assert_eq!(scanned, indexed, "index and scan disagree");
    indexed
}

const BAD_XFF: (bool, Option<&str>, Option<&str>) = (
    false,
    Some("client_ip_unknown"),
    Some("bad_x_forwarded_for"),
);

#[test]
fn unparsable_direct_peer_never_satisfies_not_ip_blocks() {
    let p = plan(
        json!({"direct_peer": "last_forwarded_for", "policies": [policy("ALLOW",
        json!([{"from": [{"source": {"notIpBlocks": ["192.0.2.0/24"]}}]}]))]}),
    );
    let ok = behind_xff().with_header("x-forwarded-for", "198.51.100.1");
    assert_eq!(outcome(&p, &ok), (true, None, None));
    // Was allowed: `parse` failed on `[::1]`-style or garbage entries and notIpBlocks
    // read the failure as "not in the block".
    for xff in ["garbage", "198.51.100.1, evil", "1.2.3.4:80", "1.2.3.4,"] {
        let r = behind_xff().with_header("x-forwarded-for", xff);
        assert_eq!(outcome(&p, &r), BAD_XFF, "{xff}");
    }
    // The same entry forms clientip accepts elsewhere are read, not refused.
    let r = behind_xff().with_header("x-forwarded-for", "10.0.0.1, [2001:db8::1]");
    assert_eq!(outcome(&p, &r), (true, None, None));
    // No XFF at all: unknown too.
    assert_eq!(
        outcome(&p, &behind_xff()),
        (false, Some("client_ip_unknown"), Some("no_x_forwarded_for"))
    );
}

#[test]
fn missing_or_bad_source_address_never_satisfies_not_remote_ip_blocks() {
    let p = plan(json!({"policies": [policy("ALLOW",
        json!([{"from": [{"source": {"notRemoteIpBlocks": ["192.0.2.0/24"]}}]}]))]}));
    let mut r = req("/");
    r.source_address = None;
    assert_eq!(
        outcome(&p, &r),
        (false, Some("client_ip_unknown"), Some("no_peer_address"))
    );
    r.source_address = Some("pipe:/x".into());
    assert_eq!(
        outcome(&p, &r),
        (false, Some("client_ip_unknown"), Some("bad_peer_address"))
    );
    // DENY with the plain field: unknown is not "no match" either.
    let p = plan(json!({"policies": [policy("DENY",
        json!([{"from": [{"source": {"remoteIpBlocks": ["192.0.2.0/24"]}}]}]))]}));
    assert_eq!(
        outcome(&p, &r),
        (false, Some("client_ip_unknown"), Some("bad_peer_address"))
    );
    // `partners` without the IP allow-list reads source.address as well.
    let p = plan(json!({"policies": [policy("ALLOW",
        json!([{"from": [{"source": {"notPartners": ["acme"]}}]}]))]}));
    assert_eq!(
        outcome(&p, &r),
        (false, Some("client_ip_unknown"), Some("bad_peer_address"))
    );
}

#[test]
fn unreadable_certificate_denies_with_a_reason() {
    let identity = (
        false,
        Some("identity_invalid"),
        Some("peer_certificate_not_x509"),
    );
    // notPrincipals would be true on "no certificate".
    let p = plan(json!({"policies": [policy("ALLOW",
        json!([{"from": [{"source": {"notPrincipals": ["cluster.local/ns/bad/*"]}}]}]))]}));
    assert_eq!(outcome(&p, &req("/")), (true, None, None));
    assert_eq!(outcome(&p, &bad_cert("/")), identity);
    // A DENY on a principal that cannot be checked denies.
    let p = plan(json!({"policies": [policy("DENY",
        json!([{"from": [{"source": {"principals": ["cluster.local/ns/bad/*"]}}]}]))]}));
    assert_eq!(outcome(&p, &bad_cert("/")), identity);
    // Many principal rules (the index): the same.
    let rules: Vec<Value> = (0..40)
        .map(|i| json!({"from": [{"source": {"principals": [format!("cluster.local/ns/n{i}/sa/x")]}}]}))
        .collect();
    let p = plan(json!({"policies": [policy("ALLOW", Value::Array(rules))]}));
    assert_eq!(outcome(&p, &bad_cert("/")), identity);
    let mut good = req("/");
    good.peer_certificate = Some(PeerCertificate {
        uri_sans: vec!["spiffe://cluster.local/ns/n7/sa/x".into()],
        ..Default::default()
    });
    assert_eq!(outcome(&p, &good), (true, None, None));
}

#[test]
fn an_unknown_fact_that_cannot_change_the_answer_is_ignored() {
    // Kleene logic: false AND unknown is false, true OR unknown is true.
    let p = plan(json!({"policies": [policy("ALLOW", json!([
        {"from": [{"source": {"notPrincipals": ["x"]}}], "to": [{"operation": {"paths": ["/only"]}}]},
        {"to": [{"operation": {"paths": ["/public"]}}]}
    ]))]}));
    assert_eq!(
        outcome(&p, &bad_cert("/other")),
        (false, Some("no_allow_policy_matched"), None)
    );
    assert_eq!(outcome(&p, &bad_cert("/public")), (true, None, None));
    // A rule that never asks for the certificate is not affected by it.
    let p = plan(json!({"policies": [policy("DENY",
        json!([{"to": [{"operation": {"paths": ["/admin"]}}]}]))]}));
    assert_eq!(outcome(&p, &bad_cert("/")), (true, None, None));
}

#[test]
fn an_audit_rule_on_an_unreadable_fact_never_decides() {
    // The AUDIT rule makes every request read the certificate: that must not deny.
    let p = plan(json!({"policies": [policy("AUDIT",
        json!([{"from": [{"source": {"principals": ["*"]}}]}]))]}));
    let d = p.evaluate(&bad_cert("/"));
    assert!(d.allowed());
    assert_eq!(d.authz.audit, None);
}

#[test]
fn dry_run_policies_on_an_unreadable_fact_would_deny() {
    let p = plan(json!({"policies": [{"name": "dry", "dry_run": true,
        "spec": {"action": "ALLOW", "rules": [{"from": [{"source": {"notPrincipals": ["x"]}}]}]}}]}));
    let d = p.evaluate(&bad_cert("/"));
    assert!(d.allowed());
    assert_eq!(
        d.authz.dry_run,
        Some((crate::authz::AuthzVerdict::Denied, None))
    );
}

/// `req(path)` with one request fact removed, as a host other than Envoy could send it.
fn without(fact: &str) -> StaticRequest {
    let mut r = req("/");
    r.destination_port = Some(443);
    match fact {
        "port" => r.destination_port = None,
        name => {
            let pairs: Vec<_> = r
                .headers
                .pairs()
                .iter()
                .filter(|(k, _)| k != name)
                .cloned()
                .collect();
            r.headers = crate::request::Headers::new(pairs);
        }
    }
    r
}

#[test]
fn missing_authority_method_or_port_never_satisfies_a_negation() {
    let cases = [
        (
            ":authority",
            json!({"notHosts": ["admin.example.com"]}),
            "no_authority",
        ),
        (":method", json!({"notMethods": ["DELETE"]}), "no_method"),
        ("port", json!({"notPorts": ["8443"]}), "no_destination_port"),
    ];
    for (fact, operation, detail) in cases {
        let p = plan(json!({"policies": [policy("ALLOW",
            json!([{"to": [{"operation": operation}]}]))]}));
        // With the fact present the ALLOW grants ...
        assert_eq!(outcome(&p, &without("none")), (true, None, None), "{fact}");
        // ... and without it the negation is unknown, never true (was: allowed).
        assert_eq!(
            outcome(&p, &without(fact)),
            (false, Some("request_incomplete"), Some(detail)),
            "{fact}"
        );
    }
}

#[test]
fn missing_authority_method_or_port_never_hides_a_deny() {
    let cases = [
        (
            ":authority",
            json!({"hosts": ["api.example.com", "*.example.org"]}),
            "no_authority",
        ),
        (":method", json!({"methods": ["GET", "PUT"]}), "no_method"),
        ("port", json!({"ports": ["443"]}), "no_destination_port"),
    ];
    for (fact, operation, detail) in cases {
        // A DENY keyed on the fact, next to enough other rules for the index to key it
        // (the index must not skip host- or method-keyed rules when the fact is missing).
        let p = plan(json!({"policies": [
            policy("DENY", json!([{"to": [{"operation": operation}]}])),
            {"name": "allow-all", "spec": {"action": "ALLOW", "rules": [{}]}}
        ]}));
        assert_eq!(
            outcome(&p, &without("none")),
            (false, Some("denied_by_policy"), None),
            "{fact}"
        );
        assert_eq!(
            outcome(&p, &without(fact)),
            (false, Some("request_incomplete"), Some(detail)),
            "{fact}"
        );
    }
}
