//! A filter from another proxy-wasm SDK in a real Envoy 1.40 and in the harness: the
//! AssemblyScript test filter (harness/test-filters/assemblyscript, `@solo-io/proxy-runtime`
//! 0.1.8, ABI 0.2.0) must do the same to the same requests in both — header edits, the
//! header count it reads with proxy_get_header_map_pairs, a dotted property path's status,
//! its local reply, an `http_call` answered on the root context that resumes the
//! request through proxy_set_effective_context, and a tick counting a metric. Needs
//! Node.js and npm (`scripts/setup`).

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_e2e::{EchoServer, Envoy, EnvoyConfig, Request, Response};
use portcullis_harness::{Action, Host, HttpReply, StreamProps, VmConfig};
use serde_json::json;

const CONFIG: &str = "deny_prefix /admin\n\
add_request_header x-filter assemblyscript\n\
remove_request_header x-remove-me\n\
add_response_header x-seen-by assemblyscript\n\
authz_cluster authz\n";

fn filter() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        portcullis_harness::build::build_assemblyscript(
            portcullis_e2e::workspace_root().join("harness/test-filters/assemblyscript"),
        )
        .unwrap_or_else(|e| panic!("the AssemblyScript filter must build (Node.js + npm): {e}"))
    })
}

fn harness_vm() -> portcullis_harness::Vm {
    let host = Host::from_file(filter()).unwrap();
    host.start_vm(VmConfig {
        plugin_configuration: CONFIG.as_bytes().to_vec(),
        root_id: "portcullis_as".into(),
        ..VmConfig::default()
    })
    .unwrap()
}

/// The request headers the filter saw in Envoy, rebuilt from what reached the echo
/// upstream: Envoy's four pseudo-headers (`host` is `:authority` on the wire), the client's
/// and the connection manager's headers, minus what the filter and the router added, plus
/// the `x-remove-me` the filter removed.
fn seen_by_filter(upstream: &[(String, String)], path: &str) -> Vec<(String, String)> {
    let mut h = vec![
        (":authority".to_string(), "example.com".to_string()),
        (":path".to_string(), path.to_string()),
        (":method".to_string(), "GET".to_string()),
        (":scheme".to_string(), "http".to_string()),
    ];
    h.extend(
        upstream
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "host"
                        | "x-filter"
                        | "x-header-count"
                        | "x-dotted-property"
                        | "x-authz"
                        | "x-envoy-expected-rq-timeout-ms"
                )
            })
            .cloned(),
    );
    h.push(("x-remove-me".to_string(), "1".to_string()));
    h
}

fn envoy_pairs(r: &Response, names: &[String]) -> Vec<(String, String)> {
    let mut out = vec![(":status".to_string(), r.status.to_string())];
    out.extend(r.headers.iter().filter(|(k, _)| names.contains(k)).cloned());
    out
}

#[test]
fn assemblyscript_filter_in_envoy_and_in_the_harness() {
    let authz = EchoServer::start();
    let envoy = Envoy::start(
        &EnvoyConfig::with_plugin(&format!("{CONFIG}tick_ms 100\n"))
            .module(filter())
            .wasm_option("root_id", json!("portcullis_as"))
            .cluster("authz", authz.addr()),
    );
    let mut vm = harness_vm();

    // Header edits, both ways.
    let r = Request::get("/")
        .header("x-remove-me", "1")
        .send(envoy.addr());
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let upstream = r.upstream_headers();
    let seen = seen_by_filter(&upstream, "/");
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    assert_eq!(
        s.request_headers(seen.clone(), true).unwrap(),
        Action::Continue
    );
    s.response_headers(
        [(":status", "200"), ("content-type", "application/json")],
        true,
    )
    .unwrap();
    let h = s.finish().unwrap();
    for name in ["x-filter", "x-header-count", "x-dotted-property"] {
        assert_eq!(
            r.upstream_header_values(name),
            vec![h.request_header(name).unwrap_or("<none>").to_string()],
            "{name}: Envoy (left) against the harness; the filter saw {seen:?}"
        );
    }
    assert!(r.upstream_header_values("x-remove-me").is_empty());
    assert_eq!(r.header("x-seen-by"), h.response_header("x-seen-by"));
    assert_eq!(r.header("x-seen-by"), Some("assemblyscript"));

    // The local reply: status, headers in order, body.
    let r = Request::get("/admin/users").send(envoy.addr());
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(
        [
            (":authority", "example.com"),
            (":path", "/admin/users"),
            (":method", "GET"),
            (":scheme", "http"),
        ],
        true,
    )
    .unwrap();
    let h = s.finish().unwrap();
    let names: Vec<String> = h.response_headers.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        envoy_pairs(&r, &names),
        h.response_headers,
        "Envoy's local reply (left) against the harness's; all Envoy headers: {:?}",
        r.headers
    );
    assert_eq!(r.text(), "denied by assemblyscript\n");
    assert_eq!(h.local_reply.map(|l| l.body_str()), Some(r.text()));

    // The authz call: answered on the root context, the request resumes with x-authz.
    let r = Request::get("/callout").send(envoy.addr());
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    let authz_body = r
        .upstream_header_values("x-authz")
        .pop()
        .unwrap_or_else(|| {
            panic!(
                "no x-authz upstream: {:?}\n{}",
                r.upstream_headers(),
                envoy.log()
            )
        });
    let call: serde_json::Value = serde_json::from_str(&authz_body).expect("the echo's JSON");
    assert_eq!(call["path"], "/check", "{call}");
    let body = authz_body.clone().into_bytes();
    vm.on_http_call("authz", move |_| HttpReply::ok(200, body.clone()));
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    let action = s
        .request_headers(
            [
                (":authority", "example.com"),
                (":path", "/callout"),
                (":method", "GET"),
                (":scheme", "http"),
            ],
            true,
        )
        .unwrap();
    // An undelayed reply arrives as soon as the callback that made the call returns.
    assert_eq!(action, Action::Continue);
    let h = s.finish().unwrap();
    assert_eq!(h.request_header("x-authz"), Some(authz_body.as_str()));

    // Ticks every 100 ms count the SDK's Counter (proxy_define_metric, then
    // proxy_increment_metric from proxy_on_tick): Envoy's stat is `wasmcustom.as_ticks`,
    // as the harness names it (Metric::envoy_name).
    let stats = envoy.stats_when("as_ticks", |m| {
        m.get("wasmcustom.as_ticks").is_some_and(|n| *n >= 3)
    });
    assert!(
        stats.get("wasmcustom.as_ticks").is_some_and(|n| *n >= 3),
        "{stats:?}"
    );
    let host = Host::from_file(filter()).unwrap();
    let mut ticking = host
        .start_vm(VmConfig {
            plugin_configuration: format!("{CONFIG}tick_ms 100\n").into_bytes(),
            root_id: "portcullis_as".into(),
            ..VmConfig::default()
        })
        .unwrap();
    ticking
        .advance_time(std::time::Duration::from_millis(300))
        .unwrap();
    let names: Vec<String> = host.metrics().iter().map(|m| m.envoy_name()).collect();
    assert!(
        names.contains(&"wasmcustom.as_ticks".to_string()),
        "{names:?}"
    );
    assert_eq!(host.metric("as_ticks"), Some(3));
}

/// With an empty plugin configuration the SDK's `RootContext.onConfigure` reads through a
/// stale buffer reference (the host writes ptr 0 / size 0 for an empty buffer, and the SDK
/// passes the size, 0, as the size pointer): proxy_on_configure traps on an out-of-bounds
/// access in Envoy's V8 and in the harness, and the plugin does not load in either.
#[test]
fn empty_configuration_traps_in_on_configure_in_both() {
    let failure = match Envoy::try_start(
        &EnvoyConfig::with_plugin("")
            .module(filter())
            .wasm_option("root_id", json!("portcullis_as")),
    ) {
        Ok(envoy) => panic!("Envoy started: {}", envoy.log()),
        Err(f) => f,
    };
    assert!(
        failure.log.contains(
            "proxy_on_configure failed: Uncaught RuntimeError: memory access out of bounds"
        ),
        "{failure:?}"
    );
    let e = Host::from_file(filter())
        .unwrap()
        .start_vm(VmConfig {
            root_id: "portcullis_as".into(),
            ..VmConfig::default()
        })
        .err()
        .expect("the harness refuses it too");
    let msg = e.to_string();
    assert!(
        msg.contains("proxy_on_configure") && msg.contains("out of bounds memory access"),
        "{msg}"
    );
}

/// An unknown root id: the SDK throws in proxy_on_context_create(root), its abort logs the
/// message as critical and calls `wasi_unstable.proc_exit(255)`, which returns, and
/// `unreachable` traps. Envoy logs the critical line and the plugin does not load; the
/// harness's start error carries the same message.
#[test]
fn unknown_root_id_fails_the_plugin_in_both() {
    let failure = match Envoy::try_start(
        &EnvoyConfig::with_plugin(CONFIG)
            .module(filter())
            .wasm_option("root_id", json!("other")),
    ) {
        Ok(envoy) => panic!("Envoy started: {}", envoy.log()),
        Err(f) => f,
    };
    let message = "Missing root context factory for root id: other";
    assert!(failure.log.contains(message), "{failure:?}");
    assert!(
        failure
            .log
            .contains("proxy_on_context_create failed: Uncaught RuntimeError: unreachable"),
        "{failure:?}"
    );
    let e = Host::from_file(filter())
        .unwrap()
        .start_vm(VmConfig {
            plugin_configuration: CONFIG.as_bytes().to_vec(),
            root_id: "other".into(),
            ..VmConfig::default()
        })
        .err()
        .expect("the harness refuses it too");
    assert!(e.to_string().contains(message), "{e}");
}
