//! Property paths as segment lists, against a real Envoy 1.40: a filter asks for a
//! property by its segments (proxy-wasm joins them with `\0`), and Envoy resolves them one
//! by one, so a segment may hold dots. The conformance filter (harness/test-filters/
//! conformance) logs on `/props`, among others:
//! - `lua.key`: `["metadata", "filter_metadata", "envoy.filters.http.lua", "key"]`, one
//!   namespace whose name holds dots;
//! - `lua.split`: the same text split at every dot, `["metadata", "filter_metadata",
//!   "envoy", "filters", "http", "lua", "key"]`, which is another value (namespace
//!   `envoy`, nested keys);
//! - `cluster_id`: `["xds", "node", "metadata", "CLUSTER_ID"]` from the bootstrap's node;
//! - `legacy node`, `legacy route_name`: `["node", "metadata", "CLUSTER_ID"]` and
//!   `["route_name"]`, attributes Envoy 1.40 no longer has: NotFound (the harness refuses
//!   values for them, naming the `xds.*` path; that is how it differed before this test).
//!
//! In Envoy the values come from `envoy.filters.http.set_metadata` (the stream's dynamic
//! metadata, what `metadata` reads) and the node; in the harness from the same paths given
//! as segments (`Vm::set_property`, `StreamProps::property_at`) and, where unambiguous, as
//! dotted text (`xds.node.metadata.CLUSTER_ID`). Both must log the same values
//! (harness/tests/conformance.rs `property_paths_are_segment_lists` pins the harness side,
//! including the refusal of an ambiguous dotted path).

use std::path::PathBuf;
use std::sync::OnceLock;

use portcullis_e2e::multi::MultiEnvoy;
use portcullis_e2e::Request;
use portcullis_harness::{Host, StreamProps, VmConfig};
use serde_json::json;

fn conformance() -> &'static PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        portcullis_harness::build::build_wasm_crate(
            portcullis_e2e::workspace_root().join("harness/test-filters/conformance"),
        )
        .expect("the conformance filter builds")
    })
}

const LUA_NS: &str = "envoy.filters.http.lua";

/// The three property lines, in the filter's order.
fn prop_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .filter_map(|l| {
            [
                "prop lua.key=",
                "prop lua.split=",
                "prop cluster_id=",
                "prop legacy ",
            ]
            .iter()
            .find_map(|p| l.find(p).map(|at| l[at..].to_string()))
        })
        .collect()
}

fn envoy_lines() -> Vec<String> {
    let bootstrap = json!({
        "node": {"id": "props", "cluster": "props", "metadata": {"CLUSTER_ID": "east"}},
        "static_resources": {"listeners": [{
            "name": "http",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "http",
                    "route_config": {"virtual_hosts": [{
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"name": "r1", "match": {"prefix": "/"},
                                    "direct_response": {"status": 200}}]
                    }]},
                    "http_filters": [
                        {"name": "envoy.filters.http.set_metadata",
                         "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.set_metadata.v3.Config",
                            "metadata": [
                                {"metadata_namespace": LUA_NS, "value": {"key": "whole"}},
                                {"metadata_namespace": "envoy",
                                 "value": {"filters": {"http": {"lua": {"key": "split"}}}}}
                            ]
                         }},
                        {"name": "envoy.filters.http.wasm",
                         "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                            "config": {
                                "name": "props",
                                "vm_config": {
                                    "vm_id": "props",
                                    "runtime": "envoy.wasm.runtime.v8",
                                    "code": {"local": {"filename": conformance().display().to_string()}}
                                }
                            }
                         }},
                        {"name": "envoy.filters.http.router",
                         "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                    ]
                }
            }]}]
        }]}
    });
    let envoy = MultiEnvoy::start_logging(&bootstrap, "info");
    let r = Request::get("/props").send(envoy.listener("http"));
    assert_eq!(r.status, 200, "{}", r.text());
    // The filter logs while the request runs; Envoy has written it by the response.
    let log = envoy.log();
    let lines = prop_lines(log.lines().filter(|l| l.contains("wasm log props")));
    assert_eq!(lines.len(), 5, "the filter's property lines:\n{log}");
    lines
}

fn harness_lines() -> Vec<String> {
    let host = Host::from_file(conformance()).unwrap();
    let mut vm = host
        .start_vm(VmConfig {
            // Unambiguous dotted form: one key below xds.node.metadata.
            properties: vec![("xds.node.metadata.CLUSTER_ID".into(), b"east".to_vec())],
            ..Default::default()
        })
        .unwrap();
    vm.set_property(
        &["metadata", "filter_metadata", LUA_NS, "key"],
        b"whole".to_vec(),
    );
    let props = StreamProps::default().property_at(
        &[
            "metadata",
            "filter_metadata",
            "envoy",
            "filters",
            "http",
            "lua",
            "key",
        ],
        b"split".to_vec(),
    );
    let mut s = vm.http_stream(props).unwrap();
    s.request_headers(
        [
            (":method", "GET"),
            (":path", "/props"),
            (":authority", "example.com"),
            (":scheme", "http"),
        ],
        true,
    )
    .unwrap();
    let rec = s.finish().unwrap();
    prop_lines(rec.logs.iter().map(|l| l.message.as_str()))
}

#[test]
fn a_segment_with_dots_is_one_segment_as_in_envoy() {
    let envoy = envoy_lines();
    assert_eq!(
        envoy,
        [
            "prop lua.key=Some(\"whole\")",
            "prop lua.split=Some(\"split\")",
            "prop cluster_id=Some(\"east\")",
            "prop legacy node=None",
            "prop legacy route_name=None",
        ],
        "Envoy resolves `envoy.filters.http.lua` as one segment and the split path as \
         another value; the node is `xds.node` (`node` and `route_name` are NotFound)"
    );
    assert_eq!(harness_lines(), envoy, "the harness (left) against Envoy");
}
