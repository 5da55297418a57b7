//! Directives into the immutable plan: configuration, default actions, rule removals and
//! updates applied, every rule compiled (targets, transformations, operators, actions) and
//! grouped per phase with the markers.
//!
//! Removal and update directives apply wherever they are written (ModSecurity keeps them as
//! rule-set exceptions consulted at run time, so their position does not matter).

use super::describe;
use super::literal_index::LiteralIndex;
use super::macros::MacroString;
use super::variables::{Selector, Target, TxKeys};
use crate::ast::{
    Action, AllowScope, BodyLimitAction, Collection, Ctl, Directive, DirectiveKind, EngineMode,
    IdRange, Location, Operator, OperatorName, Rule, SetVarOp, TransformName, Variable,
};
use crate::operator::CompiledOperator;
use crate::seclang::RuleSource;
use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Why a ruleset did not compile: which rule, where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The rule's id, when the error is in a rule.
    pub rule_id: Option<u64>,
    /// Where the rule or directive was written.
    pub location: Location,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            describe(self.rule_id, &self.location),
            self.message
        )
    }
}

impl std::error::Error for CompileError {}

/// What compilation found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileReport {
    /// Rules in the plan (chains count once), after removals.
    pub rule_count: usize,
    /// Rules removed by `SecRuleRemoveBy*`.
    pub removed_rule_count: usize,
    /// Rules whose `@rx` needed the backtracking fallback (PCRE-only syntax).
    pub fallback_regex_rule_ids: Vec<u64>,
    /// Directives accepted as no-ops, with where they were written.
    pub accepted_directives: Vec<String>,
    /// Actions accepted as no-ops (`initcol`, `expirevar`, `ctl:auditLogParts`, ...) with the
    /// number of rules using each.
    pub accepted_actions: Vec<(String, usize)>,
    /// `SecComponentSignature` values (e.g. `OWASP_CRS/3.3.4`).
    pub component_signatures: Vec<String>,
    /// Rules whose outcome is the same for every request (CRS's setup and paranoia-level
    /// skips): evaluated once when the plan was built, replayed per request.
    pub folded_rule_count: usize,
    /// Of those, the rules of phase 1's prologue (from its start: CRS's setup), whose TX is
    /// set when phase 1 starts.
    pub folded_prologue_rule_count: usize,
    /// Operators whose macro argument reads only TX the prologue settles
    /// (`@within %{tx.allowed_methods}`): compiled once with its values.
    pub folded_operator_count: usize,
}

impl CompileReport {
    /// The CRS version from `SecComponentSignature "OWASP_CRS/x.y.z"`.
    pub fn crs_version(&self) -> Option<&str> {
        self.component_signatures
            .iter()
            .find_map(|s| s.strip_prefix("OWASP_CRS/"))
    }
}

/// Configuration directives.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) engine_mode: EngineMode,
    pub(crate) request_body_access: bool,
    pub(crate) response_body_access: bool,
    pub(crate) request_body_limit: u64,
    pub(crate) request_body_limit_action: BodyLimitAction,
    pub(crate) response_body_limit: u64,
    pub(crate) response_mime_types: Vec<String>,
    pub(crate) argument_separator: u8,
}

impl Default for Config {
    fn default() -> Self {
        // ModSecurity's defaults (modsecurity.conf-recommended sets the same limits).
        Config {
            engine_mode: EngineMode::On,
            request_body_access: false,
            response_body_access: false,
            request_body_limit: 13_107_200,
            request_body_limit_action: BodyLimitAction::Reject,
            response_body_limit: 524_288,
            response_mime_types: vec!["text/plain".into(), "text/html".into()],
            argument_separator: b'&',
        }
    }
}

/// The disruptive action a rule ends with (`pass` is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disruptive {
    Deny,
    Drop,
    Redirect,
    Allow(AllowScope),
}

/// An operator ready to run.
#[derive(Debug)]
pub(crate) enum Op {
    Compiled(Box<CompiledOperator>),
    /// Argument with macros: expanded and compiled per transaction.
    Macro(MacroString),
}

/// A `setvar` on TX (other collections are not kept).
#[derive(Debug)]
pub(crate) struct SetVar {
    pub(crate) name: MacroString,
    /// A literal name, lower-cased, and its number in the plan's TX keys (set when the plan
    /// is built).
    pub(crate) key: Option<(Vec<u8>, u32)>,
    pub(crate) op: SetOp,
}

#[derive(Debug)]
pub(crate) enum SetOp {
    Set(MacroString),
    Add(MacroString),
    Sub(MacroString),
    Delete,
}

/// A `ctl:` with its targets compiled.
#[derive(Debug)]
pub(crate) enum CtlC {
    RuleEngine(EngineMode),
    RemoveById(IdRange),
    RemoveByTag(String),
    RemoveTargetById(IdRange, Target),
    RemoveTargetByTag(String, Target),
    BodyProcessor(String),
    BodyAccess(bool),
    /// `forceRequestBodyVariable`, `requestBodyLimit`, audit: nothing to do here.
    NoOp,
}

/// Actions run once the whole chain matched.
#[derive(Debug)]
#[allow(clippy::enum_variant_names)] // SecLang's own action names
pub(crate) enum After {
    Ctl(CtlC),
    Skip(u32),
    SkipAfter(usize),
}

/// One link of a chain (the rule itself is link 0).
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) targets: Vec<Target>,
    pub(crate) exclusions: Vec<Target>,
    pub(crate) op_name: OperatorName,
    pub(crate) op: Op,
    pub(crate) negated: bool,
    pub(crate) transforms: Vec<TransformName>,
    /// The same transformation chain has the same id everywhere (the per-request cache key).
    pub(crate) chain_id: usize,
    pub(crate) capture: bool,
    pub(crate) multi_match: bool,
    pub(crate) setvars: Vec<SetVar>,
    pub(crate) after: Vec<After>,
    /// `SecAction` (no targets): matches once.
    pub(crate) unconditional: bool,
    /// One `TX:key` (or `&TX:key`) target, no exclusion, transformation or prefilter, a
    /// compiled operator: CRS's paranoia-level skips and setup checks (~140 per benign
    /// request), read straight from the TX slot ([`Transaction::eval_link`]). Set when the
    /// plan is built.
    pub(crate) single_tx: bool,
    /// The literals one of which any match contains (ASCII case ignored): an `@rx`'s required
    /// literals or a `@pm`'s phrases. A value containing none cannot match, so the operator is
    /// not run on it. Filled by [`build_prefilters`]; `None` for links without such literals.
    pub(crate) prefilter: Option<Prefilter>,
}

/// How a link's literals are checked.
#[derive(Debug)]
pub(crate) enum Prefilter {
    /// Group `n` of the plan's [`Literals`]: the bitset of a transformed value (one scan per
    /// distinct transformed value, shared by every rule and every chain that produces it)
    /// says whether any of the link's literals occurs.
    Group(usize),
    /// `multiMatch` links run the operator on every intermediate value, not only the chain's
    /// output: their own automaton.
    Own(aho_corasick::AhoCorasick),
}

/// The literal index of the whole plan: the union of the literals of every link
/// (deduplicated), each literal mapped to the groups (links) it belongs to. One scan of a
/// transformed value gives the bitset of links whose literals occur in it; the engine caches
/// it by the value's bytes, so a value that several transformation chains leave alike (most
/// arguments: chains differ only in decoders with nothing to decode) is scanned once, not
/// once per chain.
#[derive(Debug, Default)]
pub(crate) struct Literals {
    /// The literals of two bytes and more.
    pub(crate) index: LiteralIndex,
    /// `pattern_groups[p]`: the groups literal `p` belongs to.
    pub(crate) pattern_groups: Vec<Vec<u32>>,
    /// Number of groups (bits in a value's bitset).
    pub(crate) groups: usize,
    /// The one-byte literals, kept out of the index: `single[b]` lists the groups of byte `b`
    /// (both ASCII cases filled). Their occurrences are read off the value's byte set.
    pub(crate) single: Vec<Vec<u32>>,
    /// The bytes `single` has groups for.
    pub(crate) single_bytes: crate::transform::ByteSet,
}

impl Literals {
    /// Words in a value's bitset.
    pub(crate) fn words(&self) -> usize {
        self.groups.div_ceil(64)
    }

    /// Writes into `bits` (of [`Literals::words`] words) the groups whose literals occur in
    /// `value` (ASCII case ignored).
    pub(crate) fn scan(&self, value: &[u8], bits: &mut [u64]) {
        bits.fill(0);
        if self.single_bytes != [0; 4] {
            let present = crate::transform::byte_set(value);
            for (k, (p, s)) in present.iter().zip(&self.single_bytes).enumerate() {
                let mut found = p & s;
                while found != 0 {
                    let b = k * 64 + found.trailing_zeros() as usize;
                    found &= found - 1;
                    for &g in self.single.get(b).map_or(&[][..], Vec::as_slice) {
                        if let Some(w) = bits.get_mut(g as usize / 64) {
                            *w |= 1 << (g % 64);
                        }
                    }
                }
            }
        }
        self.index.for_each_in(value, |p| {
            for &g in self
                .pattern_groups
                .get(p as usize)
                .map_or(&[][..], Vec::as_slice)
            {
                if let Some(w) = bits.get_mut(g as usize / 64) {
                    *w |= 1 << (g % 64);
                }
            }
        });
    }
}

/// Does `bits` (from [`Literals::scan`]) have group `g`?
pub(crate) fn has_group(bits: &[u64], g: usize) -> bool {
    bits.get(g / 64).is_some_and(|w| w & (1 << (g % 64)) != 0)
}

/// A compiled rule with its chain.
#[derive(Debug)]
pub(crate) struct CRule {
    pub(crate) id: u64,
    pub(crate) phase: u8,
    pub(crate) links: Vec<Link>,
    pub(crate) msg: Option<MacroString>,
    pub(crate) logdata: Option<MacroString>,
    pub(crate) severity: Option<u8>,
    pub(crate) tags: Arc<[String]>,
    pub(crate) log: bool,
    pub(crate) disruptive: Option<Disruptive>,
    pub(crate) status: Option<u16>,
    pub(crate) redirect: Option<MacroString>,
    pub(crate) raw_msg: Option<std::sync::Arc<str>>,
}

/// One entry of a phase's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Rule(usize),
    Marker(usize),
}

/// The compiled, immutable plan.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Operators compiled at run time from macro-expanded arguments, shared by transactions
    /// (the expansions are nearly always the same, e.g. `%{tx.allowed_methods}`). Bounded.
    pub(crate) runtime_ops: RuntimeOps,
    pub(crate) config: Config,
    pub(crate) rules: Vec<CRule>,
    /// `phases[p - 1]`: the steps of phase p in order.
    pub(crate) phases: [Vec<Step>; 5],
    /// Per phase, where each marker's step is in `phases` (a `skipAfter` jumps there instead
    /// of stepping over the rules between: CRS skips most of its rules this way at
    /// paranoia level 1).
    pub(crate) marker_steps: [Vec<usize>; 5],
    /// The literal index of every link's prefilter group.
    pub(crate) literals: Literals,
    /// Number of distinct transformation chains (every `Link::chain_id` is below it).
    pub(crate) chain_count: usize,
    /// How many literal unions a phase may keep ([`Target::union_id`]).
    pub(crate) union_slots: usize,
    /// Per chain: the bytes without which it leaves a value alike (the union of its
    /// transformations' [`crate::transform::triggers`]).
    pub(crate) chain_triggers: Vec<crate::transform::ByteSet>,
    /// Per chain: the same without its case changes (`lowercase`, `uppercase`). The literal
    /// automaton ignores ASCII case, so a value holding none of these bytes scans as it is:
    /// its prefilter bits need no transformation.
    pub(crate) scan_triggers: Vec<crate::transform::ByteSet>,
    /// The TX keys the rules name literally, numbered (see [`TxKeys`]).
    pub(crate) tx_keys: Arc<TxKeys>,
    /// Every rule's unexpanded `msg`, for `RULE:msg`.
    pub(crate) rule_msgs: Arc<[Option<Arc<str>>]>,
    /// The rules decided when the plan was built ([`super::fold`]).
    pub(crate) folding: super::fold::Folding,
    pub(crate) report: CompileReport,
}

/// The parts of a `SecDefaultAction` a rule inherits.
#[derive(Debug, Clone, Default)]
struct Defaults {
    disruptive: Option<Disruptive>,
    log: Option<bool>,
    transforms: Vec<TransformName>,
    status: Option<u16>,
}

fn err(id: Option<u64>, location: &Location, message: impl Into<String>) -> CompileError {
    CompileError {
        rule_id: id,
        location: location.clone(),
        message: message.into(),
    }
}

/// A source for operators compiled at run time (macro operands never name data files).
struct NoFiles;

impl RuleSource for NoFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        Err(format!(
            "{path}: data files cannot be named through a macro at run time"
        ))
    }
    fn glob(&self, _pattern: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, _from: &str, name: &str) -> String {
        name.to_string()
    }
}

/// The most run-time operators kept across transactions.
const RUNTIME_OPS_MAX: usize = 512;

/// A bounded cache of operators compiled at run time: (operator, expanded argument) → the
/// compiled operator, or the error message.
#[derive(Debug, Default)]
pub(crate) struct RuntimeOps {
    cache: std::sync::Mutex<HashMap<(OperatorName, String), RuntimeOp>>,
}

pub(crate) type RuntimeOp = Result<std::sync::Arc<CompiledOperator>, String>;

impl RuntimeOps {
    pub(crate) fn get(&self, name: OperatorName, argument: &str) -> RuntimeOp {
        let key = (name, argument.to_string());
        if let Ok(cache) = self.cache.lock() {
            if let Some(op) = cache.get(&key) {
                return op.clone();
            }
        }
        let op = compile_runtime_operator(name, argument).map(std::sync::Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() < RUNTIME_OPS_MAX {
                cache.insert(key, op.clone());
            }
        }
        op
    }
}

/// Compiles an operator whose argument was expanded at run time.
pub(crate) fn compile_runtime_operator(
    name: OperatorName,
    argument: &str,
) -> Result<CompiledOperator, String> {
    CompiledOperator::compile(name, argument, &NoFiles, "<runtime>").map_err(|e| e.message)
}

fn default_phase(actions: &[Action]) -> u8 {
    actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Phase(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(2)
}

fn parse_defaults(actions: &[Action]) -> Defaults {
    let mut d = Defaults::default();
    for a in actions {
        match a {
            Action::Deny => d.disruptive = Some(Disruptive::Deny),
            Action::Drop => d.disruptive = Some(Disruptive::Drop),
            Action::Redirect(_) => d.disruptive = Some(Disruptive::Redirect),
            Action::Allow(s) => d.disruptive = Some(Disruptive::Allow(*s)),
            Action::Pass => d.disruptive = None,
            // ModSecurity v3 applies these in the order written: `log` and `auditlog` save the
            // message, `nolog` and `noauditlog` drop it (so CRS's `log,noauditlog` 980130 is
            // never logged by 3.0.9).
            Action::Log | Action::AuditLog => d.log = Some(true),
            Action::NoLog | Action::NoAuditLog => d.log = Some(false),
            Action::Status(s) => d.status = Some(*s),
            Action::Transform(t) => d.transforms.push(*t),
            _ => {}
        }
    }
    d
}

thread_local! {
    /// Selector regexes compiled by the running [`compile`], by pattern: CRS repeats a few
    /// (`REQUEST_COOKIES:/__utm/`, ...) in hundreds of rules, and a `Regex` clone shares the
    /// compiled program (they were ~9% of configure time, compiled once per use).
    static KEY_REGEXES: std::cell::RefCell<Option<HashMap<String, Regex>>> =
        const { std::cell::RefCell::new(None) };
}

/// The [`KEY_REGEXES`] cache while it lives: from the start of [`compile`] to its end, error
/// or not (outside a compilation nothing is cached).
struct KeyRegexScope;

impl KeyRegexScope {
    fn open() -> KeyRegexScope {
        KEY_REGEXES.with(|c| *c.borrow_mut() = Some(HashMap::new()));
        KeyRegexScope
    }
}

impl Drop for KeyRegexScope {
    fn drop(&mut self) {
        KEY_REGEXES.with(|c| *c.borrow_mut() = None);
    }
}

/// Compiles a selector regex (once per pattern within a compilation): case-insensitive over
/// keys, bytes; Unicode classes only when the pattern needs them.
fn key_regex(pattern: &str) -> Result<Regex, String> {
    let cached = KEY_REGEXES.with(|c| c.borrow().as_ref().and_then(|m| m.get(pattern).cloned()));
    if let Some(r) = cached {
        return Ok(r);
    }
    let r = build_key_regex(pattern)?;
    KEY_REGEXES.with(|c| {
        if let Some(m) = c.borrow_mut().as_mut() {
            m.insert(pattern.to_string(), r.clone());
        }
    });
    Ok(r)
}

fn build_key_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .unicode(false)
        .build()
        .or_else(|_| {
            RegexBuilder::new(pattern)
                .case_insensitive(true)
                .build()
                .map_err(|e| e.to_string())
        })
}

pub(crate) fn compile_target(v: &Variable) -> Result<Target, String> {
    let selector = match &v.selector {
        crate::ast::Selector::All => Selector::All,
        crate::ast::Selector::Key(k) => Selector::Key(k.to_ascii_lowercase().into_bytes()),
        crate::ast::Selector::Regex(r) => Selector::Regex(
            key_regex(r).map_err(|e| format!("target regex /{r}/ does not compile: {e}"))?,
            super::variables::KeyLiteral::parse(r),
        ),
        crate::ast::Selector::XPath(x) => Selector::XPath(x.clone()),
    };
    Ok(Target {
        collection: v.collection,
        selector,
        count: v.count,
        tx_key: None,
        union_id: u32::MAX,
        raw_union_id: u32::MAX,
        tx_ids: None,
    })
}

struct Pending {
    rule: Rule,
    defaults: Defaults,
    order: usize,
}

/// The AST kind of an action, for `SecRuleUpdateActionById` replacement.
fn replaces(new: &Action, old: &Action) -> bool {
    use std::mem::discriminant;
    let disruptive = |a: &Action| {
        matches!(
            a,
            Action::Pass
                | Action::Block
                | Action::Deny
                | Action::Drop
                | Action::Allow(_)
                | Action::Redirect(_)
        )
    };
    match new {
        Action::Tag(_) | Action::SetVar { .. } | Action::Transform(_) | Action::Ctl(_) => false,
        Action::Log | Action::NoLog => matches!(old, Action::Log | Action::NoLog),
        _ if disruptive(new) => disruptive(old),
        _ => discriminant(new) == discriminant(old),
    }
}

pub(crate) fn compile(
    directives: Vec<Directive>,
    source: &dyn RuleSource,
) -> Result<Plan, CompileError> {
    let _key_regexes = KeyRegexScope::open();
    let mut config = Config::default();
    let mut report = CompileReport::default();
    let mut defaults: HashMap<u8, Defaults> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    // (order, marker name) for markers; rules and markers share one order.
    let mut markers: Vec<(usize, String)> = Vec::new();
    let mut remove_ids: Vec<IdRange> = Vec::new();
    let mut remove_tags: Vec<(Regex, Location)> = Vec::new();
    let mut remove_msgs: Vec<(Regex, Location)> = Vec::new();
    let mut target_updates: Vec<(TargetSelect, Vec<Variable>, Option<Variable>, Location)> =
        Vec::new();
    let mut action_updates: Vec<(u64, Vec<Action>, Location)> = Vec::new();

    for (order, d) in directives.into_iter().enumerate() {
        let loc = d.location;
        match d.kind {
            DirectiveKind::Rule(rule) => {
                let phase = default_phase(&rule.actions);
                let defaults = defaults.get(&phase).cloned().unwrap_or_default();
                pending.push(Pending {
                    rule,
                    defaults,
                    order,
                });
            }
            DirectiveKind::Marker(name) => markers.push((order, name)),
            DirectiveKind::DefaultAction(actions) => {
                let phase = default_phase(&actions);
                if actions.iter().any(|a| matches!(a, Action::Block)) {
                    return Err(err(
                        None,
                        &loc,
                        "SecDefaultAction cannot use `block` (it names the action `block` takes)",
                    ));
                }
                defaults.insert(phase, parse_defaults(&actions));
            }
            DirectiveKind::RuleEngine(m) => config.engine_mode = m,
            DirectiveKind::RequestBodyAccess(b) => config.request_body_access = b,
            DirectiveKind::ResponseBodyAccess(b) => config.response_body_access = b,
            DirectiveKind::RequestBodyLimit(n) => config.request_body_limit = n,
            DirectiveKind::RequestBodyNoFilesLimit(_) => {}
            DirectiveKind::RequestBodyLimitAction(a) => config.request_body_limit_action = a,
            DirectiveKind::ResponseBodyLimit(n) => config.response_body_limit = n,
            DirectiveKind::ResponseBodyLimitAction(_) => {}
            DirectiveKind::ResponseBodyMimeType(types) => {
                config.response_mime_types.extend(types);
            }
            DirectiveKind::ArgumentSeparator(c) => config.argument_separator = c,
            DirectiveKind::RuleRemoveById(ranges) => remove_ids.extend(ranges),
            DirectiveKind::RuleRemoveByTag(t) => {
                let r = key_regex(&t).map_err(|e| err(None, &loc, e))?;
                remove_tags.push((r, loc));
            }
            DirectiveKind::RuleRemoveByMsg(m) => {
                let r = key_regex(&m).map_err(|e| err(None, &loc, e))?;
                remove_msgs.push((r, loc));
            }
            DirectiveKind::RuleUpdateTargetById {
                ids,
                targets,
                replacing,
            } => target_updates.push((TargetSelect::Ids(ids), targets, replacing, loc)),
            DirectiveKind::RuleUpdateTargetByTag {
                tag,
                targets,
                replacing,
            } => {
                let r = key_regex(&tag).map_err(|e| err(None, &loc, e))?;
                target_updates.push((TargetSelect::Tag(r), targets, replacing, loc));
            }
            DirectiveKind::RuleUpdateTargetByMsg {
                msg,
                targets,
                replacing,
            } => {
                let r = key_regex(&msg).map_err(|e| err(None, &loc, e))?;
                target_updates.push((TargetSelect::Msg(r), targets, replacing, loc));
            }
            DirectiveKind::RuleUpdateActionById { id, actions } => {
                action_updates.push((id, actions, loc))
            }
            DirectiveKind::ComponentSignature(s) => report.component_signatures.push(s),
            DirectiveKind::CollectionTimeout(_) => report
                .accepted_directives
                .push(format!("SecCollectionTimeout at {loc}")),
            DirectiveKind::Accepted { name, .. } => {
                report.accepted_directives.push(format!("{name} at {loc}"))
            }
        }
    }

    // Ids: every rule needs one, and only once.
    let mut seen: HashMap<u64, Location> = HashMap::new();
    for p in &pending {
        let Some(id) = p.rule.id() else {
            return Err(err(None, &p.rule.location, "a rule needs an `id` action"));
        };
        if let Some(first) = seen.insert(id, p.rule.location.clone()) {
            return Err(err(
                Some(id),
                &p.rule.location,
                format!("duplicate rule id (first defined at {first})"),
            ));
        }
    }

    // Removals.
    let before = pending.len();
    pending.retain(|p| {
        let id = p.rule.id().unwrap_or(0);
        let tags = rule_tags(&p.rule);
        let msg = rule_msg(&p.rule);
        !(remove_ids.iter().any(|r| r.contains(id))
            || remove_tags
                .iter()
                .any(|(r, _)| tags.iter().any(|t| r.is_match(t.as_bytes())))
            || remove_msgs
                .iter()
                .any(|(r, _)| msg.is_some_and(|m| r.is_match(m.as_bytes()))))
    });
    report.removed_rule_count = before - pending.len();

    // Target and action updates, on the rule's first link.
    for (select, targets, replacing, loc) in &target_updates {
        for p in pending.iter_mut() {
            let id = p.rule.id().unwrap_or(0);
            let hit = match select {
                TargetSelect::Ids(ids) => ids.iter().any(|r| r.contains(id)),
                TargetSelect::Tag(r) => rule_tags(&p.rule).iter().any(|t| r.is_match(t.as_bytes())),
                TargetSelect::Msg(r) => rule_msg(&p.rule).is_some_and(|m| r.is_match(m.as_bytes())),
            };
            if !hit {
                continue;
            }
            match replacing {
                Some(old) => {
                    let Some(pos) = p.rule.variables.iter().position(|v| v == old) else {
                        return Err(err(
                            Some(id),
                            loc,
                            "SecRuleUpdateTarget: the target to replace is not in the rule",
                        ));
                    };
                    p.rule.variables.remove(pos);
                    for (i, t) in targets.iter().enumerate() {
                        p.rule.variables.insert(pos + i, t.clone());
                    }
                }
                None => p.rule.variables.extend(targets.iter().cloned()),
            }
        }
    }
    for (id, actions, loc) in &action_updates {
        let Some(p) = pending.iter_mut().find(|p| p.rule.id() == Some(*id)) else {
            // ModSecurity accepts updates of rules that are not (or no longer) loaded.
            report.accepted_directives.push(format!(
                "SecRuleUpdateActionById {id} (no such rule) at {loc}"
            ));
            continue;
        };
        for new in actions {
            p.rule.actions.retain(|old| !replaces(new, old));
            p.rule.actions.push(new.clone());
        }
    }

    // Markers.
    let marker_names: Vec<String> = markers.iter().map(|(_, n)| n.clone()).collect();
    let marker_index: HashMap<&str, usize> = marker_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();

    // Rules.
    let mut accepted: HashMap<String, usize> = HashMap::new();
    let mut rules = Vec::with_capacity(pending.len());
    let mut order: Vec<(usize, Step)> = Vec::new();
    for p in pending {
        let r = compile_rule(&p.rule, &p.defaults, source, &marker_index, &mut accepted)?;
        if r.links.iter().any(|l| match &l.op {
            Op::Compiled(c) => c.uses_fallback_regex(),
            Op::Macro(_) => false,
        }) {
            report.fallback_regex_rule_ids.push(r.id);
        }
        order.push((p.order, Step::Rule(rules.len())));
        rules.push(r);
    }
    for (i, (o, _)) in markers.iter().enumerate() {
        order.push((*o, Step::Marker(i)));
    }
    order.sort_by_key(|(o, _)| *o);
    let mut phases: [Vec<Step>; 5] = Default::default();
    for (_, step) in order {
        match step {
            Step::Rule(i) => {
                let phase = usize::from(rules[i].phase.clamp(1, 5)) - 1;
                phases[phase].push(step);
            }
            Step::Marker(_) => {
                for p in phases.iter_mut() {
                    p.push(step);
                }
            }
        }
    }
    let marker_steps = phases.clone().map(|steps| {
        let mut at = vec![usize::MAX; markers.len()];
        for (k, step) in steps.iter().enumerate() {
            if let Step::Marker(m) = step {
                if let Some(a) = at.get_mut(*m) {
                    *a = k;
                }
            }
        }
        at
    });
    let mut chains: HashMap<Vec<TransformName>, usize> = HashMap::new();
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        let next = chains.len();
        link.chain_id = *chains.entry(link.transforms.clone()).or_insert(next);
    }
    let mut chain_triggers = vec![[0u64; 4]; chains.len()];
    let mut scan_triggers = vec![[0u64; 4]; chains.len()];
    for (chain, &id) in &chains {
        for t in chain {
            let trig = crate::transform::triggers(*t);
            let case = matches!(t, TransformName::Lowercase | TransformName::Uppercase);
            for (sets, all) in [(&mut chain_triggers, true), (&mut scan_triggers, !case)] {
                if let Some(set) = sets.get_mut(id).filter(|_| all) {
                    for (w, x) in set.iter_mut().zip(trig) {
                        *w |= x;
                    }
                }
            }
        }
    }
    let literals = build_prefilters(&mut rules);
    let union_slots = number_unions(&mut rules);
    report.rule_count = rules.len();
    let mut acc: Vec<(String, usize)> = accepted.into_iter().collect();
    acc.sort();
    report.accepted_actions = acc;
    let tx_keys = number_tx_keys(&mut rules);
    let rule_msgs = rules.iter().map(|r| r.raw_msg.clone()).collect();
    for t in rules
        .iter_mut()
        .flat_map(|r| r.links.iter_mut())
        .flat_map(|l| l.targets.iter_mut())
    {
        if t.collection == Collection::Tx && matches!(t.selector, Selector::Regex(..)) {
            t.tx_ids = Some(tx_keys.selected(&t.selector).into());
        }
    }
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        link.single_tx = single_tx(link);
    }
    Ok(Plan {
        runtime_ops: RuntimeOps::default(),
        config,
        rules,
        phases,
        marker_steps,
        literals,
        chain_count: chains.len(),
        union_slots,
        chain_triggers,
        scan_triggers,
        tx_keys: Arc::new(tx_keys),
        rule_msgs,
        folding: Default::default(),
        report,
    })
}

/// Whether `link` is a [`Link::single_tx`] link.
pub(crate) fn single_tx(link: &Link) -> bool {
    matches!(
        link.targets.as_slice(),
        [t] if t.collection == Collection::Tx
            && t.tx_key.is_some()
            && matches!(t.selector, Selector::Key(_))
    ) && link.exclusions.is_empty()
        && link.transforms.is_empty()
        && !link.multi_match
        && !link.capture
        && link.prefilter.is_none()
        && matches!(link.op, Op::Compiled(_))
}

/// Numbers the literal unions a transaction may keep ([`Target::union_id`]): one per
/// (transformation chain, collection) a prefiltered link reads whole, one per such collection
/// untransformed. Returns how many there are.
fn number_unions(rules: &mut [CRule]) -> usize {
    let mut ids: HashMap<(usize, u32), u32> = HashMap::new();
    let mut intern = |key: (usize, u32)| {
        let next = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        *ids.entry(key).or_insert(next)
    };
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        if !matches!(link.prefilter, Some(Prefilter::Group(_))) {
            continue;
        }
        for t in &mut link.targets {
            if t.count || matches!(t.selector, Selector::Key(_)) {
                continue;
            }
            let code = t.union_code();
            t.union_id = intern((link.chain_id, code));
            t.raw_union_id = intern((usize::MAX, code));
        }
    }
    ids.len()
}

/// Numbers every TX key the rules name literally (`TX:key` targets, setvar names, `%{tx.key}`
/// in setvar values) and records the numbers where they are named.
fn number_tx_keys(rules: &mut [CRule]) -> TxKeys {
    let mut keys = TxKeys::default();
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        for t in &mut link.targets {
            if let (Collection::Tx, Selector::Key(k)) = (t.collection, &t.selector) {
                t.tx_key = Some(keys.intern(k));
            }
        }
        for sv in &mut link.setvars {
            if let Some(name) = sv.name.literal() {
                let name = name.to_ascii_lowercase();
                let id = keys.intern(&name);
                sv.key = Some((name, id));
            }
            match &mut sv.op {
                SetOp::Set(v) | SetOp::Add(v) | SetOp::Sub(v) => v.number_tx_keys(&mut keys),
                SetOp::Delete => {}
            }
        }
    }
    keys
}

/// The literals a link's operator needs in a value before it can match: an `@rx`'s required
/// literals, a `@pm`'s phrases (lowercased: both are compared ignoring ASCII case). `None`
/// when there is no such finite set (or a phrase is empty: it occurs everywhere).
fn link_literals(link: &Link) -> Option<Vec<Vec<u8>>> {
    let Op::Compiled(op) = &link.op else {
        return None;
    };
    if let Some(r) = op.required_literals() {
        return Some(r.literals.clone());
    }
    let phrases = op.phrases()?;
    if phrases.iter().any(Vec::is_empty) {
        return None;
    }
    Some(phrases.iter().map(|p| p.to_ascii_lowercase()).collect())
}

/// Builds one literal index over the literals of every link and gives each link its
/// group (the "literal prefilters": a transformed value is scanned once, and its
/// bitset rules out every link whose literals it lacks).
fn build_prefilters(rules: &mut [CRule]) -> Literals {
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    let mut pattern_ids: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut out = Literals::default();
    for link in rules.iter_mut().flat_map(|r| r.links.iter_mut()) {
        let Some(literals) = link_literals(link) else {
            continue;
        };
        if link.multi_match {
            link.prefilter = aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(&literals)
                .ok()
                .map(Prefilter::Own);
            continue;
        }
        let group = out.groups;
        out.groups += 1;
        for lit in literals {
            if let [b] = lit[..] {
                if out.single.is_empty() {
                    out.single.resize_with(256, Vec::new);
                }
                for c in [b.to_ascii_lowercase(), b.to_ascii_uppercase()] {
                    if let Some(w) = out.single_bytes.get_mut(usize::from(c >> 6)) {
                        *w |= 1 << (c & 63);
                    }
                    if let Some(gs) = out.single.get_mut(usize::from(c)) {
                        if gs.last() != Some(&(group as u32)) {
                            gs.push(group as u32);
                        }
                    }
                }
                continue;
            }
            let p = *pattern_ids.entry(lit.clone()).or_insert_with(|| {
                patterns.push(lit);
                patterns.len() - 1
            });
            if out.pattern_groups.len() <= p {
                out.pattern_groups.resize_with(p + 1, Vec::new);
            }
            if let Some(gs) = out.pattern_groups.get_mut(p) {
                if gs.last() != Some(&(group as u32)) {
                    gs.push(group as u32);
                }
            }
        }
        link.prefilter = Some(Prefilter::Group(group));
    }
    drop(pattern_ids);
    out.index = LiteralIndex::new(&patterns);
    out
}

enum TargetSelect {
    Ids(Vec<IdRange>),
    Tag(Regex),
    Msg(Regex),
}

fn rule_tags(r: &Rule) -> Vec<&str> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Tag(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn rule_msg(r: &Rule) -> Option<&str> {
    r.actions.iter().rev().find_map(|a| match a {
        Action::Msg(m) => Some(m.as_str()),
        _ => None,
    })
}

fn compile_rule(
    rule: &Rule,
    defaults: &Defaults,
    source: &dyn RuleSource,
    markers: &HashMap<&str, usize>,
    accepted: &mut HashMap<String, usize>,
) -> Result<CRule, CompileError> {
    let id = rule.id().unwrap_or(0);
    let mut c = CRule {
        id,
        phase: default_phase(&rule.actions),
        links: Vec::new(),
        msg: None,
        logdata: None,
        severity: None,
        tags: Arc::from([]),
        log: defaults.log.unwrap_or(true),
        disruptive: None,
        status: defaults.status,
        redirect: None,
        raw_msg: None,
    };
    if !(1..=5).contains(&c.phase) {
        return Err(err(
            Some(id),
            &rule.location,
            format!("phase {} is not 1..5", c.phase),
        ));
    }
    let mut block = false;
    c.tags = rule
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Tag(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    for a in &rule.actions {
        match a {
            Action::Msg(m) => {
                c.msg = Some(MacroString::parse(m));
                c.raw_msg = Some(m.as_str().into());
            }
            Action::LogData(m) => c.logdata = Some(MacroString::parse(m)),
            Action::Severity(s) => c.severity = Some(*s),
            Action::Tag(_) => {}
            Action::Log | Action::AuditLog => c.log = true,
            Action::NoLog | Action::NoAuditLog => c.log = false,
            Action::Pass => {
                c.disruptive = None;
                block = false;
            }
            Action::Block => block = true,
            Action::Deny => c.disruptive = Some(Disruptive::Deny),
            Action::Drop => c.disruptive = Some(Disruptive::Drop),
            Action::Allow(s) => c.disruptive = Some(Disruptive::Allow(*s)),
            Action::Redirect(u) => {
                c.disruptive = Some(Disruptive::Redirect);
                c.redirect = Some(MacroString::parse(u));
            }
            Action::Status(s) => c.status = Some(*s),
            _ => {}
        }
    }
    if block {
        // `block`: whatever the phase's SecDefaultAction does (CRS anomaly mode: pass).
        c.disruptive = defaults.disruptive;
    }
    let mut link = Some(rule);
    let mut first = true;
    while let Some(r) = link {
        c.links.push(compile_link(
            r, id, first, defaults, source, markers, accepted,
        )?);
        first = false;
        link = r.chained.as_deref();
    }
    Ok(c)
}

fn compile_link(
    r: &Rule,
    id: u64,
    first: bool,
    defaults: &Defaults,
    source: &dyn RuleSource,
    markers: &HashMap<&str, usize>,
    accepted: &mut HashMap<String, usize>,
) -> Result<Link, CompileError> {
    let loc = &r.location;
    let mut targets = Vec::new();
    let mut exclusions = Vec::new();
    for v in &r.variables {
        let t = compile_target(v).map_err(|e| err(Some(id), loc, e))?;
        if v.exclude {
            exclusions.push(t);
        } else {
            targets.push(t);
        }
    }
    let Operator {
        name,
        negated,
        argument,
    } = &r.operator;
    let operand = MacroString::parse(argument);
    let op = if operand.literal().is_none() {
        Op::Macro(operand)
    } else {
        Op::Compiled(Box::new(
            CompiledOperator::compile(*name, argument, source, &loc.file)
                .map_err(|e| err(Some(id), loc, e.message))?,
        ))
    };
    let mut transforms: Vec<TransformName> = if first {
        defaults.transforms.clone()
    } else {
        Vec::new()
    };
    let mut link = Link {
        unconditional: r.variables.is_empty(),
        targets,
        exclusions,
        op_name: *name,
        op,
        negated: *negated,
        transforms: Vec::new(),
        chain_id: 0,
        capture: false,
        multi_match: false,
        setvars: Vec::new(),
        after: Vec::new(),
        prefilter: None,
        single_tx: false,
    };
    for a in &r.actions {
        match a {
            Action::Transform(t) => transforms.push(*t),
            Action::Capture => link.capture = true,
            Action::MultiMatch => link.multi_match = true,
            Action::SetVar {
                collection,
                name,
                op,
            } => {
                if collection != "tx" {
                    *accepted
                        .entry(format!("setvar:{collection}.*"))
                        .or_default() += 1;
                    continue;
                }
                link.setvars.push(SetVar {
                    name: MacroString::parse(name),
                    key: None,
                    op: match op {
                        SetVarOp::Set(v) => SetOp::Set(MacroString::parse(v)),
                        SetVarOp::Add(v) => SetOp::Add(MacroString::parse(v)),
                        SetVarOp::Sub(v) => SetOp::Sub(MacroString::parse(v)),
                        SetVarOp::Delete => SetOp::Delete,
                    },
                });
            }
            Action::Skip(n) => link.after.push(After::Skip(*n)),
            Action::SkipAfter(m) => {
                let Some(i) = markers.get(m.as_str()) else {
                    return Err(err(
                        Some(id),
                        loc,
                        format!("skipAfter:{m} names no SecMarker"),
                    ));
                };
                link.after.push(After::SkipAfter(*i));
            }
            Action::Ctl(ctl) => {
                let c = match ctl {
                    Ctl::RuleEngine(m) => CtlC::RuleEngine(*m),
                    Ctl::RuleRemoveById(r) => CtlC::RemoveById(*r),
                    Ctl::RuleRemoveByTag(t) => CtlC::RemoveByTag(t.clone()),
                    Ctl::RuleRemoveTargetById(r, v) => CtlC::RemoveTargetById(
                        *r,
                        compile_target(v).map_err(|e| err(Some(id), loc, e))?,
                    ),
                    Ctl::RuleRemoveTargetByTag(t, v) => CtlC::RemoveTargetByTag(
                        t.clone(),
                        compile_target(v).map_err(|e| err(Some(id), loc, e))?,
                    ),
                    Ctl::RequestBodyProcessor(p) => {
                        let p = p.to_ascii_uppercase();
                        if !matches!(p.as_str(), "URLENCODED" | "MULTIPART" | "JSON" | "XML") {
                            return Err(err(
                                Some(id),
                                loc,
                                format!("ctl:requestBodyProcessor={p}: unknown processor"),
                            ));
                        }
                        CtlC::BodyProcessor(p)
                    }
                    Ctl::RequestBodyAccess(b) => CtlC::BodyAccess(*b),
                    Ctl::ForceRequestBodyVariable(_) => CtlC::NoOp,
                    Ctl::RequestBodyLimit(_) => {
                        *accepted.entry("ctl:requestBodyLimit".into()).or_default() += 1;
                        CtlC::NoOp
                    }
                    Ctl::Audit(a) => {
                        let name = a.split('=').next().unwrap_or(a).to_string();
                        *accepted.entry(format!("ctl:{name}")).or_default() += 1;
                        CtlC::NoOp
                    }
                };
                link.after.push(After::Ctl(c));
            }
            Action::Accepted { name, .. } => *accepted.entry(name.clone()).or_default() += 1,
            _ => {}
        }
    }
    // Everything up to the last `t:none` is dropped (`executeTransformations`).
    if let Some(last_none) = transforms.iter().rposition(|t| *t == TransformName::None) {
        transforms.drain(..=last_none);
    }
    link.transforms = transforms;
    Ok(link)
}
