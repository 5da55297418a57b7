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
    /// Set when the VM trapped (or overran its deadline) on this request: the reply is
    /// then the host's fail-close one, as Envoy's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_trapped: Option<String>,
    /// WebAssembly work of the request's callbacks (wasmtime fuel, see
    /// [`crate::StreamRecord::fuel`]) when the host meters it (`portcullis replay --fuel`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// What reached the client and the upstream, for the expectations to check (the
    /// report shows the differences, in `effects`).
    #[serde(skip)]
    pub observed: Observed,
}

/// The traffic as it left the filter, for [`check`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Response headers that reached the client (`:status` first), the local reply's
    /// when there was one.
    pub response_headers: Vec<(String, String)>,
    /// The response body that reached the client.
    pub response_body: Vec<u8>,
    /// Request headers that went upstream; empty when the request did not go on.
    pub upstream_headers: Vec<(String, String)>,
    /// Log lines of the request (its stream's and the VM's while it ran), messages only.
    pub logs: Vec<String>,
    /// TCP: bytes let through to the upstream.
    pub to_upstream: Vec<u8>,
    /// TCP: bytes let through to the client.
    pub to_downstream: Vec<u8>,
    /// TCP: the filter or the fail strategy closed the connection.
    pub closed: bool,
}

impl Observed {
    /// The response as go-ftw reads it off the wire: `HTTP/1.1 <status>`, one
    /// `name: value` line per header, a blank line, the body (lossy UTF-8).
    pub fn wire_response(&self, status: u16) -> String {
        let mut out = format!("HTTP/1.1 {status}\r\n");
        for (k, v) in &self.response_headers {
            if !k.starts_with(':') {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        out.push_str("\r\n");
        out.push_str(&String::from_utf8_lossy(&self.response_body));
        out
    }
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
            vm_trapped: None,
            observed: Observed::default(),
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
            vm_trapped: None,
            observed: Observed::default(),
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
    /// A header has not the expected value (or is there when it must not be).
    Header {
        /// `response` (to the client) or `upstream` (the request that went on).
        direction: &'static str,
        /// The header name.
        name: String,
        /// The expected value; `None`: the header must be absent.
        expected: Option<String>,
        /// Its values, in order (empty: absent).
        actual: Vec<String>,
    },
    /// The response body is not the expected one, or lacks an expected substring.
    Body {
        /// `equals`, `contains` (the body) or `response_contains` (the whole response,
        /// as go-ftw reads it).
        check: &'static str,
        /// The expected body or substring (lossy UTF-8).
        expected: String,
        /// What reached the client (lossy UTF-8, cut at 512 bytes).
        actual: String,
    },
    /// TCP: the bytes let through one way are not the expected ones.
    Data {
        /// `to_upstream` or `to_downstream`.
        direction: &'static str,
        /// The expected bytes (lossy UTF-8).
        expected: String,
        /// The bytes let through (lossy UTF-8, cut at 512 bytes).
        actual: String,
    },
    /// TCP: the connection was closed and should not have been, or the other way round.
    Closed {
        /// Whether a close was expected.
        expected: bool,
        /// Whether the filter or the fail strategy closed it.
        actual: bool,
    },
    /// A local reply was expected and the request went on, or the other way round.
    LocalReply {
        /// Whether a local reply was expected.
        expected: bool,
        /// Whether there was one.
        actual: bool,
    },
    /// No log line matches a pattern that must match, or one matches a pattern that must not.
    Log {
        /// The regex.
        pattern: String,
        /// Whether a line had to match.
        expected_match: bool,
        /// The request's log lines (a matching one first when `expected_match` is false).
        lines: Vec<String>,
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
            Mismatch::Header {
                direction,
                name,
                expected,
                actual,
            } => {
                let actual = if actual.is_empty() {
                    "absent".to_string()
                } else {
                    format!("{actual:?}")
                };
                match expected {
                    Some(e) => write!(f, "{direction} header {name}: {actual}, expected {e:?}"),
                    None => write!(f, "{direction} header {name}: {actual}, expected absent"),
                }
            }
            Mismatch::Body {
                check,
                expected,
                actual,
            } => match *check {
                "equals" => write!(f, "response body {actual:?}, expected {expected:?}"),
                "contains" => write!(
                    f,
                    "response body {actual:?}, expected it to contain {expected:?}"
                ),
                _ => write!(
                    f,
                    "response {actual:?}, expected it to contain {expected:?}"
                ),
            },
            Mismatch::Data {
                direction,
                expected,
                actual,
            } => write!(f, "{direction} {actual:?}, expected {expected:?}"),
            Mismatch::Closed { expected, actual } => {
                let says = |b: bool| if b { "closed" } else { "open" };
                write!(
                    f,
                    "connection {}, expected {}",
                    says(*actual),
                    says(*expected)
                )
            }
            Mismatch::LocalReply { expected, actual } => {
                let says = |b: bool| if b { "a local reply" } else { "no local reply" };
                write!(f, "{}, expected {}", says(*actual), says(*expected))
            }
            Mismatch::Log {
                pattern,
                expected_match: true,
                lines,
            } => write!(f, "no log line matches /{pattern}/; lines: {lines:?}"),
            Mismatch::Log { pattern, lines, .. } => write!(
                f,
                "log line {:?} matches /{pattern}/, expected none to",
                lines.first().map_or("", String::as_str)
            ),
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
    check_traffic(expect, v, &mut out);
    out
}

/// The header, body, local-reply and log expectations.
fn check_traffic(expect: &Expectation, v: &Verdict, out: &mut Vec<Mismatch>) {
    let o = &v.observed;
    let values = |h: &[(String, String)], name: &str| -> Vec<String> {
        h.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    for (direction, headers, want, absent) in [
        (
            "response",
            &o.response_headers,
            &expect.response_headers,
            &expect.no_response_headers,
        ),
        (
            "upstream",
            &o.upstream_headers,
            &expect.upstream_headers,
            &expect.no_upstream_headers,
        ),
    ] {
        for (name, value) in want {
            let actual = values(headers, name);
            if !actual.contains(value) {
                out.push(Mismatch::Header {
                    direction,
                    name: name.clone(),
                    expected: Some(value.clone()),
                    actual,
                });
            }
        }
        for name in absent {
            let actual = values(headers, name);
            if !actual.is_empty() {
                out.push(Mismatch::Header {
                    direction,
                    name: name.clone(),
                    expected: None,
                    actual,
                });
            }
        }
    }
    let shown = |b: &[u8]| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned();
    if let Some(body) = &expect.body {
        if *body != o.response_body {
            out.push(Mismatch::Body {
                check: "equals",
                expected: String::from_utf8_lossy(body).into_owned(),
                actual: shown(&o.response_body),
            });
        }
    }
    for needle in &expect.body_contains {
        if !contains(&o.response_body, needle.as_bytes()) {
            out.push(Mismatch::Body {
                check: "contains",
                expected: needle.clone(),
                actual: shown(&o.response_body),
            });
        }
    }
    if !expect.response_contains.is_empty() {
        let wire = o.wire_response(v.status);
        for needle in &expect.response_contains {
            if !wire.contains(needle.as_str()) {
                out.push(Mismatch::Body {
                    check: "response_contains",
                    expected: needle.clone(),
                    actual: shown(wire.as_bytes()),
                });
            }
        }
    }
    for (direction, want, got) in [
        ("to_upstream", &expect.to_upstream, &o.to_upstream),
        ("to_downstream", &expect.to_downstream, &o.to_downstream),
    ] {
        if let Some(want) = want {
            if want != got {
                out.push(Mismatch::Data {
                    direction,
                    expected: String::from_utf8_lossy(want).into_owned(),
                    actual: shown(got),
                });
            }
        }
    }
    if let Some(want) = expect.closed {
        if want != o.closed {
            out.push(Mismatch::Closed {
                expected: want,
                actual: o.closed,
            });
        }
    }
    if let Some(want) = expect.local_reply {
        if want != v.local_reply {
            out.push(Mismatch::LocalReply {
                expected: want,
                actual: v.local_reply,
            });
        }
    }
    for (patterns, expected_match) in [(&expect.log_matches, true), (&expect.no_log_matches, false)]
    {
        for pattern in patterns {
            // Patterns were compiled when the traffic was read; one that no longer
            // compiles (a request built in code) matches nothing.
            let re = regex::Regex::new(pattern).ok();
            let hit = o
                .logs
                .iter()
                .position(|l| re.as_ref().is_some_and(|r| r.is_match(l)));
            if hit.is_some() != expected_match {
                let mut lines = o.logs.clone();
                if let Some(i) = hit {
                    lines.swap(0, i);
                }
                out.push(Mismatch::Log {
                    pattern: pattern.clone(),
                    expected_match,
                    lines,
                });
            }
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
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
            vm_trapped: None,
            observed: Observed::default(),
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
