//! The SecLang parser: rule text (with `Include`s) into [`crate::ast::Directive`]s.
//!
//! Every error carries `file:line:column` and what was expected; a directive or action the
//! engine does not support is an error naming it, never silently ignored.
//!
//! Quoting follows ModSecurity v3's scanner (`src/parser/seclang-scanner.ll`): a double-quoted
//! argument ends at the first `"` not preceded by a backslash, and its text reaches the rule
//! verbatim — backslashes, `\"` included, are not removed (the operator gets `\"`, which PCRE
//! reads as `"`). Action values in `'...'` likewise keep `\'` as written.

mod lines;
mod names;
mod rule;
mod source;
#[cfg(test)]
mod tests;

#[cfg(not(target_arch = "wasm32"))]
pub use source::FsSource;
pub use source::MapSource;

use crate::ast::{
    Action, BodyLimitAction, Directive, DirectiveKind, IdRange, Location, Operator, OperatorName,
    Rule,
};
use lines::{LogicalLine, Token};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Where rule files and `@pmFromFile`/`@ipMatchFromFile` data files come from: the file system
/// natively, an embedded map inside the filter (no file system in a proxy-wasm VM).
pub trait RuleSource {
    /// The text of `path` (as an Include or a data-file operand names it, already resolved
    /// against the including file's directory by [`RuleSource::resolve`]).
    fn read(&self, path: &str) -> Result<String, String>;
    /// The files a glob (`*`, `?`, `[...]` in the last component) matches, sorted; an empty
    /// list is not an error here (the parser reports "Include matches nothing").
    fn glob(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// `name` as seen from a file at `from` (relative names are relative to `from`'s directory;
    /// absolute names and `@alias` names stay as they are).
    fn resolve(&self, from: &str, name: &str) -> String;
}

/// A parse error: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where the offending token starts.
    pub location: Location,
    /// What was wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Directives accepted as documented no-ops (they have no meaning in a proxy filter: audit-log
/// files, temporary directories, persistent-collection storage, ...). Each is parsed into
/// [`DirectiveKind::Accepted`] so the compile report can name it.
pub const ACCEPTED_NO_OPS: &[&str] = &[
    // Audit and debug logs: the filter reports through the proxy's own logs and metrics.
    "SecAuditEngine",
    "SecAuditLog",
    "SecAuditLog2",
    "SecAuditLogDirMode",
    "SecAuditLogFileMode",
    "SecAuditLogFormat",
    "SecAuditLogParts",
    "SecAuditLogRelevantStatus",
    "SecAuditLogStorageDir",
    "SecAuditLogType",
    "SecDebugLog",
    "SecDebugLogLevel",
    // Files on disk: a proxy-wasm VM has no file system; bodies stay in memory.
    "SecTmpDir",
    "SecDataDir",
    "SecUploadDir",
    "SecUploadKeepFiles",
    "SecUploadFileMode",
    "SecTmpSaveUploadedFiles",
    "SecRequestBodyInMemoryLimit",
    // PCRE tuning: the engine does not use PCRE.
    "SecPcreMatchLimit",
    "SecPcreMatchLimitRecursion",
    // Phoning home, GeoIP databases, server banners: nothing to do in a filter.
    "SecStatusEngine",
    "SecGeoLookupDb",
    "SecServerSignature",
    // Unicode best-fit map for `%u` decoding: the engine uses ModSecurity's default mapping.
    "SecUnicodeMapFile",
];

/// Action names accepted as documented no-ops ([`Action::Accepted`]): persistent collections,
/// audit-log sanitising and XML namespaces have nothing to act on in a proxy filter.
pub const ACCEPTED_ACTIONS: &[&str] = rule::ACCEPTED_ACTIONS;

/// Parses `text` (named `file` in locations), following `Include`s through `source`.
pub fn parse(
    text: &str,
    file: &str,
    source: &dyn RuleSource,
) -> Result<Vec<Directive>, ParseError> {
    let mut parser = Parser {
        source,
        including: Vec::new(),
        out: Vec::new(),
        chain: Vec::new(),
        ids: HashMap::new(),
    };
    parser.parse_file(text, file)?;
    if let Some(first) = parser.chain.first() {
        return Err(ParseError {
            location: first.location.clone(),
            message: "this rule's chain is not continued: expected a SecRule after the rule \
                      with `chain`, found the end of the rules"
                .into(),
        });
    }
    Ok(parser.out)
}

/// Reads `path` through `source` and parses it ([`parse`] with the file's own text): the usual
/// entry point for a rules file (`parse_file("/etc/crs/main.conf", &FsSource)`).
pub fn parse_file(path: &str, source: &dyn RuleSource) -> Result<Vec<Directive>, ParseError> {
    let text = source.read(path).map_err(|message| ParseError {
        location: Location {
            file: Arc::from(path),
            line: 1,
            column: 1,
        },
        message: format!("cannot read the rules file: {message}"),
    })?;
    parse(&text, path, source)
}

/// Locates errors inside one logical line.
pub(crate) struct Here<'a> {
    file: &'a Arc<str>,
    line: &'a LogicalLine,
}

impl Here<'_> {
    fn location(&self, offset: usize) -> Location {
        let (line, column) = self.line.position(offset);
        Location {
            file: Arc::clone(self.file),
            line,
            column,
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            location: self.location(offset),
            message: message.into(),
        }
    }
}

struct Parser<'s> {
    source: &'s dyn RuleSource,
    /// The files being parsed, outermost first (for cycle detection).
    including: Vec<String>,
    out: Vec<Directive>,
    /// Links of an open chain, head first (every one but the last has `chain`).
    chain: Vec<Rule>,
    /// Rule ids seen so far, and where.
    ids: HashMap<u64, Location>,
}

fn is_named(name: &str, expected: &str) -> bool {
    name.eq_ignore_ascii_case(expected)
}

impl Parser<'_> {
    fn parse_file(&mut self, text: &str, file: &str) -> Result<(), ParseError> {
        self.including.push(source::normalize(file));
        let file: Arc<str> = Arc::from(file);
        for line in lines::logical_lines(text) {
            let here = Here {
                file: &file,
                line: &line,
            };
            let tokens = lines::tokens(&line.text).map_err(|(at, msg)| here.error(at, msg))?;
            if let Some((name, args)) = tokens.split_first() {
                self.directive(&here, name, args)?;
            }
        }
        self.including.pop();
        Ok(())
    }

    fn directive(
        &mut self,
        here: &Here<'_>,
        name_token: &Token<'_>,
        args: &[Token<'_>],
    ) -> Result<(), ParseError> {
        let name = name_token.text;
        let at = name_token.start;
        let location = here.location(at);
        if !self.chain.is_empty() && !is_named(name, "SecRule") {
            let head = self
                .chain
                .first()
                .map(|r| r.location.to_string())
                .unwrap_or_default();
            return Err(here.error(
                at,
                format!(
                    "expected a SecRule continuing the chain started at {head}, found `{name}`"
                ),
            ));
        }
        // Arguments count check shared by most directives.
        let want = |min: usize, max: usize, what: &str| -> Result<(), ParseError> {
            if args.len() < min || args.len() > max {
                // Too few: point at the end of the line; too many: at the first extra one.
                let end = here.line.text.trim_end().len();
                return Err(here.error(
                    args.get(max).map_or(end, |t| t.start),
                    format!("`{name}` expects {what}, found {} argument(s)", args.len()),
                ));
            }
            Ok(())
        };
        let arg = |i: usize| {
            args.get(i).copied().unwrap_or(Token {
                text: "",
                start: at,
                quoted: false,
            })
        };
        let number = |t: Token<'_>, what: &str| -> Result<u64, ParseError> {
            t.text.trim().parse().map_err(|_| {
                here.error(
                    t.start,
                    format!("`{name}`: expected {what}, found `{}`", t.text),
                )
            })
        };
        let kind = if is_named(name, "SecRule") {
            want(2, 4, "TARGETS \"OPERATOR\" [\"ACTIONS\"]")?;
            let variables = rule::variables(here, arg(0).text, arg(0).start)?;
            let op_token = arg(1);
            let (mut operator, takes_argument) =
                rule::operator(here, op_token.text, op_token.start)?;
            let mut rest = args.get(2..).unwrap_or(&[]);
            // Unquoted, `@rx foo` is two arguments: ModSecurity's scanner reads the operator's
            // parameter as the next space-separated word.
            if !op_token.quoted
                && takes_argument
                && op_token.text.trim_start_matches('!').starts_with('@')
            {
                if let Some((param, tail)) = rest.split_first() {
                    operator.argument = param.text.to_owned();
                    rest = tail;
                }
            }
            if let Some(extra) = rest.get(1) {
                return Err(here.error(extra.start, format!("`{name}` expects TARGETS \"OPERATOR\" [\"ACTIONS\"], found an extra argument")));
            }
            let actions = match rest.first() {
                Some(t) => rule::actions(here, t.text, t.start)?,
                None => Vec::new(),
            };
            return self.rule(Rule {
                variables,
                operator,
                actions,
                chained: None,
                location,
            });
        } else if is_named(name, "SecAction") {
            want(1, 1, "one argument: \"ACTIONS\"")?;
            let actions = rule::actions(here, arg(0).text, arg(0).start)?;
            let rule = Rule {
                variables: Vec::new(),
                operator: Operator {
                    name: OperatorName::UnconditionalMatch,
                    negated: false,
                    argument: String::new(),
                },
                actions,
                chained: None,
                location: location.clone(),
            };
            if rule.actions.contains(&Action::Chain) {
                return Err(here.error(at, "`SecAction` cannot start a chain: use SecRule"));
            }
            return self.rule(rule);
        } else if is_named(name, "SecMarker") {
            want(1, 1, "one argument: a marker name")?;
            DirectiveKind::Marker(arg(0).text.to_owned())
        } else if is_named(name, "SecDefaultAction") {
            want(1, 1, "one argument: \"ACTIONS\"")?;
            DirectiveKind::DefaultAction(rule::actions(here, arg(0).text, arg(0).start)?)
        } else if is_named(name, "SecRuleEngine") {
            want(1, 1, "one argument: On, Off or DetectionOnly")?;
            DirectiveKind::RuleEngine(rule::engine_mode(arg(0).text).ok_or_else(|| {
                here.error(
                    arg(0).start,
                    format!(
                        "`{name}`: expected On, Off or DetectionOnly, found `{}`",
                        arg(0).text
                    ),
                )
            })?)
        } else if is_named(name, "SecRequestBodyAccess") || is_named(name, "SecResponseBodyAccess")
        {
            want(1, 1, "one argument: On or Off")?;
            let on = rule::on_off(arg(0).text).ok_or_else(|| {
                here.error(
                    arg(0).start,
                    format!("`{name}`: expected On or Off, found `{}`", arg(0).text),
                )
            })?;
            if is_named(name, "SecRequestBodyAccess") {
                DirectiveKind::RequestBodyAccess(on)
            } else {
                DirectiveKind::ResponseBodyAccess(on)
            }
        } else if is_named(name, "SecRequestBodyLimit") {
            want(1, 1, "one argument: a number of bytes")?;
            DirectiveKind::RequestBodyLimit(number(arg(0), "a number of bytes")?)
        } else if is_named(name, "SecRequestBodyNoFilesLimit") {
            want(1, 1, "one argument: a number of bytes")?;
            DirectiveKind::RequestBodyNoFilesLimit(number(arg(0), "a number of bytes")?)
        } else if is_named(name, "SecResponseBodyLimit") {
            want(1, 1, "one argument: a number of bytes")?;
            DirectiveKind::ResponseBodyLimit(number(arg(0), "a number of bytes")?)
        } else if is_named(name, "SecRequestBodyLimitAction")
            || is_named(name, "SecResponseBodyLimitAction")
        {
            want(1, 1, "one argument: Reject or ProcessPartial")?;
            let v = arg(0).text;
            let action = if v.eq_ignore_ascii_case("Reject") {
                BodyLimitAction::Reject
            } else if v.eq_ignore_ascii_case("ProcessPartial") {
                BodyLimitAction::ProcessPartial
            } else {
                return Err(here.error(
                    arg(0).start,
                    format!("`{name}`: expected Reject or ProcessPartial, found `{v}`"),
                ));
            };
            if is_named(name, "SecRequestBodyLimitAction") {
                DirectiveKind::RequestBodyLimitAction(action)
            } else {
                DirectiveKind::ResponseBodyLimitAction(action)
            }
        } else if is_named(name, "SecResponseBodyMimeType") {
            want(1, usize::MAX, "one or more MIME types")?;
            DirectiveKind::ResponseBodyMimeType(
                args.iter()
                    .flat_map(|t| t.text.split_whitespace())
                    .map(str::to_owned)
                    .collect(),
            )
        } else if is_named(name, "SecArgumentSeparator") {
            want(1, 1, "one argument: a single character")?;
            match arg(0).text.as_bytes() {
                [c] => DirectiveKind::ArgumentSeparator(*c),
                _ => {
                    return Err(here.error(
                        arg(0).start,
                        format!(
                            "`{name}`: expected a single character, found `{}`",
                            arg(0).text
                        ),
                    ))
                }
            }
        } else if is_named(name, "SecRuleRemoveById") {
            want(1, usize::MAX, "one or more rule ids or `A-B` ranges")?;
            DirectiveKind::RuleRemoveById(id_ranges(here, name, args)?)
        } else if is_named(name, "SecRuleRemoveByTag") {
            want(1, 1, "one argument: a tag (regex)")?;
            DirectiveKind::RuleRemoveByTag(arg(0).text.to_owned())
        } else if is_named(name, "SecRuleRemoveByMsg") {
            want(1, 1, "one argument: a message (regex)")?;
            DirectiveKind::RuleRemoveByMsg(arg(0).text.to_owned())
        } else if is_named(name, "SecRuleUpdateTargetById")
            || is_named(name, "SecRuleUpdateTargetByTag")
            || is_named(name, "SecRuleUpdateTargetByMsg")
        {
            want(2, 3, "RULE \"TARGETS\" [\"REPLACED_TARGET\"]")?;
            let targets = rule::variables(here, arg(1).text, arg(1).start)?;
            let replacing = match args.get(2) {
                Some(t) => Some(rule::single_variable(here, t.text, t.start)?),
                None => None,
            };
            if is_named(name, "SecRuleUpdateTargetById") {
                DirectiveKind::RuleUpdateTargetById {
                    ids: id_ranges(here, name, args.get(..1).unwrap_or(&[]))?,
                    targets,
                    replacing,
                }
            } else if is_named(name, "SecRuleUpdateTargetByTag") {
                DirectiveKind::RuleUpdateTargetByTag {
                    tag: arg(0).text.to_owned(),
                    targets,
                    replacing,
                }
            } else {
                DirectiveKind::RuleUpdateTargetByMsg {
                    msg: arg(0).text.to_owned(),
                    targets,
                    replacing,
                }
            }
        } else if is_named(name, "SecRuleUpdateActionById") {
            want(2, 2, "RULE_ID \"ACTIONS\"")?;
            let id = number(arg(0), "a rule id")?;
            let actions = rule::actions(here, arg(1).text, arg(1).start)?;
            DirectiveKind::RuleUpdateActionById { id, actions }
        } else if is_named(name, "SecComponentSignature") {
            want(1, 1, "one argument: \"NAME/VERSION\"")?;
            DirectiveKind::ComponentSignature(arg(0).text.to_owned())
        } else if is_named(name, "SecCollectionTimeout") {
            want(1, 1, "one argument: a number of seconds")?;
            DirectiveKind::CollectionTimeout(number(arg(0), "a number of seconds")?)
        } else if is_named(name, "Include") {
            want(1, 1, "one argument: a file name or glob")?;
            return self.include(here, arg(0));
        } else if let Some(known) = ACCEPTED_NO_OPS
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
        {
            DirectiveKind::Accepted {
                name: (*known).to_owned(),
                args: args.iter().map(|t| t.text.to_owned()).collect(),
            }
        } else {
            return Err(here.error(at, format!("unsupported directive `{name}`")));
        };
        self.out.push(Directive { kind, location });
        Ok(())
    }

    /// Adds a SecRule, linking it into an open chain.
    fn rule(&mut self, rule: Rule) -> Result<(), ParseError> {
        let chains = rule.actions.contains(&Action::Chain);
        if self.chain.is_empty() {
            // A head: ModSecurity v3 (Driver::addSecRule) refuses rules without an id and
            // duplicate ids; chain links carry none.
            let Some(id) = rule.id() else {
                return Err(ParseError {
                    location: rule.location.clone(),
                    message: "rule has no `id` action: every SecRule/SecAction needs one \
                              (chain links excepted)"
                        .into(),
                });
            };
            if let Some(first) = self.ids.insert(id, rule.location.clone()) {
                return Err(ParseError {
                    location: rule.location.clone(),
                    message: format!("duplicate rule id {id} (first defined at {first})"),
                });
            }
        }
        if self.chain.is_empty() && !chains {
            let location = rule.location.clone();
            self.out.push(Directive {
                kind: DirectiveKind::Rule(rule),
                location,
            });
            return Ok(());
        }
        self.chain.push(rule);
        if chains {
            return Ok(());
        }
        // The chain is complete: fold the links into the head, last link innermost.
        let mut links = std::mem::take(&mut self.chain);
        let mut next: Option<Box<Rule>> = None;
        while let Some(mut link) = links.pop() {
            link.chained = next.take();
            next = Some(Box::new(link));
        }
        if let Some(head) = next {
            let location = head.location.clone();
            self.out.push(Directive {
                kind: DirectiveKind::Rule(*head),
                location,
            });
        }
        Ok(())
    }

    fn include(&mut self, here: &Here<'_>, target: Token<'_>) -> Result<(), ParseError> {
        let current = self.including.last().cloned().unwrap_or_default();
        let resolved = self.source.resolve(&current, target.text);
        let files = if source::has_wildcards(&resolved) {
            let files = self
                .source
                .glob(&resolved)
                .map_err(|e| here.error(target.start, format!("Include `{}`: {e}", target.text)))?;
            if files.is_empty() {
                return Err(here.error(
                    target.start,
                    format!(
                        "Include `{}` matches no file (looked for `{resolved}`)",
                        target.text
                    ),
                ));
            }
            files
        } else {
            vec![resolved]
        };
        for file in files {
            let normalized = source::normalize(&file);
            if self.including.contains(&normalized) {
                let mut cycle = self.including.clone();
                cycle.push(normalized);
                return Err(here.error(
                    target.start,
                    format!("Include cycle: {}", cycle.join(" -> ")),
                ));
            }
            let text = self
                .source
                .read(&file)
                .map_err(|e| here.error(target.start, format!("Include `{}`: {e}", target.text)))?;
            self.parse_file(&text, &file)?;
        }
        Ok(())
    }
}

/// Rule ids and ranges from one or more arguments (each may hold several, space-separated).
fn id_ranges(here: &Here<'_>, name: &str, args: &[Token<'_>]) -> Result<Vec<IdRange>, ParseError> {
    let mut out = Vec::new();
    for t in args {
        let mut offset = 0;
        for part in t.text.split([' ', ',']) {
            if !part.is_empty() {
                out.push(rule::id_range(part).ok_or_else(|| {
                    here.error(
                        t.start + offset,
                        format!("`{name}`: expected a rule id or an `A-B` range, found `{part}`"),
                    )
                })?);
            }
            offset += part.len() + 1;
        }
    }
    Ok(out)
}
