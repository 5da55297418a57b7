//! The CRS v3.3.4 regression suite through the reference WAF (ModSecurity 3.0.9 with Debian's
//! CRS 3.3.4) — the oracle the portcullis WAF is compared with. The corpus lives in
//! `../shared` (never committed): required under `CI=true`, reported loudly elsewhere.

use portcullis_e2e::crs::{self, Tally};
use portcullis_modsec::{debian_crs_rules, ModSecurity};

fn corpus() -> Option<Vec<portcullis_harness::replay::ReplayRequest>> {
    let dir = portcullis_shared_data::CRS_V3_3_4_REGRESSION.for_test()?;
    Some(crs::load(&dir).unwrap_or_else(|e| panic!("{e}")))
}

/// ModSecurity's own result on the suite (2,336 of the 2,377 tests with rule-id expectations,
/// 98.28%, on 2026-12-03), as a check that the oracle is set up as the suite expects (CRS's
/// tests were written against ModSecurity): a drop means the setup or the request
/// construction broke.
const MODSEC_PASSED_FLOOR: usize = 2336;

#[test]
fn modsecurity_passes_the_crs_v3_3_4_regression_suite() {
    let Some(requests) = corpus() else { return };
    assert_eq!(requests.len(), 2403);
    let ms = ModSecurity::new(&debian_crs_rules(crs::V3_TEST_SETUP)).unwrap();
    let mut tally = Tally::default();
    for r in &requests {
        let out = ms.evaluate(&crs::modsec_request(r));
        tally.add(r, crs::score(r, &out.rule_ids));
    }
    eprintln!("{}", tally.table("ModSecurity 3.0.9 + CRS 3.3.4"));
    for (id, why) in tally.failures.iter().take(60) {
        eprintln!("  FAIL {id}: {why}");
    }
    let (p, c) = tally.total();
    assert_eq!(c, 2377, "tests with rule-id expectations");
    assert!(
        p >= MODSEC_PASSED_FLOOR,
        "ModSecurity passes {p}/{c} (floor {MODSEC_PASSED_FLOOR}): the oracle setup is broken"
    );
}

/// The portcullis filter's result through `portcullis replay`'s machinery (the release .wasm
/// on the harness, the WAF in dry-run with the same CRS test setup, rule ids read from the
/// `rule_ids_header` the filter sets upstream). Recorded on 2026-12-03; CI fails below it.
const FILTER_PASSED_FLOOR: usize = 2300;

#[test]
fn the_filter_passes_the_crs_v3_3_4_regression_suite_through_replay() {
    use portcullis_harness::replay::{HostTarget, Target};
    let Some(requests) = corpus() else { return };
    let setup: Vec<String> = crs::V3_TEST_SETUP.lines().map(str::to_string).collect();
    let mut directives = vec![
        "Include @recommended.conf".to_string(),
        "Include @crs-setup.conf".to_string(),
    ];
    directives.extend(setup);
    directives.push("Include @owasp_crs/*.conf".to_string());
    let config = serde_json::json!({
        "waf": {
            "mode": "dry_run",
            "crs": {"paranoia_level": 4},
            "directives": directives,
            "rule_ids_header": "x-portcullis-rule-ids",
        }
    });
    let host = portcullis_harness::Host::from_file(portcullis_e2e::wasm_path()).unwrap();
    let mut target = HostTarget::with_host(host, config.to_string().into_bytes(), false).unwrap();
    let mut tally = Tally::default();
    for r in &requests {
        let mut sent = r.clone();
        // The headers go-ftw would send; `Host` travels as :authority.
        sent.headers = crs::wire_headers(r)
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .collect();
        let verdict = target
            .send(&sent)
            .unwrap_or_else(|e| panic!("{}: {e}", r.id));
        // A trap is answered with the fail-close reply now; it is still a defect here.
        if let Some(why) = &verdict.vm_trapped {
            panic!("{}: the filter trapped: {why}", r.id);
        }
        let fired: Vec<u64> = verdict
            .rule_ids
            .iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        tally.add(r, crs::score(r, &fired));
    }
    eprintln!(
        "{}",
        tally.table("portcullis filter (wasm, harness) + CRS 3.3.4")
    );
    for (id, why) in tally.failures.iter().take(60) {
        eprintln!("  FAIL {id}: {why}");
    }
    let (p, c) = tally.total();
    assert!(
        p >= FILTER_PASSED_FLOOR,
        "the filter passes {p}/{c} (floor {FILTER_PASSED_FLOOR})"
    );
}
