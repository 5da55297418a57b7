//! What the filter did to one request and its response: headers added, removed and
//! changed, bodies rewritten, the local reply, calls made and log lines, for the reports.

use std::fmt::Write as _;

use serde::Serialize;

use crate::StreamRecord;

/// How the filter changed one header map: what it received against what it let through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeaderChanges {
    /// Headers the filter added: (name, value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<(String, String)>,
    /// Headers the filter removed: (name, value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<(String, String)>,
    /// Headers whose values the filter changed: (name, before, after), multiple values
    /// joined with `, `.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<(String, String, String)>,
}

impl HeaderChanges {
    /// Compares the map the filter was handed with the map it let through, by name
    /// (values of a repeated header compared as a list, in order).
    ///
    /// ```
    /// use portcullis_harness::replay::effects::HeaderChanges;
    /// let h = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
    /// let d = HeaderChanges::between(&h(&[("a", "1"), ("b", "2")]), &h(&[("b", "3"), ("c", "4")]));
    /// assert_eq!(d.added, h(&[("c", "4")]));
    /// assert_eq!(d.removed, h(&[("a", "1")]));
    /// assert_eq!(d.changed, vec![("b".into(), "2".into(), "3".into())]);
    /// ```
    pub fn between(before: &[(String, String)], after: &[(String, String)]) -> HeaderChanges {
        let values = |h: &[(String, String)], name: &str| -> Vec<String> {
            h.iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .collect()
        };
        let mut names: Vec<&str> = Vec::new();
        for (k, _) in before.iter().chain(after) {
            if !names.contains(&k.as_str()) {
                names.push(k);
            }
        }
        let mut d = HeaderChanges::default();
        for name in names {
            let (b, a) = (values(before, name), values(after, name));
            if b == a {
                continue;
            }
            if b.is_empty() {
                d.added.extend(a.into_iter().map(|v| (name.to_string(), v)));
            } else if a.is_empty() {
                d.removed
                    .extend(b.into_iter().map(|v| (name.to_string(), v)));
            } else {
                d.changed
                    .push((name.to_string(), b.join(", "), a.join(", ")));
            }
        }
        d
    }

    /// No change.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The local reply the filter sent (or the host sent for it on a failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalReplySummary {
    /// HTTP status.
    pub status: u32,
    /// gRPC status, when the filter gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<u32>,
    /// Response code details.
    pub details: String,
    /// Extra headers the filter gave.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8).
    pub body: String,
}

/// One call the filter made to another cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSummary {
    /// `http` or `grpc`.
    pub kind: &'static str,
    /// The cluster.
    pub cluster: String,
    /// HTTP: `METHOD path`; gRPC: `service/method`.
    pub target: String,
}

/// Everything the filter did on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Effects {
    /// Request headers: as sent against as let through upstream.
    #[serde(skip_serializing_if = "HeaderChanges::is_empty")]
    pub request_headers: HeaderChanges,
    /// Response headers: as the upstream sent them against as let through downstream
    /// (not compared when the filter replied locally).
    #[serde(skip_serializing_if = "HeaderChanges::is_empty")]
    pub response_headers: HeaderChanges,
    /// The request body that went upstream differs from the one sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub request_body_rewritten: bool,
    /// The response body that went downstream differs from the upstream's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub response_body_rewritten: bool,
    /// The local reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_reply: Option<LocalReplySummary>,
    /// The filter reset the stream.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reset: bool,
    /// Calls made, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<CallSummary>,
    /// Log lines of the stream's context: `level: message`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// What was sent into the filter, to compare the record with.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// Request headers as handed to the filter.
    pub request_headers: &'a [(String, String)],
    /// The request body.
    pub request_body: &'a [u8],
    /// Upstream response headers, when the upstream answered.
    pub response_headers: Option<&'a [(String, String)]>,
    /// The upstream response body (all chunks).
    pub response_body: &'a [u8],
}

impl Effects {
    /// Effects of the stream recorded in `rec`, given what was sent.
    pub fn of(sent: Sent<'_>, rec: &StreamRecord) -> Effects {
        let replied = rec.local_reply.is_some();
        let response_headers = match sent.response_headers {
            Some(h) if !replied => HeaderChanges::between(h, &rec.response_headers),
            _ => HeaderChanges::default(),
        };
        let mut calls: Vec<CallSummary> = rec
            .http_calls
            .iter()
            .map(|c| CallSummary {
                kind: "http",
                cluster: c.cluster.clone(),
                target: format!(
                    "{} {}",
                    c.header(":method").unwrap_or("?"),
                    c.header(":path").unwrap_or("?")
                ),
            })
            .collect();
        calls.extend(rec.grpc_calls.iter().map(|c| CallSummary {
            kind: "grpc",
            cluster: c.cluster.clone(),
            target: format!("{}/{}", c.service, c.method),
        }));
        Effects {
            request_headers: HeaderChanges::between(sent.request_headers, &rec.request_headers),
            response_headers,
            request_body_rewritten: !replied
                && !sent.request_body.is_empty()
                && rec.request_body != sent.request_body,
            response_body_rewritten: !replied
                && sent.response_headers.is_some()
                && rec.response_body != sent.response_body,
            local_reply: rec.local_reply.as_ref().map(|r| LocalReplySummary {
                status: r.status,
                grpc_status: r.grpc_status,
                details: r.details.clone(),
                headers: r.headers.clone(),
                body: r.body_str(),
            }),
            reset: rec.reset,
            calls,
            logs: rec
                .logs
                .iter()
                .map(|l| {
                    let level = format!("{:?}", l.level).to_lowercase();
                    format!("{level}: {}", l.message)
                })
                .collect(),
        }
    }

    /// Nothing done (no change, no reply, no call, no log line).
    pub fn is_empty(&self) -> bool {
        *self == Effects::default()
    }

    /// One line for the table, the decisive facts first:
    /// `reply 403; http authz GET /check; +req x-a; -req x-b; ~resp x-c; 2 logs`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some(r) = &self.local_reply {
            let mut s = format!("reply {}", r.status);
            if let Some(g) = r.grpc_status {
                let _ = write!(s, " grpc {g}");
            }
            parts.push(s);
        }
        if self.reset {
            parts.push("reset".into());
        }
        for c in &self.calls {
            parts.push(format!("{} {} {}", c.kind, c.cluster, c.target));
        }
        for (dir, h) in [
            ("req", &self.request_headers),
            ("resp", &self.response_headers),
        ] {
            for (k, _) in &h.added {
                parts.push(format!("+{dir} {k}"));
            }
            for (k, _) in &h.removed {
                parts.push(format!("-{dir} {k}"));
            }
            for (k, _, _) in &h.changed {
                parts.push(format!("~{dir} {k}"));
            }
        }
        if self.request_body_rewritten {
            parts.push("req body rewritten".into());
        }
        if self.response_body_rewritten {
            parts.push("resp body rewritten".into());
        }
        match self.logs.len() {
            0 => {}
            1 => parts.push("1 log".into()),
            n => parts.push(format!("{n} logs")),
        }
        parts.join("; ")
    }

    /// Every detail, one per line (JUnit `system-out`).
    pub fn detail(&self) -> String {
        let mut out = String::new();
        for (dir, h) in [
            ("request", &self.request_headers),
            ("response", &self.response_headers),
        ] {
            for (k, v) in &h.added {
                let _ = writeln!(out, "{dir} header added: {k}: {v}");
            }
            for (k, v) in &h.removed {
                let _ = writeln!(out, "{dir} header removed: {k}: {v}");
            }
            for (k, b, a) in &h.changed {
                let _ = writeln!(out, "{dir} header changed: {k}: {b} -> {a}");
            }
        }
        if self.request_body_rewritten {
            out.push_str("request body rewritten\n");
        }
        if self.response_body_rewritten {
            out.push_str("response body rewritten\n");
        }
        if let Some(r) = &self.local_reply {
            let _ = writeln!(
                out,
                "local reply {} ({}){}: {}",
                r.status,
                r.details,
                r.grpc_status
                    .map(|g| format!(" grpc-status {g}"))
                    .unwrap_or_default(),
                r.body
            );
        }
        if self.reset {
            out.push_str("stream reset\n");
        }
        for c in &self.calls {
            let _ = writeln!(out, "{} call to {}: {}", c.kind, c.cluster, c.target);
        }
        for l in &self.logs {
            let _ = writeln!(out, "log {l}");
        }
        out
    }
}
