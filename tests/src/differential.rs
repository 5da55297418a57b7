//! Runs the same request through ModSecurity 3.0.9 (the reference) and portcullis-waf with the
//! same SecLang text, and tallies where the sets of logged rule ids (and the blocking status) differ.
//!
//! Differences are grouped by the rule id that differs and a cause found by studying the
//! cases (see [`KNOWN_CAUSES`]); the anomaly-scoring rules only echo another difference.

use crate::crs;
use portcullis_modsec::{debian_crs_rules, ModSecurity, Request};
use portcullis_waf::engine::Ruleset;
use portcullis_waf::seclang::{self, FsSource};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Rules whose firing only reflects the anomaly score other rules built up (blocking
/// evaluation 949110/959100, correlation 980130/980140): a difference there with another
/// rule differing too is that rule's consequence.
pub const SCORING_RULES: &[u64] = &[949110, 959100, 980130, 980140];

/// A body over SecRequestBodyLimit with `SecRequestBodyLimitAction Reject`: ModSecurity 3.0.9
/// (`Transaction::appendRequestBody`) drops the whole chunk that crosses the limit (nothing
/// of it is parsed) and, engine On, intervenes with status 403; our engine keeps the bytes up
/// to the limit (so ARGS from them fire 920370/920390 in detection-only mode) and answers 413.
pub const CAUSE_BODY_LIMIT: &str = "engine: body over SecRequestBodyLimit (Reject): ModSecurity drops the crossing chunk and answers 403, ours keeps the prefix and answers 413";

/// Differences made on purpose: where ModSecurity 3.0.9 reads CRS 3.3 otherwise than its
/// authors meant (CRS's regression suite, written for ModSecurity 2 under Apache, fails there),
/// portcullis-waf follows CRS (`PASS_WHERE_MODSECURITY_3_FAILS` in
/// waf/tests/crs_regression.rs). They are mismatches, tabulated by cause, and counted apart.
///
/// REQUEST_BODY under the XML processor: portcullis-waf leaves it empty as ModSecurity 2
/// (`modsecurity_request_body_end`) and Coraza do, ModSecurity 3 matches the raw XML, markup
/// included (CRS 944100-11 and 29 other cases expect v2).
pub const CAUSE_XML_REQUEST_BODY: &str = "on purpose (CRS): REQUEST_BODY is empty under the XML processor as in ModSecurity 2 and Coraza; ModSecurity 3 matches the raw XML, markup included";
/// `\\\\` in a CRS 3.3 `@rx`: one literal backslash for portcullis-waf (Apache's config parser
/// reading, which CRS's tests expect and CRS v4 writes `\x5c`:
/// `portcullis_waf::operator::crs_backslashes`), two for ModSecurity 3.
pub const CAUSE_CRS_BACKSLASHES: &str = "on purpose (CRS): `\\\\\\\\` in a CRS 3.3 regex is one backslash as Apache reads it (CRS v4: `\\x5c`); ModSecurity 3 reads two";
/// The deliberate causes.
pub const DELIBERATE_CAUSES: &[&str] = &[CAUSE_XML_REQUEST_BODY, CAUSE_CRS_BACKSLASHES];

/// The CRS 3.3.4 rules whose `@rx` writes `\\\\` outside a character class (inside one, one
/// backslash or two are the same set): `crs_backslashes` changes their pattern and nothing else.
pub const CRS_BACKSLASH_RULES: &[u64] = &[920460, 932190, 933100, 941330, 942330, 954100];

/// The deliberate cause of rule `id` differing on side `only` in `c`, from the evidence: for
/// the XML cause, ModSecurity's match of the rule is on REQUEST_BODY of an XML request; for
/// the backslash cause, the rule is one of [`CRS_BACKSLASH_RULES`] and the value the logging
/// side matched holds a backslash.
pub fn deliberate_cause(c: &Comparison, id: u64, only: Only) -> Option<&'static str> {
    let tag = format!("[id \"{id}\"]");
    let modsec_match = || c.modsec_messages.iter().find(|m| m.contains(&tag));
    if only == Only::Modsec
        && c.content_type.to_ascii_lowercase().contains("xml")
        && modsec_match().is_some_and(|m| m.contains("REQUEST_BODY"))
    {
        return Some(CAUSE_XML_REQUEST_BODY);
    }
    if CRS_BACKSLASH_RULES.contains(&id) {
        let backslash = match only {
            Only::Modsec => modsec_match().is_some_and(|m| m.contains('\\')),
            Only::Waf => c
                .waf_detail
                .iter()
                .any(|d| d.starts_with(&format!("{id} ")) && d.contains('\\')),
        };
        if backslash {
            return Some(CAUSE_CRS_BACKSLASHES);
        }
    }
    None
}

/// The cause of one comparison's difference, from the evidence (see the `CAUSE_*` texts), or
/// `None` when unclassified.
pub fn classify(c: &Comparison) -> Option<&'static str> {
    if c.body_len > 131_072 {
        return Some(CAUSE_BODY_LIMIT);
    }
    None
}

/// Why a rule id differs when [`classify`] finds nothing request-specific: (rule id, which
/// engine logs it, cause). `Only::Modsec` means ModSecurity logs it and portcullis-waf does not.
pub const KNOWN_CAUSES: &[(u64, Only, &str)] = &[];

/// Differences whose cause is a known, small engine bug with the fix described (in the
/// differential report) but not yet made: (rule id, side, cause). Remove an entry when the
/// engine is fixed.
pub const PENDING_ENGINE_FIXES: &[(u64, Only, &str)] = &[];

/// Which side logged a rule the other did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Only {
    /// Logged by ModSecurity only.
    Modsec,
    /// Logged by portcullis-waf only.
    Waf,
}

/// Both engines loaded with Debian's CRS v3.3.4 and `extra` between the setup and the rules.
pub struct Engines {
    /// The reference.
    pub modsec: ModSecurity,
    /// Ours, compiled from the same text (the file system gives the Includes).
    pub waf: Ruleset,
}

impl Engines {
    /// Loads [`debian_crs_rules`]`(extra)` into both engines.
    pub fn load(extra: &str) -> Result<Engines, String> {
        let text = debian_crs_rules(extra);
        let modsec = ModSecurity::new(&text).map_err(|e| format!("ModSecurity: {e}"))?;
        let directives = seclang::parse(&text, "/portcullis-differential/main.conf", &FsSource)
            .map_err(|e| format!("portcullis-waf parse: {e}"))?;
        let waf = Ruleset::compile(directives, &FsSource)
            .map_err(|e| format!("portcullis-waf compile: {e}"))?;
        Ok(Engines { modsec, waf })
    }

    /// Runs `req` through both engines.
    pub fn compare(&self, label: &str, req: &Request) -> Comparison {
        let t = Instant::now();
        let ms = self.modsec.evaluate(req);
        let modsec_time = t.elapsed();
        let t = Instant::now();
        let ours = run_waf(&self.waf, req, label);
        let waf_time = t.elapsed();
        let ms_ids: BTreeSet<u64> = ms.rule_ids.iter().copied().collect();
        let (waf_ids, waf_status, waf_detail) = match ours {
            Ok(o) => (o.0, o.1, o.2),
            Err(panic) => (BTreeSet::new(), None, vec![format!("PANIC {panic}")]),
        };
        Comparison {
            label: label.to_string(),
            content_type: req
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default(),
            body_len: req.body.len(),
            only_modsec: ms_ids.difference(&waf_ids).copied().collect(),
            only_waf: waf_ids.difference(&ms_ids).copied().collect(),
            modsec_status: ms.status,
            waf_status,
            modsec_fired: ms_ids,
            waf_fired: waf_ids,
            modsec_messages: ms.messages,
            waf_detail,
            modsec_time,
            waf_time,
        }
    }
}

/// Logged rule ids, the blocking status, and `id var=value` lines for the matches.
type WafRun = (BTreeSet<u64>, Option<u16>, Vec<String>);

/// Phases 1, 2 and 5 as the ModSecurity wrapper runs them; the status is the first
/// disruptive intervention's. A panic (a bug: the engine must never panic on input) is
/// returned as its message.
fn run_waf(ruleset: &Ruleset, req: &Request, label: &str) -> Result<WafRun, String> {
    let (request, body) = crs::waf_request(req, label);
    catch_unwind(AssertUnwindSafe(|| {
        let mut tx = ruleset.transaction(request);
        let mut status = tx.process_request_headers().map(|i| i.status);
        tx.append_request_body(&body);
        let after_body = tx.process_request_body().map(|i| i.status);
        status = status.or(after_body);
        tx.process_logging();
        let logged = tx.matched_rules().iter().filter(|m| m.logged);
        let ids = logged.clone().map(|m| m.id).collect();
        let detail = logged
            .map(|m| {
                let v: String = String::from_utf8_lossy(&m.var_value)
                    .chars()
                    .take(80)
                    .collect();
                format!("{} {}={v:?}", m.id, String::from_utf8_lossy(&m.var_name))
            })
            .collect();
        (ids, status, detail)
    }))
    .map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

/// One request's result in both engines.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The request's name.
    pub label: String,
    /// The request's Content-Type (empty without one).
    pub content_type: String,
    /// The body's length.
    pub body_len: usize,
    /// Rule ids ModSecurity logged and portcullis-waf did not.
    pub only_modsec: BTreeSet<u64>,
    /// Rule ids portcullis-waf logged and ModSecurity did not.
    pub only_waf: BTreeSet<u64>,
    /// ModSecurity's blocking status.
    pub modsec_status: Option<u16>,
    /// portcullis-waf's blocking status.
    pub waf_status: Option<u16>,
    /// Every rule id ModSecurity logged.
    pub modsec_fired: BTreeSet<u64>,
    /// Every rule id portcullis-waf logged.
    pub waf_fired: BTreeSet<u64>,
    /// ModSecurity's log lines.
    pub modsec_messages: Vec<String>,
    /// portcullis-waf's matches (`id var=value`).
    pub waf_detail: Vec<String>,
    /// ModSecurity's time on the request (for the report only, never asserted).
    pub modsec_time: Duration,
    /// portcullis-waf's time on the request.
    pub waf_time: Duration,
}

impl Comparison {
    /// Same logged ids and same blocking status.
    pub fn identical(&self) -> bool {
        self.only_modsec.is_empty()
            && self.only_waf.is_empty()
            && self.modsec_status == self.waf_status
    }

    /// The differing rule ids that are not only an echo of another (scoring rules count only
    /// when nothing else differs).
    pub fn causes(&self) -> Vec<(u64, Only)> {
        let all: Vec<(u64, Only)> = self
            .only_modsec
            .iter()
            .map(|&i| (i, Only::Modsec))
            .chain(self.only_waf.iter().map(|&i| (i, Only::Waf)))
            .collect();
        let primary: Vec<(u64, Only)> = all
            .iter()
            .copied()
            .filter(|(i, _)| !SCORING_RULES.contains(i))
            .collect();
        if primary.is_empty() {
            all
        } else {
            primary
        }
    }
}

/// The known cause of `id` differing on side `only`, or "unclassified".
pub fn cause_of(id: u64, only: Only) -> &'static str {
    KNOWN_CAUSES
        .iter()
        .chain(PENDING_ENGINE_FIXES)
        .find(|(i, o, _)| *i == id && *o == only)
        .map(|(_, _, c)| *c)
        .unwrap_or("unclassified")
}

/// The rule ids that differ for one cause, and the labels of its requests.
pub type CauseRow = (BTreeSet<(u64, Only)>, Vec<String>);

/// Comparisons of a corpus, summed up.
#[derive(Debug, Default)]
pub struct Report {
    /// Requests compared.
    pub requests: usize,
    /// Requests with identical logged-id sets and status.
    pub identical: usize,
    /// Requests where ModSecurity logged at least one rule.
    pub modsec_fired: usize,
    /// Requests where portcullis-waf logged at least one rule.
    pub waf_fired: usize,
    /// Requests where both logged at least one rule.
    pub both_fired: usize,
    /// Requests ModSecurity blocked.
    pub modsec_blocked: usize,
    /// Requests portcullis-waf blocked.
    pub waf_blocked: usize,
    /// Requests where only the status differs.
    pub status_only: Vec<String>,
    /// (rule id, side) → labels of the requests where it differs as a cause.
    pub by_rule: BTreeMap<(u64, Only), Vec<String>>,
    /// Cause → (the rule ids that differ for it, labels of the requests).
    pub by_cause: BTreeMap<&'static str, CauseRow>,
    /// Every differing comparison, for the details printed below the table.
    pub mismatches: Vec<Comparison>,
    /// Requests that differ only by [`PENDING_ENGINE_FIXES`] (same status too).
    pub pending_only: usize,
    /// Requests whose every difference has a [`DELIBERATE_CAUSES`] cause (the status may
    /// differ through them).
    pub deliberate_only: usize,
}

impl Report {
    /// Records one comparison.
    pub fn add(&mut self, c: Comparison) {
        self.requests += 1;
        self.modsec_fired += usize::from(!c.modsec_fired.is_empty());
        self.waf_fired += usize::from(!c.waf_fired.is_empty());
        self.both_fired += usize::from(!c.modsec_fired.is_empty() && !c.waf_fired.is_empty());
        self.modsec_blocked += usize::from(c.modsec_status.is_some());
        self.waf_blocked += usize::from(c.waf_status.is_some());
        if c.identical() {
            self.identical += 1;
            return;
        }
        let pending = |k: &(u64, Only)| PENDING_ENGINE_FIXES.iter().any(|(i, o, _)| (*i, *o) == *k);
        let all = c
            .only_modsec
            .iter()
            .map(|&i| (i, Only::Modsec))
            .chain(c.only_waf.iter().map(|&i| (i, Only::Waf)));
        if c.modsec_status == c.waf_status && all.clone().all(|k| pending(&k)) {
            self.pending_only += 1;
        }
        let causes = c.causes();
        if causes.is_empty() {
            self.status_only.push(c.label.clone());
        }
        let deliberate: Vec<Option<&'static str>> = causes
            .iter()
            .map(|(i, o)| deliberate_cause(&c, *i, *o))
            .collect();
        if !causes.is_empty() && deliberate.iter().all(Option::is_some) {
            self.deliberate_only += 1;
        }
        let cause = classify(&c).unwrap_or_else(|| {
            causes
                .first()
                .map(|(i, o)| deliberate[0].unwrap_or_else(|| cause_of(*i, *o)))
                .unwrap_or("unclassified")
        });
        let entry = self.by_cause.entry(cause).or_default();
        entry.0.extend(causes.iter().copied());
        entry.1.push(c.label.clone());
        for key in causes {
            self.by_rule.entry(key).or_default().push(c.label.clone());
        }
        self.mismatches.push(c);
    }

    /// The agreement in percent.
    pub fn agreement(&self) -> f64 {
        if self.requests == 0 {
            100.0
        } else {
            100.0 * self.identical as f64 / self.requests as f64
        }
    }

    /// The agreement in percent counting the requests that differ only by a
    /// [`PENDING_ENGINE_FIXES`] difference as identical: the figure that catches every other
    /// regression while those fixes are pending.
    pub fn agreement_apart_from_pending(&self) -> f64 {
        if self.requests == 0 {
            100.0
        } else {
            100.0 * (self.identical + self.pending_only) as f64 / self.requests as f64
        }
    }

    /// The agreement in percent counting the requests that differ only by a
    /// [`DELIBERATE_CAUSES`] cause as identical.
    pub fn agreement_apart_from_deliberate(&self) -> f64 {
        if self.requests == 0 {
            100.0
        } else {
            100.0 * (self.identical + self.deliberate_only) as f64 / self.requests as f64
        }
    }

    /// A Markdown summary and the mismatches by rule id and cause.
    pub fn table(&self, title: &str) -> String {
        let mut s = format!(
            "{title}\n| requests | identical | agreement | ModSecurity fired | ours fired | both fired | ModSecurity blocked | ours blocked |\n|---|---|---|---|---|---|---|---|\n| {} | {} | {:.2}% | {} | {} | {} | {} | {} |\n",
            self.requests,
            self.identical,
            self.agreement(),
            self.modsec_fired,
            self.waf_fired,
            self.both_fired,
            self.modsec_blocked,
            self.waf_blocked
        );
        s.push_str(&format!(
            "\nagreement apart from the pending engine fixes ({}): {:.2}% ({} more requests)\n",
            PENDING_ENGINE_FIXES
                .iter()
                .map(|(i, _, why)| format!("{i}: {why}"))
                .collect::<Vec<_>>()
                .join("; "),
            self.agreement_apart_from_pending(),
            self.pending_only
        ));
        s.push_str(&format!(
            "agreement apart from the differences made on purpose (following CRS where ModSecurity 3 reads it otherwise, below): {:.2}% ({} more requests)\n",
            self.agreement_apart_from_deliberate(),
            self.deliberate_only
        ));
        s.push_str("\n| cause | requests | rule ids (m = only ModSecurity, w = only ours) | e.g. |\n|---|---|---|---|\n");
        let mut causes: Vec<_> = self.by_cause.iter().collect();
        causes.sort_by_key(|(k, v)| (std::cmp::Reverse(v.1.len()), **k));
        for (cause, (ids, labels)) in causes {
            let ids: Vec<String> = ids
                .iter()
                .map(|(i, o)| format!("{i}{}", if *o == Only::Modsec { "m" } else { "w" }))
                .collect();
            s.push_str(&format!(
                "| {cause} | {} | {} | {} |\n",
                labels.len(),
                ids.join(" "),
                labels
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s.push_str("\n| rule | logged only by | requests | e.g. |\n|---|---|---|---|\n");
        let mut rows: Vec<_> = self.by_rule.iter().collect();
        rows.sort_by_key(|(k, v)| (std::cmp::Reverse(v.len()), **k));
        for ((id, only), labels) in rows {
            let side = match only {
                Only::Modsec => "ModSecurity",
                Only::Waf => "portcullis-waf",
            };
            s.push_str(&format!(
                "| {id} | {side} | {} | {} |\n",
                labels.len(),
                labels
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.status_only.is_empty() {
            s.push_str(&format!(
                "| - | status only | {} | {} |\n",
                self.status_only.len(),
                self.status_only
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        s
    }

    /// The first `n` mismatches with both engines' evidence.
    pub fn details(&self, n: usize) -> String {
        let mut s = String::new();
        let pending = |c: &&Comparison| {
            c.modsec_status == c.waf_status
                && c.only_modsec.is_empty()
                && c.only_waf.iter().all(|i| {
                    PENDING_ENGINE_FIXES
                        .iter()
                        .any(|(p, o, _)| p == i && *o == Only::Waf)
                })
        };
        for c in self.mismatches.iter().filter(|c| !pending(c)).take(n) {
            s.push_str(&format!(
                "--- {}: only ModSecurity {:?}, only ours {:?}, status {:?} vs {:?}\n",
                c.label, c.only_modsec, c.only_waf, c.modsec_status, c.waf_status
            ));
            for m in &c.modsec_messages {
                if c.only_modsec
                    .iter()
                    .any(|i| m.contains(&format!("[id \"{i}\"]")))
                {
                    let short: String = m.chars().take(400).collect();
                    s.push_str(&format!("    modsec: {short}\n"));
                }
            }
            for d in &c.waf_detail {
                if c.only_waf.iter().any(|i| d.starts_with(&format!("{i} "))) {
                    s.push_str(&format!("    ours:   {d}\n"));
                }
            }
        }
        s
    }
}
