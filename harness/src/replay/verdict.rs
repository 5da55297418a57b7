//! What the filter decided for one request, and how it is checked against
//! the request's expectations.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::effects::Effects;
use super::model::Expectation;

/// Response header carrying the decision reason.
pub const REASON_HEADER: &str = "x-portcullis-reason";
/// Response header carrying the rule ids that fired, comma-separated.
pub const RULE_IDS_HEADER: &str = "x-portcullis-rule-ids";
/// Status recorded when the filter lets a request through (no local reply):
/// the harness has no upstream, so a pass is reported as this.
pub const PASS_STATUS: u16 = 200;

/// The filter's decision for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The local reply status, or [`PASS_STATUS`] when the request went on.
    pub status: u16,
    /// The filter answered the request itself (a local reply).
    pub local_reply: bool,
    /// The decision reason: the [`REASON_HEADER`] header if present, else the
    /// local reply's JSON body field `reason`; `None` when neither gives one.
    pub reason: Option<String>,
    /// Rule ids that fired: the [`RULE_IDS_HEADER`] header if present, else the
    /// local reply's JSON body field `rule_ids`; empty when neither gives any.
    pub rule_ids: Vec<String>,
    /// Time spent inside the host for this request (all filter callbacks).
    #[serde(serialize_with = "micros")]
    pub latency: Duration,
    /// Set when `--fail-open` turned a host/filter error into a pass.
    pub failed_open: Option<String>,
    /// What the filter did: header edits, rewritten bodies, the local reply, calls, logs.
    #[serde(skip_serializing_if = "Effects::is_empty")]
    pub effects: Effects,
    /// WebAssembly work of the request's callbacks (wasmtime fuel, see
    /// [`crate::StreamRecord::fuel`]) when the host meters it (`portcullis replay --fuel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_nanos() as f64 / 1000.0)
}

impl Verdict {
    /// A verdict from a local reply: reason and rule ids are read from the
    /// reply headers ([`REASON_HEADER`], [`RULE_IDS_HEADER`]) if present, else
    /// from the reply body's JSON fields `reason` and `rule_ids`.
    pub fn from_local_reply(
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        latency: Duration,
    ) -> Verdict {
        let (reason, rule_ids) = decision_facts(headers, body);
        Verdict {
            status,
            local_reply: true,
            reason,
            rule_ids,
            latency,
            failed_open: None,
            effects: Effects::default(),
            fuel: None,
        }
    }

    /// A verdict for a request the filter let through. `headers` are the
    /// request headers after the filter's edits (a filter in detect-only
    /// mode may annotate them with the same headers as a reply).
    pub fn pass(headers: &[(String, String)], latency: Duration) -> Verdict {
        let (reason, rule_ids) = decision_facts(headers, b"");
        Verdict {
            status: PASS_STATUS,
            local_reply: false,
            reason,
            rule_ids,
            latency,
            failed_open: None,
            effects: Effects::default(),
            fuel: None,
        }
    }
}

/// Reads (reason, rule ids) from headers first, then from a JSON body.
pub fn decision_facts(headers: &[(String, String)], body: &[u8]) -> (Option<String>, Vec<String>) {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let json: Option<serde_json::Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    let reason = header(REASON_HEADER).map(str::to_string).or_else(|| {
        json.as_ref()
            .and_then(|j| j.get("reason"))
            .and_then(|r| r.as_str())
            .map(str::to_string)
    });
    let rule_ids = match header(RULE_IDS_HEADER) {
        Some(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        None => match json.as_ref().and_then(|j| j.get("rule_ids")) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(serde_json::Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        },
    };
    (reason, rule_ids)
}

/// One way a request's outcome differs from its expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mismatch {
    /// The status is none of the expected ones.
    Status {
        /// The accepted statuses.
        expected: Vec<u16>,
        /// The status produced ([`PASS_STATUS`] when the request went on).
        actual: u16,
    },
    /// The reason differs from the expected one.
    Reason {
        /// The expected reason.
        expected: String,
        /// The reason reported; `None` when there was none.
        actual: Option<String>,
    },
    /// An expected rule id was not reported.
    MissingRule {
        /// The rule id that should have fired.
        rule_id: String,
    },
    /// A rule id that must not fire was reported.
    UnexpectedRule {
        /// The rule id that fired.
        rule_id: String,
    },
    /// An error was expected (go-ftw `expect_error`) but the request was answered.
    ExpectedError {
        /// The status produced instead (anything but [`MALFORMED_STATUS`]).
        actual: u16,
    },
    /// The host or filter failed, and no error was expected.
    Error {
        /// The host's or filter's error message.
        message: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Status { expected, actual } => {
                let e: Vec<String> = expected.iter().map(u16::to_string).collect();
                write!(f, "status {actual}, expected {}", e.join(" or "))
            }
            Mismatch::Reason { expected, actual } => write!(
                f,
                "reason {}, expected {expected:?}",
                actual
                    .as_deref()
                    .map_or("none".to_string(), |a| format!("{a:?}"))
            ),
            Mismatch::MissingRule { rule_id } => write!(f, "rule {rule_id} did not fire"),
            Mismatch::UnexpectedRule { rule_id } => {
                write!(f, "rule {rule_id} fired, expected not to")
            }
            Mismatch::ExpectedError { actual } => {
                write!(f, "expected an error, got status {actual}")
            }
            Mismatch::Error { message } => write!(f, "error: {message}"),
        }
    }
}

/// The status Envoy's codec answers malformed requests with, before any filter:
/// accepted where go-ftw expects an error.
pub const MALFORMED_STATUS: u16 = 400;

/// Compares an outcome with what was expected.
pub fn check(expect: &Expectation, result: &Result<Verdict, String>) -> Vec<Mismatch> {
    let v = match result {
        Err(_) if expect.error => return Vec::new(),
        Err(e) => return vec![Mismatch::Error { message: e.clone() }],
        Ok(v) => v,
    };
    let mut out = Vec::new();
    if expect.error && v.status != MALFORMED_STATUS {
        out.push(Mismatch::ExpectedError { actual: v.status });
    }
    if !expect.status.is_empty() && !expect.status.contains(&v.status) {
        out.push(Mismatch::Status {
            expected: expect.status.clone(),
            actual: v.status,
        });
    }
    if let Some(r) = &expect.reason {
        if v.reason.as_ref() != Some(r) {
            out.push(Mismatch::Reason {
                expected: r.clone(),
                actual: v.reason.clone(),
            });
        }
    }
    for id in &expect.rule_ids {
        if !v.rule_ids.contains(id) {
            out.push(Mismatch::MissingRule {
                rule_id: id.clone(),
            });
        }
    }
    for id in &expect.no_rule_ids {
        if v.rule_ids.contains(id) {
            out.push(Mismatch::UnexpectedRule {
                rule_id: id.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn facts_from_body() {
        let (r, ids) = decision_facts(
            &[],
            br#"{"reason":"ip-not-allowed","rule_ids":["a",942100]}"#,
        );
        assert_eq!(r.as_deref(), Some("ip-not-allowed"));
        assert_eq!(ids, vec!["a", "942100"]);
    }

    #[test]
    fn headers_win_over_body() {
        let hs = h(&[
            ("X-Portcullis-Reason", "waf"),
            ("x-portcullis-rule-ids", "942100, 949110,"),
        ]);
        let (r, ids) = decision_facts(&hs, br#"{"reason":"other","rule_ids":["x"]}"#);
        assert_eq!(r.as_deref(), Some("waf"));
        assert_eq!(ids, vec!["942100", "949110"]);
    }

    #[test]
    fn non_json_body_gives_nothing() {
        assert_eq!(decision_facts(&[], b"RBAC: access denied"), (None, vec![]));
        assert_eq!(
            decision_facts(&[], br#"{"rule_ids":"1,2"}"#).1,
            vec!["1", "2"]
        );
    }

    fn verdict(status: u16, ids: &[&str]) -> Result<Verdict, String> {
        Ok(Verdict {
            status,
            local_reply: status != 200,
            reason: Some("waf".into()),
            rule_ids: ids.iter().map(|s| s.to_string()).collect(),
            latency: Duration::from_micros(5),
            failed_open: None,
            effects: Effects::default(),
            fuel: None,
        })
    }

    #[test]
    fn matching() {
        let none = Expectation::default();
        assert!(check(&none, &verdict(403, &[])).is_empty());
        assert_eq!(
            check(&none, &Err("trap".into())),
            vec![Mismatch::Error {
                message: "trap".into()
            }]
        );

        let e = Expectation {
            status: vec![403, 400],
            reason: Some("waf".into()),
            rule_ids: vec!["942100".into()],
            no_rule_ids: vec!["920100".into()],
            ..Default::default()
        };
        assert!(check(&e, &verdict(400, &["942100", "1"])).is_empty());
        let m = check(&e, &verdict(200, &["920100"]));
        assert_eq!(
            m,
            vec![
                Mismatch::Status {
                    expected: vec![403, 400],
                    actual: 200
                },
                Mismatch::MissingRule {
                    rule_id: "942100".into()
                },
                Mismatch::UnexpectedRule {
                    rule_id: "920100".into()
                },
            ]
        );
        assert_eq!(m[0].to_string(), "status 200, expected 403 or 400");
        let e = Expectation {
            reason: Some("ip-not-allowed".into()),
            ..Default::default()
        };
        assert_eq!(
            check(&e, &verdict(403, &[]))[0].to_string(),
            "reason \"waf\", expected \"ip-not-allowed\""
        );
    }

    #[test]
    fn expected_errors() {
        let e = Expectation {
            error: true,
            ..Default::default()
        };
        assert!(check(&e, &Err("bad request line".into())).is_empty());
        assert!(check(&e, &verdict(400, &[])).is_empty());
        assert_eq!(
            check(&e, &verdict(200, &[])),
            vec![Mismatch::ExpectedError { actual: 200 }]
        );
    }

    #[test]
    fn verdict_constructors() {
        let v = Verdict::from_local_reply(
            403,
            &h(&[("x-portcullis-reason", "cert")]),
            b"",
            Duration::ZERO,
        );
        assert!(v.local_reply);
        assert_eq!(v.reason.as_deref(), Some("cert"));
        let v = Verdict::pass(&h(&[("x-portcullis-rule-ids", "942100")]), Duration::ZERO);
        assert_eq!(
            (v.status, v.local_reply, v.rule_ids.len()),
            (PASS_STATUS, false, 1)
        );
    }
}
