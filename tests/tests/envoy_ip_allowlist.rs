//! The partner IP allow-list in a real Envoy (1.40, V8), configured like an Istio ingress
//! gateway (`use_remote_address: true`). Clients are told apart by their loopback source
//! address: 127.0.0.2 is partner `acme`, 127.0.0.3 partner `globex` (only `/globex/…`),
//! 127.0.0.4 and 127.0.0.9 are nobody.
//!
//! Envoy facts these tests rely on (observed with Envoy 1.40): with `use_remote_address`,
//! Envoy appends the TCP peer to `x-forwarded-for` before the filter runs (except for
//! 127.0.0.1 and ::1, for which it appends its own non-loopback address), and with
//! `xff_num_trusted_hops: N` its trusted client address (`source.address`) is the N-th
//! entry from the right of the incoming header.

use portcullis_e2e::{portcullis_total, Connection, Envoy, EnvoyConfig, Request, Response};
use serde_json::Value;
use std::collections::BTreeMap;

const ACME: &str = "127.0.0.2";
const GLOBEX: &str = "127.0.0.3";
const STRANGER: &str = "127.0.0.4";
const LB: &str = "127.0.0.9";

const PARTNERS: &str = r#"[
  {"name": "acme", "cidrs": ["127.0.0.2/32", "2001:db8::/32"], "hosts": [], "path_prefixes": []},
  {"name": "globex", "cidrs": ["127.0.0.3"], "path_prefixes": ["/globex/"]}
]"#;

/// A configuration with the partners above and `ip_allowlist` = `allowlist` (JSON).
fn config(allowlist: &str) -> String {
    format!(r#"{{"partners": {PARTNERS}, "ip_allowlist": {allowlist}}}"#)
}

fn peer_config() -> String {
    config(r#"{"mode": "enforce", "client_ip": {"source": "peer"}, "scope": "all"}"#)
}

/// Asserts `r` is the filter's default denial with `reason` (and `detail`, when given).
#[track_caller]
fn assert_denied(r: &Response, reason: &str, detail: Option<&str>) {
    assert_eq!(r.status, 403, "expected a denial, got: {}", r.text());
    assert_eq!(
        r.header("x-echo"),
        None,
        "a denied request reached upstream"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    let obj = body.as_object().expect("the denial body is a JSON object");
    assert_eq!(obj["check"], "ip_allowlist", "{body}");
    assert_eq!(obj["reason"], reason, "{body}");
    match detail {
        Some(d) => assert_eq!(obj.get("detail"), Some(&Value::from(d)), "{body}"),
        None => assert_eq!(obj.get("detail"), None, "{body}"),
    }
    for k in obj.keys() {
        assert!(
            ["check", "reason", "detail", "request_id"].contains(&k.as_str()),
            "unexpected key {k} in {body}"
        );
    }
    if let Some(id) = obj.get("request_id") {
        // Envoy always has an x-request-id (it generates one for external requests).
        assert!(id.as_str().is_some_and(|s| !s.is_empty()), "{body}");
    }
}

/// Asserts `r` came from the echo upstream, which saw `partner` in the partner header
/// (exactly once) or no partner header at all.
#[track_caller]
fn assert_upstream(r: &Response, partner: Option<&str>) {
    assert_eq!(
        r.status,
        200,
        "expected to reach upstream, got: {}",
        r.text()
    );
    assert_eq!(
        r.header("x-echo"),
        Some("1"),
        "not answered by the upstream"
    );
    let seen = r.upstream_header_values("x-portcullis-partner");
    let want: Vec<String> = partner.into_iter().map(String::from).collect();
    assert_eq!(
        seen,
        want,
        "partner header upstream; all headers: {:?}",
        r.upstream_headers()
    );
}

#[test]
fn peer_address_allows_partners_and_denies_everyone_else() {
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&peer_config()));
    let at = envoy.addr();

    assert_upstream(
        &Request::get("/api/orders").from(ACME).send(at),
        Some("acme"),
    );
    let r = Request::get("/direct").from(ACME).send(at);
    assert_eq!((r.status, r.text().as_str()), (200, "direct"));

    // Partner scope: globex may reach /globex/… only.
    assert_upstream(
        &Request::get("/globex/x").from(GLOBEX).send(at),
        Some("globex"),
    );
    assert_denied(
        &Request::get("/api/orders").from(GLOBEX).send(at),
        "partner_not_allowed_here",
        None,
    );

    // Not a partner network: upstream and direct_response routes alike.
    for who in [STRANGER, "127.0.0.1", "127.1.2.3"] {
        assert_denied(
            &Request::get("/api/orders").from(who).send(at),
            "ip_not_allowed",
            None,
        );
        assert_denied(
            &Request::get("/direct").from(who).send(at),
            "ip_not_allowed",
            None,
        );
    }

    // With no trusted hops in the HCM, a client-written x-forwarded-for changes nothing.
    let r = Request::get("/api")
        .from(STRANGER)
        .header("x-forwarded-for", ACME)
        .send(at);
    assert_denied(&r, "ip_not_allowed", None);
}

#[test]
fn denials_carry_response_code_details_and_are_logged() {
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&peer_config()));
    let at = envoy.addr();
    assert_denied(
        &Request::get("/api/x").from(STRANGER).send(at),
        "ip_not_allowed",
        None,
    );
    assert_denied(
        &Request::get("/api/y").from(GLOBEX).send(at),
        "partner_not_allowed_here",
        None,
    );
    assert_upstream(&Request::get("/api/z").from(ACME).send(at), Some("acme"));
    // Access log: status, %RESPONSE_CODE_DETAILS%, client, path.
    envoy.wait_for_access_log("200 via_upstream 127.0.0.2 /api/z");
    let access = envoy.access_log();
    assert!(
        access.contains("403 portcullis_ip_allowlist_ip_not_allowed 127.0.0.4 /api/x"),
        "{access}"
    );
    assert!(
        access.contains("403 portcullis_ip_allowlist_partner_not_allowed_here 127.0.0.3 /api/y"),
        "{access}"
    );
    // The filter logs each denial with the client address (through Envoy's wasm logger).
    let log = envoy.wait_for_log("ip_not_allowed");
    assert!(
        log.lines().any(|l| l.contains("wasm log portcullis")
            && l.contains("ip_not_allowed")
            && l.contains(STRANGER)),
        "no filter log line for the denial of {STRANGER}:\n{log}"
    );
}

#[test]
fn partner_header_reaches_upstream_and_a_forged_one_is_stripped() {
    let cfg = config(r#"{"client_ip": {"source": "peer"}, "partner_header": "X-Partner"}"#);
    let envoys = Envoy::start_many(&[
        EnvoyConfig::with_plugin(&peer_config()),
        EnvoyConfig::with_plugin(&cfg),
    ]);
    let at = envoys[0].addr();

    // A partner claiming to be another partner.
    let r = Request::get("/api")
        .from(ACME)
        .header("x-portcullis-partner", "globex")
        .header("X-Portcullis-Partner", "admin")
        .send(at);
    assert_upstream(&r, Some("acme"));

    // A custom header name.
    let envoy = &envoys[1];
    let r = Request::get("/api")
        .from(GLOBEX)
        .header("x-partner", "acme")
        .header("x-portcullis-partner", "untouched")
        .send(envoy.addr());
    assert_denied(&r, "partner_not_allowed_here", None);
    let r = Request::get("/globex/a")
        .from(GLOBEX)
        .header("x-partner", "acme")
        .header("x-portcullis-partner", "untouched")
        .send(envoy.addr());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.upstream_header_values("x-partner"), ["globex"]);
    assert_eq!(
        r.upstream_header_values("x-portcullis-partner"),
        ["untouched"]
    );
}

/// `source: x_forwarded_for` with `trusted_hops: 1` behind one trusted proxy (the HCM
/// trusting one hop too, as Istio's `numTrustedProxies: 1` does). The client connects from
/// [`LB`] and plays the load balancer, which appends the address it saw.
#[test]
fn forwarded_for_with_one_trusted_hop() {
    let cfg = config(r#"{"client_ip": {"source": "x_forwarded_for", "trusted_hops": 1}}"#);
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg).trusted_hops(1));
    let at = envoy.addr();
    let via_lb = |xff: &[&str]| {
        let mut r = Request::get("/api").from(LB);
        for line in xff {
            r = r.header("x-forwarded-for", line);
        }
        r.send(at)
    };

    // The filter sees "127.0.0.2,127.0.0.9": the client is the entry before Envoy's append,
    // the same address Envoy itself trusts.
    let r = via_lb(&[ACME]);
    assert_upstream(&r, Some("acme"));
    assert_eq!(r.upstream_header_values("x-envoy-external-address"), [ACME]);
    assert_eq!(
        r.upstream_header_values("x-forwarded-for"),
        [format!("{ACME},{LB}")]
    );

    // The client wrote a partner address on the left; the LB appended the real one.
    assert_denied(
        &via_lb(&[&format!("{ACME}, 127.0.0.5")]),
        "ip_not_allowed",
        None,
    );
    assert_denied(
        &via_lb(&[&format!("{ACME},{STRANGER}")]),
        "ip_not_allowed",
        None,
    );
    // Same, split over two header lines.
    assert_denied(&via_lb(&[ACME, "127.0.0.5"]), "ip_not_allowed", None);
    // The LB added nothing: only Envoy's own entry is there.
    assert_denied(
        &via_lb(&[]),
        "client_ip_unknown",
        Some("x_forwarded_for_too_short"),
    );
    // The selected entry is not an address.
    assert_denied(
        &via_lb(&["not-an-ip"]),
        "client_ip_unknown",
        Some("bad_x_forwarded_for"),
    );
    assert_denied(
        &via_lb(&[&format!("{ACME}:443")]),
        "client_ip_unknown",
        Some("bad_x_forwarded_for"),
    );
    // Partner scope still applies to the XFF-derived client.
    assert_upstream(
        &Request::get("/globex/x")
            .from(LB)
            .header("x-forwarded-for", GLOBEX)
            .send(at),
        Some("globex"),
    );
}

/// Each request on a kept-alive connection is decided on its own: nothing of an earlier
/// decision (client IP, partner) carries over to the next stream.
#[test]
fn every_request_on_a_kept_alive_connection_is_decided_alone() {
    let cfg = config(r#"{"client_ip": {"source": "x_forwarded_for", "trusted_hops": 1}}"#);
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg).trusted_hops(1));
    let mut conn = Connection::open(LB, envoy.addr());
    let req = |xff: &str, path: &str| Request::get(path).header("x-forwarded-for", xff);
    for _ in 0..2 {
        assert_upstream(&conn.send(&req(ACME, "/api")), Some("acme"));
        assert_denied(&conn.send(&req(STRANGER, "/api")), "ip_not_allowed", None);
        assert_upstream(&conn.send(&req(GLOBEX, "/globex/1")), Some("globex"));
        assert_denied(
            &conn.send(&req(GLOBEX, "/api")),
            "partner_not_allowed_here",
            None,
        );
        let forged = req(STRANGER, "/direct").header("x-portcullis-partner", "acme");
        assert_denied(&conn.send(&forged), "ip_not_allowed", None);
        assert_eq!(conn.send(&req(ACME, "/direct")).text(), "direct");
    }
}

#[test]
fn forwarded_for_with_two_trusted_hops() {
    let cfg = config(r#"{"client_ip": {"source": "x_forwarded_for", "trusted_hops": 2}}"#);
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg).trusted_hops(2));
    let at = envoy.addr();
    let send = |xff: &str| {
        Request::get("/api")
            .from(LB)
            .header("x-forwarded-for", xff)
            .send(at)
    };

    // client, CDN-appended edge address, then Envoy appends the LB.
    let r = send(&format!("{ACME}, 127.0.0.8"));
    assert_upstream(&r, Some("acme"));
    assert_eq!(r.upstream_header_values("x-envoy-external-address"), [ACME]);
    assert_denied(&send(&format!("127.0.0.8, {ACME}")), "ip_not_allowed", None);
    // Spoofed entries further left are ignored.
    assert_upstream(
        &send(&format!("{STRANGER}, 127.0.0.6, {ACME}, 127.0.0.8")),
        Some("acme"),
    );
    assert_denied(
        &send(&format!("{ACME}, {STRANGER}, 127.0.0.8")),
        "ip_not_allowed",
        None,
    );
    // Two entries seen (one sent + Envoy's), three needed.
    assert_denied(
        &send(ACME),
        "client_ip_unknown",
        Some("x_forwarded_for_too_short"),
    );
}

/// `source: peer` at a gateway whose HCM trusts one XFF hop: `source.address` is Envoy's
/// XFF-derived client address, falling back to the TCP peer when XFF has no entry for it.
#[test]
fn peer_source_follows_envoys_trusted_client_address() {
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&peer_config()).trusted_hops(1));
    let at = envoy.addr();
    let r = Request::get("/api")
        .from(LB)
        .header("x-forwarded-for", ACME)
        .send(at);
    assert_upstream(&r, Some("acme"));
    let r = Request::get("/api")
        .from(LB)
        .header("x-forwarded-for", &format!("{ACME}, {STRANGER}"))
        .send(at);
    assert_denied(&r, "ip_not_allowed", None);
    // No XFF: Envoy falls back to the TCP peer.
    assert_denied(
        &Request::get("/api").from(LB).send(at),
        "ip_not_allowed",
        None,
    );
    assert_upstream(&Request::get("/api").from(ACME).send(at), Some("acme"));
}

#[test]
fn scope_routes_keeps_public_routes_open() {
    let cfg = config(
        r#"{"client_ip": {"source": "peer"}, "scope": "routes",
            "protected_routes": [{"path_prefixes": ["/partner/"]}, {"hosts": ["partners.example.com"]}]}"#,
    );
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg));
    let at = envoy.addr();

    // Public: anyone, and a forged partner header does not survive.
    let r = Request::get("/public")
        .from(STRANGER)
        .header("x-portcullis-partner", "acme")
        .send(at);
    assert_upstream(&r, None);
    let r = Request::get("/direct").from(STRANGER).send(at);
    assert_eq!((r.status, r.text().as_str()), (200, "direct"));
    assert_upstream(
        &Request::get("/public?/partner/").from(STRANGER).send(at),
        None,
    );

    // Protected by path prefix or by host.
    assert_denied(
        &Request::get("/partner/x").from(STRANGER).send(at),
        "ip_not_allowed",
        None,
    );
    assert_denied(
        &Request::get("/partner/x?a=1").from(STRANGER).send(at),
        "ip_not_allowed",
        None,
    );
    let r = Request::get("/public")
        .host("partners.example.com")
        .from(STRANGER)
        .send(at);
    assert_denied(&r, "ip_not_allowed", None);
    let r = Request::get("/public")
        .host("PARTNERS.example.com:8080")
        .from(STRANGER)
        .send(at);
    assert_denied(&r, "ip_not_allowed", None);
    // Envoy normalizes the path before the filter sees it.
    assert_denied(
        &Request::get("/public/../partner/x").from(STRANGER).send(at),
        "ip_not_allowed",
        None,
    );

    assert_upstream(
        &Request::get("/partner/x").from(ACME).send(at),
        Some("acme"),
    );
    assert_denied(
        &Request::get("/partner/x").from(GLOBEX).send(at),
        "partner_not_allowed_here",
        None,
    );
}

#[test]
fn dry_run_lets_denied_requests_through() {
    let cfg = config(r#"{"mode": "dry_run", "client_ip": {"source": "peer"}}"#);
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg));
    let at = envoy.addr();
    let r = Request::get("/api")
        .from(STRANGER)
        .header("x-portcullis-partner", "acme")
        .send(at);
    assert_upstream(&r, None);
    assert_upstream(&Request::get("/api").from(GLOBEX).send(at), None);
    let r = Request::get("/direct").from(STRANGER).send(at);
    assert_eq!((r.status, r.text().as_str()), (200, "direct"));
    assert_upstream(&Request::get("/api").from(ACME).send(at), Some("acme"));
    // The three would-be denials are counted (names loosely: `…decision.dry_run…`).
    let dry_runs = |stats: &BTreeMap<String, u64>| -> u64 {
        stats
            .iter()
            .filter(|(k, _)| k.starts_with("wasmcustom.portcullis") && k.contains("dry_run"))
            .map(|(_, v)| v)
            .sum()
    };
    let stats = envoy.stats_when("wasmcustom", |m| dry_runs(m) >= 3);
    let dry = dry_runs(&stats);
    assert_eq!(dry, 3, "{stats:?}");
}

#[test]
fn custom_denial_status_body_and_reason_header() {
    let cfg = format!(
        r#"{{"partners": {PARTNERS}, "ip_allowlist": {{"client_ip": {{"source": "peer"}}}},
            "denial": {{"status": 451, "body": "go away", "reason_header": "X-Portcullis-Reason"}}}}"#
    );
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&cfg));
    let r = Request::get("/api").from(STRANGER).send(envoy.addr());
    assert_eq!(r.status, 451);
    assert_eq!(r.text(), "go away");
    assert_eq!(r.header("x-echo"), None);
    assert_eq!(
        r.header("x-portcullis-reason"),
        Some("ip_not_allowed; check=ip_allowlist")
    );
    let r = Request::get("/api").from(GLOBEX).send(envoy.addr());
    assert_eq!(r.status, 451);
    assert_eq!(
        r.header("x-portcullis-reason"),
        Some("partner_not_allowed_here; check=ip_allowlist")
    );
    assert_upstream(
        &Request::get("/api").from(ACME).send(envoy.addr()),
        Some("acme"),
    );
}

#[test]
fn ipv6_peer() {
    let v6 = r#"{"partners": [{"name": "acme", "cidrs": ["127.0.0.2/32", "2001:db8::/32"]},
                              {"name": "local6", "cidrs": ["::1/128"]}],
                 "ip_allowlist": {"client_ip": {"source": "peer"}}}"#;
    let envoys = Envoy::start_many(&[
        EnvoyConfig::with_plugin(v6).listen_on("::1"),
        EnvoyConfig::with_plugin(&peer_config()).listen_on("::1"),
    ]);
    assert_upstream(
        &Request::get("/api").from("::1").send(envoys[0].addr()),
        Some("local6"),
    );
    assert_denied(
        &Request::get("/api").from("::1").send(envoys[1].addr()),
        "ip_not_allowed",
        None,
    );
}

#[test]
fn bad_config_stops_envoy_and_logs_the_json_pointer() {
    let cases = [
        (
            r#"{"partners": [{"name": "acme", "cidrs": ["127.0.0.2/32", "10.0.0.0/33"]}],
                "ip_allowlist": {"client_ip": {"source": "peer"}}}"#,
            r#"/partners/0/cidrs/1: "10.0.0.0/33" is not a CIDR (prefix length 33 > 32)"#,
        ),
        (
            r#"{"partners": [{"name": "acme", "cidrs": ["127.0.0.2"]}],
                "ip_allowlist": {"client_ip": {"source": "x_forwarded_for"}}}"#,
            r#"/ip_allowlist/client_ip: "trusted_hops" is required"#,
        ),
        (
            r#"{"partners": [], "ip_alowlist": {}}"#,
            "unknown field `ip_alowlist`",
        ),
        ("", "the configuration is empty"),
    ];
    let configs: Vec<_> = cases
        .iter()
        .map(|(p, _)| EnvoyConfig::with_plugin(p))
        .collect();
    let results = Envoy::try_start_many(&configs);
    for ((plugin, message), result) in cases.into_iter().zip(results) {
        let failure = match result {
            Ok(envoy) => panic!(
                "envoy started with the bad configuration {plugin}\n--- envoy log ---\n{}",
                envoy.log()
            ),
            Err(f) => f,
        };
        // Envoy 1.40 refuses a static listener whose Wasm plugin fails on_configure: it
        // exits with status 1 at start-up instead of serving without the filter.
        let status = failure
            .status
            .unwrap_or_else(|| panic!("envoy did not exit: {failure:?}"));
        assert_eq!(status.code(), Some(1), "{failure:?}");
        assert!(
            failure.log.contains(message),
            "no {message:?} in the log: {failure:?}"
        );
        assert!(
            failure
                .log
                .contains("Unable to create Wasm plugin portcullis"),
            "{failure:?}"
        );
    }
}

#[test]
fn filter_counters_are_envoy_stats() {
    let envoy = Envoy::start(&EnvoyConfig::with_plugin(&peer_config()));
    let at = envoy.addr();
    let before = envoy.stats("wasmcustom");
    for _ in 0..3 {
        assert_upstream(&Request::get("/api").from(ACME).send(at), Some("acme"));
    }
    for _ in 0..2 {
        assert_denied(
            &Request::get("/api").from(STRANGER).send(at),
            "ip_not_allowed",
            None,
        );
    }
    let after = envoy.stats_when("wasmcustom", |m| {
        portcullis_total(m) >= portcullis_total(&before) + 5
    });
    let ours: Vec<_> = after
        .keys()
        .filter(|k| k.starts_with("wasmcustom.portcullis"))
        .collect();
    assert!(
        !ours.is_empty(),
        "no wasmcustom.portcullis* stats: {after:?}"
    );
    let delta = |k: &String| after[k] - before.get(k).copied().unwrap_or(0);
    // The names are `portcullis.check.<check>.decision.<d>.reason.<r>.partner.<p>`; assert
    // loosely: some counter took the 2 denials, some the 3 requests allowed for acme.
    assert!(
        ours.iter()
            .any(|k| delta(k) == 2 && k.contains("denied") && k.contains("ip_not_allowed")),
        "no denial counter went up by 2: before {before:?} after {after:?}"
    );
    assert!(
        ours.iter()
            .any(|k| delta(k) == 3 && k.contains("allowed") && k.contains("acme")),
        "no allowed counter for acme went up by 3: before {before:?} after {after:?}"
    );
    let rq4xx = envoy.stats("^http.ingress.downstream_rq_4xx$");
    assert_eq!(rq4xx.get("http.ingress.downstream_rq_4xx"), Some(&2));
}

#[test]
fn release_wasm_exports_the_abi_version() {
    let bytes = std::fs::read(portcullis_e2e::wasm_path()).expect("read the .wasm");
    let mut exports = Vec::new();
    let mut import_modules = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.expect("a valid wasm module") {
            wasmparser::Payload::ExportSection(s) => {
                for e in s {
                    exports.push(e.expect("export").name.to_string());
                }
            }
            wasmparser::Payload::ImportSection(s) => {
                for imports in s {
                    for i in imports.expect("import") {
                        import_modules.push(i.expect("import").1.module.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    for want in [
        "proxy_abi_version_0_2_1",
        "memory",
        "proxy_on_context_create",
        "proxy_on_configure",
        "proxy_on_request_headers",
    ] {
        assert!(
            exports.iter().any(|e| e == want),
            "{want} is not exported: {exports:?}"
        );
    }
    assert!(
        exports
            .iter()
            .any(|e| e == "malloc" || e == "proxy_on_memory_allocate"),
        "no allocator export: {exports:?}"
    );
    assert!(
        import_modules
            .iter()
            .all(|m| m == "env" || m.starts_with("wasi")),
        "imports from unexpected modules: {import_modules:?}"
    );
}
