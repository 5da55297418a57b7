//! The filter's counters as Prometheus labels in a real Envoy (1.40, V8): the bootstrap's
//! `stats_config.stats_tags` documented in `policies/README.md` ("Metrics") turn
//! `wasmcustom.portcullis.check.<c>.decision.<d>.reason.<r>.partner.<p>` (and
//! `….policy.<rule>` for authorization) into one Prometheus counter `portcullis` with the
//! labels `portcullis_check`, `portcullis_decision`, `portcullis_reason` and
//! `portcullis_partner` or `portcullis_policy`.
//!
//! Envoy facts this test pins (observed with Envoy 1.40): `wasmcustom` is a custom stat
//! namespace, so `/stats/prometheus` prints the series without the `envoy_` prefix and
//! without `wasmcustom_`; every regex is matched against the full stat name, its first
//! capture group is cut from the name and its second is the label value; without a tag for
//! the last `.policy.<rule>` pair the rule ends up (sanitized) in the metric name.

use portcullis_e2e::{portcullis_total, Envoy, EnvoyConfig, Request};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const ACME: &str = "127.0.0.2";
const STRANGER: &str = "127.0.0.4";

/// The `stats_tags` documented in `policies/README.md` (keep the two in sync).
fn stats_tags() -> Value {
    json!([
        {"tag_name": "portcullis_check",
         "regex": r"^wasmcustom\.portcullis\.(check\.([^.]+)\.)"},
        {"tag_name": "portcullis_decision",
         "regex": r"^wasmcustom\.portcullis\.check\.[^.]+\.(decision\.([^.]+)\.)"},
        {"tag_name": "portcullis_reason",
         "regex": r"^wasmcustom\.portcullis\.check\.[^.]+\.decision\.[^.]+\.(reason\.([^.]+))\."},
        {"tag_name": "portcullis_partner",
         "regex": r"^wasmcustom\.portcullis\.check\.[^.]+\.decision\.[^.]+\.reason\.[^.]+(\.partner\.(.+))$"},
        {"tag_name": "portcullis_policy",
         "regex": r"^wasmcustom\.portcullis\.check\.[^.]+\.decision\.[^.]+\.reason\.[^.]+(\.policy\.(.+))$"},
    ])
}

/// Partner `acme.eu` (a dot in the name, as names allow) on 127.0.0.2; a DENY policy on
/// `/admin*` whose name has a dot too; no ALLOW policy.
const PLUGIN: &str = r#"{
  "partners": [{"name": "acme.eu", "cidrs": ["127.0.0.2/32"]}],
  "ip_allowlist": {"mode": "enforce", "client_ip": {"source": "peer"}, "scope": "all"},
  "authorization": {"policies": [
    {"name": "deny-admin.v1", "namespace": "istio-system",
     "spec": {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/admin*"]}}]}]}}
  ]}
}"#;

const RULE: &str = "ns[istio-system]-policy[deny-admin.v1]-rule[0]";

/// Sends the traffic every test here counts: acme to `/api` twice (allowed twice), a
/// stranger to `/api` twice (denied by the IP allow-list), acme to `/admin/x` (passes the
/// IP allow-list, denied by the DENY policy).
/// The counter increments `send_traffic` causes (IP check and authorization).
const COUNTED: u64 = 8;

fn send_traffic(envoy: &Envoy) {
    let at = envoy.addr();
    for (who, path, status) in [
        (ACME, "/api", 200),
        (ACME, "/api", 200),
        (STRANGER, "/api", 403),
        (STRANGER, "/api", 403),
        (ACME, "/admin/x", 403),
    ] {
        let r = Request::get(path).from(who).send(at);
        assert_eq!(r.status, status, "{who} {path}: {}", r.text());
    }
}

/// One Prometheus sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, String);

/// Parses the samples of `/stats/prometheus` text whose metric name starts with `prefix`.
fn samples(text: &str, prefix: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            (name.to_string(), parse_labels(labels), value.to_string())
        })
        .collect()
}

/// `k="v",k2="v2"` (Envoy escapes `\`, `"` and newlines in values; none occur here).
fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").expect("label=\"value\"");
        let end = after.find('"').expect("closing quote");
        out.insert(k.to_string(), after[..end].to_string());
        rest = after[end + 1..].trim_start_matches(',');
    }
    out
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn stats_tags_turn_counters_into_prometheus_labels() {
    let cfg = EnvoyConfig::with_plugin(PLUGIN).stats_config(json!({ "stats_tags": stats_tags() }));
    let envoy = Envoy::start(&cfg);
    send_traffic(&envoy);

    // The plain stat names are unchanged by the tags.
    let stats = envoy.stats_when("wasmcustom", |m| portcullis_total(m) >= COUNTED);
    // The gauge: the VM's linear memory, whole Wasm pages.
    let memory = stats.get("wasmcustom.portcullis.vm.linear_memory_bytes");
    assert!(
        memory.is_some_and(|&b| b > 0 && b % 65536 == 0),
        "{stats:?}"
    );
    let stats: BTreeMap<String, u64> = stats
        .into_iter()
        .filter(|(k, _)| k.starts_with("wasmcustom.portcullis.check."))
        .collect();
    let plain = |s: &str| format!("wasmcustom.portcullis.{s}");
    let want_plain: BTreeMap<String, u64> = [
        (
            plain("check.ip_allowlist.decision.allowed.reason.partner_network.partner.acme.eu"),
            3,
        ),
        (
            plain("check.ip_allowlist.decision.denied.reason.ip_not_allowed.partner.none"),
            2,
        ),
        (
            plain("check.authorization.decision.allowed.reason.no_allow_policy.policy.none"),
            2,
        ),
        (
            plain(&format!(
                "check.authorization.decision.denied.reason.denied_by_policy.policy.{RULE}"
            )),
            1,
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(stats, want_plain, "admin /stats");

    let prom = envoy.admin_get("/stats/prometheus");
    assert_eq!(prom.status, 200, "{}", prom.text());
    let text = prom.text();
    let mine: Vec<&str> = text.lines().filter(|l| l.contains("portcullis")).collect();
    eprintln!("/stats/prometheus, portcullis lines:\n{}", mine.join("\n"));

    // The gauge is its own family (no tag regex matches it).
    assert!(
        text.lines()
            .any(|l| l == "# TYPE portcullis_vm_linear_memory_bytes gauge"),
        "{}",
        mine.join("\n")
    );
    // Exactly one counter family, typed as a counter, with one series per counter.
    assert!(
        text.lines().any(|l| l == "# TYPE portcullis counter"),
        "no `# TYPE portcullis counter` line:\n{}",
        mine.join("\n")
    );
    let got: Vec<Sample> = samples(&text, "portcullis")
        .into_iter()
        .filter(|(name, _, _)| name == "portcullis")
        .collect();
    let ip = |d: &str, r: &str, p: &str| {
        labels(&[
            ("portcullis_check", "ip_allowlist"),
            ("portcullis_decision", d),
            ("portcullis_reason", r),
            ("portcullis_partner", p),
        ])
    };
    let authz = |d: &str, r: &str, p: &str| {
        labels(&[
            ("portcullis_check", "authorization"),
            ("portcullis_decision", d),
            ("portcullis_reason", r),
            ("portcullis_policy", p),
        ])
    };
    let mut want: Vec<Sample> = [
        (ip("allowed", "partner_network", "acme.eu"), "3"),
        (ip("denied", "ip_not_allowed", "none"), "2"),
        (authz("allowed", "no_allow_policy", "none"), "2"),
        (authz("denied", "denied_by_policy", RULE), "1"),
    ]
    .into_iter()
    .map(|(l, v)| ("portcullis".to_string(), l, v.to_string()))
    .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(
        got_sorted,
        want,
        "/stats/prometheus series:\n{}",
        mine.join("\n")
    );

    // The exact line a dashboard query sees (labels in `stats_tags` order).
    assert!(
        text.lines().any(|l| l
            == "portcullis{portcullis_check=\"ip_allowlist\",portcullis_decision=\"denied\",\
                portcullis_reason=\"ip_not_allowed\",portcullis_partner=\"none\"} 2"),
        "{}",
        mine.join("\n")
    );
}

/// Without the `policy` tag (the regexes `policies/README.md` proposed first), the rule
/// name lands in the Prometheus metric name, one family per rule: why the tag is needed.
#[test]
fn without_the_policy_tag_rules_end_up_in_metric_names() {
    let tags: Vec<Value> = stats_tags()
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["tag_name"] != "portcullis_policy")
        .cloned()
        .collect();
    let cfg = EnvoyConfig::with_plugin(PLUGIN).stats_config(json!({ "stats_tags": tags }));
    let envoy = Envoy::start(&cfg);
    send_traffic(&envoy);
    envoy.stats_when("wasmcustom", |m| portcullis_total(m) >= COUNTED);
    let text = envoy.admin_get("/stats/prometheus").text();
    let mut names: Vec<String> = samples(&text, "portcullis")
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        [
            "portcullis",
            "portcullis__policy_none",
            "portcullis__policy_ns_istio_system__policy_deny_admin_v1__rule_0_",
            // The linear-memory gauge, unaffected by the tags.
            "portcullis_vm_linear_memory_bytes",
        ],
        "{}",
        text.lines()
            .filter(|l| l.contains("portcullis"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
