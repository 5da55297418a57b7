//! `portcullis`: replay recorded traffic through a proxy-wasm filter without
//! Envoy, check policies with the filter's own parser, and package the filter as an image.

// In a directory of its own: a file directly under src/bin/ would be built as a binary.
#[path = "portcullis/oci.rs"]
mod oci;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use portcullis_harness::replay::{
    self, load_file, render, report::summary_text, LoadOptions, OutputFormat, RunOptions,
    TrafficFormat,
};

/// Exit code for mismatches and errors found while replaying.
const EXIT_MISMATCH: u8 = 1;
/// Exit code for unusable input (traffic, config, wasm).
const EXIT_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
/// Replay traffic through the portcullis proxy-wasm filter and check policies,
/// without Envoy.
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    Replay(ReplayArgs),
    Check(CheckArgs),
    Oci(OciArgs),
}

/// Replay traffic files through a filter .wasm and check every decision.
///
/// Traffic formats (detected by extension, then by content): JSONL (one
/// request per line, see policies/TRAFFIC.md), HAR 1.2 browser exports, and
/// OWASP CRS go-ftw YAML (v3 and v4 forms). Exits 0 when every expectation
/// held, 1 on any mismatch or filter error, 2 on unusable input.
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The filter module (.wasm).
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    wasm: Option<PathBuf>,
    /// The filter configuration (the WasmPlugin pluginConfig, as JSON).
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    config: Option<PathBuf>,
    /// Report format.
    #[arg(
        long,
        default_value = "table",
        value_parser = PossibleValuesParser::new(["table", "json", "junit"])
            .map(|s| s.parse::<OutputFormat>().expect("listed values parse")),
    )]
    format: OutputFormat,
    /// Like Envoy's fail_open: a failing filter lets requests through instead
    /// of failing them.
    #[arg(long)]
    fail_open: bool,
    /// Traffic format for every file, instead of detecting it.
    #[arg(
        long,
        value_name = "FORMAT",
        value_parser = PossibleValuesParser::new(["jsonl", "har", "ftw"])
            .map(|s| s.parse::<TrafficFormat>().expect("listed values parse")),
    )]
    format_in: Option<TrafficFormat>,
    /// HAR: expect each entry's recorded response status.
    #[arg(long)]
    har_expect_status: bool,
    /// Table: list only failing requests (totals always cover all).
    #[arg(long)]
    only_failures: bool,
    /// Write the report to FILE instead of stdout (totals still go to stderr).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Skip validating --config with the portcullis filter's own parser first
    /// (for replaying other filters).
    #[arg(long)]
    no_config_check: bool,
    /// Only read the traffic files and say what they hold; no filter is run.
    #[arg(long)]
    dry_run: bool,
    /// Traffic files.
    #[arg(required = true, value_name = "TRAFFIC")]
    traffic: Vec<PathBuf>,
}

/// Validate a policy (filter configuration) with the filter's own parser.
///
/// Prints what the WAF runs (the embedded CRS version) when there is a `waf` section, then
/// `ok`, and exits 0 when valid; prints `FILE: /json/pointer: why` and
/// exits 1 when not.
#[derive(Debug, Args)]
struct CheckArgs {
    /// The filter configuration (JSON).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Package a filter module as the OCI image Istio's WasmPlugin pulls, without Docker.
///
/// Writes an OCI image layout directory (one layer holding `plugin.wasm`, the Wasm image
/// spec's compat variant) and optionally a `docker save`-style tarball, then prints the
/// image digest and the module's sha256 for the WasmPlugin. Output is reproducible. Exits
/// 2 on unusable input.
#[derive(Debug, Args)]
struct OciArgs {
    /// The filter module (scripts/build-filter's .wasm).
    #[arg(long, value_name = "FILE")]
    wasm: PathBuf,
    /// The OCI image layout directory to write (created, or added to when it is one).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Also write a tarball for `docker load -i` / `skopeo copy docker-archive:` /
    /// `skopeo copy oci-archive:`.
    #[arg(long, value_name = "FILE")]
    tarball: Option<PathBuf>,
    /// The image reference the image will be pushed as, `[registry/]path[:tag]`.
    #[arg(long, value_name = "REF", default_value = concat!("portcullis:", env!("CARGO_PKG_VERSION")))]
    reference: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check(a) => check(&a),
        Cmd::Replay(a) => replay_cmd(&a),
        Cmd::Oci(a) => oci_cmd(&a),
    }
}

fn oci_cmd(a: &OciArgs) -> ExitCode {
    let run = || -> anyhow::Result<String> {
        let module = std::fs::read(&a.wasm)
            .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", a.wasm.display()))?;
        let image = oci::build(&oci::ImageRequest {
            module: &module,
            reference: &a.reference,
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.wasm.display()))?;
        image.write_layout(&a.out)?;
        if let Some(t) = &a.tarball {
            image.write_tarball(t)?;
        }
        Ok(image.summary(&a.out, a.tarball.as_deref()))
    };
    match run() {
        Ok(summary) => {
            print!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_INPUT)
        }
    }
}

/// Parses and compiles the configuration; returns its warnings and what it runs (the WAF's
/// summary line: the embedded CRS version, when the config has a `waf` section).
fn check_config(path: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    portcullis_filter::engine::Plan::parse(&bytes)
        .map(|p| {
            (
                p.warnings(),
                p.waf().map(|w| w.summary()).into_iter().collect(),
            )
        })
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn check(a: &CheckArgs) -> ExitCode {
    match check_config(&a.config) {
        Ok((warnings, notes)) => {
            for w in &warnings {
                eprintln!("{}: warning: {w}", a.config.display());
            }
            for n in &notes {
                println!("{}: {n}", a.config.display());
            }
            println!("{}: ok", a.config.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_MISMATCH)
        }
    }
}

fn replay_cmd(a: &ReplayArgs) -> ExitCode {
    let opts = LoadOptions {
        format: a.format_in,
        har: replay::har::HarOptions {
            expect_status: a.har_expect_status,
        },
    };
    let mut requests = Vec::new();
    for path in &a.traffic {
        match load_file(path, &opts) {
            Ok((format, reqs)) => {
                if a.dry_run {
                    println!("{}: {format}, {} requests", path.display(), reqs.len());
                }
                requests.extend(reqs);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INPUT);
            }
        }
    }
    if a.dry_run {
        println!("{} requests in {} files", requests.len(), a.traffic.len());
        return ExitCode::SUCCESS;
    }
    let (Some(wasm), Some(config)) = (&a.wasm, &a.config) else {
        unreachable!("clap requires --wasm and --config without --dry-run");
    };
    if !a.no_config_check {
        if let Err(e) = check_config(config) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    }
    let mut target = match replay::HostTarget::new(wasm, config, a.fail_open) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INPUT);
        }
    };
    let progress = if std::io::stderr().is_terminal() && requests.len() >= 100 {
        let pb = ProgressBar::new(requests.len() as u64);
        pb.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} requests ({percent}%), eta {eta}")
                .expect("a valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let report = replay::run(
        &mut target,
        &requests,
        RunOptions {
            fail_open: a.fail_open,
        },
        &progress,
    );
    let text = render(&report, a.format, a.only_failures);
    match &a.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: {}: cannot write: {e}", path.display());
                return ExitCode::from(EXIT_INPUT);
            }
            eprint!("{}", summary_text(&report.summary));
        }
        None => {
            print!("{text}");
            if a.format != OutputFormat::Table {
                eprint!("{}", summary_text(&report.summary));
            }
        }
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    }
}
