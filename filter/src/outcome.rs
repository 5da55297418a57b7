//! What the glue does with a [`Decision`], as plain data: the counters it adds, the log
//! lines it writes, the upstream header edits, and the internal-error reply. The glue
//! only carries these out; everything here is tested natively.

use crate::authz::AuthzVerdict;
use crate::engine::{Decision, IpOutcome, LocalReply, Plan};
use crate::error::HostError;
use crate::metrics::Counters;
use crate::request::Headers;

/// Adds the counts of one decision.
pub fn count_decision(m: &mut Counters, d: &Decision) {
    let partner = d.partner.unwrap_or("none");
    let ip = match d.ip {
        IpOutcome::NotConfigured => None,
        IpOutcome::Public => Some(("public", "unprotected_route")),
        IpOutcome::Allowed => Some(("allowed", "partner_network")),
        IpOutcome::Denied(r) if d.ip_dry_run => Some(("dry_run_denied", r.as_str())),
        IpOutcome::Denied(r) => Some(("denied", r.as_str())),
    };
    if let Some((decision, reason)) = ip {
        m.increment("ip_allowlist", decision, reason, "partner", partner);
    }
    let a = &d.authz;
    let policy = a.rule.unwrap_or("none");
    match a.verdict {
        AuthzVerdict::NotConfigured | AuthzVerdict::Skipped => return,
        AuthzVerdict::Allowed => {
            let reason = if a.rule.is_some() {
                "allow_rule_matched"
            } else {
                "no_allow_policy"
            };
            m.increment("authorization", "allowed", reason, "policy", policy);
        }
        AuthzVerdict::Denied => {
            let reason = d.denial.as_ref().map_or("denied", |x| x.reason);
            m.increment("authorization", "denied", reason, "policy", policy);
        }
    }
    if let Some((verdict, rule)) = a.dry_run {
        let decision = match verdict {
            AuthzVerdict::Denied => "dry_run_denied",
            _ => "dry_run_allowed",
        };
        m.increment(
            "authorization",
            decision,
            "dry_run",
            "policy",
            rule.unwrap_or("none"),
        );
    }
    if let Some(rule) = a.audit {
        m.increment(
            "authorization",
            "audit",
            "audit_rule_matched",
            "policy",
            rule,
        );
    }
}

/// One info line per enforced denial, dry-run difference and audit match, to `out`. An
/// enforced denial with a detail (e.g. why the client IP is unknown) says it after the
/// reason.
pub fn log_decision(plan: &Plan, headers: &Headers, d: &Decision, mut out: impl FnMut(&str)) {
    let detail = d
        .denial
        .as_ref()
        .and_then(|den| den.detail)
        .map(|x| format!(" detail={x}"));
    let mut line = |what: &str, check: &str, reason: &str, policy: Option<&str>, detail: &str| {
        let client = d.client_ip.map(|a| a.to_string());
        out(&format!(
            "{what} check={check} reason={reason}{detail} policy={} client_ip={} partner={} authority={:?} path={:?} request_id={}",
            policy.unwrap_or("-"),
            client.as_deref().unwrap_or("unknown"),
            d.partner.unwrap_or("none"),
            headers.authority(),
            headers.path(),
            headers.get("x-request-id").unwrap_or("-"),
        ))
    };
    if let Some(den) = &d.denial {
        let policy = den.rule.and_then(|r| plan.rule_name(r));
        line(
            "denied",
            den.check.as_str(),
            den.reason,
            policy,
            detail.as_deref().unwrap_or(""),
        );
    }
    if let (true, IpOutcome::Denied(r)) = (d.ip_dry_run, d.ip) {
        line("dry-run, would deny", "ip_allowlist", r.as_str(), None, "");
    }
    let a = &d.authz;
    match (a.verdict, a.dry_run) {
        (AuthzVerdict::Allowed, Some((AuthzVerdict::Denied, rule))) => line(
            "dry-run, would deny",
            "authorization",
            "dry_run_policy",
            rule,
            "",
        ),
        (AuthzVerdict::Denied, Some((AuthzVerdict::Allowed, rule))) => line(
            "dry-run, would allow",
            "authorization",
            "dry_run_policy",
            rule,
            "",
        ),
        _ => {}
    }
    if let Some(rule) = a.audit {
        line(
            "audit",
            "authorization",
            "audit_rule_matched",
            Some(rule),
            "",
        );
    }
}

/// A change to the request headers before forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit<'p> {
    /// Set (replace) `name` to `value`.
    Set(&'p str, &'p str),
    /// Remove `name`.
    Remove(&'p str),
}

/// The edits for an allowed request: the partner header set (or a forged one removed) and
/// the headers clients must not send stripped; one edit per header actually present or
/// set (each is a host call).
pub fn upstream_edits<'p>(
    plan: &'p Plan,
    headers: &Headers,
    d: &Decision<'p>,
) -> Vec<HeaderEdit<'p>> {
    let mut edits = Vec::new();
    let partner_header = plan.partner_header();
    if let (Some(h), Some(p)) = (partner_header, d.partner) {
        edits.push(HeaderEdit::Set(h, p));
    }
    for h in plan.strip_headers() {
        let set_by_us = d.partner.is_some() && partner_header == Some(h.as_str());
        if !set_by_us && headers.contains(h) {
            edits.push(HeaderEdit::Remove(h));
        }
    }
    edits
}

/// What to do on an internal error (a host call failed): allow when `fail_open`, else
/// deny with this reply. Also counted as `internal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalError {
    /// The log line (error level).
    pub log: String,
    /// `None`: let the request through (`fail_open`).
    pub reply: Option<LocalReply>,
}

/// The internal-error handling for `why`; `plan` is `None` when no configuration loaded.
pub fn internal_error(plan: Option<&Plan>, why: InternalCause, m: &mut Counters) -> InternalError {
    let open = plan.is_some_and(Plan::fail_open);
    m.increment(
        "internal",
        if open { "allowed" } else { "denied" },
        "internal_error",
        "partner",
        "none",
    );
    InternalError {
        log: format!(
            "internal error, request {}: {why}",
            if open {
                "allowed (fail_open)"
            } else {
                "denied (fail closed)"
            }
        ),
        reply: (!open).then(|| LocalReply {
            status: 403,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"reason":"internal_error"}"#.to_vec(),
            details: "portcullis_internal_error".into(),
        }),
    }
}

/// Why an internal error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InternalCause {
    /// No configuration loaded (Envoy created a stream although `on_configure` failed).
    NoConfiguration,
    /// A host call failed while `doing` something.
    Host {
        /// What the filter was doing, e.g. `reading request headers`.
        doing: &'static str,
        /// The failed call.
        error: HostError,
    },
}

impl std::fmt::Display for InternalCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InternalCause::NoConfiguration => f.write_str("no configuration"),
            InternalCause::Host { doing, error } => write!(f, "{doing}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::StaticRequest;

    const CFG: &str = r#"{"partners":[{"name":"acme","cidrs":["10.0.0.0/8"]}],
      "ip_allowlist":{"client_ip":{"source":"peer"}},
      "authorization":{"policies":[{"name":"audit","spec":{"action":"AUDIT","rules":[{}]}}]}}"#;

    fn counts(m: &mut Counters) -> Vec<(String, u64)> {
        let out = std::cell::RefCell::new(Vec::new());
        m.flush(
            |name| {
                let mut o = out.borrow_mut();
                o.push((name.to_owned(), 0));
                Ok::<u32, ()>(o.len() as u32 - 1)
            },
            |id, n| {
                if let Some(c) = out.borrow_mut().get_mut(id as usize) {
                    c.1 += n;
                }
            },
            |_, _| {},
        );
        let mut out = out.into_inner();
        out.sort();
        out
    }

    #[test]
    fn a_decision_counts_each_check_once() {
        let plan = Plan::parse(CFG.as_bytes()).unwrap();
        let mut m = Counters::default();
        let d = plan.evaluate(&StaticRequest::new("GET", "h", "/", "10.1.1.1:1"));
        count_decision(&mut m, &d);
        let c = counts(&mut m);
        assert_eq!(c.len(), 3, "{c:?}");
        assert!(c.iter().all(|(_, n)| *n == 1));
        assert!(c
            .iter()
            .any(|(n, _)| n.contains("ip_allowlist") && n.contains("acme")));
        assert!(c.iter().any(|(n, _)| n.contains("audit")));
        // Denied by the IP list: authorization is skipped, not counted.
        let d = plan.evaluate(&StaticRequest::new("GET", "h", "/", "192.0.2.1:1"));
        count_decision(&mut m, &d);
        let c = counts(&mut m);
        assert_eq!(c.iter().filter(|(_, n)| *n > 0).count(), 1, "{c:?}");
    }

    #[test]
    fn log_lines_and_edits() {
        let plan = Plan::parse(CFG.as_bytes()).unwrap();
        let r = StaticRequest::new("GET", "h", "/x", "192.0.2.1:1")
            .with_header("x-request-id", "r1")
            .with_header("x-portcullis-partner", "forged");
        let d = plan.evaluate(&r);
        let mut lines = Vec::new();
        log_decision(&plan, &r.headers, &d, |l| lines.push(l.to_owned()));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].starts_with("denied check=ip_allowlist reason=ip_not_allowed policy=- client_ip=192.0.2.1 partner=none authority=\"h\" path=\"/x\" request_id=r1"), "{}", lines[0]);
        // A denial with a detail says it: here, no client IP at all.
        let r = StaticRequest::new("GET", "h", "/x", "not-an-address");
        let d = plan.evaluate(&r);
        let mut lines = Vec::new();
        log_decision(&plan, &r.headers, &d, |l| lines.push(l.to_owned()));
        assert!(lines[0].starts_with("denied check=ip_allowlist reason=client_ip_unknown detail=bad_peer_address policy=- client_ip=unknown"), "{lines:?}");
        // Allowed: the partner header is set (replacing the forged one), audit logged.
        let r = StaticRequest::new("GET", "h", "/x", "10.0.0.1:1")
            .with_header("x-portcullis-partner", "forged");
        let d = plan.evaluate(&r);
        assert_eq!(
            upstream_edits(&plan, &r.headers, &d),
            [HeaderEdit::Set("x-portcullis-partner", "acme")]
        );
        let mut lines = Vec::new();
        log_decision(&plan, &r.headers, &d, |l| lines.push(l.to_owned()));
        assert!(
            lines[0].starts_with("audit check=authorization"),
            "{lines:?}"
        );
    }

    #[test]
    fn internal_errors_fail_closed_unless_fail_open() {
        let err = InternalCause::Host {
            doing: "reading request headers",
            error: HostError {
                call: "proxy_get_header_map_pairs",
                status: 10,
            },
        };
        let mut m = Counters::default();
        let closed = Plan::parse(CFG.as_bytes()).unwrap();
        let e = internal_error(Some(&closed), err, &mut m);
        assert_eq!(e.reply.map(|r| r.status), Some(403));
        assert!(e.log.contains("denied (fail closed): reading request headers: proxy_get_header_map_pairs failed: InternalFailure (10)"), "{}", e.log);
        let open = Plan::parse(
            CFG.replace("\"partners\"", "\"fail_open\":true,\"partners\"")
                .as_bytes(),
        )
        .unwrap();
        assert!(open.fail_open());
        let e = internal_error(Some(&open), err, &mut m);
        assert_eq!(e.reply, None);
        // No configuration: nothing says fail_open.
        assert!(internal_error(None, InternalCause::NoConfiguration, &mut m)
            .reply
            .is_some());
        let c = counts(&mut m);
        assert!(
            c.iter()
                .any(|(n, v)| n.contains("internal") && n.contains("denied") && *v == 2),
            "{c:?}"
        );
        assert!(
            c.iter()
                .any(|(n, v)| n.contains("internal") && n.contains("allowed") && *v == 1),
            "{c:?}"
        );
    }
}
