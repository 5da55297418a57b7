//! Operators (`@rx`, `@pm`, `@detectSQLi`, ...): compiled once, matched per value.
//!
//! Negation (`!@`) and macro expansion are the engine's: an operator here gets a final
//! argument (the engine compiles operands with macros at run time, for the cheap operators).
//!
//! Every operator follows ModSecurity v3's `src/operators/<name>.cc` (read at
//! owasp-modsecurity/ModSecurity); the doc of each [`OperatorName`] arm in
//! [`CompiledOperator::compile`] says where this differs and why.

mod ip;
mod pcre;
mod pm;
mod rx;
pub mod sqli;

pub use ip::IpList;
pub use pm::{parse_phrase_file, parse_pm_argument, PhraseSet};
pub use rx::{
    crs_backslashes, FallbackReason, LiteralPosition, RequiredLiterals, RxMatcher,
    FALLBACK_BACKTRACK_LIMIT,
};

use crate::ast::OperatorName;
use crate::seclang::RuleSource;
use memchr::memmem;
use std::fmt;

/// Up to ten captures (`TX:0`..`TX:9`) from a match, for the `capture` action.
///
/// [`CompiledOperator::matches`] clears `groups` first; it stays empty for operators that set
/// no captures in ModSecurity (everything except `@rx`, `@pm`/`@pmFromFile`, `@detectSQLi`
/// and `@detectXSS`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captures {
    /// `groups[i]` is `TX:i`; `None` when the group did not take part.
    pub groups: Vec<Option<Vec<u8>>>,
}

/// A compiled operator.
#[derive(Debug)]
pub struct CompiledOperator {
    name: OperatorName,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Rx(RxMatcher),
    Phrases(PhraseSet),
    /// `@streq`.
    Equals(Vec<u8>),
    /// `@beginsWith`.
    Prefix(Vec<u8>),
    /// `@endsWith`.
    Suffix(Vec<u8>),
    /// `@contains`, `@strmatch`.
    Substring(memmem::Finder<'static>),
    /// `@within`: the input is searched in the argument.
    Within(Vec<u8>),
    ContainsWord(Vec<u8>),
    /// The argument as `@eq` reads it (`std::stoi`) and as the others do (`atoll`).
    Compare(Comparison, i64),
    ByteRange(Box<[bool; 256]>),
    UrlEncoding,
    Utf8Encoding,
    Ip(IpList),
    Sqli,
    Xss,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Eq,
    Ge,
    Gt,
    Lt,
    Le,
}

/// Why an operator did not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorError {
    /// What was wrong (names the operator and the offending part of the argument).
    pub message: String,
}

impl fmt::Display for OperatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OperatorError {}

const NAMES: &[(OperatorName, &str)] = &[
    (OperatorName::Rx, "rx"),
    (OperatorName::Pm, "pm"),
    (OperatorName::PmFromFile, "pmFromFile"),
    (OperatorName::Pmf, "pmf"),
    (OperatorName::DetectSqli, "detectSQLi"),
    (OperatorName::DetectXss, "detectXSS"),
    (OperatorName::ValidateByteRange, "validateByteRange"),
    (OperatorName::ValidateUrlEncoding, "validateUrlEncoding"),
    (OperatorName::ValidateUtf8Encoding, "validateUtf8Encoding"),
    (OperatorName::Within, "within"),
    (OperatorName::Streq, "streq"),
    (OperatorName::BeginsWith, "beginsWith"),
    (OperatorName::EndsWith, "endsWith"),
    (OperatorName::Contains, "contains"),
    (OperatorName::ContainsWord, "containsWord"),
    (OperatorName::StrMatch, "strmatch"),
    (OperatorName::Eq, "eq"),
    (OperatorName::Ge, "ge"),
    (OperatorName::Gt, "gt"),
    (OperatorName::Lt, "lt"),
    (OperatorName::Le, "le"),
    (OperatorName::IpMatch, "ipMatch"),
    (OperatorName::IpMatchFromFile, "ipMatchFromFile"),
    (OperatorName::UnconditionalMatch, "unconditionalMatch"),
    (OperatorName::NoMatch, "noMatch"),
    (OperatorName::GeoLookup, "geoLookup"),
    (OperatorName::Rbl, "rbl"),
];

impl OperatorName {
    /// The name after `@` (case-insensitive), e.g. `rx`, `pmFromFile`. `ipMatchF` is
    /// ModSecurity's alias of `ipMatchFromFile` (as `pmf` is of `pmFromFile`, which has its own
    /// variant in the AST).
    pub fn from_name(name: &str) -> Option<OperatorName> {
        if name.eq_ignore_ascii_case("ipMatchF") {
            return Some(OperatorName::IpMatchFromFile);
        }
        NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(op, _)| *op)
    }

    /// The canonical SecLang name (without `@`).
    pub fn as_str(self) -> &'static str {
        NAMES
            .iter()
            .find(|(op, _)| *op == self)
            .map_or("?", |(_, n)| n)
    }
}

fn error(name: OperatorName, what: impl fmt::Display) -> OperatorError {
    OperatorError {
        message: format!("@{}: {what}", name.as_str()),
    }
}

impl CompiledOperator {
    /// Compiles `name` with its final `argument`; data files (`@pmFromFile`,
    /// `@ipMatchFromFile`) are read through `source`, resolved against `rule_file`.
    ///
    /// Semantics per operator (ModSecurity v3 source in brackets):
    /// - `@rx` (`rx.cc`, `utils/regex.cc`): PCRE2 with `DOTALL|MULTILINE`, bytes, ASCII classes;
    ///   an empty pattern matches everything; captures `TX:0..9` from the first match. See
    ///   [`RxMatcher`].
    /// - `@pm` (`pm.cc`, `acmp.cc`): see [`parse_pm_argument`] and [`PhraseSet`].
    /// - `@pmFromFile`/`@pmf` (`pm_from_file.cc`): one or more files separated by spaces (v3
    ///   reads exactly one; v2 and CRS docs allow several), see [`parse_phrase_file`].
    /// - `@streq`, `@beginsWith`, `@endsWith`, `@contains`, `@strmatch` (`str_eq.cc`, ...):
    ///   byte comparisons; an empty argument matches every input (except `@streq`).
    /// - `@within` (`within.cc`): the input is found inside the argument; an empty input
    ///   always matches.
    /// - `@containsWord` (`contains_word.cc`): see [`contains_word`].
    /// - `@eq` (`eq.cc`): both sides through `std::stoi` (see [`stoi`]); `@ge @gt @lt @le`
    ///   (`gt.cc`, ...): both sides through C `atoll` (see [`atoll`]).
    /// - `@validateByteRange` (`validate_byte_range.cc`): `N` or `A-B` items separated by
    ///   commas, 0..=255; matches when some byte is outside. ModSecurity ignores bad items
    ///   (and writes out of bounds for a bare number above 255); here they are errors.
    /// - `@validateUrlEncoding`, `@validateUtf8Encoding`: see [`invalid_url_encoding`] and
    ///   [`invalid_utf8`].
    /// - `@ipMatch`, `@ipMatchFromFile`: see [`IpList`].
    /// - `@detectSQLi`, `@detectXSS`: libinjection; SQLi by [`sqli::detect`] (hand-written,
    ///   allocation-free, agreeing exactly with the pure-Rust `libinjectionrs` port and reading
    ///   its keyword data), XSS by `libinjectionrs`; captures: the fingerprint for SQLi, the
    ///   whole input for XSS (as ModSecurity).
    /// - `@unconditionalMatch`: always; `@noMatch`: never.
    /// - `@geoLookup`, `@rbl`: accepted, never match (no GeoIP database, no DNS in a proxy
    ///   filter); with `!@` the engine's negation makes them always match.
    pub fn compile(
        name: OperatorName,
        argument: &str,
        source: &dyn RuleSource,
        rule_file: &str,
    ) -> Result<CompiledOperator, OperatorError> {
        let bytes = || argument.as_bytes().to_vec();
        let kind = match name {
            OperatorName::Rx => Kind::Rx(
                RxMatcher::compile(&crs_backslashes(argument)).map_err(|e| error(name, e))?,
            ),
            OperatorName::Pm => Kind::Phrases(
                PhraseSet::new(parse_pm_argument(argument).map_err(|e| error(name, e))?)
                    .map_err(|e| error(name, e))?,
            ),
            OperatorName::PmFromFile | OperatorName::Pmf => {
                let mut phrases = Vec::new();
                for file in argument.split_ascii_whitespace() {
                    let text = read_data_file(name, file, source, rule_file)?;
                    phrases.extend(parse_phrase_file(&text));
                }
                if argument.trim().is_empty() {
                    return Err(error(name, "no data file named"));
                }
                Kind::Phrases(PhraseSet::new(phrases).map_err(|e| error(name, e))?)
            }
            OperatorName::Streq => Kind::Equals(bytes()),
            OperatorName::BeginsWith => Kind::Prefix(bytes()),
            OperatorName::EndsWith => Kind::Suffix(bytes()),
            OperatorName::Contains | OperatorName::StrMatch => {
                Kind::Substring(memmem::Finder::new(argument.as_bytes()).into_owned())
            }
            OperatorName::Within => Kind::Within(bytes()),
            OperatorName::ContainsWord => Kind::ContainsWord(bytes()),
            OperatorName::Eq => Kind::Compare(Comparison::Eq, i64::from(stoi(argument.as_bytes()))),
            OperatorName::Ge => Kind::Compare(Comparison::Ge, atoll(argument.as_bytes())),
            OperatorName::Gt => Kind::Compare(Comparison::Gt, atoll(argument.as_bytes())),
            OperatorName::Lt => Kind::Compare(Comparison::Lt, atoll(argument.as_bytes())),
            OperatorName::Le => Kind::Compare(Comparison::Le, atoll(argument.as_bytes())),
            OperatorName::ValidateByteRange => {
                Kind::ByteRange(parse_byte_ranges(argument).map_err(|e| error(name, e))?)
            }
            OperatorName::ValidateUrlEncoding => Kind::UrlEncoding,
            OperatorName::ValidateUtf8Encoding => Kind::Utf8Encoding,
            OperatorName::IpMatch => Kind::Ip(IpList::parse(argument).map_err(|e| error(name, e))?),
            OperatorName::IpMatchFromFile => {
                let file = argument.trim();
                if file.is_empty() {
                    return Err(error(name, "no data file named"));
                }
                let text = read_data_file(name, file, source, rule_file)?;
                Kind::Ip(
                    IpList::parse_file(&text).map_err(|e| error(name, format!("{file}: {e}")))?,
                )
            }
            OperatorName::DetectSqli => {
                sqli::prepare();
                Kind::Sqli
            }
            OperatorName::DetectXss => Kind::Xss,
            OperatorName::UnconditionalMatch => Kind::Always,
            OperatorName::NoMatch | OperatorName::GeoLookup | OperatorName::Rbl => Kind::Never,
        };
        Ok(CompiledOperator { name, kind })
    }

    /// Does `input` match? With `captures`, fills them as ModSecurity's `capture` does for this
    /// operator (regex groups for `@rx`, the matched phrase for `@pm`, the fingerprint for
    /// `@detectSQLi`, ...). Never panics.
    pub fn matches(&self, input: &[u8], captures: Option<&mut Captures>) -> bool {
        let mut captures = captures;
        if let Some(c) = captures.as_deref_mut() {
            c.groups.clear();
        }
        match &self.kind {
            Kind::Rx(rx) => rx.matches(input, captures),
            Kind::Phrases(set) => set.matches(input, captures),
            Kind::Equals(s) => input == s.as_slice(),
            Kind::Prefix(s) => input.starts_with(s),
            Kind::Suffix(s) => input.ends_with(s),
            Kind::Substring(finder) => finder.find(input).is_some(),
            Kind::Within(s) => within(s, input),
            Kind::ContainsWord(word) => contains_word(input, word),
            Kind::Compare(op, param) => match op {
                Comparison::Eq => i64::from(stoi(input)) == *param,
                Comparison::Ge => atoll(input) >= *param,
                Comparison::Gt => atoll(input) > *param,
                Comparison::Lt => atoll(input) < *param,
                Comparison::Le => atoll(input) <= *param,
            },
            Kind::ByteRange(allowed) => input.iter().any(|&b| !allowed[usize::from(b)]),
            Kind::UrlEncoding => invalid_url_encoding(input),
            Kind::Utf8Encoding => invalid_utf8(input),
            Kind::Ip(list) => list.matches(input),
            Kind::Sqli => match sqli::detect(input) {
                Some(fingerprint) => {
                    if let Some(out) = captures {
                        out.groups.push(Some(fingerprint.as_bytes().to_vec()));
                    }
                    true
                }
                None => false,
            },
            Kind::Xss => {
                let found = xss_possible(input) && libinjectionrs::detect_xss(input).is_injection();
                if let (true, Some(out)) = (found, captures) {
                    out.groups.push(Some(input.to_vec()));
                }
                found
            }
            Kind::Always => true,
            Kind::Never => false,
        }
    }

    /// True when this `@rx` needed the backtracking fallback (PCRE-only syntax): the compile
    /// report lists these.
    pub fn uses_fallback_regex(&self) -> bool {
        matches!(&self.kind, Kind::Rx(rx) if rx.fallback().is_some())
    }

    /// The operator this was compiled from.
    pub fn name(&self) -> OperatorName {
        self.name
    }

    /// For `@rx`: the compiled pattern (its fallback reason and literal prefilter).
    pub fn rx(&self) -> Option<&RxMatcher> {
        match &self.kind {
            Kind::Rx(rx) => Some(rx),
            _ => None,
        }
    }

    /// For `@rx`: literals one of which every matching input contains, so an engine can skip
    /// the regex (e.g. one Aho-Corasick pass over all rules' literals). `None` when the
    /// pattern has no such finite set, or for other operators.
    pub fn required_literals(&self) -> Option<&RequiredLiterals> {
        self.rx().and_then(RxMatcher::required_literals)
    }

    /// For `@pm`/`@pmFromFile`: the phrases.
    pub fn phrases(&self) -> Option<&[Vec<u8>]> {
        match &self.kind {
            Kind::Phrases(set) => Some(set.phrases()),
            _ => None,
        }
    }
}

fn read_data_file(
    name: OperatorName,
    file: &str,
    source: &dyn RuleSource,
    rule_file: &str,
) -> Result<String, OperatorError> {
    let path = source.resolve(rule_file, file);
    source
        .read(&path)
        .map_err(|e| error(name, format!("cannot read data file `{path}`: {e}")))
}

/// C `atoll` (glibc `strtoll` base 10) as `@gt`/`@ge`/`@lt`/`@le` use it: leading C
/// whitespace, an optional sign, decimal digits up to the first non-digit (so also up to an
/// embedded NUL, as `c_str()` ends there); no digits gives 0; overflow saturates at
/// `i64::MIN`/`i64::MAX`.
pub fn atoll(text: &[u8]) -> i64 {
    let (negative, digits) = sign_and_digits(text);
    let mut value: i64 = 0;
    for &c in digits {
        let d = i64::from(c - b'0');
        value = match value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(d)
            } else {
                v.checked_add(d)
            }
        }) {
            Some(v) => v,
            None => return if negative { i64::MIN } else { i64::MAX },
        };
    }
    value
}

/// Skips C whitespace and a sign; returns the sign and the run of ASCII digits after it.
fn sign_and_digits(text: &[u8]) -> (bool, &[u8]) {
    let mut rest = text;
    while let [b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r', tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest {
        [b'-', tail @ ..] => {
            rest = tail;
            true
        }
        [b'+', tail @ ..] => {
            rest = tail;
            false
        }
        _ => false,
    };
    let end = rest
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (negative, &rest[..end])
}

/// C++ `std::stoi` as `@eq` uses it, with their `catch (...)` giving
/// 0: leading C whitespace, an optional sign, decimal digits up to the first non-digit. No
/// digits, or a value outside `i32`, gives 0.
pub fn stoi(text: &[u8]) -> i32 {
    let (negative, digits) = sign_and_digits(text);
    let mut value: i64 = 0;
    for &c in digits {
        value = value * 10 + i64::from(c - b'0');
        if value > i64::from(i32::MAX) + 1 {
            return 0;
        }
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).unwrap_or(0)
}

/// `@containsWord` as `ContainsWord::evaluate`: an empty word always matches, an empty input
/// never; otherwise an occurrence counts when the bytes around it are not ASCII letters — only
/// `A-Z`/`a-z` are word characters there (digits and `_` are boundaries), and the start/end of
/// the input are boundaries only through the first/last-position special cases.
pub fn contains_word(input: &[u8], word: &[u8]) -> bool {
    if word.is_empty() {
        return true;
    }
    if input.is_empty() {
        return false;
    }
    if input == word {
        return true;
    }
    // ModSecurity's acceptableChar: out of range is NOT acceptable.
    let acceptable = |pos: Option<usize>| match pos.and_then(|p| input.get(p)) {
        Some(c) => !c.is_ascii_alphabetic(),
        None => false,
    };
    let finder = memmem::Finder::new(word);
    let mut from = 0;
    while let Some(found) = input.get(from..).and_then(|rest| finder.find(rest)) {
        let pos = from + found;
        let after = pos + word.len();
        if pos == 0 && acceptable(Some(word.len())) {
            return true;
        }
        if after == input.len() && acceptable(pos.checked_sub(1)) {
            return true;
        }
        if acceptable(pos.checked_sub(1)) && acceptable(Some(after)) {
            return true;
        }
        from = pos + 1;
    }
    false
}

/// `@validateUrlEncoding` (`ValidateUrlEncoding::validate_url_encoding`): true (a match) when
/// a `%` is not followed by two hex digits, including a `%` in the last two bytes. An empty
/// input does not match.
pub fn invalid_url_encoding(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            match (input.get(i + 1), input.get(i + 2)) {
                (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => i += 3,
                _ => return true,
            }
        } else {
            i += 1;
        }
    }
    false
}

/// `@validateUtf8Encoding` (`ValidateUtf8Encoding::detect_utf8_character`): true (a match) on
/// a truncated sequence, a bad continuation byte, a lead byte `0x80..=0xBF` or `0xF8..`, a lead
/// `0xF5..=0xF7`, an overlong form, or a surrogate (U+D800..U+DFFF). Like ModSecurity, a
/// four-byte sequence from `0xF4 0x90` up (U+110000..U+13FFFF) is NOT rejected.
pub fn invalid_utf8(input: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&c) = input.get(i) {
        let (len, initial) = match c {
            0x00..=0x7F => {
                i += 1;
                continue;
            }
            _ if c & 0xE0 == 0xC0 => (2, u32::from(c & 0x1F)),
            _ if c & 0xF0 == 0xE0 => (3, u32::from(c & 0x0F)),
            _ if c & 0xF8 == 0xF0 => {
                if c >= 0xF5 {
                    return true;
                }
                (4, u32::from(c & 0x07))
            }
            _ => return true,
        };
        let Some(tail) = input.get(i + 1..i + len) else {
            return true;
        };
        let mut code = initial;
        for &t in tail {
            if t & 0xC0 != 0x80 {
                return true;
            }
            code = code << 6 | u32::from(t & 0x3F);
        }
        if (0xD800..=0xDFFF).contains(&code) {
            return true;
        }
        let overlong = match len {
            2 => code < 0x80,
            3 => code < 0x800,
            _ => code < 0x10000,
        };
        if overlong {
            return true;
        }
        i += len;
    }
    false
}

/// `@validateByteRange`'s argument: `N` or `A-B` items separated by commas (spaces around
/// numbers allowed, as `std::stoi` skips leading ones).
fn parse_byte_ranges(argument: &str) -> Result<Box<[bool; 256]>, String> {
    let mut allowed = Box::new([false; 256]);
    let number = |text: &str| -> Result<u8, String> {
        let t = text.trim();
        let value: u32 = t
            .parse()
            .map_err(|_| format!("`{t}` is not a number (in `{argument}`)"))?;
        u8::try_from(value).map_err(|_| format!("{value} is outside 0-255 (in `{argument}`)"))
    };
    for item in argument.split(',') {
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let n = number(item)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!("invalid range {lo}-{hi} (in `{argument}`)"));
        }
        for b in lo..=hi {
            allowed[usize::from(b)] = true;
        }
    }
    Ok(allowed)
}

/// `@within`: `needle` (the value) occurs in `hay` (the operand); an empty value does. A
/// value is short and CRS's operands are word lists of a few hundred bytes: candidates at its
/// first byte compared in place, instead of building a `memmem` searcher for every value
/// (0.6% of a benign GET, CRS runs `@within` on every header name and the method, protocol,
/// content type and extension).
fn within(hay: &[u8], needle: &[u8]) -> bool {
    match needle {
        [] => true,
        [first, ..] if needle.len() <= 64 => {
            memchr::memchr_iter(*first, hay).any(|i| hay.get(i..i + needle.len()) == Some(needle))
        }
        _ => memmem::find(hay, needle).is_some(),
    }
}

/// Whether libinjection's XSS check can find anything in `input`: not without a `<` or an
/// `=`. It reports XSS on a doctype, a tag, a comment (all need `<`: its HTML5 tokenizer
/// enters a tag only there), or on an attribute's value after a blacklisted attribute name,
/// and a value follows a name only after `=` (in the four attribute-value contexts it also
/// tries, the value the input starts in follows no name). Benign arguments and headers
/// rarely hold either byte, and the check ran its tokenizer five times over each (4% of a
/// benign request's instructions). `xss_needs_lt_or_eq` checks this against libinjectionrs.
fn xss_possible(input: &[u8]) -> bool {
    memchr::memchr2(b'<', b'=', input).is_some()
}

#[cfg(test)]
mod tests;
