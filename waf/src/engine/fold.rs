//! Configure-time evaluation of the rules whose outcome does not depend on the request.
//!
//! CRS starts every request with a prologue that only reads and writes TX: `crs-setup.conf`'s
//! `SecAction`s, REQUEST-901's defaults (`&TX:x "@eq 0"` → `setvar`), and in every rule file
//! the paranoia-level skips (`TX:EXECUTING_PARANOIA_LEVEL "@lt 2"` → `skipAfter`), ~100 rules
//! per request whose results are the same for every request of a configuration. Evaluated
//! per request they were ~9% of a benign GET's instructions (callgrind: removing the skips
//! alone took 508k → 463k per request). Here they are evaluated once, when the plan is
//! built, and a transaction replays their outcome at their place in the phase (so the order
//! of MATCHED_VAR, the matched-rule list and the skips stay as they were):
//!
//! 1. **The phase-1 prologue.** From the start of phase 1, every *pure* rule (targets, macros
//!    and `setvar`s on TX and RULE only; no `capture`; see [`Class`]) is evaluated on
//!    an empty request, following its skips, past *transparent* rules (they read no TX, write
//!    only TX keys no pure rule and no `TX:/regex/` selector touches, and cannot change the
//!    flow: no skip, no disruptive action, no `ctl` but the body ones), up to the first rule
//!    that is neither, or a pure rule that would disrupt. Nothing can run before these rules,
//!    so they run the same way in every request: the TX they leave ([`Folding::tx`]) is set
//!    when phase 1 starts, and each replays its MATCHED_VAR, record and skip.
//! 2. **Rules on frozen TX.** A TX key that no rule outside the prologue can write (checked
//!    against every other `setvar` name, a macro name by its literal prefix, and `capture`'s
//!    `TX:0`–`TX:9`) keeps the prologue's value (or absence) for the whole transaction. A
//!    pure rule without `setvar` that reads only frozen keys is decided here too, wherever it
//!    is (the paranoia-level skips of phase 2).
//!
//! 3. **Operators on frozen TX.** `@within %{tx.allowed_methods}` and the like, whose macros
//!    read frozen keys only, are compiled once with the prologue's values instead of being
//!    expanded and looked up per request.
//!
//! A transaction evaluates a folded rule normally when a `ctl:ruleRemoveTarget…` is in force
//! (it could remove the TX target).

use super::compile::{After, CRule, CtlC, Op, Plan, SetOp};
use super::macros::{MacroString, Part};
use super::variables::Selector;
use crate::ast::{Collection, EngineMode};
use crate::operator::CompiledOperator;

/// What a folded rule does when a transaction reaches it.
#[derive(Debug)]
pub(crate) enum Folded {
    /// It does not match: MATCHED_VAR and MATCHED_VARS are cleared, as after any link that
    /// matched nothing.
    NoMatch,
    /// It matches (never with a disruptive action).
    Match(Box<FoldedMatch>),
}

#[derive(Debug, Default)]
pub(crate) struct FoldedMatch {
    /// The (name, value) pairs its links matched, in order: each becomes MATCHED_VAR and is
    /// appended to MATCHED_VARS (none for a `SecAction`).
    pub(crate) pushes: Vec<(Vec<u8>, Vec<u8>)>,
    /// Its `msg` and `logdata`, expanded.
    pub(crate) msg: Option<String>,
    pub(crate) logdata: Option<String>,
    /// The `skip` and `skipAfter` it leaves for the next rules.
    pub(crate) skip_next: u32,
    pub(crate) skip_marker: Option<usize>,
    /// Whether it has `ctl` actions (run again when it is replayed: they change the
    /// transaction, e.g. `ctl:ruleRemoveById`).
    pub(crate) ctls: bool,
}

/// The folded part of a plan.
#[derive(Debug, Default)]
pub(crate) struct Folding {
    /// TX after the phase-1 prologue, in TX order: (key, its number, value). Set when phase 1
    /// starts.
    pub(crate) tx: Vec<(Vec<u8>, Option<u32>, Vec<u8>)>,
    /// Per rule of the plan: its outcome when it was folded.
    pub(crate) rules: Vec<Option<Folded>>,
    /// How many rules are in the prologue (evaluated and replayed from its start).
    pub(crate) prologue: usize,
    /// Operators whose argument's macros read frozen TX only, compiled with the prologue's
    /// values: (rule, link, operator), to replace the run-time expansion.
    pub(crate) ops: Vec<(usize, usize, CompiledOperator)>,
}

impl Folding {
    pub(crate) fn rule(&self, ri: usize) -> Option<&Folded> {
        self.rules.get(ri).and_then(Option::as_ref)
    }

    /// How many rules are folded.
    pub(crate) fn count(&self) -> usize {
        self.rules.iter().filter(|r| r.is_some()).count()
    }
}

/// How a rule may take part in folding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Reads and writes TX (and reads RULE) only: its outcome depends on TX alone.
    Pure,
    /// Request-dependent, but can neither change which rules run nor see or change what
    /// the pure rules of phase 1 read and write (see the module's header).
    Transparent,
    /// Anything else: the prologue ends before it.
    Other,
}

/// A TX key a rule may write: exact (lower-case) or any key with a (lower-case) prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyPattern {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
}

impl KeyPattern {
    fn covers(&self, key: &[u8]) -> bool {
        match self {
            KeyPattern::Exact(k) => k.as_slice() == key,
            KeyPattern::Prefix(p) => key.starts_with(p),
        }
    }
}

/// Whether every macro part of `m` is request-independent (TX by key, RULE), adding the TX
/// keys it reads to `reads`.
fn pure_macro(m: &MacroString, reads: &mut Vec<Vec<u8>>) -> bool {
    m.parts().iter().all(|p| match p {
        Part::Literal(_) => true,
        Part::Var {
            collection: Collection::Tx,
            key: Some(k),
            ..
        } => {
            reads.push(k.clone());
            true
        }
        Part::Var {
            collection: Collection::Rule,
            ..
        } => true,
        Part::Var { .. } => false,
    })
}

fn reads_tx(m: &MacroString) -> bool {
    m.parts().iter().any(|p| {
        matches!(
            p,
            Part::Var {
                collection: Collection::Tx,
                ..
            }
        )
    })
}

/// The TX keys `rule` may write.
pub(crate) fn writes(rule: &CRule) -> Vec<KeyPattern> {
    let mut out = Vec::new();
    for link in &rule.links {
        if link.capture {
            out.extend((b'0'..=b'9').map(|d| KeyPattern::Exact(vec![d])));
        }
        for sv in &link.setvars {
            match &sv.key {
                Some((k, _)) => out.push(KeyPattern::Exact(k.clone())),
                None => {
                    let prefix = match sv.name.parts().first() {
                        Some(Part::Literal(l)) => l.to_ascii_lowercase(),
                        _ => Vec::new(),
                    };
                    out.push(KeyPattern::Prefix(prefix));
                }
            }
        }
    }
    out
}

/// Whether `rule` is pure; then the TX keys it reads.
pub(crate) fn pure_reads(rule: &CRule) -> Option<Vec<Vec<u8>>> {
    let mut reads = Vec::new();
    for link in &rule.links {
        if link.capture {
            return None;
        }
        for t in &link.targets {
            match (&t.collection, &t.selector) {
                (Collection::Tx, Selector::Key(k)) => reads.push(k.clone()),
                _ => return None,
            }
        }
        if let Op::Macro(m) = &link.op {
            if !pure_macro(m, &mut reads) {
                return None;
            }
        }
        for sv in &link.setvars {
            let Some((k, _)) = &sv.key else {
                return None;
            };
            match &sv.op {
                SetOp::Set(v) => {
                    if !pure_macro(v, &mut reads) {
                        return None;
                    }
                }
                SetOp::Add(v) | SetOp::Sub(v) => {
                    reads.push(k.clone());
                    if !pure_macro(v, &mut reads) {
                        return None;
                    }
                }
                SetOp::Delete => {}
            }
        }
        // A `ctl` is replayed with the rule; one removing targets would make the folded
        // rules after it run again (see the module's header).
        if link.after.iter().any(|a| {
            matches!(
                a,
                After::Ctl(CtlC::RemoveTargetById(..) | CtlC::RemoveTargetByTag(..))
            )
        }) {
            return None;
        }
    }
    for m in [&rule.msg, &rule.logdata, &rule.redirect]
        .into_iter()
        .flatten()
    {
        if !pure_macro(m, &mut reads) {
            return None;
        }
    }
    Some(reads)
}

/// Whether a request-dependent `rule` leaves the flow and TX of phase 1's pure rules alone,
/// given the keys those rules read or write (`pure_keys`) and whether a `TX:/regex/` or
/// whole-TX selector could list a key (`listed`).
fn transparent(rule: &CRule, pure_keys: &[Vec<u8>], listed: &dyn Fn(&[u8]) -> bool) -> bool {
    if rule.disruptive.is_some() {
        return false;
    }
    for link in &rule.links {
        if link.targets.iter().any(|t| t.collection == Collection::Tx) {
            return false;
        }
        if matches!(&link.op, Op::Macro(m) if reads_tx(m)) {
            return false;
        }
        for a in &link.after {
            match a {
                After::Skip(_) | After::SkipAfter(_) => return false,
                After::Ctl(CtlC::BodyProcessor(_) | CtlC::BodyAccess(_) | CtlC::NoOp) => {}
                After::Ctl(_) => return false,
            }
        }
        for sv in &link.setvars {
            if sv.key.is_none() || reads_tx(&sv.name) {
                return false;
            }
            match &sv.op {
                SetOp::Set(v) if !reads_tx(v) => {}
                SetOp::Delete => {}
                _ => return false,
            }
        }
    }
    if [&rule.msg, &rule.logdata, &rule.redirect]
        .into_iter()
        .flatten()
        .any(reads_tx)
    {
        return false;
    }
    writes(rule).iter().all(|w| match w {
        KeyPattern::Exact(k) => !listed(k) && !pure_keys.iter().any(|p| p == k),
        KeyPattern::Prefix(_) => false,
    })
}

/// Classifies every rule of `plan` for folding.
pub(crate) fn classify(plan: &Plan) -> Vec<Class> {
    let pure: Vec<Option<Vec<Vec<u8>>>> = plan.rules.iter().map(pure_reads).collect();
    // Keys phase 1's pure rules read or write.
    let mut pure_keys: Vec<Vec<u8>> = Vec::new();
    for (r, reads) in plan.rules.iter().zip(&pure) {
        if let (1, Some(reads)) = (r.phase, reads) {
            pure_keys.extend(reads.iter().cloned());
            pure_keys.extend(writes(r).into_iter().map(|w| match w {
                KeyPattern::Exact(k) | KeyPattern::Prefix(k) => k,
            }));
        }
    }
    pure_keys.sort();
    pure_keys.dedup();
    let selectors: Vec<&Selector> = plan
        .rules
        .iter()
        .flat_map(|r| r.links.iter())
        .flat_map(|l| l.targets.iter().chain(l.exclusions.iter()))
        .filter(|t| t.collection == Collection::Tx)
        .map(|t| &t.selector)
        .filter(|s| !matches!(s, Selector::Key(_)))
        .collect();
    let listed = |k: &[u8]| selectors.iter().any(|s| s.selects(Some(k)));
    plan.rules
        .iter()
        .zip(&pure)
        .map(|(r, reads)| {
            if reads.is_some() {
                Class::Pure
            } else if transparent(r, &pure_keys, &listed) {
                Class::Transparent
            } else {
                Class::Other
            }
        })
        .collect()
}

/// The TX keys rules outside the prologue may write (`in_prologue[ri]`: rule `ri` was
/// evaluated in the prologue or jumped over by one of its skips): a key none covers is frozen.
pub(crate) fn other_writes(plan: &Plan, in_prologue: &[bool]) -> Vec<KeyPattern> {
    plan.rules
        .iter()
        .enumerate()
        .filter(|(ri, _)| !in_prologue.get(*ri).copied().unwrap_or(false))
        .flat_map(|(_, r)| writes(r))
        .collect()
}

/// The links (rule, link) whose operator argument has macros reading frozen TX keys only
/// (and literals): `@within %{tx.allowed_methods}`, `@ge %{tx.inbound_anomaly_score_threshold}`.
/// Compiled once with the prologue's values, they need no expansion per request.
pub(crate) fn frozen_operators(plan: &Plan, others: &[KeyPattern]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (ri, r) in plan.rules.iter().enumerate() {
        for (li, l) in r.links.iter().enumerate() {
            let Op::Macro(m) = &l.op else {
                continue;
            };
            let frozen = m.parts().iter().all(|p| match p {
                Part::Literal(_) => true,
                Part::Var {
                    collection: Collection::Tx,
                    key: Some(k),
                    ..
                } => !others.iter().any(|w| w.covers(k)),
                Part::Var { .. } => false,
            });
            if frozen {
                out.push((ri, li));
            }
        }
    }
    out
}

/// Which other rules can be decided from the prologue's TX: pure, no `setvar`, and reading
/// only keys none of `others` ([`other_writes`]) covers.
pub(crate) fn frozen_candidates(
    plan: &Plan,
    in_prologue: &[bool],
    others: &[KeyPattern],
) -> Vec<usize> {
    let frozen = |k: &[u8]| !others.iter().any(|w| w.covers(k));
    plan.rules
        .iter()
        .enumerate()
        .filter(|(ri, r)| {
            !in_prologue.get(*ri).copied().unwrap_or(false)
                && r.links.iter().all(|l| l.setvars.is_empty())
                && pure_reads(r).is_some_and(|reads| reads.iter().all(|k| frozen(k)))
        })
        .map(|(ri, _)| ri)
        .collect()
}

/// Folds `plan` (see the module's header): the outcome of its folded rules and the
/// prologue's TX, to be stored in the plan. Nothing when the engine is off.
pub(crate) fn fold(plan: &std::sync::Arc<Plan>) -> Folding {
    if plan.config.engine_mode == EngineMode::Off {
        return Folding::default();
    }
    let classes = classify(plan);
    super::transaction::fold_run(plan, &classes)
}
