//! The WAF check: the `waf` section of the configuration, compiled into `portcullis-waf`
//! rulesets, and the per-request evaluation behind the same request view as the other checks.
//!
//! SecLang is the language of the rules: the `waf` settings become a few generated directives
//! placed before the user's, so `directives` can override any of them.

use crate::check::Mode;
use crate::clientip::parse_peer_socket;
use crate::error::ConfigError;
use crate::request::RequestView;
use crate::uri::split_authority;
use portcullis_waf::ast::{Directive, EngineMode, Location};
use portcullis_waf::engine::{Intervention, Request, Ruleset, Transaction};
use portcullis_waf::seclang::{self, MapSource};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

/// `waf` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WafSpec {
    /// `enforce` (default) or `dry_run` (`SecRuleEngine DetectionOnly`: what would have been
    /// blocked is logged and counted, nothing is blocked).
    #[serde(default)]
    pub mode: Mode,
    /// SecLang lines, in order, for every authority without its own rule set. Default:
    /// `Include @recommended.conf`, `Include @crs-setup.conf`, `Include @owasp_crs/*.conf`.
    #[serde(default = "default_directives")]
    pub directives: Vec<String>,
    /// CRS settings, written as a `SecAction` before the directives.
    #[serde(default)]
    pub crs: CrsSpec,
    /// Named SecLang rule sets for `per_authority`.
    #[serde(default)]
    pub rule_sets: BTreeMap<String, Vec<String>>,
    /// `:authority` (exact, case-insensitive, port ignored) → rule set name.
    #[serde(default)]
    pub per_authority: BTreeMap<String, String>,
    /// Request body inspection.
    #[serde(default)]
    pub request_body: RequestBodySpec,
    /// Response header that lists the rule ids that matched (comma-separated) on requests the
    /// WAF let through (dry-run tuning, replay, debugging); absent = not set. It tells the
    /// client which rules its request matched: leave it off on public gateways.
    #[serde(default)]
    pub rule_ids_header: Option<String>,
    /// Response inspection (phases 3 and 4): off by default.
    #[serde(default)]
    pub response: ResponseSpec,
}

fn default_directives() -> Vec<String> {
    vec![
        "Include @recommended.conf".into(),
        "Include @crs-setup.conf".into(),
        "Include @owasp_crs/*.conf".into(),
    ]
}

/// CRS tuning (crs-setup.conf's 900000 / 900110), set before the CRS initialises.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrsSpec {
    /// Paranoia level 1-4 (CRS 3 `tx.paranoia_level`, CRS 4 `tx.blocking_paranoia_level`).
    #[serde(default = "default_paranoia")]
    pub paranoia_level: u8,
    /// Inbound anomaly score at which a request is blocked (CRS default 5).
    #[serde(default = "default_inbound")]
    pub inbound_anomaly_threshold: u32,
    /// Outbound anomaly score threshold (CRS default 4; response phases only).
    #[serde(default = "default_outbound")]
    pub outbound_anomaly_threshold: u32,
}

impl Default for CrsSpec {
    fn default() -> Self {
        CrsSpec {
            paranoia_level: default_paranoia(),
            inbound_anomaly_threshold: default_inbound(),
            outbound_anomaly_threshold: default_outbound(),
        }
    }
}

fn default_paranoia() -> u8 {
    1
}
fn default_inbound() -> u32 {
    5
}
fn default_outbound() -> u32 {
    4
}

/// What happens to a body over the limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitAction {
    /// Answer 413 (`SecRequestBodyLimitAction Reject`).
    #[default]
    Reject,
    /// Inspect the first `limit_bytes`, pass the rest uninspected (`ProcessPartial`).
    ProcessPartial,
}

/// Request body buffering and inspection.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestBodySpec {
    /// Bytes buffered and inspected (default 131072, as Coraza's recommended config).
    #[serde(default = "default_body_limit")]
    pub limit_bytes: u32,
    /// `reject` (default) or `process_partial`.
    #[serde(default)]
    pub limit_action: LimitAction,
}

impl Default for RequestBodySpec {
    fn default() -> Self {
        RequestBodySpec {
            limit_bytes: default_body_limit(),
            limit_action: LimitAction::default(),
        }
    }
}

fn default_body_limit() -> u32 {
    128 * 1024
}

/// Response inspection: CRS's outbound rules (phase 3 on the response headers, phase 4 on the
/// response body: data leakages 950-954, the outbound anomaly score 959100). Off by default,
/// as in ModSecurity's recommended configuration for proxies: it costs a buffered response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSpec {
    /// Run the response phases (`SecResponseBodyAccess On`). Default false: the response
    /// rules never run and responses stream through untouched.
    #[serde(default)]
    pub enabled: bool,
    /// Response body bytes buffered and inspected (default 524288, ModSecurity's
    /// `SecResponseBodyLimit`); the rest passes uninspected (`ProcessPartial`). Keep it under
    /// Envoy's per-stream buffer limit (1 MiB by default).
    #[serde(default = "default_response_body_limit")]
    pub body_limit_bytes: u32,
    /// MIME types whose bodies phase 4 inspects, added to ModSecurity's default `text/plain`
    /// and `text/html` (`SecResponseBodyMimeType`); default `text/xml` (as Coraza). Other
    /// bodies are neither buffered nor inspected (phase 4 then does not run, as ModSecurity).
    #[serde(default = "default_response_mime_types")]
    pub body_mime_types: Vec<String>,
}

impl Default for ResponseSpec {
    fn default() -> Self {
        ResponseSpec {
            enabled: false,
            body_limit_bytes: default_response_body_limit(),
            body_mime_types: default_response_mime_types(),
        }
    }
}

fn default_response_body_limit() -> u32 {
    512 * 1024
}

fn default_response_mime_types() -> Vec<String> {
    vec!["text/xml".into()]
}

/// The engine's `SecResponseBodyMimeType` list before any directive adds to it.
const ENGINE_RESPONSE_MIME_TYPES: [&str; 2] = ["text/plain", "text/html"];

/// The compiled response settings.
#[derive(Debug, Clone)]
struct ResponseSettings {
    body_limit: usize,
    /// Lower-case MIME types (no parameters) whose bodies are buffered for phase 4.
    mime_types: Vec<String>,
}

/// The compiled WAF check.
#[derive(Debug, Clone)]
pub struct Waf {
    default: Ruleset,
    /// (lower-case authority without port, index into `sets`).
    per_authority: Vec<(String, usize)>,
    sets: Vec<Ruleset>,
    body: RequestBodySpec,
    dry_run: bool,
    rule_ids_header: Option<String>,
    /// `None`: response phases off.
    response: Option<ResponseSettings>,
}

/// The ids the generated settings use: in ModSecurity's range for local rules (1-99,999),
/// so they never collide with CRS (9xx,xxx) or the recommended config (200,000+).
const SETTINGS_RULE_ID: u64 = 99_000;

/// The SecLang the `waf` settings stand for, placed before the user's directives.
fn settings_directives(spec: &WafSpec) -> String {
    let mut s = String::new();
    let engine = match spec.mode {
        Mode::Enforce => "On",
        Mode::DryRun => "DetectionOnly",
    };
    let _ = writeln!(s, "SecRuleEngine {engine}");
    let limit = spec.request_body.limit_bytes;
    let _ = writeln!(s, "SecRequestBodyLimit {limit}");
    let _ = writeln!(s, "SecRequestBodyNoFilesLimit {limit}");
    let action = match spec.request_body.limit_action {
        LimitAction::Reject => "Reject",
        LimitAction::ProcessPartial => "ProcessPartial",
    };
    let _ = writeln!(s, "SecRequestBodyLimitAction {action}");
    let r = &spec.response;
    if r.enabled {
        let _ = writeln!(s, "SecResponseBodyAccess On");
        let _ = writeln!(s, "SecResponseBodyLimit {}", r.body_limit_bytes);
        let _ = writeln!(s, "SecResponseBodyLimitAction ProcessPartial");
        if !r.body_mime_types.is_empty() {
            let _ = writeln!(s, "SecResponseBodyMimeType {}", r.body_mime_types.join(" "));
        }
    } else {
        let _ = writeln!(s, "SecResponseBodyAccess Off");
    }
    let c = &spec.crs;
    // Both CRS 3 and CRS 4 names: each CRS reads its own and ignores the other's.
    let _ = writeln!(
        s,
        "SecAction \"id:{SETTINGS_RULE_ID},phase:1,pass,nolog,t:none,\
         setvar:tx.paranoia_level={p},setvar:tx.blocking_paranoia_level={p},\
         setvar:tx.inbound_anomaly_score_threshold={i},\
         setvar:tx.outbound_anomaly_score_threshold={o}\"",
        p = c.paranoia_level,
        i = c.inbound_anomaly_threshold,
        o = c.outbound_anomaly_threshold,
    );
    s
}

/// The embedded files an `Include @...` may name.
fn embedded_source() -> MapSource {
    MapSource::new(
        portcullis_waf::crs::aliases().map(|(name, text)| (name.to_string(), text.to_string())),
    )
}

/// Parses `lines` (one SecLang line per element) as the file `name`; an error points at the
/// element: `/waf/directives/3: <file>:<line>:<col>: why`.
fn parse_lines(
    lines: &[String],
    pointer: &str,
    source: &MapSource,
) -> Result<Vec<Directive>, ConfigError> {
    let text = lines.join("\n");
    seclang::parse(&text, pointer, source)
        .map_err(|e| ConfigError::new(element_pointer(lines, pointer, &e.location), e.to_string()))
}

/// The JSON pointer of the element holding `at`: line N of the joined text is element N-1
/// when `at` is in the config itself (not in an included file) and no element holds a
/// newline; else the whole list.
fn element_pointer(lines: &[String], pointer: &str, at: &Location) -> String {
    let single_lines = lines.iter().all(|l| !l.contains('\n'));
    if &*at.file == pointer && single_lines {
        format!("{pointer}/{}", at.line.saturating_sub(1))
    } else {
        pointer.to_string()
    }
}

fn compile_set(
    spec: &WafSpec,
    lines: &[String],
    pointer: &str,
    source: &MapSource,
) -> Result<Ruleset, ConfigError> {
    let settings = settings_directives(spec);
    let mut directives = seclang::parse(&settings, "<waf settings>", source)
        .map_err(|e| ConfigError::new("/waf", format!("generated settings: {e}")))?;
    directives.extend(parse_lines(lines, pointer, source)?);
    Ruleset::compile(directives, source)
        .map_err(|e| ConfigError::new(element_pointer(lines, pointer, &e.location), e.to_string()))
}

impl Waf {
    /// Compiles the `waf` section: every rule set once.
    pub fn compile(spec: &WafSpec) -> Result<Waf, ConfigError> {
        if !(1..=4).contains(&spec.crs.paranoia_level) {
            return Err(ConfigError::new(
                "/waf/crs/paranoia_level",
                format!("{} is not a paranoia level (1-4)", spec.crs.paranoia_level),
            ));
        }
        if spec.request_body.limit_bytes == 0 {
            return Err(ConfigError::new(
                "/waf/request_body/limit_bytes",
                "must be at least 1 (to skip body inspection, remove the body rules instead)",
            ));
        }
        for (i, t) in spec.response.body_mime_types.iter().enumerate() {
            let bad =
                t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == ';' || c == '"');
            if bad || !t.contains('/') {
                return Err(ConfigError::new(
                    format!("/waf/response/body_mime_types/{i}"),
                    format!("{t:?} is not a MIME type (type/subtype, no parameters)"),
                ));
            }
        }
        let response = spec.response.enabled.then(|| ResponseSettings {
            body_limit: spec.response.body_limit_bytes as usize,
            mime_types: ENGINE_RESPONSE_MIME_TYPES
                .iter()
                .map(|t| t.to_string())
                .chain(
                    spec.response
                        .body_mime_types
                        .iter()
                        .map(|t| t.to_ascii_lowercase()),
                )
                .collect(),
        });
        let source = embedded_source();
        let default = compile_set(spec, &spec.directives, "/waf/directives", &source)?;
        let mut names = Vec::new();
        let mut sets = Vec::new();
        for (name, lines) in &spec.rule_sets {
            let pointer = format!(
                "/waf/rule_sets/{}",
                name.replace('~', "~0").replace('/', "~1")
            );
            sets.push(compile_set(spec, lines, &pointer, &source)?);
            names.push(name.as_str());
        }
        let mut per_authority = Vec::new();
        for (authority, set) in &spec.per_authority {
            let Some(i) = names.iter().position(|n| n == set) else {
                return Err(ConfigError::new(
                    format!("/waf/per_authority/{authority}"),
                    format!("{set:?} is not a rule set (defined: {names:?})"),
                ));
            };
            per_authority.push((split_authority(authority).0.to_ascii_lowercase(), i));
        }
        Ok(Waf {
            default,
            per_authority,
            sets,
            body: spec.request_body,
            dry_run: spec.mode == Mode::DryRun,
            rule_ids_header: spec.rule_ids_header.clone(),
            response,
        })
    }

    /// The embedded CRS version (`3.3.4`), for the start-up log and `portcullis check`.
    pub fn crs_version() -> Option<&'static str> {
        portcullis_waf::crs::version()
    }

    /// One line on what the WAF runs, for the start-up log and `portcullis check`: the
    /// embedded CRS version and where the build found it, the rule count, the mode.
    pub fn summary(&self) -> String {
        let crs = match (Self::crs_version(), portcullis_waf::crs::origin()) {
            (Some(v), Some(o)) => format!("OWASP CRS {v} embedded (from {o})"),
            (Some(v), None) => format!("OWASP CRS {v} embedded"),
            (None, _) => "no CRS embedded".to_string(),
        };
        let report = self.default.report();
        let loaded = match report.crs_version() {
            Some(v) => format!("CRS {v} loaded"),
            None => "CRS not included".to_string(),
        };
        format!(
            "waf: {crs}; default rule set: {} rules, {loaded}; {} per-authority rule sets; mode {}; response phases {}",
            report.rule_count,
            self.sets.len(),
            if self.dry_run { "dry_run" } else { "enforce" },
            if self.response.is_some() { "on" } else { "off" },
        )
    }

    /// True when the response phases run (`response.enabled`).
    pub fn response_enabled(&self) -> bool {
        self.response.is_some()
    }

    /// The response body bytes buffered for phase 4 (0 when the response phases are off).
    pub fn response_body_limit(&self) -> usize {
        self.response.as_ref().map_or(0, |r| r.body_limit)
    }

    /// True when a response with this `content-type` has its body buffered and inspected.
    pub fn inspects_response_body(&self, content_type: Option<&str>) -> bool {
        let (Some(r), Some(ct)) = (&self.response, content_type) else {
            return false;
        };
        let mime = ct.split(';').next().unwrap_or("").trim();
        r.mime_types.iter().any(|m| m.eq_ignore_ascii_case(mime))
    }

    /// Rules compiled in the default rule set.
    pub fn default_ruleset(&self) -> &Ruleset {
        &self.default
    }

    /// Body buffering settings.
    pub fn request_body(&self) -> RequestBodySpec {
        self.body
    }

    /// The response header listing matched rule ids, when configured.
    pub fn rule_ids_header(&self) -> Option<&str> {
        self.rule_ids_header.as_deref()
    }

    fn ruleset_for(&self, authority: &str) -> &Ruleset {
        let host = split_authority(authority).0;
        self.per_authority
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(host))
            .and_then(|(_, i)| self.sets.get(*i))
            .unwrap_or(&self.default)
    }

    /// Runs phases 1 and 2 (and logging) on the request: `body` is what was buffered (`None`
    /// when the request has no body), `truncated` when it was cut at the limit under
    /// `process_partial`. `client_ip` is the IP check's client IP, else the peer's.
    pub fn evaluate<R: RequestView + ?Sized>(
        &self,
        req: &R,
        client_ip: Option<IpAddr>,
        body: Option<&[u8]>,
    ) -> WafOutcome {
        self.evaluate_request(req, client_ip, body).0
    }

    /// [`Self::evaluate`], and with `response.enabled` on a request the WAF let through, the
    /// transaction kept for the response phases ([`ResponseCheck`]).
    pub fn evaluate_request<R: RequestView + ?Sized>(
        &self,
        req: &R,
        client_ip: Option<IpAddr>,
        body: Option<&[u8]>,
    ) -> (WafOutcome, Option<ResponseCheck>) {
        let headers = req.headers();
        let ruleset = self.ruleset_for(headers.authority());
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(headers.pairs().len());
        let mut has_host = false;
        for (k, v) in headers.pairs() {
            if k.starts_with(':') {
                continue;
            }
            has_host |= k == "host";
            pairs.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        if !has_host {
            // HTTP/2 carries the host in :authority; CRS reads REQUEST_HEADERS:Host.
            let a = headers.authority();
            if !a.is_empty() {
                pairs.insert(0, (b"host".to_vec(), a.as_bytes().to_vec()));
            }
        }
        let (peer_ip, peer_port) = req
            .source_address()
            .and_then(|a| parse_peer_socket(a).ok())
            .map_or((None, 0), |(ip, port)| (Some(ip), port.unwrap_or(0)));
        let remote = client_ip.or(peer_ip);
        let request = Request {
            method: headers.method().to_string(),
            uri: headers.path().as_bytes().to_vec(),
            protocol: "HTTP/1.1".to_string(),
            headers: pairs,
            remote_addr: remote.map(|a| a.to_string()).unwrap_or_default(),
            remote_port: peer_port,
            server_addr: String::new(),
            server_port: req.destination_port().unwrap_or(0),
            unique_id: headers.get("x-request-id").unwrap_or("").to_string(),
        };
        let mut tx = ruleset.transaction(request);
        let intervention = run_request_phases(&mut tx, body);
        let dry_run = self.dry_run || ruleset.engine_mode() == EngineMode::DetectionOnly;
        let outcome = outcome_of(&tx, intervention, dry_run, 1..=2);
        if outcome.intervention.is_some() || self.response.is_none() {
            tx.process_logging();
            return (outcome, None);
        }
        // Phase 5 runs when the response is done (ModSecurity's order).
        (outcome, Some(ResponseCheck { tx, dry_run }))
    }
}

fn run_request_phases(tx: &mut Transaction, body: Option<&[u8]>) -> Option<Intervention> {
    if let Some(i) = tx.process_request_headers() {
        return Some(i);
    }
    if let Some(b) = body {
        tx.append_request_body(b);
    }
    tx.process_request_body()
}

/// The outcome of the phases in `phases` (an intervention or a detection from an earlier
/// phase was reported then).
fn outcome_of(
    tx: &Transaction,
    intervention: Option<Intervention>,
    dry_run: bool,
    phases: std::ops::RangeInclusive<u8>,
) -> WafOutcome {
    let intervention = intervention.filter(|i| phases.contains(&i.phase));
    let detected = if dry_run {
        tx.detected_intervention()
            .filter(|i| phases.contains(&i.phase))
            .cloned()
    } else {
        None
    };
    let matched: Vec<u64> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.logged)
        .map(|m| m.id)
        .collect();
    // A response-phase denial is CRS's outbound score's doing (959100); else the inbound.
    let response_phase = intervention
        .as_ref()
        .or(detected.as_ref())
        .is_some_and(|i| i.phase >= 3);
    let score = if response_phase {
        outbound_anomaly_score(tx)
    } else {
        tx.inbound_anomaly_score()
    };
    WafOutcome {
        intervention,
        detected,
        matched,
        anomaly_score: u32::try_from(score.max(0)).unwrap_or(u32::MAX),
    }
}

/// CRS's outbound anomaly score: `TX:blocking_outbound_anomaly_score` (CRS 4), else
/// `TX:outbound_anomaly_score` (CRS 3); 0 when none is set.
fn outbound_anomaly_score(tx: &Transaction) -> i64 {
    ["blocking_outbound_anomaly_score", "outbound_anomaly_score"]
        .iter()
        .find_map(|k| tx.tx_var(k))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A request the WAF let through, kept for the response phases (`response.enabled`): phase 3
/// on the response headers, phase 4 on the buffered response body, then phase 5.
#[derive(Debug)]
pub struct ResponseCheck {
    tx: Transaction,
    dry_run: bool,
}

impl ResponseCheck {
    /// Phase 3: `status` and the response headers (pseudo-headers such as `:status` are left
    /// out, as ModSecurity never sees them).
    pub fn headers(&mut self, status: u16, headers: &[(String, Vec<u8>)]) -> WafOutcome {
        let pairs = headers
            .iter()
            .filter(|(k, _)| !k.starts_with(':'))
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect();
        let i = self.tx.process_response_headers(status, pairs);
        outcome_of(&self.tx, i, self.dry_run, 3..=3)
    }

    /// Phase 4 on `body` (what was buffered, up to the limit), then phase 5.
    pub fn body(&mut self, body: &[u8]) -> WafOutcome {
        self.tx.append_response_body(body);
        let i = self.tx.process_response_body();
        self.tx.process_logging();
        outcome_of(&self.tx, i, self.dry_run, 4..=4)
    }

    /// The response ends without phase 4 (a body it does not inspect, or none): phase 4 with
    /// no body, where the outbound score is evaluated (CRS 959100), then phase 5.
    pub fn finish(&mut self) -> WafOutcome {
        self.body(&[])
    }
}

/// The reason of a WAF denial (logs, metrics, denial body).
pub const REASON: &str = "rule_matched";

/// What the WAF made of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WafOutcome {
    /// The enforced intervention (engine `On`), if any.
    pub intervention: Option<Intervention>,
    /// With `mode: dry_run` (or `SecRuleEngine DetectionOnly`): what would have blocked.
    pub detected: Option<Intervention>,
    /// Ids of the logged rules that matched, in order.
    pub matched: Vec<u64>,
    /// CRS's inbound anomaly score at the end of the request phases.
    pub anomaly_score: u32,
}

impl WafOutcome {
    /// Adds this outcome's counts: `check=waf`, decision `denied` / `dry_run_denied` /
    /// `allowed`, tagged with the deciding `rule` (no host call).
    pub fn count(&self, m: &mut crate::metrics::Counters) {
        let (decision, rule) = match (&self.intervention, &self.detected) {
            (Some(i), _) => ("denied", Some(i.rule_id)),
            (None, Some(i)) => ("dry_run_denied", Some(i.rule_id)),
            (None, None) => ("allowed", None),
        };
        let reason = if rule.is_some() {
            REASON
        } else {
            "no_rule_blocked"
        };
        let rule = rule.map_or_else(|| "none".to_string(), |r| r.to_string());
        m.increment("waf", decision, reason, "rule", &rule);
    }

    /// The log line for a denial or a dry-run denial (`None` when the WAF let the request
    /// through without a would-be denial).
    pub fn log_line(
        &self,
        authority: &str,
        path: &str,
        request_id: Option<&str>,
    ) -> Option<String> {
        let (what, i) = match (&self.intervention, &self.detected) {
            (Some(i), _) => ("denied", i),
            (None, Some(i)) => ("dry-run, would deny", i),
            (None, None) => return None,
        };
        let ids: Vec<String> = self.matched.iter().map(u64::to_string).collect();
        Some(format!(
            "{what} check=waf reason={REASON} rule={} msg={:?} anomaly_score={} rule_ids={} authority={authority:?} path={path:?} request_id={}",
            i.rule_id,
            i.msg.as_deref().unwrap_or(""),
            self.anomaly_score,
            ids.join(","),
            request_id.unwrap_or("-"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_authority_rule_sets_ignore_the_port_and_brackets() {
        let spec: WafSpec = serde_json::from_str(
            r#"{"directives":[],"rule_sets":{"ui":["SecRuleEngine DetectionOnly"]},"per_authority":{"UI.example.com":"ui","[2001:db8::1]":"ui"}}"#,
        )
        .unwrap();
        let waf = Waf::compile(&spec).unwrap();
        for authority in [
            "ui.example.com",
            "ui.example.com:8443",
            "[2001:db8::1]:443",
            "2001:db8::1",
        ] {
            assert!(
                std::ptr::eq(waf.ruleset_for(authority), &waf.sets[0]),
                "{authority}"
            );
        }
        assert!(std::ptr::eq(
            waf.ruleset_for("api.example.com"),
            &waf.default
        ));
    }

    #[test]
    fn settings_are_seclang_before_the_users_directives() {
        let spec: WafSpec = serde_json::from_str(
            r#"{"mode":"dry_run","crs":{"paranoia_level":2},"request_body":{"limit_bytes":1024,"limit_action":"process_partial"}}"#,
        )
        .unwrap();
        let s = settings_directives(&spec);
        assert!(s.starts_with("SecRuleEngine DetectionOnly\n"), "{s}");
        assert!(s.contains("SecRequestBodyLimit 1024\n"));
        assert!(s.contains("SecRequestBodyLimitAction ProcessPartial\n"));
        assert!(s.contains("setvar:tx.paranoia_level=2,setvar:tx.blocking_paranoia_level=2"));
        assert_eq!(spec.directives, default_directives());
    }
}
