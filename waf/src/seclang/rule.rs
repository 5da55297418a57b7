//! The three parts of a `SecRule`: targets (`ARGS|!ARGS:x`), the operator (`!@rx ...`) and the
//! action list (`id:1,phase:2,t:none,...`), each parsed from its argument's text.
//!
//! Offsets passed around are byte offsets into the logical line, so errors point at the exact
//! column of the offending variable, operator or action.

use super::names;
use super::Here;
use super::ParseError;
use crate::ast::{
    Action, AllowScope, Collection, Ctl, EngineMode, IdRange, Operator, OperatorName, Selector,
    SetVarOp, Variable,
};

/// Parses `ARGS|!ARGS:foo|&TX:x|REQUEST_COOKIES:/re/|XML:/*` starting at `base` in the line.
pub(super) fn variables(
    here: &Here<'_>,
    text: &str,
    base: usize,
) -> Result<Vec<Variable>, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let mut exclude = false;
        let mut count = false;
        while let Some(&c) = bytes.get(i) {
            match c {
                b'!' if !exclude => exclude = true,
                b'&' if !count => count = true,
                _ => break,
            }
            i += 1;
        }
        let name_start = i;
        while bytes
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            i += 1;
        }
        let name = &text[name_start..i];
        if name.is_empty() {
            let found = text[i..]
                .chars()
                .next()
                .map_or("the end".to_owned(), |c| format!("`{c}`"));
            return Err(here.error(
                base + i,
                format!("expected a variable name (ARGS, REQUEST_HEADERS, TX, ...), found {found}"),
            ));
        }
        let Some(collection) = names::variable(name) else {
            return Err(here.error(base + name_start, format!("unknown variable `{name}`")));
        };
        let mut selector = Selector::All;
        if matches!(bytes.get(i), Some(b':') | Some(b'.')) {
            i += 1;
            let key_start = i;
            if !names::has_members(collection) {
                return Err(here.error(
                    base + name_start,
                    format!("variable `{name}` has no members: expected no `:key` after it"),
                ));
            }
            if collection == Collection::Xml {
                while bytes.get(i).is_some_and(|c| *c != b'|') {
                    i += 1;
                }
                selector = Selector::XPath(text[key_start..i].to_owned());
            } else if bytes.get(i) == Some(&b'/') {
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            return Err(here.error(
                                base + key_start,
                                "expected a closing `/` for the key regex that starts here",
                            ))
                        }
                        Some(b'\\') => i += 2,
                        Some(b'/') => break,
                        Some(_) => i += 1,
                    }
                }
                let i_end = i.min(text.len());
                selector = Selector::Regex(text[key_start + 1..i_end].to_owned());
                i = i_end + 1;
            } else if bytes.get(i) == Some(&b'\'') {
                i += 1;
                while bytes.get(i).is_some_and(|c| *c != b'\'') {
                    i += 1;
                }
                if i >= bytes.len() {
                    return Err(here.error(
                        base + key_start,
                        "expected a closing `'` for the key that starts here",
                    ));
                }
                selector = Selector::Key(text[key_start + 1..i].to_owned());
                i += 1;
            } else {
                while bytes.get(i).is_some_and(|c| *c != b'|') {
                    i += 1;
                }
                selector = Selector::Key(text[key_start..i].to_owned());
            }
            if matches!(&selector, Selector::Key(k) | Selector::Regex(k) | Selector::XPath(k) if k.is_empty())
            {
                return Err(here.error(base + key_start, format!("expected a key after `{name}:`")));
            }
        }
        out.push(Variable {
            collection,
            selector,
            count,
            exclude,
        });
        match bytes.get(i) {
            None => return Ok(out),
            Some(b'|') => i += 1,
            Some(_) => {
                let found = text[i..].chars().next().unwrap_or(' ');
                return Err(here.error(
                    base + i,
                    format!(
                        "expected `|` or the end of the targets after `{}`, found `{found}`",
                        &text[start..i]
                    ),
                ));
            }
        }
    }
}

/// Parses an operator argument (`@rx a`, `!@pm x y`, `foo` = `@rx foo`). The argument is
/// everything after the one space that follows the operator name, kept byte for byte
/// (ModSecurity v3's scanner consumes exactly one `[ ]` there and hands the rest, backslashes
/// and `\"` included, to the operator).
pub(super) fn operator(
    here: &Here<'_>,
    text: &str,
    base: usize,
) -> Result<(Operator, bool), ParseError> {
    let mut i = 0;
    let negated = text.starts_with('!');
    if negated {
        i = 1;
    }
    if text[i..].starts_with('@') {
        let name_start = i + 1;
        let name_end = text[name_start..]
            .find([' ', '\t'])
            .map_or(text.len(), |n| name_start + n);
        let name = &text[name_start..name_end];
        let Some((op, takes_argument)) = names::operator(name) else {
            return Err(here.error(base + i, format!("unknown operator `@{name}`")));
        };
        let argument = text[name_end..]
            .strip_prefix([' ', '\t'])
            .unwrap_or(&text[name_end..]);
        if !takes_argument && !argument.trim().is_empty() {
            return Err(here.error(
                base + name_end,
                format!(
                    "operator `@{name}` takes no argument, found `{}`",
                    argument.trim()
                ),
            ));
        }
        let argument = if takes_argument { argument } else { "" };
        Ok((
            Operator {
                name: op,
                negated,
                argument: argument.to_owned(),
            },
            takes_argument,
        ))
    } else {
        Ok((
            Operator {
                name: OperatorName::Rx,
                negated,
                argument: text[i..].to_owned(),
            },
            true,
        ))
    }
}

/// One `name[:value]` of an action list, with offsets into the line.
struct RawAction<'a> {
    name: &'a str,
    name_at: usize,
    value: Option<&'a str>,
    value_at: usize,
}

/// Splits an action list on commas outside `'...'` (a backslash escapes the next character
/// inside quotes; the quotes are removed, the text between them kept as written).
fn split_actions<'a>(
    here: &Here<'_>,
    text: &'a str,
    base: usize,
) -> Result<Vec<RawAction<'a>>, ParseError> {
    let bytes = text.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        if i >= bytes.len() {
            if out.is_empty() {
                return Ok(out);
            }
            return Err(here.error(base + i, "expected an action after `,`"));
        }
        let name_at = i;
        while bytes
            .get(i)
            .is_some_and(|c| *c != b':' && *c != b',' && !is_space(*c))
        {
            i += 1;
        }
        let name = &text[name_at..i];
        if name.is_empty() {
            return Err(here.error(base + i, "expected an action name (id, phase, msg, ...)"));
        }
        let mut value = None;
        let mut value_at = i;
        if bytes.get(i) == Some(&b':') {
            i += 1;
            value_at = i;
            if bytes.get(i) == Some(&b'\'') {
                let start = i + 1;
                let mut j = start;
                loop {
                    match bytes.get(j) {
                        None => {
                            return Err(here.error(
                                base + i,
                                format!(
                                "expected a closing `'` for the value of `{name}` that starts here"
                            ),
                            ))
                        }
                        Some(b'\\') => j += 2,
                        Some(b'\'') => break,
                        Some(_) => j += 1,
                    }
                }
                value = Some(&text[start..j]);
                value_at = start;
                i = j + 1;
            } else {
                while bytes.get(i).is_some_and(|c| *c != b',') {
                    i += 1;
                }
                value = Some(text[value_at..i].trim_end_matches([' ', '\t', '\r', '\n']));
            }
        }
        out.push(RawAction {
            name,
            name_at,
            value,
            value_at,
        });
        while bytes.get(i).is_some_and(|c| is_space(*c)) {
            i += 1;
        }
        match bytes.get(i) {
            None => return Ok(out),
            Some(b',') => i += 1,
            Some(_) => {
                let found = text[i..].chars().next().unwrap_or(' ');
                return Err(here.error(
                    base + i,
                    format!(
                        "expected `,` or the end of the actions after `{name}`, found `{found}`"
                    ),
                ));
            }
        }
    }
}

/// Parses a comma-separated action list.
pub(super) fn actions(here: &Here<'_>, text: &str, base: usize) -> Result<Vec<Action>, ParseError> {
    let raw = split_actions(here, text, base)?;
    let mut out = Vec::with_capacity(raw.len());
    for a in raw {
        out.push(action(here, &a, base)?);
    }
    Ok(out)
}

/// Actions accepted as documented no-ops: persistent collections, audit-log and sanitising
/// controls have nothing to act on in a proxy filter.
pub(super) const ACCEPTED_ACTIONS: &[&str] = &[
    "expirevar",
    "initcol",
    "setuid",
    "setsid",
    "setrsc",
    "deprecatevar",
    "sanitiseArg",
    "sanitiseMatched",
    "sanitiseMatchedBytes",
    "sanitiseRequestHeader",
    "sanitiseResponseHeader",
    "xmlns",
];

fn action(here: &Here<'_>, a: &RawAction<'_>, base: usize) -> Result<Action, ParseError> {
    let name = a.name;
    let at = base + a.name_at;
    let value_at = base + a.value_at;
    let need = |what: &str| -> Result<&str, ParseError> {
        a.value
            .ok_or_else(|| here.error(at, format!("action `{name}` expects a value: {what}")))
    };
    let no_value = |action: Action| -> Result<Action, ParseError> {
        match a.value {
            None => Ok(action),
            Some(v) => Err(here.error(
                value_at,
                format!("action `{name}` takes no value, found `{v}`"),
            )),
        }
    };
    let bad = |what: &str, v: &str| {
        here.error(value_at, format!("`{name}`: expected {what}, found `{v}`"))
    };
    let lower = name.to_ascii_lowercase();
    let action = match lower.as_str() {
        "id" => {
            let v = need("a rule id")?;
            Action::Id(
                v.parse()
                    .map_err(|_| bad("a rule id (a positive integer)", v))?,
            )
        }
        "phase" => {
            let v = need("1-5, request, response or logging")?;
            let phase = match v.to_ascii_lowercase().as_str() {
                "request" => 2,
                "response" => 4,
                "logging" => 5,
                n => match n.parse::<u8>() {
                    Ok(p @ 1..=5) => p,
                    _ => return Err(bad("a phase: 1-5, request, response or logging", v)),
                },
            };
            Action::Phase(phase)
        }
        "msg" => Action::Msg(need("a message")?.to_owned()),
        "logdata" => Action::LogData(need("the data to log")?.to_owned()),
        "tag" => Action::Tag(need("a tag")?.to_owned()),
        "ver" => Action::Ver(need("a version")?.to_owned()),
        "rev" => Action::Rev(need("a revision")?.to_owned()),
        "severity" => {
            let v = need("0-7 or a severity name")?;
            const SEVERITIES: [&str; 8] = [
                "EMERGENCY",
                "ALERT",
                "CRITICAL",
                "ERROR",
                "WARNING",
                "NOTICE",
                "INFO",
                "DEBUG",
            ];
            let level = match v.parse::<u8>() {
                Ok(n @ 0..=7) => n,
                _ => SEVERITIES
                    .iter()
                    .position(|s| s.eq_ignore_ascii_case(v))
                    .and_then(|p| u8::try_from(p).ok())
                    .ok_or_else(|| bad("a severity: 0-7 or EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG", v))?,
            };
            Action::Severity(level)
        }
        "maturity" | "accuracy" => {
            let v = need("a level 1-9")?;
            let n: u8 = v
                .parse()
                .ok()
                .filter(|n| *n <= 9)
                .ok_or_else(|| bad("a level 0-9", v))?;
            if lower == "maturity" {
                Action::Maturity(n)
            } else {
                Action::Accuracy(n)
            }
        }
        "capture" => no_value(Action::Capture)?,
        "chain" => no_value(Action::Chain)?,
        "pass" => no_value(Action::Pass)?,
        "block" => no_value(Action::Block)?,
        "deny" => no_value(Action::Deny)?,
        "drop" => no_value(Action::Drop)?,
        "multimatch" => no_value(Action::MultiMatch)?,
        "log" => no_value(Action::Log)?,
        "nolog" => no_value(Action::NoLog)?,
        "auditlog" => no_value(Action::AuditLog)?,
        "noauditlog" => no_value(Action::NoAuditLog)?,
        "allow" => match a.value {
            None => Action::Allow(AllowScope::Transaction),
            Some(v) if v.eq_ignore_ascii_case("phase") => Action::Allow(AllowScope::Phase),
            Some(v) if v.eq_ignore_ascii_case("request") => Action::Allow(AllowScope::Request),
            Some(v) => return Err(bad("`phase` or `request` (or no value)", v)),
        },
        "skip" => {
            let v = need("a number of rules")?;
            Action::Skip(
                v.parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("a positive number of rules", v))?,
            )
        }
        "skipafter" => Action::SkipAfter(need("a marker name")?.to_owned()),
        "status" => {
            let v = need("an HTTP status")?;
            Action::Status(
                v.parse()
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| bad("an HTTP status (100-599)", v))?,
            )
        }
        "redirect" => Action::Redirect(need("a URL")?.to_owned()),
        "t" => {
            let v = need("a transformation name")?;
            Action::Transform(
                names::transform(v).ok_or_else(|| {
                    here.error(value_at, format!("unknown transformation `t:{v}`"))
                })?,
            )
        }
        "setvar" => setvar(here, need("`collection.name=value`")?, value_at)?,
        "ctl" => Action::Ctl(ctl(here, need("`option=value`")?, value_at)?),
        _ => {
            if let Some(known) = ACCEPTED_ACTIONS
                .iter()
                .find(|n| n.eq_ignore_ascii_case(name))
            {
                Action::Accepted {
                    name: (*known).to_owned(),
                    argument: a.value.map(str::to_owned),
                }
            } else {
                return Err(here.error(at, format!("unsupported action `{name}`")));
            }
        }
    };
    Ok(action)
}

/// `setvar:tx.x=v`, `=+v`, `=-v`, `!tx.x`, and `tx.x` (no `=`: ModSecurity sets it to 1).
fn setvar(here: &Here<'_>, v: &str, at: usize) -> Result<Action, ParseError> {
    let (delete, body) = match v.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (target, value) = match body.split_once('=') {
        Some((t, value)) => (t, Some(value)),
        None => (body, None),
    };
    let Some((collection, name)) = target.split_once('.') else {
        return Err(here.error(
            at,
            format!("`setvar`: expected `collection.name`, found `{target}`"),
        ));
    };
    let collection = collection.trim();
    if collection.is_empty() || name.is_empty() {
        return Err(here.error(
            at,
            format!("`setvar`: expected `collection.name`, found `{target}`"),
        ));
    }
    let op = match (delete, value) {
        (true, None) => SetVarOp::Delete,
        (true, Some(_)) => {
            return Err(here.error(
                at,
                format!("`setvar:!{target}` deletes; expected no `=value`"),
            ))
        }
        (false, None) => SetVarOp::Set("1".to_owned()),
        (false, Some(value)) => {
            if let Some(n) = value.strip_prefix('+') {
                SetVarOp::Add(n.to_owned())
            } else if let Some(n) = value.strip_prefix('-') {
                SetVarOp::Sub(n.to_owned())
            } else {
                SetVarOp::Set(value.to_owned())
            }
        }
    };
    Ok(Action::SetVar {
        collection: collection.to_ascii_lowercase(),
        name: name.to_owned(),
        op,
    })
}

/// `ID` or `A-B`.
pub(super) fn id_range(text: &str) -> Option<IdRange> {
    let text = text.trim();
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = b.trim().parse().ok()?;
    (start <= end).then_some(IdRange { start, end })
}

pub(super) fn engine_mode(v: &str) -> Option<EngineMode> {
    if v.eq_ignore_ascii_case("on") {
        Some(EngineMode::On)
    } else if v.eq_ignore_ascii_case("off") {
        Some(EngineMode::Off)
    } else if v.eq_ignore_ascii_case("detectiononly") {
        Some(EngineMode::DetectionOnly)
    } else {
        None
    }
}

pub(super) fn on_off(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("on") {
        Some(true)
    } else if v.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// Parses exactly one target (for `ctl:ruleRemoveTarget*` and replaced targets).
pub(super) fn single_variable(
    here: &Here<'_>,
    text: &str,
    at: usize,
) -> Result<Variable, ParseError> {
    let mut vars = variables(here, text, at)?;
    match (vars.pop(), vars.is_empty()) {
        (Some(v), true) => Ok(v),
        _ => Err(here.error(at, format!("expected exactly one target, found `{text}`"))),
    }
}

fn ctl(here: &Here<'_>, v: &str, at: usize) -> Result<Ctl, ParseError> {
    let Some((option, value)) = v.split_once('=') else {
        return Err(here.error(at, format!("`ctl`: expected `option=value`, found `{v}`")));
    };
    let value_at = at + option.len() + 1;
    let bad = |what: &str| {
        here.error(
            value_at,
            format!("`ctl:{option}`: expected {what}, found `{value}`"),
        )
    };
    let lower = option.to_ascii_lowercase();
    let ctl = match lower.as_str() {
        "ruleengine" => Ctl::RuleEngine(engine_mode(value).ok_or_else(|| bad("On, Off or DetectionOnly"))?),
        "ruleremovebyid" => Ctl::RuleRemoveById(id_range(value).ok_or_else(|| bad("a rule id or `A-B`"))?),
        "ruleremovebytag" => Ctl::RuleRemoveByTag(value.to_owned()),
        "ruleremovetargetbyid" | "ruleremovetargetbytag" => {
            let Some((what, target)) = value.split_once(';') else {
                return Err(bad("`ID;TARGET` / `TAG;TARGET`"));
            };
            let variable = single_variable(here, target, value_at + what.len() + 1)?;
            if lower == "ruleremovetargetbyid" {
                Ctl::RuleRemoveTargetById(id_range(what).ok_or_else(|| bad("a rule id or `A-B` before `;`"))?, variable)
            } else {
                Ctl::RuleRemoveTargetByTag(what.to_owned(), variable)
            }
        }
        "requestbodyprocessor" => {
            let upper = value.to_ascii_uppercase();
            if !matches!(upper.as_str(), "URLENCODED" | "MULTIPART" | "JSON" | "XML") {
                return Err(bad("URLENCODED, MULTIPART, JSON or XML"));
            }
            Ctl::RequestBodyProcessor(upper)
        }
        "requestbodyaccess" => Ctl::RequestBodyAccess(on_off(value).ok_or_else(|| bad("On or Off"))?),
        "forcerequestbodyvariable" => {
            Ctl::ForceRequestBodyVariable(on_off(value).ok_or_else(|| bad("On or Off"))?)
        }
        "requestbodylimit" => Ctl::RequestBodyLimit(value.parse().map_err(|_| bad("a number of bytes"))?),
        "auditengine" | "auditlogparts" => Ctl::Audit(v.to_owned()),
        _ => {
            return Err(here.error(
                at,
                format!(
                    "unsupported `ctl:{option}` (supported: ruleEngine, ruleRemoveById, ruleRemoveByTag, \
                     ruleRemoveTargetById, ruleRemoveTargetByTag, requestBodyProcessor, requestBodyAccess, \
                     forceRequestBodyVariable, requestBodyLimit, auditEngine, auditLogParts)"
                ),
            ))
        }
    };
    Ok(ctl)
}
