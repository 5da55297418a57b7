//! Parses the OWASP CRS v3.3.4 go-ftw regression corpus from `../shared` (never
//! committed; `PORTCULLIS_CRS_REGRESSION_DIR` points elsewhere). Required under `CI=true`; on a
//! clone without the data it says loudly that it did not run.

use portcullis_shared_data::DataSet;

use super::ftw;

/// The go-ftw regression corpus of CRS v3.3.4.
pub(crate) const CRS_V3_3_4_CORPUS: DataSet = portcullis_shared_data::CRS_V3_3_4_REGRESSION;

#[test]
fn crs_v3_3_4_corpus_parses_completely() {
    let Some(dir) = CRS_V3_3_4_CORPUS.for_test() else {
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
