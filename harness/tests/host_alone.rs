//! The host library on its own (the crate without features) compiles none of the CLI's or
//! the reports' dependencies, and not the portcullis filter: what another project pays
//! for depending on it.

use std::process::Command;

fn dependencies(features: &[&str]) -> Vec<String> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "tree",
        "--offline",
        "--manifest-path",
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        "-p",
        "portcullis-harness",
        "--edges",
        "no-dev",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    for f in features {
        cmd.args(["--features", f]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

const CLI_AND_REPORTS: [&str; 7] = [
    "clap",
    "indicatif",
    "comfy-table",
    "quick-junit",
    "serde_yaml_ng",
    "serde_json",
    "portcullis-filter",
];

#[test]
fn the_host_library_alone_has_no_cli_or_report_dependencies() {
    let host = dependencies(&[]);
    assert!(host.iter().any(|d| d == "wasmtime"), "{host:?}");
    for dep in CLI_AND_REPORTS {
        assert!(
            !host.iter().any(|d| d == dep),
            "the host library depends on {dep}"
        );
    }
    // The features bring them in, so the check above can fail.
    let cli = dependencies(&["cli"]);
    for dep in CLI_AND_REPORTS {
        assert!(cli.iter().any(|d| d == dep), "--features cli lacks {dep}");
    }
    let replay = dependencies(&["replay"]);
    assert!(!replay
        .iter()
        .any(|d| d == "clap" || d == "portcullis-filter"));
}
