//! The manifests in policies/istio: validated against Istio's (and Gateway API's) CRD
//! OpenAPI schemas by policies/istio/schema-check (npm @kubernetes-models/istio and
//! @kubernetes-models/gateway-api, installed by scripts/setup), checked for what those
//! schemas leave to the API server (unknown fields, selector XOR targetRefs, the sha256 pin),
//! and every WasmPlugin's pluginConfig compiled by the filter's own parser.

use portcullis_e2e::workspace_root;
use serde::Deserialize as _;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every `*.yaml` in policies/istio, sorted.
fn manifest_files() -> Vec<PathBuf> {
    let dir = workspace_root().join("policies/istio");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "expected the seed manifests in {}",
        dir.display()
    );
    files
}

/// The non-empty YAML documents of `file`, as JSON values.
fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn all_documents() -> Vec<(PathBuf, Value)> {
    manifest_files()
        .into_iter()
        .flat_map(|f| documents(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn of_kind<'a>(docs: &'a [(PathBuf, Value)], kind: &str) -> Vec<&'a (PathBuf, Value)> {
    docs.iter().filter(|(_, d)| d["kind"] == kind).collect()
}

/// `node policies/istio/schema-check/validate.mjs FILES`; panics (never skips) when Node.js
/// or the schema packages are missing.
fn schema_check(files: &[PathBuf]) -> Output {
    let dir = workspace_root().join("policies/istio/schema-check");
    assert!(
        dir.join("node_modules/@kubernetes-models/istio").is_dir()
            && dir.join("node_modules/@kubernetes-models/gateway-api").is_dir(),
        "the CRD schema packages are not installed in {}: run scripts/setup (it runs `npm ci` there)",
        dir.display()
    );
    Command::new("node")
        .arg(dir.join("validate.mjs"))
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` ({e}): install Node.js (the schema check runs on it)")
        })
}

#[test]
fn manifests_validate_against_the_crd_schemas() {
    let files = manifest_files();
    let out = schema_check(&files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schema check failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every document was checked, none passed over.
    let checked = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(checked, all_documents().len(), "{stdout}");
}

#[test]
fn the_schema_check_rejects_what_the_api_server_would() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: p}\n\
         spec:\n  url: oci://r.example/p:1\n  failStrategy: FAIL_SOMETIMES\n  phase: 3\n\
         ---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n\
         spec:\n  servers:\n  - port: {number: 443, name: h, protocol: HTTPS}\n    hosts: [a.example]\n    tls: {mode: MUTUALLY}\n\
         ---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
    )
    .expect("write");
    let out = schema_check(&[bad]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("/spec/failStrategy: must be equal to one of the allowed values"));
    assert!(stdout.contains("/spec/phase: must be string"), "{stdout}");
    assert!(stdout.contains("/spec/servers/0/tls/mode"), "{stdout}");
    assert!(
        stdout.contains("Widget/w: apiVersion example.com/v1"),
        "{stdout}"
    );
}

/// The fields of `WasmPlugin.spec` (istio/api extensions/v1alpha1/wasm.proto; reference
/// abi.md §5). The CRD schema does not reject unknown ones: the API server prunes them, so
/// a typo would silently drop a setting.
const WASM_PLUGIN_FIELDS: &[&str] = &[
    "selector",
    "targetRefs",
    "targetRef",
    "url",
    "sha256",
    "imagePullPolicy",
    "imagePullSecret",
    "verificationKey",
    "pluginConfig",
    "pluginName",
    "phase",
    "priority",
    "failStrategy",
    "vmConfig",
    "match",
    "type",
];

#[test]
fn wasm_plugins_are_complete_and_pinned() {
    let docs = all_documents();
    let plugins = of_kind(&docs, "WasmPlugin");
    assert!(plugins.len() >= 2, "the seed WasmPlugins");
    let known: BTreeSet<&str> = WASM_PLUGIN_FIELDS.iter().copied().collect();
    for (file, p) in plugins {
        let at = format!("{} WasmPlugin/{}", file.display(), p["metadata"]["name"]);
        let spec = p["spec"]
            .as_object()
            .unwrap_or_else(|| panic!("{at}: no spec"));
        for k in spec.keys() {
            assert!(known.contains(k.as_str()), "{at}: unknown field spec.{k}");
        }
        assert!(
            spec.contains_key("selector") != spec.contains_key("targetRefs"),
            "{at}: exactly one of selector and targetRefs"
        );
        let sha = spec["sha256"].as_str().unwrap_or_default();
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{at}: sha256 must be 64 lower-case hex digits, got {sha:?}"
        );
        let url = spec["url"].as_str().unwrap_or_default();
        assert!(url.starts_with("oci://"), "{at}: url {url:?}");
        if let Some((_, pinned)) = url.split_once("@sha256:") {
            assert_eq!(pinned, sha, "{at}: the url's digest and sha256 differ");
        }
        for (field, values) in [
            ("phase", &["AUTHN", "AUTHZ", "STATS"][..]),
            (
                "failStrategy",
                &["FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD"][..],
            ),
        ] {
            let v = spec[field].as_str().unwrap_or_default();
            assert!(
                values.contains(&v),
                "{at}: {field} {v:?} must be set, one of {values:?}"
            );
        }
        let config = &spec["pluginConfig"];
        for section in ["partners", "ip_allowlist", "authorization", "waf"] {
            assert!(
                !config[section].is_null(),
                "{at}: pluginConfig has no {section}"
            );
        }
        if let Some(refs) = spec.get("targetRefs").and_then(Value::as_array) {
            for r in refs {
                let gateway = docs.iter().any(|(_, d)| {
                    d["kind"] == r["kind"]
                        && d["apiVersion"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with(&format!("{}/", r["group"].as_str().unwrap_or_default()))
                        && d["metadata"]["name"] == r["name"]
                        && d["metadata"]["namespace"] == p["metadata"]["namespace"]
                });
                assert!(
                    gateway,
                    "{at}: targetRef {r} names no resource in the examples"
                );
            }
        }
    }
}

#[test]
fn plugin_configs_compile_with_the_filters_parser() {
    let docs = all_documents();
    let plugins = of_kind(&docs, "WasmPlugin");
    assert!(!plugins.is_empty());
    for (file, p) in plugins {
        // Istio hands pluginConfig to the filter as JSON (abi.md §5).
        let json = serde_json::to_vec(&p["spec"]["pluginConfig"]).expect("JSON");
        if let Err(e) = portcullis_filter::engine::Plan::parse(&json) {
            panic!(
                "{} WasmPlugin/{}: pluginConfig: {e}",
                file.display(),
                p["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_partner_gateway_ends_mtls_and_routes_by_prefix() {
    let docs = all_documents();
    let mutual: Vec<Value> = of_kind(&docs, "Gateway")
        .into_iter()
        .flat_map(|(_, g)| g["spec"]["servers"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["tls"]["mode"] == "MUTUAL")
        .collect();
    assert!(!mutual.is_empty(), "a Gateway server with tls.mode MUTUAL");
    for s in mutual {
        assert!(
            s["tls"]["credentialName"].is_string(),
            "MUTUAL needs a credentialName (with ca.crt): {s}"
        );
    }
    let identity_prefix = docs.iter().any(|(_, d)| {
        serde_json::to_string(&d["spec"])
            .unwrap_or_default()
            .contains("\"/identity/\"")
            && matches!(d["kind"].as_str(), Some("VirtualService" | "HTTPRoute"))
    });
    assert!(identity_prefix, "a route with the /identity/ prefix");
}
