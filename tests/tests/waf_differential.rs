//! Differential conformance of portcullis-waf against ModSecurity 3.0.9: the same SecLang text
//! (Debian's CRS v3.3.4 with ModSecurity's recommended body processors) in both engines, the
//! same requests, and per request the sets of logged rule ids (and the blocking status) compared.
//!
//! Two settings: default paranoia level 1 blocking on a generated corpus (always runs: Debian's
//! CRS and libmodsecurity are installed by scripts/setup), and the CRS regression setup
//! (paranoia 4, detection only) on the CRS v3.3.4 regression corpus from `../shared`
//! (required under `CI=true`, reported loudly elsewhere). `PORTCULLIS_DIFF_DETAILS=N` prints
//! the first N mismatches with both engines' evidence.

use portcullis_e2e::corpus;
use portcullis_e2e::crs;
use portcullis_e2e::differential::{Engines, Report};
use std::time::Instant;

/// The seed and size of the generated corpus (kept so that the debug-mode test stays well
/// under two minutes on the 2-core CI machine: the three tests take 70-90 s together in debug,
/// ModSecurity 4-9 ms and portcullis-waf 6-15 ms a request depending on load; 3,000 + 1,500
/// requests took up to 102 s under load, hence 2,000 + 1,000).
const SEED: u64 = 0x5eed_2026_1203;
const GENERATED: usize = 2000;
const GENERATED_PL4: usize = 1000;

/// Floors: (identical requests, requests identical apart from the explained differences:
/// the pending engine fixes (`PENDING_ENGINE_FIXES`) and the differences made on purpose
/// (`DELIBERATE_CAUSES`: where portcullis-waf follows CRS and ModSecurity 3.0.9 fails CRS's own
/// regression tests)), as reached on 2026-12-04 (counts: the corpora are deterministic). CI
/// fails below; raise them as the engine improves.
///
/// The differences made on purpose, per corpus (the tables print them by cause):
/// - REQUEST_BODY empty under the XML processor: every XML body at paranoia level 3-4, where
///   ModSecurity 3 runs 920272/920273 (byte ranges) over the raw XML markup (306 regression
///   requests, 91 generated PL4), and the Java class names in XML element or attribute names
///   of the 944 tests;
/// - `\\\\` read as one backslash in six CRS 3.3 regexes: 920460 (paranoia level 4) fires on
///   `\d`-style escapes and not on `\\d` (34 regression requests, 10 generated PL4).
///
/// The only other differences are bodies over `SecRequestBodyLimit` (documented: the filter
/// answers 413 as the issue asks; ModSecurity 403 and drops the crossing chunk).
const GENERATED_FLOOR: (usize, usize) = (1991, 1991); // of 2000: 99.55%, 99.55%
const REGRESSION_FLOOR: (usize, usize) = (2063, 2403); // of 2403: 85.85%, 100.00%
const GENERATED_PL4_FLOOR: (usize, usize) = (892, 993); // of 1000: 89.20%, 99.30%

/// Fails when `report` is below `floor`: (identical, identical apart from the explained
/// differences — the pending engine fixes and the differences made on purpose).
fn assert_floor(report: &Report, floor: (usize, usize), what: &str) {
    let apart = report.identical + report.pending_only + report.deliberate_only;
    assert!(
        report.identical >= floor.0 && apart >= floor.1,
        "{what}: {} identical ({:.2}%), {apart} apart from the pending engine fixes and the differences made on purpose of {}: below the floor {floor:?}",
        report.identical,
        report.agreement(),
        report.requests
    );
}

fn details() -> usize {
    std::env::var("PORTCULLIS_DIFF_DETAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn generated_corpus_pl1_blocking_agrees_with_modsecurity() {
    let t = Instant::now();
    let engines = Engines::load("").unwrap_or_else(|e| panic!("{e}"));
    eprintln!("rules loaded in both engines in {:?}", t.elapsed());
    let requests = corpus::generate(SEED, GENERATED);
    let mut report = Report::default();
    let (mut attacks, mut attacks_both_fired, mut attacks_both_blocked) = (0, 0, 0);
    let (mut t_ms, mut t_waf) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for g in &requests {
        let c = engines.compare(&g.label, &g.request);
        t_ms += c.modsec_time;
        t_waf += c.waf_time;
        if g.attack {
            attacks += 1;
            attacks_both_fired +=
                usize::from(!c.modsec_fired.is_empty() && !c.waf_fired.is_empty());
            attacks_both_blocked +=
                usize::from(c.modsec_status.is_some() && c.waf_status.is_some());
        }
        report.add(c);
    }
    eprintln!(
        "{}",
        report.table(&format!(
            "Generated corpus (seed {SEED:#x}), CRS 3.3.4 PL1 blocking: ModSecurity 3.0.9 vs portcullis-waf"
        ))
    );
    eprintln!(
        "attacks: {attacks}, both fired: {attacks_both_fired}, both blocked: {attacks_both_blocked}; \
         time ModSecurity {:?} ({:.2} ms/req), portcullis-waf {:?} ({:.2} ms/req)",
        t_ms,
        t_ms.as_secs_f64() * 1e3 / requests.len() as f64,
        t_waf,
        t_waf.as_secs_f64() * 1e3 / requests.len() as f64
    );
    eprintln!("{}", report.details(details()));
    assert_eq!(report.requests, GENERATED);
    assert_floor(&report, GENERATED_FLOOR, "generated corpus, PL1 blocking");
    // Agreement on silence would be worthless: most attacks must fire and block in both.
    assert!(
        attacks_both_fired * 100 >= attacks * 60,
        "only {attacks_both_fired} of {attacks} attacks fired rules in both engines"
    );
    assert!(
        attacks_both_blocked * 100 >= attacks * 60,
        "only {attacks_both_blocked} of {attacks} attacks were blocked by both engines"
    );
}

#[test]
fn crs_regression_corpus_pl4_detection_agrees_with_modsecurity() {
    let Some(dir) = portcullis_shared_data::CRS_V3_3_4_REGRESSION.for_test() else {
        return;
    };
    let requests = crs::load(&dir).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(requests.len(), 2403);
    let engines = Engines::load(crs::V3_TEST_SETUP).unwrap_or_else(|e| panic!("{e}"));
    let mut report = Report::default();
    let (mut t_ms, mut t_waf) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for r in &requests {
        let c = engines.compare(&r.id, &crs::modsec_request(r));
        t_ms += c.modsec_time;
        t_waf += c.waf_time;
        report.add(c);
    }
    eprintln!(
        "{}",
        report.table(
            "CRS v3.3.4 regression corpus, PL4 detection only: ModSecurity 3.0.9 vs portcullis-waf"
        )
    );
    eprintln!("time ModSecurity {:?}, portcullis-waf {:?}", t_ms, t_waf);
    eprintln!("{}", report.details(details()));
    assert_floor(
        &report,
        REGRESSION_FLOOR,
        "CRS regression corpus, PL4 detection",
    );
    // Most of the corpus's requests are attacks: both engines must see them.
    assert!(
        report.both_fired * 100 >= report.requests * 80,
        "only {} of {} requests fired rules in both engines",
        report.both_fired,
        report.requests
    );
}

/// The generated corpus again under the CRS regression setup (paranoia level 4, detection
/// only): every rule of CRS runs, so the strict protocol and character-class rules of the
/// higher levels are compared too. Smaller, to keep the test under two minutes in debug.
#[test]
fn generated_corpus_pl4_detection_agrees_with_modsecurity() {
    let engines = Engines::load(crs::V3_TEST_SETUP).unwrap_or_else(|e| panic!("{e}"));
    let requests = corpus::generate(SEED ^ 0x4, GENERATED_PL4);
    let mut report = Report::default();
    for g in &requests {
        report.add(engines.compare(&g.label, &g.request));
    }
    eprintln!(
        "{}",
        report.table(&format!(
            "Generated corpus (seed {:#x}), CRS 3.3.4 PL4 detection only: ModSecurity 3.0.9 vs portcullis-waf",
            SEED ^ 0x4
        ))
    );
    eprintln!("{}", report.details(details()));
    assert_eq!(report.requests, GENERATED_PL4);
    assert_floor(
        &report,
        GENERATED_PL4_FLOOR,
        "generated corpus, PL4 detection",
    );
    assert!(
        report.both_fired * 100 >= report.requests * 50,
        "only {} of {} requests fired rules in both engines",
        report.both_fired,
        report.requests
    );
}
