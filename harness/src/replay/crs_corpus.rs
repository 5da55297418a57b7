//! Parses the OWASP CRS v3.3.4 go-ftw regression corpus from `../shared`
//! (never committed). Set `PORTCULLIS_CRS_DIR` to point elsewhere.

use std::path::PathBuf;

use super::ftw;

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PORTCULLIS_CRS_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/crs-regression/v3.3.4")
        }
    };
    dir.is_dir().then_some(dir)
}

#[test]
fn crs_v3_3_4_corpus_parses_completely() {
    let Some(dir) = corpus_dir() else {
        // The corpus is data beside the repository, not in it. CI has it.
        assert!(
            std::env::var_os("CI").is_none(),
            "CRS corpus missing under CI"
        );
        eprintln!("skipping: ../shared/crs-regression/v3.3.4 not present");
        return;
    };
    let mut files = Vec::new();
    for group in std::fs::read_dir(&dir).unwrap() {
        let group = group.unwrap().path();
        if group.is_dir() {
            for f in std::fs::read_dir(&group).unwrap() {
                let f = f.unwrap().path();
                if f.extension().is_some_and(|e| e == "yaml") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    let (mut tests, mut stages, mut requests) = (0, 0, 0);
    let (mut fire, mut no_fire, mut status, mut error, mut unchecked, mut empty) =
        (0, 0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        match ftw::parse_with_stats(&f.display().to_string(), &text) {
            Ok((reqs, st)) => {
                tests += st.tests;
                stages += st.stages;
                requests += reqs.len();
                for r in &reqs {
                    assert!(!r.method.is_empty() && !r.path.is_empty(), "{}", r.id);
                    fire += usize::from(!r.expect.rule_ids.is_empty());
                    no_fire += usize::from(!r.expect.no_rule_ids.is_empty());
                    status += usize::from(!r.expect.status.is_empty());
                    error += usize::from(r.expect.error);
                    unchecked += r.expect.unchecked.len();
                    empty += usize::from(r.expect.is_empty());
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} files failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(files.len(), 178);
    // The README counts 2,410 `test_title` lines; 7 of them are commented out.
    assert_eq!(tests, 2403);
    assert_eq!(stages, 2403);
    assert_eq!(requests, 2403);
    eprintln!("fire={fire} no_fire={no_fire} status={status} error={error} unchecked={unchecked} empty={empty}");
    // Cross-checked against `grep` over the corpus (uncommented lines only).
    assert_eq!(
        (fire, no_fire, status, error, unchecked, empty),
        (2176, 201, 25, 3, 0, 0)
    );
}
