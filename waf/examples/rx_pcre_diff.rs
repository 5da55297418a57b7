//! The Rust side of the `@rx` differential test against real PCRE2 (`waf/tools/pcre2_oracle.c`):
//! `dump RULES_DIR...` writes every CRS `@rx` as "RULE HEX" lines; `compare PATTERNS INPUTS
//! PCRE2_OUT` runs the same patterns over the same inputs with the operator module and counts
//! where the match decision or the match span (TX:0) differs.
//!
//! ```text
//! cargo run --release -p portcullis-waf --example rx_pcre_diff -- dump RULES... > patterns.hex
//! ./pcre2_oracle patterns.hex inputs.hex > pcre2.out
//! cargo run --release -p portcullis-waf --example rx_pcre_diff -- compare patterns.hex inputs.hex pcre2.out
//! ```

#[path = "../tests/crs_rules/mod.rs"]
mod crs_rules;

use portcullis_waf::ast::OperatorName;
use portcullis_waf::operator::{Captures, CompiledOperator};
use std::collections::HashMap;
use std::path::Path;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dump") => {
            for dir in &args[1..] {
                let files = crs_rules::rule_files(Path::new(dir)).expect("a rules directory");
                for op in crs_rules::scan(&files) {
                    if op.name.eq_ignore_ascii_case("rx") && !op.argument.contains("%{") {
                        println!("{}:{} {}", op.file, op.rule, hex(op.argument.as_bytes()));
                    }
                }
            }
        }
        Some("compare") if args.len() == 4 => compare(&args[1], &args[2], &args[3]),
        _ => {
            eprintln!("usage: rx_pcre_diff dump RULES_DIR... | compare PATTERNS INPUTS PCRE2_OUT");
            std::process::exit(2);
        }
    }
}

fn compare(patterns: &str, inputs: &str, oracle: &str) {
    let patterns: Vec<(String, String)> = std::fs::read_to_string(patterns)
        .expect("patterns")
        .lines()
        .map(|l| {
            let (rule, h) = l.split_once(' ').expect("RULE HEX");
            (
                rule.to_string(),
                String::from_utf8_lossy(&unhex(h)).into_owned(),
            )
        })
        .collect();
    let inputs: Vec<Vec<u8>> = std::fs::read_to_string(inputs)
        .expect("inputs")
        .lines()
        .map(unhex)
        .collect();
    let mut pcre: HashMap<(usize, usize), Option<(usize, usize)>> = HashMap::new();
    let mut pcre_errors = HashMap::new();
    for line in std::fs::read_to_string(oracle)
        .expect("oracle output")
        .lines()
    {
        let f: Vec<&str> = line.split(' ').collect();
        let p: usize = f[0].parse().expect("pattern index");
        if f[1] == "ERR" {
            pcre_errors.insert(p, f[2].to_string());
            continue;
        }
        let i: usize = f[1].parse().expect("input index");
        let span = if f[2] == "LIMIT" {
            None
        } else {
            Some((f[2].parse().expect("start"), f[3].parse().expect("end")))
        };
        pcre.insert((p, i), span);
    }
    let (mut checked, mut decision_diffs, mut span_diffs, mut limits) = (0, 0, 0, 0);
    let mut per_rule: HashMap<String, usize> = HashMap::new();
    for (p, (rule, pattern)) in patterns.iter().enumerate() {
        if let Some(offset) = pcre_errors.get(&p) {
            println!("{rule}: PCRE2 rejects the pattern (offset {offset})");
            continue;
        }
        let compiled =
            match CompiledOperator::compile(OperatorName::Rx, pattern, &crs_rules::FsSource, "x") {
                Ok(c) => c,
                Err(e) => {
                    println!("{rule}: we reject a pattern PCRE2 compiles: {e}");
                    continue;
                }
            };
        for (i, input) in inputs.iter().enumerate() {
            checked += 1;
            let theirs = pcre.get(&(p, i));
            if let Some(None) = theirs {
                limits += 1;
                continue;
            }
            let mut captures = Captures::default();
            let ours = compiled.matches(input, Some(&mut captures));
            let our_span = captures.groups.first().cloned().flatten();
            let their_match = theirs.is_some();
            if ours != their_match {
                decision_diffs += 1;
                *per_rule.entry(rule.clone()).or_default() += 1;
                if per_rule[rule] <= 3 {
                    println!(
                        "{rule}: PCRE2 {} / ours {} on {:?}",
                        their_match,
                        ours,
                        String::from_utf8_lossy(input)
                    );
                }
            } else if let (Some(Some((s, e))), Some(ours)) = (theirs, &our_span) {
                if input.get(*s..*e) != Some(ours.as_slice()) && !pattern.is_empty() {
                    span_diffs += 1;
                    if span_diffs <= 10 {
                        println!(
                            "{rule}: TX:0 PCRE2 {:?} / ours {:?}",
                            String::from_utf8_lossy(&input[*s..*e]),
                            String::from_utf8_lossy(ours)
                        );
                    }
                }
            }
        }
    }
    println!(
        "{} patterns x {} inputs = {checked} matches: {decision_diffs} decisions and \
         {span_diffs} TX:0 spans differ from PCRE2; {limits} hit PCRE2's match limit; \
         rules with differences: {per_rule:?}",
        patterns.len(),
        inputs.len()
    );
}
