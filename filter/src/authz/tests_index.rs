//! The rule index against the reference (every rule in name order): same verdict, same
//! deciding rule, same dry-run and audit rules, on random policies and requests.

use super::spec::AuthorizationSpec;
use super::{Authz, Lookup};
use crate::request::{PeerCertificate, StaticRequest};
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{json, Value};

const PRINCIPALS: &[&str] = &[
    "cluster.local/ns/a/sa/x",
    "cluster.local/ns/b/sa/y",
    "td2/ns/a/sa/x",
    "other.example/ns/a/sa/x",
    "cluster.local/ns/a/*",
    "*/sa/x",
    "*a/sa/x",
    "*.example/ns/a/sa/x",
    "*x.",
    "*",
];
const URIS: &[&str] = &[
    "spiffe://cluster.local/ns/a/sa/x",
    "spiffe://td2/ns/a/sa/x",
    "spiffe://cluster.local/ns/b/sa/y",
    "spiffe://other.example/ns/a/sa/x",
    "spiffe://q.example/ns/a/sa/x",
    "spiffe://td/ns/ba/sa/x",
    "spiffe://td/zzx.",
    "spiffe://td/x\n.example/ns/a/sa/x",
];
const PATHS: &[&str] = &["/a", "/a/b", "/a*", "/a/*", "/b", "*", "*/b", "/a/{*}", "/"];
const REQ_PATHS: &[&str] = &["/a", "/a/b", "/a/bc", "/b", "/c/b", "/", "/ab", ""];
const HOSTS: &[&str] = &[
    "api.example.com",
    "API.example.com",
    "api.example.com:8443",
    "api.example.com:*",
    "API.Example.com:*",
    "*.example.com",
    "api.*",
    "[::1]:*",
    "other.com",
    "*",
];
const REQ_HOSTS: &[&str] = &[
    "api.example.com",
    "api.example.com:443",
    "Api.Example.COM:8443:1",
    "[::1]:8443",
    "api.example.com:",
    "API.EXAMPLE.COM",
    "api.example.com:8443",
    "x.example.com",
    "other.com",
];
const METHODS: &[&str] = &["GET", "POST", "*", "G*"];

fn values(from: &'static [&'static str]) -> impl Strategy<Value = Option<Vec<&'static str>>> {
    prop_oneof![
        2 => Just(None),
        1 => subsequence(from, 1..=from.len().min(3)).prop_map(Some),
    ]
}

fn source() -> impl Strategy<Value = Value> {
    (
        values(PRINCIPALS),
        values(PRINCIPALS),
        values(&["192.0.2.0/24", "10.0.0.0/8"]),
    )
        .prop_map(|(p, np, ip)| {
            let mut s = json!({});
            if let Some(p) = p {
                s["principals"] = json!(p);
            }
            if let Some(p) = np {
                s["notPrincipals"] = json!(p);
            }
            if let Some(p) = ip {
                s["ipBlocks"] = json!(p);
            }
            if s.as_object().is_some_and(|o| o.is_empty()) {
                s["principals"] = json!(["cluster.local/ns/a/sa/x"]);
            }
            json!({ "source": s })
        })
}

fn operation() -> impl Strategy<Value = Value> {
    (
        values(PATHS),
        values(&["/a*", "/b"]),
        values(HOSTS),
        values(HOSTS),
        values(METHODS),
        values(&["POST"]),
    )
        .prop_map(|(p, np, h, nh, m, nm)| {
            let mut o = json!({});
            for (k, v) in [
                ("paths", p),
                ("notPaths", np),
                ("hosts", h),
                ("notHosts", nh),
                ("methods", m),
                ("notMethods", nm),
            ] {
                if let Some(v) = v {
                    o[k] = json!(v);
                }
            }
            if o.as_object().is_some_and(|o| o.is_empty()) {
                o["paths"] = json!(["/a"]);
            }
            json!({ "operation": o })
        })
}

fn condition() -> impl Strategy<Value = Value> {
    prop_oneof![
        values(&["1", "*"]).prop_map(|v| json!({"key": "request.headers[x-a]",
            "values": v.unwrap_or_else(|| vec!["2"])})),
        subsequence(PRINCIPALS, 1..=2)
            .prop_map(|v| json!({"key": "source.principal", "values": v})),
        subsequence(PRINCIPALS, 1..=2)
            .prop_map(|v| json!({"key": "source.principal", "notValues": v})),
    ]
}

fn rule() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(proptest::collection::vec(source(), 1..=2)),
        proptest::option::of(proptest::collection::vec(operation(), 1..=2)),
        proptest::option::of(proptest::collection::vec(condition(), 1..=2)),
    )
        .prop_map(|(f, t, w)| {
            let mut r = json!({});
            if let Some(f) = f {
                r["from"] = json!(f);
            }
            if let Some(t) = t {
                r["to"] = json!(t);
            }
            if let Some(w) = w {
                r["when"] = json!(w);
            }
            r
        })
}

fn policy() -> impl Strategy<Value = Value> {
    (
        select(&["ALLOW", "DENY", "AUDIT"][..]),
        any::<bool>(),
        proptest::collection::vec(rule(), 0..=4),
    )
        .prop_map(|(action, dry, rules)| {
            let rules = if rules.is_empty() && action != "ALLOW" {
                vec![json!({})]
            } else {
                rules
            };
            json!({"action": action, "dry": dry && action != "AUDIT", "rules": rules})
        })
}

fn spec() -> impl Strategy<Value = AuthorizationSpec> {
    (
        proptest::collection::vec(policy(), 1..=6),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ps, alias, ignore_port, xfcc)| {
            let policies: Vec<Value> = ps
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut spec = json!({"action": p["action"]});
                    // An ALLOW policy without rules: `spec: {}` (allow nothing).
                    if p["action"] != "ALLOW"
                        || p["rules"].as_array().is_some_and(|r| !r.is_empty())
                    {
                        spec["rules"] = p["rules"].clone();
                    }
                    // Names out of order so that name order differs from config order.
                    json!({"name": format!("p{}", (i * 7) % 10), "namespace": format!("n{}", i % 2),
                           "dry_run": p["dry"], "spec": spec})
                })
                .collect();
            let mut a = json!({"policies": policies});
            if alias {
                a["trust_domain_aliases"] = json!(["td2"]);
            }
            if ignore_port {
                a["host_match"] = json!("ignore_port");
            }
            if xfcc {
                a["identity"] = json!({"source": "xfcc"});
            }
            match serde_json::from_value(a) {
                Ok(s) => s,
                Err(e) => panic!("generated spec does not parse: {e}"),
            }
        })
}

fn request() -> impl Strategy<Value = StaticRequest> {
    (
        proptest::option::of((
            subsequence(URIS, 0..=2),
            subsequence(
                &["x.example", "spiffe://cluster.local/ns/b/sa/y"][..],
                0..=1,
            ),
            select(&["", "CN=x", "spiffe://cluster.local/ns/a/sa/x"][..]),
        )),
        select(REQ_PATHS),
        proptest::option::of(select(REQ_HOSTS)),
        proptest::option::of(select(&["GET", "POST", "PUT"][..])),
        proptest::option::of(select(&["1", "2"][..])),
        select(&["192.0.2.7:1000", "10.1.2.3:1000", "198.51.100.1:1000"][..]),
    )
        .prop_map(|(cert, path, host, method, xa, src)| {
            let mut h: Vec<(String, String)> = vec![(":path".into(), path.into())];
            if let Some(m) = method {
                h.push((":method".into(), m.into()));
            }
            if let Some(a) = host {
                h.push((":authority".into(), a.into()));
            }
            if let Some(v) = xa {
                h.push(("x-a".into(), v.into()));
            }
            let peer_certificate = cert.map(|(uris, dns, subject)| PeerCertificate {
                uri_sans: uris.iter().map(|s| s.to_string()).collect(),
                dns_sans: dns.iter().map(|s| s.to_string()).collect(),
                subject: subject.into(),
                sha256: None,
            });
            if let Some(c) = &peer_certificate {
                let mut x = String::from("By=spiffe://gw");
                for u in &c.uri_sans {
                    x.push_str(&format!(";URI={u}"));
                }
                for d in &c.dns_sans {
                    x.push_str(&format!(";DNS={d}"));
                }
                x.push_str(&format!(";Subject=\"{}\"", c.subject));
                h.push(("x-forwarded-client-cert".into(), x));
            }
            StaticRequest {
                headers: crate::request::Headers::new(h),
                source_address: Some(src.into()),
                peer_certificate,
                destination_port: Some(8443),
                requested_server_name: None,
                invalid_certificate: None,
            }
        })
}

fn evaluate(a: &Authz, r: &StaticRequest) -> String {
    let path = r.headers.path();
    let e = a.evaluate(r, path, None, None);
    format!("{:?} {:?}", e.outcome, e.rule_id)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn index_decides_like_the_scan(spec in spec(), reqs in proptest::collection::vec(request(), 8)) {
        let mut indexed = match Authz::compile(&spec, &[], None) {
            Ok(a) => a,
            Err(e) => panic!("generated spec does not compile: {e}"),
        };
        indexed.set_lookup(Lookup::INDEX_EVERY_GROUP);
        let mut scanned = indexed.clone();
        scanned.set_lookup(Lookup::SCAN_EVERY_GROUP);
        for r in &reqs {
            prop_assert_eq!(evaluate(&indexed, r), evaluate(&scanned, r), "request {:?}", r);
        }
    }
}

#[test]
fn common_shapes_are_indexed_not_scanned() {
    let spec: AuthorizationSpec = match serde_json::from_value(json!({"policies": [
        {"name": "p", "spec": {"rules": [
            {"from": [{"source": {"principals": ["cluster.local/ns/a/sa/x"]}}],
             "to": [{"operation": {"methods": ["GET"], "paths": ["/a/*"]}}]},
            {"to": [{"operation": {"paths": ["/health", "/status*"]}}]},
            {"to": [{"operation": {"hosts": ["API.example.com"], "notPaths": ["/admin*"]}}]},
            {"to": [{"operation": {"hosts": ["api.example.com", "api.example.com:*"]}}]},
            {"to": [{"operation": {"methods": ["GET"], "paths": ["*.js"]}}]},
            {"from": [{"source": {"principals": ["*"]}}]},
        ]}}
    ]})) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let a = match Authz::compile(&spec, &[], None) {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    // Only the last rule (any principal) has no indexable requirement.
    assert_eq!(a.allow.scanned(), 1);
}
