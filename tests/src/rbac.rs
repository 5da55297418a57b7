//! Istio `AuthorizationPolicy` → Envoy `envoy.filters.http.rbac`, the way istiod translates
//! it for a gateway (authz.md §1–§2, with the corrections of §8), written independently of
//! the filter's engine so the two can be compared in a real Envoy.
//!
//! Input: policies as in the filter's `authorization.policies[]`
//! (`{"name", "namespace"?, "spec"}`). Output: the HTTP filters istiod puts in the gateway
//! HCM: an RBAC filter with every DENY rule (action `DENY`), then one with every ALLOW rule
//! (action `ALLOW`); each rule is an Envoy policy `ns[<ns>]-policy[<name>]-rule[<i>]`.
//!
//! Covered: `principals`, `namespaces`, `ipBlocks`, `remoteIpBlocks` (+ `not*`), `hosts`,
//! `methods`, `paths` (incl. `{*}`/`{**}` templates), `ports` (+ `not*`), and the `when` keys
//! `request.headers[..]`, `source.ip`, `remote.ip`, `source.namespace`, `source.principal`,
//! `destination.port`. The trust domain is `cluster.local` without aliases. Anything else
//! panics: the generator must not produce it.

use serde_json::{json, Value};

const RBAC_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// Istio's string matcher (`matcher.StringMatcherWithPrefix`): `*` → regex `.+`; `*x` →
/// suffix (with a prefix: the UNESCAPED regex `<prefix>.*x`, authz.md §8); `x*` → prefix;
/// else exact.
fn string_matcher(v: &str, prefix: &str) -> Value {
    if v == "*" {
        json!({"safe_regex": {"regex": ".+"}})
    } else if let Some(rest) = v.strip_prefix('*') {
        if prefix.is_empty() {
            json!({"suffix": rest})
        } else {
            json!({"safe_regex": {"regex": format!("{prefix}.*{rest}")}})
        }
    } else if let Some(rest) = v.strip_suffix('*') {
        json!({"prefix": format!("{prefix}{rest}")})
    } else {
        json!({"exact": format!("{prefix}{v}")})
    }
}

/// Istio's header matcher (`HeaderMatcher` / `HostMatcher` with `ignore_case`).
fn header_matcher(name: &str, v: &str, ignore_case: bool) -> Value {
    if v == "*" {
        return json!({"name": name, "present_match": true});
    }
    let mut m = if let Some(rest) = v.strip_prefix('*') {
        json!({"suffix": rest})
    } else if let Some(rest) = v.strip_suffix('*') {
        json!({"prefix": rest})
    } else {
        json!({"exact": v})
    };
    if ignore_case {
        m["ignore_case"] = json!(true);
    }
    json!({"name": name, "string_match": m})
}

fn cidr(v: &str) -> Value {
    let (addr, len) = match v.split_once('/') {
        Some((a, l)) => (a.to_string(), l.parse::<u32>().expect("prefix length")),
        None => {
            let ip: std::net::IpAddr = v.parse().expect("an IP");
            (v.to_string(), if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    json!({"address_prefix": addr, "prefix_len": len})
}

fn principal_name(v: &str) -> Value {
    json!({"authenticated": {"principal_name": string_matcher(v, "spiffe://")}})
}

fn namespace(v: &str) -> Value {
    let ns = v.replace('*', ".*");
    json!({"authenticated": {"principal_name": {"safe_regex": {"regex": format!(".*/ns/{ns}/.*")}}}})
}

fn path(v: &str) -> Value {
    if v.contains("{*}") || v.contains("{**}") {
        let t = v.replace("{**}", "**").replace("{*}", "*");
        return json!({"uri_template": {
            "name": "uri-template",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": t
            }
        }});
    }
    json!({"url_path": {"path": string_matcher(v, "")}})
}

fn port(v: &str) -> Value {
    json!({"destination_port": v.parse::<u32>().expect("a port")})
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// `or` of the values (`or_ids`/`or_rules` need at least one).
fn any_of(kind: &str, values: Vec<Value>) -> Value {
    assert!(!values.is_empty(), "an empty value list");
    let key = if kind == "ids" { "or_ids" } else { "or_rules" };
    json!({ key: { kind: values } })
}

fn negate(kind: &str, v: Value) -> Value {
    let key = if kind == "ids" { "not_id" } else { "not_rule" };
    json!({ key: v })
}

fn all_of(kind: &str, mut parts: Vec<Value>) -> Value {
    match parts.len() {
        0 => json!({"any": true}),
        1 => parts.remove(0),
        _ => {
            let key = if kind == "ids" {
                "and_ids"
            } else {
                "and_rules"
            };
            json!({ key: { kind: parts } })
        }
    }
}

/// A field with values and notValues → the `and` parts.
fn field(obj: &Value, name: &str, kind: &str, f: &dyn Fn(&str) -> Value, out: &mut Vec<Value>) {
    let not_name = format!("not{}{}", name[..1].to_uppercase(), &name[1..]);
    if let Some(v) = obj.get(name) {
        out.push(any_of(kind, strings(v).iter().map(|s| f(s)).collect()));
    }
    if let Some(v) = obj.get(&not_name) {
        out.push(negate(
            kind,
            any_of(kind, strings(v).iter().map(|s| f(s)).collect()),
        ));
    }
}

type ValueFn = Box<dyn Fn(&str) -> Value>;

/// The `when` conditions of a rule, split into principal parts and permission parts.
fn conditions(when: Option<&Value>) -> (Vec<Value>, Vec<Value>) {
    let mut ids = Vec::new();
    let mut rules = Vec::new();
    for c in when.and_then(Value::as_array).into_iter().flatten() {
        let key = c["key"].as_str().expect("key");
        let (kind, f): (&str, ValueFn) = if let Some(h) = key.strip_prefix("request.headers[") {
            let h = h
                .strip_suffix(']')
                .expect("request.headers[..]")
                .to_string();
            (
                "ids",
                Box::new(move |v| json!({"header": header_matcher(&h, v, false)})),
            )
        } else {
            match key {
                "source.ip" => ("ids", Box::new(|v| json!({"direct_remote_ip": cidr(v)}))),
                "remote.ip" => ("ids", Box::new(|v| json!({"remote_ip": cidr(v)}))),
                "source.namespace" => ("ids", Box::new(namespace)),
                "source.principal" => ("ids", Box::new(principal_name)),
                "destination.port" => ("rules", Box::new(port)),
                other => panic!("when key {other} is not translated"),
            }
        };
        let mut parts = Vec::new();
        let obj = json!({"values": c.get("values"), "notValues": c.get("notValues")});
        let obj = Value::Object(
            obj.as_object()
                .expect("object")
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        field(&obj, "values", kind, &*f, &mut parts);
        if kind == "ids" {
            ids.extend(parts);
        } else {
            rules.extend(parts);
        }
    }
    (ids, rules)
}

/// One Istio rule → one Envoy policy.
fn policy(rule: &Value) -> Value {
    let (when_ids, when_rules) = conditions(rule.get("when"));
    let froms: Vec<Option<&Value>> = match rule.get("from").and_then(Value::as_array) {
        Some(fs) => fs.iter().map(|f| Some(&f["source"])).collect(),
        None => vec![None],
    };
    let tos: Vec<Option<&Value>> = match rule.get("to").and_then(Value::as_array) {
        Some(ts) => ts.iter().map(|t| Some(&t["operation"])).collect(),
        None => vec![None],
    };
    let principals: Vec<Value> = froms
        .into_iter()
        .map(|src| {
            let mut parts = Vec::new();
            if let Some(s) = src {
                for k in s.as_object().expect("source").keys() {
                    assert!(
                        [
                            "principals",
                            "notPrincipals",
                            "namespaces",
                            "notNamespaces",
                            "ipBlocks",
                            "notIpBlocks",
                            "remoteIpBlocks",
                            "notRemoteIpBlocks"
                        ]
                        .contains(&k.as_str()),
                        "source field {k} is not translated"
                    );
                }
                field(s, "principals", "ids", &principal_name, &mut parts);
                field(s, "namespaces", "ids", &namespace, &mut parts);
                field(
                    s,
                    "ipBlocks",
                    "ids",
                    &|v| json!({"direct_remote_ip": cidr(v)}),
                    &mut parts,
                );
                field(
                    s,
                    "remoteIpBlocks",
                    "ids",
                    &|v| json!({"remote_ip": cidr(v)}),
                    &mut parts,
                );
            }
            parts.extend(when_ids.iter().cloned());
            all_of("ids", parts)
        })
        .collect();
    let permissions: Vec<Value> = tos
        .into_iter()
        .map(|op| {
            let mut parts = Vec::new();
            if let Some(o) = op {
                for k in o.as_object().expect("operation").keys() {
                    assert!(
                        [
                            "hosts",
                            "notHosts",
                            "methods",
                            "notMethods",
                            "paths",
                            "notPaths",
                            "ports",
                            "notPorts"
                        ]
                        .contains(&k.as_str()),
                        "operation field {k} is not translated"
                    );
                }
                field(
                    o,
                    "hosts",
                    "rules",
                    &|v| json!({"header": header_matcher(":authority", v, true)}),
                    &mut parts,
                );
                field(
                    o,
                    "methods",
                    "rules",
                    &|v| json!({"header": header_matcher(":method", v, false)}),
                    &mut parts,
                );
                field(o, "paths", "rules", &path, &mut parts);
                field(o, "ports", "rules", &port, &mut parts);
            }
            parts.extend(when_rules.iter().cloned());
            all_of("rules", parts)
        })
        .collect();
    json!({"permissions": permissions, "principals": principals})
}

fn rbac_filter(name: &str, action: &str, policies: serde_json::Map<String, Value>) -> Value {
    json!({
        "name": name,
        "typed_config": {"@type": RBAC_TYPE, "rules": {"action": action, "policies": policies}}
    })
}

/// The RBAC HTTP filters istiod generates for `policies` (DENY filter first, then ALLOW;
/// each present only when a policy of that action exists).
pub fn rbac_filters(policies: &[Value]) -> Vec<Value> {
    let mut deny = serde_json::Map::new();
    let mut allow = serde_json::Map::new();
    let mut has_deny = false;
    let mut has_allow = false;
    for p in policies {
        let name = p["name"].as_str().expect("name");
        let ns = p["namespace"].as_str().unwrap_or("istio-system");
        let spec = &p["spec"];
        let action = spec["action"].as_str().unwrap_or("ALLOW");
        let target = match action {
            "ALLOW" => {
                has_allow = true;
                &mut allow
            }
            "DENY" => {
                has_deny = true;
                &mut deny
            }
            other => panic!("action {other} is not translated"),
        };
        match spec.get("rules").and_then(Value::as_array) {
            None => {
                // `spec: {}` (ALLOW without rules): a policy that never matches.
                assert_eq!(action, "ALLOW", "a DENY policy without rules is invalid");
                target.insert(
                    format!("ns[{ns}]-policy[{name}]-rule[0]"),
                    json!({"permissions": [{"not_rule": {"any": true}}],
                           "principals": [{"not_id": {"any": true}}]}),
                );
            }
            Some(rules) => {
                for (i, r) in rules.iter().enumerate() {
                    target.insert(format!("ns[{ns}]-policy[{name}]-rule[{i}]"), policy(r));
                }
            }
        }
    }
    let mut out = Vec::new();
    if has_deny {
        out.push(rbac_filter("envoy.filters.http.rbac.deny", "DENY", deny));
    }
    if has_allow {
        out.push(rbac_filter("envoy.filters.http.rbac.allow", "ALLOW", allow));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_patterns_follow_istio() {
        assert_eq!(
            string_matcher("cluster.local/ns/a/sa/b", "spiffe://"),
            json!({"exact": "spiffe://cluster.local/ns/a/sa/b"})
        );
        assert_eq!(
            string_matcher("*/sa/b", "spiffe://"),
            json!({"safe_regex": {"regex": "spiffe://.*/sa/b"}})
        );
        assert_eq!(
            string_matcher("cluster.local/*", "spiffe://"),
            json!({"prefix": "spiffe://cluster.local/"})
        );
        assert_eq!(
            string_matcher("*", "spiffe://"),
            json!({"safe_regex": {"regex": ".+"}})
        );
        assert_eq!(string_matcher("*.txt", ""), json!({"suffix": ".txt"}));
    }

    #[test]
    fn spec_without_rules_never_matches_and_empty_rule_matches_all() {
        let f = rbac_filters(&[
            json!({"name": "nothing", "spec": {}}),
            json!({"name": "all", "namespace": "x", "spec": {"rules": [{}]}}),
        ]);
        assert_eq!(f.len(), 1);
        let p = &f[0]["typed_config"]["rules"]["policies"];
        assert_eq!(
            p["ns[x]-policy[all]-rule[0]"],
            json!({"permissions": [{"any": true}], "principals": [{"any": true}]})
        );
        assert_eq!(
            p["ns[istio-system]-policy[nothing]-rule[0]"]["principals"],
            json!([{"not_id": {"any": true}}])
        );
    }
}
