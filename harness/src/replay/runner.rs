//! The replay loop, over any [`Target`] (the wasm host, or a fake in tests).

use std::fmt;
use std::time::{Duration, Instant};

use super::model::ReplayRequest;
use super::report::{Outcome, Report};
use super::verdict::{check, Verdict, PASS_STATUS};

/// A host or filter failure for one request (a trap, a panic in the filter,
/// a stream the host could not build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetError(pub String);

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TargetError {}

/// Something that decides requests: sends one through the filter and says
/// what it did.
pub trait Target {
    /// Sends one request through the filter and returns its decision, or the
    /// host/filter failure (reported as an error, or as a pass under
    /// [`RunOptions::fail_open`]).
    fn send(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError>;
}

impl<F: FnMut(&ReplayRequest) -> Result<Verdict, TargetError>> Target for F {
    fn send(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError> {
        self(req)
    }
}

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Like Envoy's `fail_open`: a failing filter lets the request through
    /// (reported as a pass with `failed_open` set) instead of an error.
    pub fail_open: bool,
}

/// Replays every request through `target`, in order, and checks each outcome;
/// `progress` is called after each request (the CLI moves its progress bar).
pub fn run(
    target: &mut dyn Target,
    requests: &[ReplayRequest],
    opts: RunOptions,
    progress: &mut dyn FnMut(),
) -> Report {
    let started = Instant::now();
    let mut outcomes = Vec::with_capacity(requests.len());
    for req in requests {
        let t0 = Instant::now();
        let result = match target.send(req) {
            Ok(v) => Ok(v),
            Err(e) if opts.fail_open => Ok(Verdict {
                status: PASS_STATUS,
                local_reply: false,
                reason: None,
                rule_ids: Vec::new(),
                latency: t0.elapsed(),
                failed_open: Some(e.0),
                effects: Default::default(),
                vm_trapped: None,
                observed: Default::default(),
                fuel: None,
            }),
            Err(e) => Err(e.0),
        };
        let mismatches = check(&req.expect, &result);
        outcomes.push(Outcome::new(req, result, mismatches));
        progress();
    }
    Report::new(outcomes, started.elapsed().max(Duration::from_nanos(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::model::{Expectation, Locator, SourceLoc};

    fn req(id: &str, path: &str, expect: Expectation) -> ReplayRequest {
        let mut r = ReplayRequest::new(
            id,
            SourceLoc {
                file: "t.jsonl".into(),
                at: Locator::Line(1),
            },
        );
        r.path = path.into();
        r.expect = expect;
        r
    }

    /// Denies paths containing "evil" with rule 1; fails on "/crash".
    fn fake(r: &ReplayRequest) -> Result<Verdict, TargetError> {
        if r.path == "/crash" {
            return Err(TargetError("wasm trap: unreachable".into()));
        }
        let lat = Duration::from_micros(r.path.len() as u64);
        if r.path.contains("evil") {
            Ok(Verdict::from_local_reply(
                403,
                &[],
                br#"{"reason":"waf","rule_ids":["1"]}"#,
                lat,
            ))
        } else {
            Ok(Verdict::pass(&[], lat))
        }
    }

    #[test]
    fn loop_checks_every_request() {
        let deny = Expectation {
            status: vec![403],
            rule_ids: vec!["1".into()],
            ..Default::default()
        };
        let allow = Expectation {
            status: vec![200],
            ..Default::default()
        };
        let reqs = vec![
            req("a", "/evil", deny.clone()),
            req("b", "/fine", allow.clone()),
            req("c", "/fine", deny),
            req("d", "/crash", allow),
        ];
        let mut target = fake;
        let report = run(&mut target, &reqs, RunOptions::default(), &mut || {});
        let s = &report.summary;
        assert_eq!((s.total, s.passed, s.failed, s.errors), (4, 2, 1, 1));
        assert!(!report.ok());
        assert_eq!(report.requests[2].mismatches.len(), 2);
        assert_eq!(
            report.requests[3].result.as_ref().unwrap_err(),
            "wasm trap: unreachable"
        );
        let lat = s.latency.as_ref().unwrap();
        assert_eq!(lat.samples, 3, "errors have no host latency");
        assert_eq!(lat.max_us, 5.0);
    }

    #[test]
    fn fail_open_turns_errors_into_passes() {
        let allow = Expectation {
            status: vec![200],
            ..Default::default()
        };
        let reqs = vec![req("d", "/crash", allow)];
        let mut target = fake;
        let report = run(
            &mut target,
            &reqs,
            RunOptions { fail_open: true },
            &mut || {},
        );
        assert!(report.ok());
        let v = report.requests[0].result.as_ref().unwrap();
        assert_eq!(v.failed_open.as_deref(), Some("wasm trap: unreachable"));
        assert_eq!(v.status, 200);
    }
}
