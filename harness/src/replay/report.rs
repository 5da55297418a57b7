//! Replay results: per-request outcomes, totals, latency, and their
//! renderings as a table, JSON or JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use super::model::ReplayRequest;
use super::verdict::{Mismatch, Verdict};

/// One replayed request.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The request's [`id`](ReplayRequest::id).
    pub id: String,
    /// `file:line`, `file#/pointer` or `file: yaml.path (test id)`.
    pub source: String,
    /// The traffic file, for grouping.
    pub file: String,
    /// The request method.
    pub method: String,
    /// The request `:path` (path and query).
    pub path: String,
    /// The filter's decision, or the host/filter error message; serialised as
    /// `{"verdict": {...}}` or `{"error": "..."}`.
    #[serde(serialize_with = "ser_result")]
    pub result: Result<Verdict, String>,
    /// How the result differs from the expectation; empty when it matched.
    pub mismatches: Vec<Mismatch>,
    /// Expectations that were read but cannot be checked here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unchecked: Vec<String>,
    /// The request carried no expectation at all.
    pub unexpected: bool,
}

fn ser_result<S: serde::Serializer>(r: &Result<Verdict, String>, s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum R<'a> {
        Verdict(&'a Verdict),
        Error(&'a str),
    }
    match r {
        Ok(v) => R::Verdict(v).serialize(s),
        Err(e) => R::Error(e).serialize(s),
    }
}

/// Pass, fail (mismatch) or error (the host failed, unexpectedly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every expectation was met (or there were none).
    Pass,
    /// At least one expectation was not met.
    Fail,
    /// The host or filter failed and no error was expected ([`Mismatch::Error`]).
    Error,
}

impl Outcome {
    /// Records the outcome of `req`: the `result` of replaying it and the
    /// `mismatches` that [`check`](super::verdict::check) found.
    pub fn new(
        req: &ReplayRequest,
        result: Result<Verdict, String>,
        mismatches: Vec<Mismatch>,
    ) -> Self {
        Outcome {
            id: req.id.clone(),
            source: req.source.to_string(),
            file: req.source.file.clone(),
            method: req.method.clone(),
            path: req.path.clone(),
            result,
            mismatches,
            unchecked: req.expect.unchecked.clone(),
            unexpected: req.expect.is_empty(),
        }
    }

    /// [`Status::Error`] if any mismatch is a host/filter error, else
    /// [`Status::Fail`] if there is any mismatch, else [`Status::Pass`].
    pub fn status(&self) -> Status {
        if self.mismatches.is_empty() {
            Status::Pass
        } else if self
            .mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::Error { .. }))
        {
            Status::Error
        } else {
            Status::Fail
        }
    }
}

/// Latency percentiles over the requests the host answered, in µs
/// (nearest-rank over the exact sorted samples).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// How many latencies were measured.
    pub samples: usize,
    /// Median, in µs.
    pub p50_us: f64,
    /// 90th percentile, in µs.
    pub p90_us: f64,
    /// 99th percentile, in µs.
    pub p99_us: f64,
    /// Slowest, in µs.
    pub max_us: f64,
    /// Arithmetic mean, in µs.
    pub mean_us: f64,
}

impl Latency {
    /// Percentiles of `samples` (in any order); `None` when there are none.
    pub fn from_samples(mut samples: Vec<Duration>) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        let us = |d: Duration| d.as_nanos() as f64 / 1000.0;
        let pct = |p: f64| us(samples[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1]);
        let total: Duration = samples.iter().sum();
        Some(Latency {
            samples: n,
            p50_us: pct(50.0),
            p90_us: pct(90.0),
            p99_us: pct(99.0),
            max_us: us(samples[n - 1]),
            mean_us: us(total) / n as f64,
        })
    }
}

/// WebAssembly work per request (wasmtime fuel), over the requests that got a verdict
/// with a fuel count (`portcullis replay --fuel`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuelSummary {
    /// Requests counted.
    pub samples: usize,
    /// Mean fuel per request.
    pub mean: u64,
    /// The costliest request's fuel.
    pub max: u64,
    /// The costliest request's id.
    pub max_request: String,
}

/// Totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Requests replayed.
    pub total: usize,
    /// Requests that passed, including those without expectation.
    pub passed: usize,
    /// Requests with at least one mismatch and no host/filter error.
    pub failed: usize,
    /// Requests on which the host or filter failed unexpectedly.
    pub errors: usize,
    /// Requests that carried no expectation (they always pass).
    pub without_expectation: usize,
    /// Expectations read but not checkable (go-ftw regexes, response_contains).
    pub unchecked_expectations: usize,
    /// Time in the host per request, over requests that got a verdict (not
    /// errors, not fail-open passes); `None` when there were none.
    pub latency: Option<Latency>,
    /// Wall-clock time of the whole replay loop, in milliseconds.
    pub wall_ms: f64,
    /// Requests per second over the whole loop (wall clock).
    pub throughput_rps: f64,
    /// Traffic files that could not be read or parsed (their requests did not run).
    pub unreadable_files: usize,
    /// Fuel per request, with `--fuel`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<FuelSummary>,
}

/// A traffic file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileError {
    /// The file.
    pub file: String,
    /// Why, with where in the file (`FILE:LINE: why`).
    pub error: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Totals over all requests.
    pub summary: Summary,
    /// One outcome per request, in replay order.
    pub requests: Vec<Outcome>,
    /// Traffic files that could not be read or parsed. The other files ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_errors: Vec<FileError>,
    /// Wall-clock time of the replay loop (JUnit's total time; JSON has
    /// [`Summary::wall_ms`] instead).
    #[serde(skip)]
    pub wall: Duration,
}

impl Report {
    /// Totals `outcomes` into a report. `wall` is the loop's wall-clock time and
    /// should not be zero: the throughput divides by it.
    pub fn new(outcomes: Vec<Outcome>, wall: Duration) -> Report {
        let mut s = Summary {
            total: outcomes.len(),
            passed: 0,
            failed: 0,
            errors: 0,
            without_expectation: 0,
            unchecked_expectations: 0,
            latency: None,
            wall_ms: wall.as_secs_f64() * 1000.0,
            throughput_rps: outcomes.len() as f64 / wall.as_secs_f64(),
            unreadable_files: 0,
            fuel: None,
        };
        let mut lat = Vec::new();
        let mut fuel: Option<FuelSummary> = None;
        let mut fuel_total: u128 = 0;
        for o in &outcomes {
            match o.status() {
                Status::Pass => s.passed += 1,
                Status::Fail => s.failed += 1,
                Status::Error => s.errors += 1,
            }
            s.without_expectation += usize::from(o.unexpected);
            s.unchecked_expectations += o.unchecked.len();
            if let Ok(v) = &o.result {
                if v.failed_open.is_none() {
                    lat.push(v.latency);
                }
                if let Some(f) = v.fuel {
                    fuel_total += u128::from(f);
                    let sum = fuel.get_or_insert_with(|| FuelSummary {
                        samples: 0,
                        mean: 0,
                        max: f,
                        max_request: o.id.clone(),
                    });
                    sum.samples += 1;
                    if f > sum.max {
                        sum.max = f;
                        sum.max_request = o.id.clone();
                    }
                }
            }
        }
        s.latency = Latency::from_samples(lat);
        if let Some(f) = fuel.as_mut() {
            f.mean = u64::try_from(fuel_total / f.samples as u128).unwrap_or(u64::MAX);
        }
        s.fuel = fuel;
        Report {
            summary: s,
            requests: outcomes,
            file_errors: Vec::new(),
            wall,
        }
    }

    /// Adds the traffic files that could not be read; they fail the run.
    pub fn with_file_errors(mut self, errors: Vec<FileError>) -> Report {
        self.summary.unreadable_files = errors.len();
        self.file_errors = errors;
        self
    }

    /// The outcomes, in replay order.
    pub fn outcomes(&self) -> &[Outcome] {
        &self.requests
    }

    /// No mismatch and no error.
    pub fn ok(&self) -> bool {
        self.summary.failed == 0 && self.summary.errors == 0 && self.file_errors.is_empty()
    }
}

/// Report renderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// A human-readable table, one row per request, then the totals (the default).
    #[default]
    Table,
    /// The whole [`Report`] as pretty-printed JSON.
    Json,
    /// JUnit XML: one test suite per traffic file, one test case per request.
    Junit,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "junit" => Ok(OutputFormat::Junit),
            _ => Err(format!(
                "unknown report format {s:?} (one of: table, json, junit)"
            )),
        }
    }
}

/// Renders a report.
pub fn render(report: &Report, format: OutputFormat, only_failures: bool) -> String {
    match format {
        OutputFormat::Table => render_table(report, only_failures),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(report).expect("a report serialises");
            s.push('\n');
            s
        }
        OutputFormat::Junit => render_junit(report),
    }
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A human table: one row per request (or per failing request), then totals.
pub fn render_table(report: &Report, only_failures: bool) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(vec![
            "result",
            "id",
            "request",
            "status",
            "reason",
            "rule ids",
            "µs",
            "filter did",
            "detail",
        ]);
    let mut rows = 0;
    for o in report.outcomes() {
        let st = o.status();
        if only_failures && st == Status::Pass {
            continue;
        }
        rows += 1;
        let result = match st {
            Status::Pass if o.unexpected => "ran",
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
        };
        let (status, reason, rules, lat, did) = match &o.result {
            Ok(v) => (
                format!("{}{}", v.status, if v.local_reply { "" } else { " (pass)" }),
                v.reason.clone().unwrap_or_default(),
                v.rule_ids.join(","),
                format!("{:.1}", v.latency.as_nanos() as f64 / 1000.0),
                v.effects.summary(),
            ),
            Err(_) => (
                "-".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ),
        };
        let mut detail: Vec<String> = o
            .mismatches
            .iter()
            .map(|m| short(&m.to_string(), 100))
            .collect();
        if let Ok(Verdict {
            failed_open: Some(e),
            ..
        }) = &o.result
        {
            detail.push(format!("failed open: {}", short(e, 80)));
        }
        if let Ok(Verdict {
            vm_trapped: Some(e),
            ..
        }) = &o.result
        {
            detail.push(format!("VM trapped (fail-close reply): {}", short(e, 80)));
        }
        table.add_row(vec![
            result.to_string(),
            short(&o.id, 40),
            short(&format!("{} {}", o.method, o.path), 50),
            status,
            short(&reason, 30),
            short(&rules, 40),
            lat,
            short(&did, 120),
            detail.join("; "),
        ]);
    }
    let mut out = String::new();
    if rows > 0 {
        out.push_str(&table.to_string());
        out.push('\n');
    }
    for e in &report.file_errors {
        let _ = writeln!(out, "unreadable: {}", e.error);
    }
    out.push_str(&summary_text(&report.summary));
    out
}

/// The totals lines, shared by the table and the progress output.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} requests: {} passed, {} failed, {} errors ({} without expectation, {} unchecked expectations)",
        s.total, s.passed, s.failed, s.errors, s.without_expectation, s.unchecked_expectations
    );
    if s.unreadable_files > 0 {
        let _ = writeln!(
            out,
            "{} traffic file(s) could not be read; their requests did not run",
            s.unreadable_files
        );
    }
    match &s.latency {
        Some(l) => {
            let _ = writeln!(
                out,
                "latency in host (µs, {} samples): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
                l.samples, l.p50_us, l.p90_us, l.p99_us, l.max_us, l.mean_us
            );
        }
        None => out.push_str("latency in host: no samples\n"),
    }
    if let Some(f) = &s.fuel {
        let _ = writeln!(
            out,
            "fuel per request ({} samples): mean {}  max {} ({})",
            f.samples, f.mean, f.max, f.max_request
        );
    }
    let _ = writeln!(
        out,
        "wall {:.1} ms, {:.0} requests/s",
        s.wall_ms, s.throughput_rps
    );
    out
}

/// JUnit XML: one suite per traffic file, one case per request.
pub fn render_junit(report: &Report) -> String {
    let mut junit = quick_junit::Report::new("portcullis replay");
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for o in report.outcomes() {
        let suite = suites
            .entry(&o.file)
            .or_insert_with(|| TestSuite::new(o.file.clone()));
        let status = match o.status() {
            Status::Pass => TestCaseStatus::success(),
            st => {
                let kind = if st == Status::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                let msgs: Vec<String> = o.mismatches.iter().map(ToString::to_string).collect();
                s.set_message(msgs.join("; "));
                s.set_description(format!("{}\n{} {}", o.source, o.method, o.path));
                s
            }
        };
        let mut case = TestCase::new(o.id.clone(), status);
        case.set_classname(o.file.clone());
        if let Ok(v) = &o.result {
            case.set_time(v.latency);
            let mut out = String::new();
            if let Some(why) = &v.vm_trapped {
                out.push_str(&format!("VM trapped (fail-close reply): {why}\n"));
            }
            out.push_str(&v.effects.detail());
            if !out.is_empty() {
                case.set_system_out(out);
            }
        }
        suite.add_test_case(case);
    }
    for e in &report.file_errors {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
        s.set_message(e.error.clone());
        let mut case = TestCase::new("read", s);
        case.set_classname(e.file.clone());
        suites
            .entry(&e.file)
            .or_insert_with(|| TestSuite::new(e.file.clone()))
            .add_test_case(case);
    }
    junit.add_test_suites(suites.into_values());
    junit.set_time(report.wall);
    junit.to_string().expect("JUnit XML serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::model::{Expectation, Locator, SourceLoc};
    use crate::replay::verdict::check;

    fn outcome(
        id: &str,
        file: &str,
        expect: Expectation,
        result: Result<Verdict, String>,
    ) -> Outcome {
        let mut r = ReplayRequest::new(
            id,
            SourceLoc {
                file: file.into(),
                at: Locator::Line(3),
            },
        );
        r.path = "/q?x=<script>".into();
        r.expect = expect;
        let m = check(&r.expect, &result);
        Outcome::new(&r, result, m)
    }

    fn v(status: u16, us: u64) -> Result<Verdict, String> {
        Ok(Verdict {
            status,
            local_reply: status != 200,
            reason: (status != 200).then(|| "waf".to_string()),
            rule_ids: if status == 403 {
                vec!["941100".into()]
            } else {
                vec![]
            },
            latency: Duration::from_micros(us),
            failed_open: None,
            effects: Default::default(),
            vm_trapped: None,
            observed: Default::default(),
            fuel: None,
        })
    }

    fn sample() -> Report {
        let deny = Expectation {
            status: vec![403],
            ..Default::default()
        };
        Report::new(
            vec![
                outcome("ok-1", "a.jsonl", deny.clone(), v(403, 10)),
                outcome("bad-2", "a.jsonl", deny, v(200, 30)),
                outcome(
                    "err-3",
                    "b.yaml",
                    Expectation {
                        status: vec![200],
                        ..Default::default()
                    },
                    Err("trap & <boom>".into()),
                ),
                outcome("free-4", "b.yaml", Expectation::default(), v(200, 20)),
            ],
            Duration::from_millis(2),
        )
    }

    #[test]
    fn totals() {
        let r = sample();
        let s = &r.summary;
        assert_eq!(
            (s.total, s.passed, s.failed, s.errors, s.without_expectation),
            (4, 2, 1, 1, 1)
        );
        assert!(!r.ok());
        assert_eq!(s.throughput_rps, 2000.0);
        let l = s.latency.as_ref().unwrap();
        assert_eq!(
            (l.samples, l.p50_us, l.max_us, l.mean_us),
            (3, 20.0, 30.0, 20.0)
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        let l =
            Latency::from_samples((1..=100).rev().map(Duration::from_micros).collect()).unwrap();
        assert_eq!(
            (l.p50_us, l.p90_us, l.p99_us, l.max_us),
            (50.0, 90.0, 99.0, 100.0)
        );
        let l = Latency::from_samples(vec![Duration::from_nanos(1500)]).unwrap();
        assert_eq!((l.p50_us, l.p99_us), (1.5, 1.5));
        assert!(Latency::from_samples(vec![]).is_none());
    }

    #[test]
    fn table() {
        let r = sample();
        let t = render(&r, OutputFormat::Table, false);
        assert!(t.contains("PASS"), "{t}");
        assert!(t.contains("FAIL"), "{t}");
        assert!(t.contains("ERROR"), "{t}");
        assert!(t.contains("status 200, expected 403"), "{t}");
        assert!(t.contains("941100"), "{t}");
        assert!(
            t.contains("4 requests: 2 passed, 1 failed, 1 errors (1 without expectation"),
            "{t}"
        );
        assert!(t.contains("p50 20.0"), "{t}");
        let f = render(&r, OutputFormat::Table, true);
        assert!(
            !f.contains("ok-1") && f.contains("bad-2") && f.contains("err-3"),
            "{f}"
        );
    }

    #[test]
    fn json() {
        let j: serde_json::Value =
            serde_json::from_str(&render(&sample(), OutputFormat::Json, false)).unwrap();
        assert_eq!(j["summary"]["failed"], 1);
        assert_eq!(j["requests"].as_array().unwrap().len(), 4);
        assert_eq!(j["requests"][0]["result"]["verdict"]["status"], 403);
        assert_eq!(j["requests"][0]["result"]["verdict"]["latency"], 10.0);
        assert_eq!(j["requests"][1]["mismatches"][0]["kind"], "status");
        assert_eq!(j["requests"][2]["result"]["error"], "trap & <boom>");
        assert_eq!(j["requests"][0]["source"], "a.jsonl:3");
    }

    #[test]
    fn junit() {
        let x = render(&sample(), OutputFormat::Junit, false);
        assert!(x.starts_with("<?xml"), "{x}");
        assert!(x.contains(r#"<testsuite name="a.jsonl" tests="2""#), "{x}");
        assert!(x.contains(r#"failures="1""#), "{x}");
        assert!(x.contains(r#"<testsuite name="b.yaml" tests="2""#), "{x}");
        assert!(x.contains("trap &amp; &lt;boom&gt;"), "escaped: {x}");
        assert!(x.contains("<failure"), "{x}");
        assert!(x.contains("<error"), "{x}");
    }

    #[test]
    fn format_names() {
        assert_eq!("JUnit".parse::<OutputFormat>(), Ok(OutputFormat::Junit));
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
