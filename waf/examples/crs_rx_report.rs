//! The `@rx` compile report for a CRS rules directory: how many patterns compile on `regex`,
//! which need the `fancy-regex` fallback and why, compile time, and regex memory.
//!
//! It also times one pass of every compiled pattern over a benign and an attack value (a
//! rough figure for orientation, not a benchmark: no transformations, no prefilter).
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
    let ready: Vec<&CompiledOperator> = compiled.iter().filter_map(|c| c.as_ref().ok()).collect();
    for (what, input) in [
        ("benign", &b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 search=red+shoes&page=2"[..]),
        ("attack", &b"1' UNION SELECT username, password FROM users -- <script>alert(document.cookie)</script> ../../etc/passwd"[..]),
    ] {
        let rounds: u32 = 200;
        let started = Instant::now();
        let mut hits = 0;
        for _ in 0..rounds {
            for c in &ready {
                hits += usize::from(c.matches(input, None));
            }
        }
        let per_pass = started.elapsed() / rounds;
        let mut slowest: Vec<(f64, String)> = patterns
            .iter()
            .zip(&compiled)
            .filter_map(|(p, c)| c.as_ref().ok().map(|c| (p, c)))
            .map(|(p, c)| {
                let t = Instant::now();
                for _ in 0..rounds {
                    c.matches(input, None);
                }
                (t.elapsed().as_secs_f64() * 1e6 / f64::from(rounds), p.rule.clone())
            })
            .collect();
        slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
        slowest.truncate(5);
        println!(
            "{what} value ({} bytes): all {} patterns in {:.1} us per pass ({} match); \
             slowest (us): {:?}",
            input.len(),
            ready.len(),
            per_pass.as_secs_f64() * 1e6,
            hits / rounds as usize,
            slowest
                .iter()
                .map(|(us, rule)| format!("{rule} {us:.1}"))
                .collect::<Vec<_>>(),
        );
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
