//! The configuration-mistake catalogue (`policies/mistakes/`): every bad configuration is
//! refused by `portcullis check` with exactly the message in its `.expected` file (JSON
//! pointer and why; SecLang file:line:column), exit status 1.

use std::path::PathBuf;
use std::process::Command;

fn catalogue() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/mistakes")
}

#[test]
fn every_mistake_gets_its_exact_message() {
    let dir = catalogue();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("reading policies/mistakes")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 50,
        "the catalogue has {} mistakes, fewer than 50",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        let expected = std::fs::read_to_string(dir.join(format!("{name}.expected")))
            .unwrap_or_else(|e| panic!("{name}.expected: {e}"));
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .current_dir(&dir)
            .args(["check", "--config", &format!("{name}.json")])
            .output()
            .expect("running portcullis check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) || stderr != expected {
            failures.push(format!(
                "{name}: exit {:?}\n  expected: {expected:?}\n  got:      {stderr:?}",
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} mistakes:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

#[test]
fn every_expected_message_has_its_configuration() {
    for entry in std::fs::read_dir(catalogue()).expect("reading policies/mistakes") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|e| e == "expected") {
            assert!(
                path.with_extension("json").exists(),
                "{} has no .json",
                path.display()
            );
        }
    }
}
