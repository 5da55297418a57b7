//! The compiled ruleset and the per-request transaction: SecLang directives compiled once into
//! an immutable [`Ruleset`], evaluated per request by a [`Transaction`] as ModSecurity v3.0.9 does.
//!
//! # Use
//!
//! ```ignore
//! let directives = seclang::parse(text, "main.conf", &source)?;
//! let ruleset = Ruleset::compile(directives, &source)?;      // once, at on_configure
//! let mut tx = ruleset.transaction(request);                 // per request
//! if let Some(i) = tx.process_request_headers() { /* deny with i.status */ }
//! tx.append_request_body(chunk);
//! if let Some(i) = tx.process_request_body() { /* ... */ }
//! tx.process_logging();
//! for m in tx.matched_rules() { /* m.id, m.msg, m.logdata */ }
//! let score = tx.tx_var("inbound_anomaly_score");
//! ```
//!
//! # Semantics (from ModSecurity v3 `src/rules_set.cc` `RulesSet::evaluate`,
//! `src/rule_with_operator.cc` `RuleWithOperator::evaluate`, `src/rule_with_actions.cc`,
//! `src/transaction.cc`)
//!
//! - Rules run per phase in file order; `SecMarker`s exist in every phase. `skipAfter` skips
//!   rules until its marker (carrying over into later phases when the marker is not in the
//!   current one), `skip:N` skips N rules; markers are not counted.
//! - For each target value: the transformation chain (the phase's `SecDefaultAction` `t:`
//!   prepended; everything up to the last `t:none` dropped), then the operator. On each match:
//!   `capture` fills `TX:0..9`, `MATCHED_VAR(S)(_NAME(S))` are updated with the transformed
//!   value, and the link's `setvar`s run — once per matching value, so a rule matching three
//!   arguments adds its anomaly score three times, as ModSecurity v3 does
//!   (`executeActionsIndependentOfChainedRuleResult`). A link matching nothing clears the
//!   matched variables and ends the chain.
//! - When the whole chain matched, each link's remaining actions run (innermost link first):
//!   `ctl`, `skip`, `skipAfter`, then msg/logdata are expanded, the match is recorded, and the
//!   disruptive action runs only with the rule engine `On` (`DetectionOnly` records what would
//!   have been done: [`Transaction::detected_intervention`]).
//! - `block` takes the disruptive action of the phase's `SecDefaultAction`.
//! - Operator arguments with macros (`@ge %{tx.inbound_anomaly_score_threshold}`) are expanded
//!   and compiled at run time, cached per transaction.
//! - Persistent collections (`IP`, `SESSION`, `GLOBAL`, `USER`, `RESOURCE`), `initcol`,
//!   `expirevar`, audit logs: accepted no-ops; reading `IP:...` yields nothing and `setvar` on
//!   them does nothing. `GEO`, `@geoLookup`, `@rbl` never match.
//!
//! # Where it follows CRS instead of ModSecurity v3
//!
//! CRS 3.3 was written and tested for ModSecurity v2 under Apache; where v3 reads it otherwise
//! than its authors meant (and fails CRS's own regression tests), this engine follows CRS:
//! REQUEST_BODY is empty under the XML body processor, as in v2 and Coraza (XML text and
//! attribute values are inspected through `XML:/*` and `XML://@*`), and `\\\\` in an `@rx`
//! is one literal backslash ([`crate::operator::crs_backslashes`]). `policies/README.md`
//! lists both with the CRS cases and the differential test counts them apart.

mod compile;
mod fold;
mod literal_index;
mod macros;
mod transaction;
mod variables;

pub use compile::{CompileError, CompileReport};
pub use transaction::Transaction;

use crate::ast::{Directive, EngineMode, Location};
use crate::seclang::RuleSource;
use std::sync::Arc;

/// The request a [`Transaction`] evaluates: what the proxy saw, before any decoding.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `GET`, `POST`, ... as sent.
    pub method: String,
    /// The raw request-target as sent (`/a/b?c=d`), not decoded.
    pub uri: Vec<u8>,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: String,
    /// Request headers in the order received (names as sent; an HTTP/2 `:authority` should be
    /// passed as `Host`).
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Client address (`REMOTE_ADDR`).
    pub remote_addr: String,
    /// Client port (`REMOTE_PORT`).
    pub remote_port: u16,
    /// Server address (`SERVER_ADDR`).
    pub server_addr: String,
    /// Server port (`SERVER_PORT`).
    pub server_port: u16,
    /// `UNIQUE_ID` (e.g. Envoy's `x-request-id`).
    pub unique_id: String,
}

/// What a disruptive rule asks the proxy to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisruptiveAction {
    /// `deny`: answer with [`Intervention::status`].
    Deny,
    /// `drop`: close the connection (a proxy filter answers with the status and closes).
    Drop,
    /// `redirect`: answer with [`Intervention::status`] (302 unless set) and a `Location`.
    Redirect,
}

/// A decision to stop the request (or, with `DetectionOnly`, what would have stopped it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervention {
    /// HTTP status to answer with.
    pub status: u16,
    /// The rule that decided.
    pub rule_id: u64,
    /// Its `msg`, macro-expanded.
    pub msg: Option<String>,
    /// What to do.
    pub action: DisruptiveAction,
    /// The `Location` for [`DisruptiveAction::Redirect`].
    pub redirect_url: Option<String>,
    /// The phase (1..=5) the rule ran in.
    pub phase: u8,
}

/// A rule whose whole chain matched (what ModSecurity writes to its error log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchedRule {
    /// `id`.
    pub id: u64,
    /// Phase 1..=5.
    pub phase: u8,
    /// `msg`, macro-expanded.
    pub msg: Option<String>,
    /// `logdata`, macro-expanded.
    pub logdata: Option<String>,
    /// `severity` 0..=7 when set.
    pub severity: Option<u8>,
    /// `tag`s (shared with the compiled rule).
    pub tags: Arc<[String]>,
    /// The last matched variable's name as ModSecurity prints it (`ARGS:foo`,
    /// `REQUEST_HEADERS:User-Agent`); empty for `SecAction`. Bytes, as the request had them
    /// (`String::from_utf8_lossy` to print them): a benign request matches ~75 rules, most of
    /// them CRS's setup and paranoia-level skips, and validating each name and value as
    /// UTF-8 showed in its profile.
    pub var_name: Vec<u8>,
    /// Its value after transformations.
    pub var_value: Vec<u8>,
    /// False for `nolog` rules (ModSecurity does not log them; they are still listed).
    pub logged: bool,
}

/// An immutable compiled ruleset, cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Ruleset {
    plan: Arc<compile::Plan>,
    /// Buffers passed from one transaction to the next.
    scratch: Arc<transaction::ScratchPool>,
}

impl Ruleset {
    /// Compiles parsed directives into an immutable plan. Data files (`@pmFromFile`) are read
    /// through `source`. Errors name the rule id, where it was written and why (a regex that
    /// does not compile, `skipAfter` to a missing marker, a duplicate id, ...).
    pub fn compile(
        directives: Vec<Directive>,
        source: &dyn RuleSource,
    ) -> Result<Ruleset, CompileError> {
        let mut plan = Arc::new(compile::compile(directives, source)?);
        let mut folding = fold::fold(&plan);
        // The evaluation's transaction is gone: the only reference. (Were it not, the plan
        // would stay unfolded, which decides the same.)
        if let Some(p) = Arc::get_mut(&mut plan) {
            p.report.folded_rule_count = folding.count();
            p.report.folded_prologue_rule_count = folding.prologue;
            p.report.folded_operator_count = folding.ops.len();
            for (ri, li, op) in folding.ops.drain(..) {
                if let Some(link) = p.rules.get_mut(ri).and_then(|r| r.links.get_mut(li)) {
                    link.op = compile::Op::Compiled(Box::new(op));
                    link.single_tx = compile::single_tx(link);
                }
            }
            p.folding = folding;
        }
        Ok(Ruleset {
            plan,
            scratch: Arc::default(),
        })
    }

    /// [`Ruleset::compile`] without its configure-time folding (the rules whose outcome is
    /// the same for every request, evaluated once and replayed): every rule is evaluated per
    /// request. It decides exactly as the folded plan does; tests compare the two.
    pub fn compile_unfolded(
        directives: Vec<Directive>,
        source: &dyn RuleSource,
    ) -> Result<Ruleset, CompileError> {
        Ok(Ruleset {
            plan: Arc::new(compile::compile(directives, source)?),
            scratch: Arc::default(),
        })
    }

    /// What the compilation found: rule count, fallback-regex rules, accepted no-ops, CRS
    /// version.
    pub fn report(&self) -> &CompileReport {
        &self.plan.report
    }

    /// The configured `SecRuleEngine` mode.
    pub fn engine_mode(&self) -> EngineMode {
        self.plan.config.engine_mode
    }

    /// Starts evaluating one request.
    pub fn transaction(&self, request: Request) -> Transaction {
        Transaction::new(self.plan.clone(), self.scratch.clone(), request)
    }
}

/// Where a compiled rule came from, for error messages.
fn describe(id: Option<u64>, location: &Location) -> String {
    match id {
        Some(id) => format!("rule {id} at {location}"),
        None => format!("directive at {location}"),
    }
}

#[cfg(test)]
mod tests;
