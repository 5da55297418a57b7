//! Representative entries of the configuration-mistake catalogue (`policies/mistakes/`)
//! loaded into a real Envoy (1.40, V8) with the release filter: Envoy refuses to start (the
//! plugin fails `on_configure`) and its log carries the same message `portcullis check`
//! prints (pointer and why), so an operator sees where and why in either place.

use portcullis_e2e::{workspace_root, Envoy, EnvoyConfig};

/// One of each kind: JSON shape, unknown field, bad CIDR, authorization semantics, an Istio
/// path template, SecLang parse and compile errors.
const CASES: &[&str] = &[
    "top-level-array",
    "json-trailing-comma",
    "unknown-partner-field",
    "cidr-prefix-too-long",
    "empty-policy-set",
    "request-principals-unsupported",
    "path-template-bad",
    "seclang-unknown-operator",
    "seclang-regex-does-not-compile",
];

/// The plugin configuration and the message Envoy must log (the `.expected` line without
/// its file name; the first line of a multi-line message).
fn case(name: &str) -> (String, String) {
    let dir = workspace_root().join("policies/mistakes");
    let config = std::fs::read_to_string(dir.join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
    let expected = std::fs::read_to_string(dir.join(format!("{name}.expected")))
        .unwrap_or_else(|e| panic!("{name}.expected: {e}"));
    let first = expected.lines().next().unwrap_or_default();
    let message = first
        .strip_prefix(&format!("{name}.json: "))
        .unwrap_or_else(|| panic!("{name}.expected does not start with its file name"));
    (config, format!("invalid configuration: {message}"))
}

#[test]
fn envoy_refuses_to_start_with_the_checks_message() {
    let cases: Vec<(&str, String, String)> = CASES
        .iter()
        .map(|name| {
            let (config, message) = case(name);
            (*name, config, message)
        })
        .collect();
    // Three at a time: each Envoy compiles the module (the machine's cores are few).
    for batch in cases.chunks(3) {
        let configs: Vec<_> = batch
            .iter()
            .map(|(_, config, _)| EnvoyConfig::with_plugin(config))
            .collect();
        let results = Envoy::try_start_many(&configs);
        for ((name, _, message), result) in batch.iter().zip(results) {
            let failure = match result {
                Ok(envoy) => panic!(
                    "{name}: envoy started with the bad configuration\n--- envoy log ---\n{}",
                    envoy.log()
                ),
                Err(f) => f,
            };
            let status = failure
                .status
                .unwrap_or_else(|| panic!("{name}: envoy did not exit: {failure:?}"));
            assert_eq!(status.code(), Some(1), "{name}: {failure:?}");
            assert!(
                failure.log.contains(message.as_str()),
                "{name}: no {message:?} in the log: {failure:?}"
            );
            assert!(
                failure
                    .log
                    .contains("Unable to create Wasm plugin portcullis"),
                "{name}: {failure:?}"
            );
        }
    }
}
