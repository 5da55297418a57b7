//! The Rust side of the `@detectSQLi`/`@detectXSS` differential test against the C libinjection
//! in libmodsecurity 3.0.9 (`waf/tools/libinjection_oracle.c`): counts the inputs where the
//! verdict or the SQLi fingerprint differs.
//!
//! `cargo run --release -p portcullis-waf --example libinjection_diff -- inputs.hex libinjection.out`

use portcullis_waf::ast::OperatorName;
use portcullis_waf::operator::{Captures, CompiledOperator};
use portcullis_waf::seclang::RuleSource;

struct NoFiles;

impl RuleSource for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!("{path}: no files here"))
    }
    fn glob(&self, _: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, _: &str, name: &str) -> String {
        name.to_string()
    }
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [inputs, oracle] = args.as_slice() else {
        eprintln!("usage: libinjection_diff INPUTS.hex LIBINJECTION.out");
        std::process::exit(2);
    };
    let inputs: Vec<Vec<u8>> = std::fs::read_to_string(inputs)
        .expect("inputs")
        .lines()
        .map(unhex)
        .collect();
    let sqli = CompiledOperator::compile(OperatorName::DetectSqli, "", &NoFiles, "x").unwrap();
    let xss = CompiledOperator::compile(OperatorName::DetectXss, "", &NoFiles, "x").unwrap();
    let (mut sqli_diff, mut fp_diff, mut xss_diff, mut c_sqli, mut c_xss) = (0, 0, 0, 0, 0);
    for line in std::fs::read_to_string(oracle)
        .expect("oracle output")
        .lines()
    {
        let f: Vec<&str> = line.split(' ').collect();
        let i: usize = f[0].parse().expect("index");
        let input = &inputs[i];
        let (their_sqli, their_fp, their_xss) = (f[1] == "1", f[2], f[3] == "1");
        c_sqli += usize::from(their_sqli);
        c_xss += usize::from(their_xss);
        let mut captures = Captures::default();
        let our_sqli = sqli.matches(input, Some(&mut captures));
        if our_sqli != their_sqli {
            sqli_diff += 1;
            println!(
                "SQLi C {their_sqli} / ours {our_sqli}: {:?}",
                String::from_utf8_lossy(input)
            );
        } else if our_sqli {
            let ours = captures
                .groups
                .first()
                .cloned()
                .flatten()
                .unwrap_or_default();
            if ours != their_fp.as_bytes() {
                fp_diff += 1;
                println!(
                    "fingerprint C {their_fp} / ours {}: {:?}",
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(input)
                );
            }
        }
        let our_xss = xss.matches(input, None);
        if our_xss != their_xss {
            xss_diff += 1;
            println!(
                "XSS C {their_xss} / ours {our_xss}: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    println!(
        "{} inputs: SQLi verdicts differ on {sqli_diff} (C positives {c_sqli}), fingerprints on \
         {fp_diff}; XSS verdicts differ on {xss_diff} (C positives {c_xss})",
        inputs.len()
    );
}
