//! The parsed form of SecLang: directives, rules, variables, operators and actions.
//!
//! [`crate::seclang`] produces these from rule text; [`crate::engine`] compiles them. Nothing here
//! evaluates anything: strings stay as written (macros unexpanded, regexes uncompiled).

use std::fmt;
use std::sync::Arc;

/// Where a directive, rule or action was written: `file:line:column` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file name as the Include named it (or `<inline>` / a caller-chosen name).
    pub file: Arc<str>,
    /// 1-based line of the directive's first character.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One directive with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    /// What the directive says.
    pub kind: DirectiveKind,
    /// Where it starts.
    pub location: Location,
}

/// `SecRuleEngine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// `On`: disruptive actions take effect.
    On,
    /// `Off`: no rule runs.
    Off,
    /// `DetectionOnly`: rules run and log; nothing is blocked.
    DetectionOnly,
}

/// `SecRequestBodyLimitAction` / `SecResponseBodyLimitAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimitAction {
    /// `Reject`: a body over the limit is refused (413 for requests).
    Reject,
    /// `ProcessPartial`: inspect what fits, pass the rest uninspected.
    ProcessPartial,
}

/// An inclusive range of rule ids (`SecRuleRemoveById 1 2-10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// First id.
    pub start: u64,
    /// Last id (== start for a single id).
    pub end: u64,
}

impl IdRange {
    /// Does the range hold `id`?
    pub fn contains(&self, id: u64) -> bool {
        self.start <= id && id <= self.end
    }
}

/// A directive and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum DirectiveKind {
    /// `SecRule` (with its chained links) or `SecAction` (no variables, operator
    /// [`OperatorName::UnconditionalMatch`]).
    Rule(Rule),
    /// `SecMarker NAME`.
    Marker(String),
    /// `SecDefaultAction "phase:N,..."`.
    DefaultAction(Vec<Action>),
    /// `SecRuleEngine`.
    RuleEngine(EngineMode),
    /// `SecRequestBodyAccess On|Off`.
    RequestBodyAccess(bool),
    /// `SecResponseBodyAccess On|Off`.
    ResponseBodyAccess(bool),
    /// `SecRequestBodyLimit N` (bytes).
    RequestBodyLimit(u64),
    /// `SecRequestBodyNoFilesLimit N` (bytes).
    RequestBodyNoFilesLimit(u64),
    /// `SecRequestBodyLimitAction`.
    RequestBodyLimitAction(BodyLimitAction),
    /// `SecResponseBodyLimit N` (bytes).
    ResponseBodyLimit(u64),
    /// `SecResponseBodyLimitAction`.
    ResponseBodyLimitAction(BodyLimitAction),
    /// `SecResponseBodyMimeType a/b c/d` (appends).
    ResponseBodyMimeType(Vec<String>),
    /// `SecArgumentSeparator C`.
    ArgumentSeparator(u8),
    /// `SecRuleRemoveById 1 2-10`.
    RuleRemoveById(Vec<IdRange>),
    /// `SecRuleRemoveByTag REGEX` (ModSecurity matches the tag as a regex).
    RuleRemoveByTag(String),
    /// `SecRuleRemoveByMsg REGEX`.
    RuleRemoveByMsg(String),
    /// `SecRuleUpdateTargetById ID[-ID] "VARS" ["REPLACED"]`.
    RuleUpdateTargetById {
        /// The rules to update.
        ids: Vec<IdRange>,
        /// Targets to add (or, with `!`, to exclude).
        targets: Vec<Variable>,
        /// The target these replace, when given.
        replacing: Option<Variable>,
    },
    /// `SecRuleUpdateTargetByTag TAG "VARS" ["REPLACED"]`.
    RuleUpdateTargetByTag {
        /// Tag (a regex, as ModSecurity matches it).
        tag: String,
        /// Targets to add or exclude.
        targets: Vec<Variable>,
        /// The target these replace, when given.
        replacing: Option<Variable>,
    },
    /// `SecRuleUpdateTargetByMsg MSG "VARS" ["REPLACED"]`.
    RuleUpdateTargetByMsg {
        /// Msg (a regex).
        msg: String,
        /// Targets to add or exclude.
        targets: Vec<Variable>,
        /// The target these replace, when given.
        replacing: Option<Variable>,
    },
    /// `SecRuleUpdateActionById ID "ACTIONS"`.
    RuleUpdateActionById {
        /// The rule.
        id: u64,
        /// Actions that replace those of the same kind.
        actions: Vec<Action>,
    },
    /// `SecComponentSignature "OWASP_CRS/3.3.4"`.
    ComponentSignature(String),
    /// `SecCollectionTimeout N` (persistent collections are not kept: accepted).
    CollectionTimeout(u64),
    /// A directive with no meaning inside a proxy (audit-log files, `SecTmpDir`, ...): accepted
    /// and listed in [`crate::seclang::ACCEPTED_NO_OPS`], never silently: the compile report
    /// names each one.
    Accepted {
        /// The directive name, spelled as in [`crate::seclang::ACCEPTED_NO_OPS`] (matching is
        /// case-insensitive).
        name: String,
        /// Its arguments.
        args: Vec<String>,
    },
}

/// A `SecRule` (or `SecAction`) and the rules chained to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Targets; empty for `SecAction`.
    pub variables: Vec<Variable>,
    /// The operator; `@unconditionalMatch` for `SecAction`.
    pub operator: Operator,
    /// Actions in the order written.
    pub actions: Vec<Action>,
    /// The next link when this rule has the `chain` action.
    pub chained: Option<Box<Rule>>,
    /// Where the rule starts.
    pub location: Location,
}

impl Rule {
    /// The `id` action, if any (chain links have none).
    pub fn id(&self) -> Option<u64> {
        self.actions.iter().find_map(|a| match a {
            Action::Id(id) => Some(*id),
            _ => None,
        })
    }

    /// This rule and the rules chained to it, head first.
    pub fn links(&self) -> impl Iterator<Item = &Rule> {
        std::iter::successors(Some(self), |r| r.chained.as_deref())
    }
}

/// A target: `ARGS`, `ARGS:name`, `ARGS:/re/`, `&ARGS`, `!ARGS:name`, `XML:/*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The collection (or single-value variable).
    pub collection: Collection,
    /// Which members.
    pub selector: Selector,
    /// `&`: the number of members instead of their values.
    pub count: bool,
    /// `!`: exclude these members from the rule's other targets.
    pub exclude: bool,
}

/// Which members of a collection a target names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The whole collection.
    All,
    /// `:key` (compared case-insensitively where ModSecurity does: headers, args, cookies,
    /// TX keys). May contain macros for TX (rare).
    Key(String),
    /// `:/regex/` on member names.
    Regex(String),
    /// `XML:/xpath` — the expression as written.
    XPath(String),
}

/// Every variable/collection name SecLang knows that this engine accepts. Names are
/// ModSecurity's, matched case-insensitively by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)] // the names are SecLang's own; see the ModSecurity reference manual
pub enum Collection {
    Args,
    ArgsGet,
    ArgsPost,
    ArgsNames,
    ArgsGetNames,
    ArgsPostNames,
    ArgsCombinedSize,
    RequestHeaders,
    RequestHeadersNames,
    RequestCookies,
    RequestCookiesNames,
    RequestFilename,
    RequestBasename,
    RequestUri,
    RequestUriRaw,
    RequestLine,
    RequestMethod,
    RequestProtocol,
    QueryString,
    RequestBody,
    RequestBodyLength,
    ReqbodyError,
    ReqbodyErrorMsg,
    ReqbodyProcessor,
    ReqbodyProcessorError,
    ReqbodyProcessorErrorMsg,
    InboundDataError,
    UrlencodedError,
    FullRequest,
    FullRequestLength,
    Files,
    FilesNames,
    FilesSizes,
    FilesCombinedSize,
    FilesTmpnames,
    FilesTmpContent,
    MultipartStrictError,
    MultipartUnmatchedBoundary,
    MultipartBoundaryQuoted,
    MultipartBoundaryWhitespace,
    MultipartDataAfter,
    MultipartDataBefore,
    MultipartFileLimitExceeded,
    MultipartHeaderFolding,
    MultipartInvalidHeaderFolding,
    MultipartInvalidPart,
    MultipartInvalidQuoting,
    MultipartLfLine,
    MultipartCrlfLfLines,
    MultipartMissingSemicolon,
    MultipartPartHeaders,
    MultipartFilename,
    MultipartName,
    Xml,
    Tx,
    MatchedVar,
    MatchedVarName,
    MatchedVars,
    MatchedVarsNames,
    RemoteAddr,
    RemoteHost,
    RemotePort,
    RemoteUser,
    ServerAddr,
    ServerName,
    ServerPort,
    UniqueId,
    Duration,
    HighestSeverity,
    Env,
    Time,
    TimeDay,
    TimeEpoch,
    TimeHour,
    TimeMin,
    TimeMon,
    TimeSec,
    TimeWday,
    TimeYear,
    AuthType,
    Rule,
    StatusLine,
    ResponseHeaders,
    ResponseHeadersNames,
    ResponseBody,
    ResponseStatus,
    ResponseProtocol,
    ResponseContentType,
    ResponseContentLength,
    OutboundDataError,
    Webserver,
    /// Persistent collections: out of scope (see the crate docs); reading one yields nothing.
    Ip,
    Session,
    User,
    Global,
    Resource,
    Geo,
}

/// An operator: `@rx ...`, `!@pm ...`; a rule without `@` is `@rx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// Which operator.
    pub name: OperatorName,
    /// `!@op`.
    pub negated: bool,
    /// The argument as written (macros unexpanded).
    pub argument: String,
}

/// The operators this engine accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // SecLang's names: `@rx`, `@pm`, ...
pub enum OperatorName {
    Rx,
    Pm,
    PmFromFile,
    /// `@pmf`, an alias of `@pmFromFile`.
    Pmf,
    DetectSqli,
    DetectXss,
    ValidateByteRange,
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    Within,
    Streq,
    BeginsWith,
    EndsWith,
    Contains,
    ContainsWord,
    StrMatch,
    Eq,
    Ge,
    Gt,
    Lt,
    Le,
    IpMatch,
    IpMatchFromFile,
    UnconditionalMatch,
    NoMatch,
    /// `@geoLookup` (CRS 3.3's 910 only): accepted, never matches (no GeoIP database).
    GeoLookup,
    /// `@rbl` (CRS 3.3's 910 only): accepted, never matches (no DNS from a proxy filter).
    Rbl,
}

/// `t:name` transformation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // SecLang's names
pub enum TransformName {
    None,
    Base64Decode,
    Base64DecodeExt,
    Base64Encode,
    CmdLine,
    CompressWhitespace,
    CssDecode,
    EscapeSeqDecode,
    HexDecode,
    HexEncode,
    HtmlEntityDecode,
    JsDecode,
    Length,
    Lowercase,
    Uppercase,
    Md5,
    NormalizePath,
    NormalizePathWin,
    ParityEven7bit,
    ParityOdd7bit,
    ParityZero7bit,
    RemoveComments,
    RemoveCommentsChar,
    RemoveNulls,
    RemoveWhitespace,
    ReplaceComments,
    ReplaceNulls,
    Sha1,
    SqlHexDecode,
    Trim,
    TrimLeft,
    TrimRight,
    UrlDecode,
    UrlDecodeUni,
    UrlEncode,
    Utf8ToUnicode,
}

/// `setvar` operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetVarOp {
    /// `setvar:tx.x=V` (V may be empty, may hold macros). `setvar:tx.x` without `=` is
    /// `Set("1")`, as in ModSecurity.
    Set(String),
    /// `setvar:tx.x=+V`.
    Add(String),
    /// `setvar:tx.x=-V`.
    Sub(String),
    /// `setvar:!tx.x`.
    Delete,
}

/// A `ctl:` action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctl {
    /// `ctl:ruleEngine=On|Off|DetectionOnly`.
    RuleEngine(EngineMode),
    /// `ctl:ruleRemoveById=ID` or `=A-B`.
    RuleRemoveById(IdRange),
    /// `ctl:ruleRemoveByTag=TAG`.
    RuleRemoveByTag(String),
    /// `ctl:ruleRemoveTargetById=ID;VAR`.
    RuleRemoveTargetById(IdRange, Variable),
    /// `ctl:ruleRemoveTargetByTag=TAG;VAR`.
    RuleRemoveTargetByTag(String, Variable),
    /// `ctl:requestBodyProcessor=URLENCODED|MULTIPART|JSON|XML`.
    RequestBodyProcessor(String),
    /// `ctl:requestBodyAccess=On|Off`.
    RequestBodyAccess(bool),
    /// `ctl:forceRequestBodyVariable=On|Off`.
    ForceRequestBodyVariable(bool),
    /// `ctl:requestBodyLimit=N`.
    RequestBodyLimit(u64),
    /// `ctl:auditEngine=...`, `ctl:auditLogParts=...`: accepted no-ops (no audit log).
    Audit(String),
}

/// One action of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `id:N`.
    Id(u64),
    /// `phase:1..5` (`request` = 2, `response` = 4, `logging` = 5).
    Phase(u8),
    /// `msg:'...'` (macros unexpanded).
    Msg(String),
    /// `logdata:'...'`.
    LogData(String),
    /// `tag:'...'`.
    Tag(String),
    /// `severity:N` or name, as 0..=7 (EMERGENCY..DEBUG).
    Severity(u8),
    /// `ver:'...'`.
    Ver(String),
    /// `rev:'...'`.
    Rev(String),
    /// `maturity:N`.
    Maturity(u8),
    /// `accuracy:N`.
    Accuracy(u8),
    /// `capture`.
    Capture,
    /// `setvar:collection.name<op>`. `collection` is lower-cased (`tx`, `ip`, ...).
    SetVar {
        /// `tx`, `ip`, `session`, ...
        collection: String,
        /// Variable name (may hold macros).
        name: String,
        /// What to do.
        op: SetVarOp,
    },
    /// `chain`.
    Chain,
    /// `skip:N`.
    Skip(u32),
    /// `skipAfter:MARKER`.
    SkipAfter(String),
    /// `pass`.
    Pass,
    /// `block`.
    Block,
    /// `deny`.
    Deny,
    /// `drop`.
    Drop,
    /// `allow` (whole transaction), `allow:phase`, `allow:request`.
    Allow(AllowScope),
    /// `status:N`.
    Status(u16),
    /// `redirect:URL`.
    Redirect(String),
    /// `t:name`.
    Transform(TransformName),
    /// `ctl:...`.
    Ctl(Ctl),
    /// `multiMatch`.
    MultiMatch,
    /// `log`.
    Log,
    /// `nolog`.
    NoLog,
    /// `auditlog`.
    AuditLog,
    /// `noauditlog`.
    NoAuditLog,
    /// `expirevar:...`, `initcol:...`, `setuid`, `setsid`, `sanitiseArg`, ...: accepted no-ops
    /// (persistent collections and audit logs do not exist in a proxy filter). Named so the
    /// compile report can list them.
    Accepted {
        /// The action name, spelled as in [`crate::seclang::ACCEPTED_ACTIONS`] (matching is
        /// case-insensitive).
        name: String,
        /// Its argument, if any.
        argument: Option<String>,
    },
}

/// The scope of `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowScope {
    /// `allow`: stop all further rule processing of the transaction.
    Transaction,
    /// `allow:phase`: skip the rest of the current phase.
    Phase,
    /// `allow:request`: skip the rest of the request phases.
    Request,
}
