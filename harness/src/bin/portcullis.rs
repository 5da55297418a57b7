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
    self, load_file, render, report::summary_text, FileError, LoadOptions, OutputFormat,
    RunOptions, TrafficFormat,
};
use portcullis_harness::{FailStrategy, Host, HostOptions, ModuleCache, VmConfig};

/// Exit code for mismatches and errors found while replaying.
const EXIT_MISMATCH: u8 = 1;
/// Exit code for unusable input (traffic, config, wasm).
const EXIT_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
/// Replay traffic through any proxy-wasm filter (portcullis or another) and check
/// portcullis policies, without Envoy.
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

/// Replay traffic files through any proxy-wasm filter and check every decision.
///
/// Traffic formats (detected by extension, then by content): JSONL (one
/// request per line, see policies/TRAFFIC.md; it can also script the upstream
/// response, replies to the filter's http_calls and virtual time), HAR 1.2
/// browser exports, and OWASP CRS go-ftw YAML (v3 and v4 forms). Directories
/// are read recursively. The report shows what the filter did (headers added,
/// removed and changed, local replies, calls, logs). Exits 0 when every
/// expectation held, 1 on any mismatch or filter error, 2 on unusable input
/// (an unreadable traffic file is reported and the other files still run).
#[derive(Debug, Args)]
struct ReplayArgs {
    /// The filter module (.wasm).
    #[arg(long, value_name = "FILE", required_unless_present = "dry_run")]
    wasm: Option<PathBuf>,
    /// The plugin configuration `proxy_on_configure` reads (Istio's pluginConfig):
    /// `@FILE` for a file's bytes, anything else for the text itself.
    #[arg(long, value_name = "@FILE|TEXT", conflicts_with = "config")]
    plugin_config: Option<String>,
    /// The plugin configuration from a file (as `--plugin-config @FILE`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The VM configuration `proxy_on_vm_start` reads: `@FILE` or the text itself.
    #[arg(long, value_name = "@FILE|TEXT")]
    vm_config: Option<String>,
    /// The root id (Envoy's `root_id`; Istio's `pluginName`).
    #[arg(long, value_name = "ID", default_value = "")]
    root_id: String,
    /// The VM id (`plugin_vm_id`; the namespace of shared queues).
    #[arg(long, value_name = "ID", default_value = "")]
    vm_id: String,
    /// The plugin name (`plugin_name`; Istio: `<namespace>.<WasmPlugin name>`).
    #[arg(long, value_name = "NAME", default_value = "")]
    plugin_name: String,
    /// A VM-wide property the filter can read, `path=value` with the path's segments
    /// joined by `.` (e.g. `xds.node.metadata.CLUSTER_ID=east`), refused where a segment may
    /// hold dots; or the segments as a JSON list:
    /// `'["metadata","filter_metadata","envoy.filters.http.lua","key"]=v'`. Repeatable.
    #[arg(long = "property", value_name = "PATH=VALUE")]
    properties: Vec<String>,
    /// Validate the plugin configuration with the portcullis filter's own parser
    /// first. Done by default when the module is portcullis.
    #[arg(long, conflicts_with = "no_config_check")]
    check_config: bool,
    /// Never validate the configuration with the portcullis parser.
    #[arg(long)]
    no_config_check: bool,
    /// Compile the module every time instead of keeping the compiled code in
    /// $PORTCULLIS_CACHE_DIR, $XDG_CACHE_HOME/portcullis or ~/.cache/portcullis.
    #[arg(long)]
    no_cache: bool,
    /// Count each request's WebAssembly work (wasmtime fuel: operators executed, the
    /// same on any machine): per request in the JSON report, mean and max in the totals.
    /// The metered code runs slower and is compiled (and cached) separately.
    #[arg(long)]
    fuel: bool,
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
    /// Only read the traffic files and say what they hold; no filter is run.
    #[arg(long)]
    dry_run: bool,
    /// Traffic files or directories.
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
    check_config_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn check_config_bytes(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    portcullis_filter::engine::Plan::parse(bytes)
        .map(|p| {
            (
                p.warnings(),
                p.waf().map(|w| w.summary()).into_iter().collect(),
            )
        })
        .map_err(|e| e.to_string())
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

/// `@FILE` (the file's bytes) or the text itself; `what` names the flag for errors.
fn bytes_arg(value: &str, what: &str) -> Result<(Vec<u8>, String), String> {
    match value.strip_prefix('@') {
        Some(path) => std::fs::read(path)
            .map(|b| (b, path.to_string()))
            .map_err(|e| format!("{what} {path}: cannot read: {e}")),
        None => Ok((value.as_bytes().to_vec(), format!("{what} (inline)"))),
    }
}

/// The plugin configuration bytes and a name for messages.
fn plugin_config(a: &ReplayArgs) -> Result<(Vec<u8>, String), String> {
    match (&a.plugin_config, &a.config) {
        (Some(v), _) => bytes_arg(v, "--plugin-config"),
        (None, Some(p)) => std::fs::read(p)
            .map(|b| (b, p.display().to_string()))
            .map_err(|e| format!("{}: cannot read: {e}", p.display())),
        (None, None) => Ok((Vec::new(), "--plugin-config (none)".into())),
    }
}

/// Whether the module is the portcullis filter: its data holds the crate's name, which
/// no other filter's does (the release build strips symbol names, not strings).
fn is_portcullis(module: &[u8]) -> bool {
    module.windows(10).any(|w| w == b"portcullis")
}

/// One `--property`: `a.b.c=VALUE` where the dotted path is unambiguous, or the
/// segments as a JSON list, `["metadata","filter_metadata","envoy.filters.http.lua","key"]=VALUE`.
fn property_arg(p: &str) -> Result<(String, Vec<u8>), String> {
    if p.starts_with('[') {
        let Some(end) = p.find("]=") else {
            return Err(format!("--property {p:?}: expected [\"segment\",…]=VALUE"));
        };
        let segments: Vec<String> = serde_json::from_str(&p[..=end]).map_err(|e| {
            format!("--property {p:?}: the path is not a JSON list of strings: {e}")
        })?;
        if segments.is_empty() || segments.iter().any(String::is_empty) {
            return Err(format!(
                "--property {p:?}: the path needs non-empty segments"
            ));
        }
        let refs: Vec<&str> = segments.iter().map(String::as_str).collect();
        return Ok((
            portcullis_harness::property_path(&refs),
            p.as_bytes()[end + 2..].to_vec(),
        ));
    }
    let Some((path, value)) = p.split_once('=') else {
        return Err(format!("--property {p:?}: expected PATH=VALUE"));
    };
    portcullis_harness::check_dotted_path(path).map_err(|e| format!("--property: {e}"))?;
    Ok((path.to_string(), value.as_bytes().to_vec()))
}

fn vm_config(a: &ReplayArgs, plugin_configuration: Vec<u8>) -> Result<VmConfig, String> {
    let vm_configuration = match &a.vm_config {
        Some(v) => bytes_arg(v, "--vm-config")?.0,
        None => Vec::new(),
    };
    let mut properties = Vec::with_capacity(a.properties.len());
    for p in &a.properties {
        properties.push(property_arg(p)?);
    }
    Ok(VmConfig {
        plugin_configuration,
        vm_configuration,
        root_id: a.root_id.clone(),
        vm_id: a.vm_id.clone(),
        plugin_name: a.plugin_name.clone(),
        properties,
        fail_strategy: if a.fail_open {
            FailStrategy::FailOpen
        } else {
            FailStrategy::FailClose
        },
        ..VmConfig::default()
    })
}

fn replay_cmd(a: &ReplayArgs) -> ExitCode {
    let opts = LoadOptions {
        format: a.format_in,
        har: replay::har::HarOptions {
            expect_status: a.har_expect_status,
        },
    };
    let (files, walk_errors) = replay::traffic_files(&a.traffic);
    let mut file_errors: Vec<FileError> = walk_errors
        .into_iter()
        .map(|e| FileError {
            file: e.file.clone(),
            error: e.to_string(),
        })
        .collect();
    let mut requests = Vec::new();
    for path in &files {
        match load_file(path, &opts) {
            Ok((format, reqs)) => {
                if a.dry_run {
                    println!("{}: {format}, {} requests", path.display(), reqs.len());
                }
                requests.extend(reqs);
            }
            Err(e) => {
                eprintln!("error: {e}");
                file_errors.push(FileError {
                    file: path.display().to_string(),
                    error: e.to_string(),
                });
            }
        }
    }
    if a.dry_run {
        println!(
            "{} requests in {} files ({} unreadable)",
            requests.len(),
            files.len(),
            file_errors.len()
        );
        return if file_errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_INPUT)
        };
    }
    let Some(wasm) = &a.wasm else {
        unreachable!("clap requires --wasm without --dry-run");
    };
    let input_error = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_INPUT)
    };
    let module = match std::fs::read(wasm) {
        Ok(m) => m,
        Err(e) => return input_error(format!("{}: cannot read: {e}", wasm.display())),
    };
    let (config_bytes, config_name) = match plugin_config(a) {
        Ok(c) => c,
        Err(e) => return input_error(e),
    };
    if a.check_config || (!a.no_config_check && is_portcullis(&module)) {
        if let Err(e) = check_config_bytes(&config_bytes) {
            return input_error(format!(
                "{config_name}: {e} (the portcullis configuration check; --no-config-check skips it)"
            ));
        }
    }
    let config = match vm_config(a, config_bytes) {
        Ok(c) => c,
        Err(e) => return input_error(e),
    };
    let cache = if a.no_cache {
        None
    } else {
        ModuleCache::user_default()
    };
    let options = HostOptions {
        cache,
        fuel: a.fuel,
    };
    let host = match Host::with_options(&module, &options) {
        Ok(h) => h,
        Err(e) => return input_error(format!("{}: {e}", wasm.display())),
    };
    let mut target = match replay::HostTarget::with_config(host, config) {
        Ok(t) => t,
        Err(e) => return input_error(format!("{e} (plugin configuration: {config_name})")),
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
        &mut || progress.inc(1),
    );
    progress.finish_and_clear();
    let unreadable = !file_errors.is_empty();
    let report = report.with_file_errors(file_errors);
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
    if unreadable {
        ExitCode::from(EXIT_INPUT)
    } else if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISMATCH)
    }
}
