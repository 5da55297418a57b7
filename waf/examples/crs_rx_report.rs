//! The `@rx` compile report for a CRS rules directory: how many patterns compile on `regex`,
//! which need the `fancy-regex` fallback and why, compile time, and regex memory.
//!
//! `cargo run --release -p portcullis-waf --example crs_rx_report [RULES_DIR]`
//! (default: Debian's CRS v3.3.4 in /usr/share/modsecurity-crs/rules).

#[path = "../tests/crs_rules/mod.rs"]
mod crs_rules;

use portcullis_waf::ast::OperatorName;
use portcullis_waf::operator::CompiledOperator;
use regex_automata::meta;
use regex_automata::util::syntax;
use std::path::Path;
use std::time::Instant;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| crs_rules::CRS_V3_RULES.to_string());
    let Some(files) = crs_rules::rule_files(Path::new(&dir)) else {
        eprintln!("{dir}: not a readable directory");
        std::process::exit(2);
    };
    let patterns: Vec<_> = crs_rules::scan(&files)
        .into_iter()
        .filter(|s| s.name.eq_ignore_ascii_case("rx") && !s.argument.contains("%{"))
        .collect();

    let started = Instant::now();
    let compiled: Vec<_> = patterns
        .iter()
        .map(|p| {
            CompiledOperator::compile(OperatorName::Rx, &p.argument, &crs_rules::FsSource, &dir)
        })
        .collect();
    let elapsed = started.elapsed();

    let mut ok = 0;
    let mut prefiltered = 0;
    let mut heap = 0;
    let mut cache = 0;
    for (p, c) in patterns.iter().zip(&compiled) {
        match c {
            Err(e) => println!("ERROR {} {}: {e}", p.file, p.rule),
            Ok(c) => {
                ok += 1;
                if c.required_literals().is_some() {
                    prefiltered += 1;
                }
                let rx = c.rx().expect("an @rx operator");
                if let Some(reason) = rx.fallback() {
                    println!(
                        "fancy-regex {} {}: {:?} {:?}",
                        p.file, p.rule, reason.constructs, reason.regex_error
                    );
                    continue;
                }
                // The same pattern and syntax on regex-automata's meta engine (what `regex`
                // wraps) to read its memory use.
                let meta = meta::Builder::new()
                    .syntax(
                        syntax::Config::new()
                            .unicode(false)
                            .utf8(false)
                            .multi_line(true)
                            .dot_matches_new_line(true),
                    )
                    .configure(
                        meta::Config::new()
                            .utf8_empty(false)
                            .nfa_size_limit(Some(64 << 20)),
                    )
                    .build(rx.translated_pattern())
                    .expect("the pattern regex already compiled");
                heap += meta.memory_usage();
                cache += meta.create_cache().memory_usage();
            }
        }
    }
    println!(
        "{dir}: {} @rx without macros, {ok} compiled in {:.1} ms ({} on fancy-regex), \
         {prefiltered} with a required-literal prefilter; regex heap {:.1} MiB + \
         {:.1} MiB of per-search caches (one per thread, linear-engine patterns)",
        patterns.len(),
        elapsed.as_secs_f64() * 1000.0,
        compiled
            .iter()
            .filter(|c| c.as_ref().is_ok_and(|c| c.uses_fallback_regex()))
            .count(),
        heap as f64 / (1 << 20) as f64,
        cache as f64 / (1 << 20) as f64,
    );
}
