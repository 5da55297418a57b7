//! `@rx`: one compiled regex per rule, with ModSecurity v3's semantics (PCRE2 with
//! `DOTALL|MULTILINE`, byte mode, captures from the first match only).
//!
//! Patterns run on `regex::bytes` (linear time). A pattern that needs a PCRE-only construct
//! runs on `fancy-regex` with a bounded backtracking budget instead; [`RxMatcher::fallback`]
//! says which and why, so the compile report can list them. CRS v3.3.4: 920120 (look-behind),
//! 920600 and 942260 (possessive quantifiers), 942130 (look-ahead + back-reference), 953120
//! (look-ahead); CRS v4.28.0: none.
//!
//! Checked against real PCRE2 (`waf/tools/pcre2_oracle.c` + the `rx_pcre_diff` example): every
//! CRS v3.3.4 and v4.28.0 `@rx` over 5,465 values from the CRS v3.3.4 regression corpus gives
//! the same match decision. Known differences that remain:
//! - `TX:0` may differ where `regex-syntax` factors a common prefix out of an alternation with
//!   a greedy repetition (`\][^\]]+$|\][^\]]+\[`, CRS 921210: PCRE2 ends at the first
//!   alternative's `$`, `regex` takes the second alternative); the decision is the same;
//! - a fallback pattern over its backtracking budget does not match (PCRE2's match limit gives
//!   the same "no match", at a different point);
//! - inside `(?-m)`, `^` and `$` keep Rust's reading (`$` not before a final newline); CRS
//!   never turns multi-line off;
//! - `(?x)`, `\K`, `\g`, recursion, conditionals, `(*VERBS)`, `\p`, `\X`, `\C` are
//!   rejected with an error (CRS uses none of them);
//! - `[\w-.]` is read as PCRE1/Perl do (a literal `-`); PCRE2 10.42 rejects it.

use super::pcre::{translate, translate_greedy, StartOfLine};
use super::Captures;
use regex_automata::meta;
use regex_automata::Input;
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::Hir;
use std::sync::OnceLock;

/// How many backtracking steps a `fancy-regex` fallback may take per input before it gives
/// up; giving up counts as "no match", as ModSecurity treats PCRE's match-limit error.
pub const FALLBACK_BACKTRACK_LIMIT: usize = 1_000_000;

/// The compiled-program budget of one `regex` (the largest CRS patterns need a few MiB with
/// Unicode off; this bounds a hostile rule set, not CRS).
const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Why a pattern runs on the backtracking fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackReason {
    /// The PCRE-only constructs found (e.g. `look-behind`, `back-reference`), or empty when
    /// `regex` rejected the translated pattern for another reason.
    pub constructs: Vec<&'static str>,
    /// `regex`'s own error, when it rejected a pattern without PCRE-only constructs.
    pub regex_error: Option<String>,
}

/// What an input must contain before a pattern can match it: every match of the pattern
/// starts (or, with [`LiteralPosition::Suffix`], ends) with one of `literals`, compared
/// ASCII-case-insensitively (the literals are lowercased and deduplicated, so `(?i)union`
/// gives one literal instead of 32 case variants; folding only widens the condition, so it
/// stays necessary). An engine may skip the regex when none of them occurs in the input, e.g.
/// with one case-insensitive Aho-Corasick automaton over all rules' literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredLiterals {
    /// Non-empty lowercase byte strings; at least one occurs (ignoring ASCII case) in any
    /// matching input.
    pub literals: Vec<Vec<u8>>,
    /// Where in a match the literal sits.
    pub position: LiteralPosition,
}

/// Where a required literal sits in a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralPosition {
    /// Every match starts with one of the literals.
    Prefix,
    /// Every match ends with one of the literals.
    Suffix,
    /// Every match contains one of the literals somewhere (the pattern has neither a finite
    /// prefix nor a finite suffix set: `[\s\S](?:xlink:href|@import|...)`).
    Inner,
}

#[derive(Debug)]
enum Engine {
    Linear(meta::Regex),
    Backtracking(fancy_regex::Regex),
}

/// The pattern CRS meant where a rule writes a literal backslash as `\\\\` (four
/// backslashes): one escaped backslash `\\`, not two.
///
/// CRS 3.3 was written and tested under Apache, whose config parser turns `\\\\` in a
/// directive argument into `\\` before ModSecurity v2 compiles it; ModSecurity v3 reads the
/// argument verbatim, so the same text asks for two backslashes in a row. CRS 3.3.4 spells a
/// literal backslash `\\\\` outside a class in 920460, 932190, 933100, 941330, 942330 and
/// 954100 (its tests expect one: 920460-1..3 fire on `\c`, 920460-4 must not on `\\c`,
/// 941330-1 fires on `\u0076...`), and `\\` elsewhere (`[\\/]` in 930110: a backslash or a
/// slash); CRS v4 writes every one of them `\x5c`. So both spellings read as one backslash
/// here: each run of four backslashes becomes two, anything else is kept. A rule that needs
/// two backslashes in a row writes `\x5c\x5c` or `\\{2}`. ModSecurity v3 differs on these
/// rules; the differential test (`tests/src/differential.rs`) classifies those differences.
pub fn crs_backslashes(pattern: &str) -> std::borrow::Cow<'_, str> {
    if !pattern.contains(r"\\\\") {
        return std::borrow::Cow::Borrowed(pattern);
    }
    std::borrow::Cow::Owned(pattern.replace(r"\\\\", r"\\"))
}

/// A compiled `@rx` pattern.
#[derive(Debug)]
pub struct RxMatcher {
    engine: Engine,
    translated: String,
    fallback: Option<FallbackReason>,
    required: Option<RequiredLiterals>,
    /// `@rx ""` matches everything without running a regex (ModSecurity's `Rx::evaluate`).
    empty: bool,
    /// `@rx ^.*$` (CRS 920450 on every header name, 901318 on the User-Agent): on an input
    /// without a newline, the whole input is the match, no regex run.
    whole_line: bool,
    /// For a `regex` pattern with `^`: the original pattern, and (built on first need) its
    /// PCRE-exact form on fancy-regex, consulted only when the input ends in `\n` and
    /// `regex` matched (Rust's multi-line `^` also matches after a final newline; PCRE's
    /// does not, e.g. CRS's `@rx ^$` on `"x\n"`).
    start_of_line: Option<(String, OnceLock<Option<fancy_regex::Regex>>)>,
    /// For a fallback pattern whose only PCRE-only construct is possessive quantifiers on
    /// single bytes: the pattern with greedy quantifiers on `regex`, and the bytes those
    /// quantifiers' operands match. On an input holding none of them (and not ending in a
    /// newline, where `^` differs) it decides as the fallback does, in linear time (see
    /// `pcre::translate_greedy`).
    greedy: Option<(meta::Regex, [u64; 4])>,
}

impl RxMatcher {
    /// Compiles `pattern` (as written in the rule, macros already expanded).
    pub fn compile(pattern: &str) -> Result<RxMatcher, String> {
        let translated = translate(pattern, StartOfLine::Rust)?;
        let linear_error = if translated.pcre_only.is_empty() {
            match build_linear(&translated.pattern) {
                Ok((regex, required)) => {
                    return Ok(RxMatcher {
                        required,
                        engine: Engine::Linear(regex),
                        translated: translated.pattern,
                        fallback: None,
                        empty: pattern.is_empty(),
                        whole_line: pattern == "^.*$",
                        start_of_line: translated
                            .has_start_of_line
                            .then(|| (pattern.to_string(), OnceLock::new())),
                        greedy: None,
                    })
                }
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let exact = translate(pattern, StartOfLine::Exact)?;
        let regex = build_backtracking(&exact.pattern).map_err(|e| match &linear_error {
            Some(le) => format!("regex: {le}; fancy-regex: {e}"),
            None => format!("fancy-regex: {e}"),
        })?;
        let (greedy, required) = match translated.pcre_only.as_slice() {
            ["possessive quantifier"] => match translate_greedy(pattern) {
                Ok(g) => match (g.possessive_operands, build_linear(&g.pattern)) {
                    (Some(bytes), Ok((re, required))) => (Some((re, bytes)), required),
                    _ => (None, None),
                },
                Err(_) => (None, None),
            },
            _ => (None, None),
        };
        Ok(RxMatcher {
            engine: Engine::Backtracking(regex),
            translated: exact.pattern,
            fallback: Some(FallbackReason {
                constructs: translated.pcre_only,
                regex_error: linear_error,
            }),
            required,
            empty: false,
            whole_line: false,
            start_of_line: None,
            greedy,
        })
    }

    /// The PCRE-exact form of a `regex` pattern with `^`, when `input` needs it.
    fn exact_start_of_line(&self, input: &[u8]) -> Option<&fancy_regex::Regex> {
        let (pattern, exact) = self.start_of_line.as_ref()?;
        if input.last() != Some(&b'\n') {
            return None;
        }
        exact
            .get_or_init(|| {
                translate(pattern, StartOfLine::Exact)
                    .ok()
                    .and_then(|t| build_backtracking(&t.pattern).ok())
            })
            .as_ref()
    }

    /// The pattern as compiled: PCRE syntax translated for `regex::bytes` with Unicode off,
    /// multi-line and dot-matches-newline on (what both engines run).
    pub fn translated_pattern(&self) -> &str {
        &self.translated
    }

    /// Why this pattern needed the backtracking fallback (`None`: it runs on `regex`).
    pub fn fallback(&self) -> Option<&FallbackReason> {
        self.fallback.as_ref()
    }

    /// The literal prefilter for this pattern, when one exists.
    pub fn required_literals(&self) -> Option<&RequiredLiterals> {
        self.required.as_ref()
    }

    /// Does the pattern match `input`? With `captures`, groups 0..=9 of the first match.
    pub fn matches(&self, input: &[u8], captures: Option<&mut Captures>) -> bool {
        if self.empty {
            return true;
        }
        if self.whole_line && !input.contains(&b'\n') {
            if let Some(out) = captures {
                out.groups.push(Some(input.to_vec()));
            }
            return true;
        }
        match (&self.engine, captures) {
            (Engine::Linear(re), captures) if self.start_of_line.is_some() => {
                match (re.is_match(input), self.exact_start_of_line(input)) {
                    (false, _) => false,
                    (true, Some(exact)) => match exact.is_match(input) {
                        Ok(false) => false,
                        Ok(true) if captures.is_none() => true,
                        Ok(true) => backtracking_match(exact, input, captures),
                        // Over the backtracking budget: keep `regex`'s answer.
                        Err(_) => linear_match(re, input, captures),
                    },
                    (true, None) => linear_match(re, input, captures),
                }
            }
            (Engine::Linear(re), captures) => linear_match(re, input, captures),
            (Engine::Backtracking(re), captures) => match &self.greedy {
                Some((greedy, bytes))
                    if input.last() != Some(&b'\n')
                        && !input
                            .iter()
                            .any(|&b| bytes[usize::from(b >> 6)] >> (b & 63) & 1 != 0) =>
                {
                    linear_match(greedy, input, captures)
                }
                _ => backtracking_match(re, input, captures),
            },
        }
    }
}

/// The byte-mode translation on fancy-regex: its ASCII bytes mode reads the pattern as
/// `regex` does, and hands the parts without PCRE-only constructs to `regex`.
fn build_backtracking(pattern: &str) -> Result<fancy_regex::Regex, fancy_regex::Error> {
    fancy_regex::RegexBuilder::new(pattern)
        .bytes_mode(fancy_regex::BytesMode::Ascii)
        .multi_line(true)
        .dot_matches_new_line(true)
        .backtrack_limit(FALLBACK_BACKTRACK_LIMIT)
        .delegate_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// What `regex::bytes::RegexBuilder` builds (leftmost-first, empty matches anywhere in the
/// bytes, its 2 MiB lazy-DFA cache), from the pattern parsed once: the same HIR gives the
/// required literals, instead of a second parse. Configure time (CRS v3.3.4, callgrind) went
/// mostly to building regexes; two parts of it are left out:
/// - the full (dense) DFA `regex` builds for small patterns: the lazy DFA runs them, and
///   values are short;
/// - `regex`'s own literal prefilters (prefix, reverse-suffix and reverse-inner literal
///   searches): the engine's literal prefilter over all rules already rules out values
///   without a pattern's required literals before any regex runs, and a value that gets to a
///   regex is short. Per request the cost barely moved (callgrind: benign GET and
///   SQLi GET +1.2%, 4 KiB JSON -0.2%); configure time halved with both.
///
/// Match semantics are the same (the same NFA, leftmost-first).
fn build_linear(translated: &str) -> Result<(meta::Regex, Option<RequiredLiterals>), String> {
    let hir = parse_translated(translated)?;
    let config = meta::Config::new()
        .match_kind(regex_automata::MatchKind::LeftmostFirst)
        .utf8_empty(false)
        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
        .hybrid_cache_capacity(2 * (1 << 20))
        .dfa(false)
        .auto_prefilter(false);
    let regex = meta::Builder::new()
        .configure(config)
        .build_from_hir(&hir)
        .map_err(|e| match (e.size_limit(), e.syntax_error()) {
            // `regex`'s own wording of the same errors.
            (Some(limit), _) => format!("Compiled regex exceeds size limit of {limit} bytes."),
            (None, Some(syntax)) => syntax.to_string(),
            (None, None) => e.to_string(),
        })?;
    Ok((regex, required_literals_of(&hir)))
}

/// The translated pattern as `regex::bytes` reads it (Unicode off, bytes, multi-line,
/// dot-matches-newline).
fn parse_translated(translated: &str) -> Result<Hir, String> {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .multi_line(true)
        .dot_matches_new_line(true)
        .build()
        .parse(translated)
        .map_err(|e| e.to_string())
}

fn linear_match(re: &meta::Regex, input: &[u8], captures: Option<&mut Captures>) -> bool {
    match captures {
        None => re.is_match(input),
        Some(out) => {
            let mut locations = re.create_captures();
            re.search_captures(&Input::new(input), &mut locations);
            if !locations.is_match() {
                return false;
            }
            for group in 0..locations.group_len().min(10) {
                out.groups.push(
                    locations
                        .get_group(group)
                        .and_then(|span| input.get(span.range()))
                        .map(<[u8]>::to_vec),
                );
            }
            true
        }
    }
}

fn backtracking_match(
    re: &fancy_regex::Regex,
    input: &[u8],
    captures: Option<&mut Captures>,
) -> bool {
    let Some(out) = captures else {
        // An exceeded backtracking budget is PCRE's match-limit error: no match.
        return re.is_match(input).unwrap_or(false);
    };
    let Ok(Some(found)) = re.captures(input) else {
        return false;
    };
    for group in 0..found.len().min(10) {
        out.groups
            .push(found.get(group).map(|m| m.as_bytes().to_vec()));
    }
    true
}

/// Prefix (else suffix) literals every match must carry, from `regex-syntax`'s extractor.
fn required_literals_of(hir: &Hir) -> Option<RequiredLiterals> {
    for (kind, position) in [
        (ExtractKind::Prefix, LiteralPosition::Prefix),
        (ExtractKind::Suffix, LiteralPosition::Suffix),
    ] {
        let seq = Extractor::new().kind(kind).extract(hir);
        let Some(literals) = seq.literals() else {
            continue;
        };
        if literals.is_empty() || literals.iter().any(|l| l.as_bytes().is_empty()) {
            continue;
        }
        let mut folded: Vec<Vec<u8>> = literals
            .iter()
            .map(|l| l.as_bytes().to_ascii_lowercase())
            .collect();
        folded.sort();
        folded.dedup();
        return Some(RequiredLiterals {
            literals: folded,
            position,
        });
    }
    inner_literals(&fold_case(hir), 0).map(|c| RequiredLiterals {
        literals: c.literals,
        position: LiteralPosition::Inner,
    })
}

/// Most literals an inner set may have (the plan's automaton holds every rule's).
const INNER_MAX_LITERALS: usize = 256;
/// How deep [`inner_literals`] descends into groups and alternations.
const INNER_MAX_DEPTH: usize = 12;
/// How many positions of a concatenation [`inner_literals`] tries.
const INNER_MAX_POSITIONS: usize = 24;

/// A literal set every match of some expression contains, with how good it is as a filter.
struct Candidate {
    /// Lowercase, deduplicated, non-empty.
    literals: Vec<Vec<u8>>,
    /// The shortest literal's length.
    shortest: usize,
}

impl Candidate {
    fn new(mut literals: Vec<Vec<u8>>) -> Option<Candidate> {
        for l in &mut literals {
            l.make_ascii_lowercase();
        }
        literals.sort();
        literals.dedup();
        let shortest = literals.iter().map(Vec::len).min()?;
        (shortest > 0 && literals.len() <= INNER_MAX_LITERALS)
            .then_some(Candidate { literals, shortest })
    }

    /// Longer literals filter better (up to 4 bytes), then fewer of them.
    fn better_than(&self, other: &Candidate) -> bool {
        let key = |c: &Candidate| (c.shortest.min(4), std::cmp::Reverse(c.literals.len()));
        key(self) > key(other)
    }
}

/// The literals of `hir`'s prefix extraction, when finite and non-empty.
fn prefix_candidate(hir: &Hir) -> Option<Candidate> {
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let literals = seq.literals()?;
    Candidate::new(literals.iter().map(|l| l.as_bytes().to_vec()).collect())
}

/// `hir` with ASCII case folded: literals lowercased, a class of one letter in both cases
/// (what `(?i)` makes of each letter) a lowercase literal. Only for literal extraction: the
/// lowercased matches of `hir` are matches of the result, and the engine's literal scan
/// ignores ASCII case; `(?i)xlink:href` is one literal instead of 2^9 variants (more than
/// the extractor keeps whole).
fn fold_case(hir: &Hir) -> Hir {
    use regex_syntax::hir::{Capture, Class, HirKind, Repetition};
    match hir.kind() {
        HirKind::Literal(l) => Hir::literal(l.0.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => {
            let bytes: Vec<u8> = c
                .ranges()
                .iter()
                .flat_map(|r| r.start()..=r.end())
                .take(3)
                .collect();
            match bytes.as_slice() {
                [a, b] if a.is_ascii_uppercase() && a.to_ascii_lowercase() == *b => {
                    Hir::literal([*b])
                }
                _ => hir.clone(),
            }
        }
        HirKind::Concat(parts) => Hir::concat(parts.iter().map(fold_case).collect()),
        HirKind::Alternation(parts) => Hir::alternation(parts.iter().map(fold_case).collect()),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(fold_case(&c.sub)),
        }),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(fold_case(&r.sub)),
        }),
        _ => hir.clone(),
    }
}

/// A set of literals one of which every match of `hir` contains somewhere, for patterns with
/// no finite prefix or suffix set. Sound by construction:
/// - a match of a concatenation contains a match of each of its parts, and a match of the
///   parts from the `i`-th on, which starts with one of their prefix literals;
/// - a match of an alternation is a match of one branch: the union of the branches' sets;
/// - a group, or a repetition taken at least once, contains a match of its body.
///
/// Anything else (a class, an anchor, an optional part) gives none. The best candidate
/// ([`Candidate::better_than`]) is kept.
fn inner_literals(hir: &Hir, depth: usize) -> Option<Candidate> {
    use regex_syntax::hir::HirKind;
    if depth > INNER_MAX_DEPTH {
        return None;
    }
    let pick = |best: Option<Candidate>, c: Option<Candidate>| match (best, c) {
        (Some(b), Some(c)) => Some(if c.better_than(&b) { c } else { b }),
        (b, c) => b.or(c),
    };
    match hir.kind() {
        HirKind::Literal(l) => Candidate::new(vec![l.0.to_vec()]),
        HirKind::Capture(c) => inner_literals(&c.sub, depth + 1),
        HirKind::Repetition(r) if r.min > 0 => inner_literals(&r.sub, depth + 1),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(inner_literals(b, depth + 1)?.literals);
            }
            Candidate::new(all)
        }
        HirKind::Concat(parts) => {
            let mut best = None;
            for i in 0..parts.len().min(INNER_MAX_POSITIONS) {
                if matches!(parts[i].kind(), HirKind::Look(_)) {
                    continue;
                }
                let rest = Hir::concat(parts[i..].to_vec());
                best = pick(best, prefix_candidate(&rest));
                best = pick(best, inner_literals(&parts[i], depth + 1));
            }
            best
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Possessive patterns with the shapes of CRS 3.3's 920600 (`\s*+` before a class that
    /// also takes whitespace, under `^...$`) and 942260 (a possessive class), and small ones.
    const POSSESSIVE: &[&str] = &[
        r#"^(?:\*|[^"(),/:;<=>?!\x5c\]{}]+)/(?:\*|[^"(),/:;<=>?!\x5c\]{}]+)(?:\s*+;\s*+(?:charset\s*+=\s*+utf-8|[^c"(),/:;<=>?!\x5c\]{}][^"(),/:;<=>?!\x5c\]{}]*\s*+=\s*+[^(),/:;<=>?!\x5c\]{}]+|;?))*(?:\s*+,\s*+(?:\*|[^"(),/:;<=>?!\x5c\]{}]+)/(?:\*|[^"(),/:;<=>?!\x5c\]{}]+))*$"#,
        r#"(?i:[\"'`]\s*?(?:x?or|and)\s+[\s\w]+=|[^?\w\s=.,;)(]++\s*?[(@\"'`]*?\s*?\w+\W+\w)"#,
        r"^a\s*+b",
        r"(?i)x[^y]++y",
        r"a?+ab",
        r"(\d{2,}+)z",
    ];

    /// The fallback's own answer (what the greedy path must reproduce).
    fn on_fallback(m: &RxMatcher, input: &[u8]) -> (bool, Vec<Option<Vec<u8>>>) {
        let Engine::Backtracking(re) = &m.engine else {
            panic!("not a fallback pattern");
        };
        let mut caps = Captures::default();
        let hit = backtracking_match(re, input, Some(&mut caps));
        (hit, caps.groups)
    }

    #[test]
    fn greedy_translation_names_the_possessive_operands() {
        let bytes = |p: &str| translate_greedy(p).unwrap().possessive_operands;
        let set = |bs: &[u8]| {
            let mut s = [0u64; 4];
            for &b in bs {
                s[usize::from(b >> 6)] |= 1 << (b & 63);
            }
            Some(s)
        };
        assert_eq!(bytes(r"a*+b"), set(b"aA"));
        assert_eq!(bytes(r"x\s*+;y?+"), set(b"\t\n\x0b\x0c\r yY"));
        assert_eq!(bytes(r"a*b+"), set(b""));
        assert_eq!(bytes(r"(?:ab)++c"), None);
        assert_eq!(translate_greedy(r"a*+b").unwrap().pattern, "a*b");
        // Every pattern above takes the greedy path on inputs without its operand bytes.
        for p in POSSESSIVE {
            let m = RxMatcher::compile(p).unwrap();
            assert!(m.fallback().is_some() && m.greedy.is_some(), "{p}");
        }
        // A possessive pattern gets the greedy pattern's required literals as its prefilter.
        let m = RxMatcher::compile(r"(?i)[^?\w\s=.,;)(]++\s*?having\b").unwrap();
        assert_eq!(
            m.required_literals().map(|r| r.literals.clone()),
            Some(vec![b"having".to_vec()])
        );
    }

    #[test]
    fn greedy_path_differs_from_possessive_where_whitespace_is_given_back() {
        // `; =x`: greedy `\s*` gives the space back to `[^c...]`; possessive `\s*+` keeps it,
        // so only the greedy pattern matches. The input holds whitespace: the fallback decides.
        let m = RxMatcher::compile(POSSESSIVE[0]).unwrap();
        let input = b"text/html; =x";
        assert!(!on_fallback(&m, input).0);
        assert!(!m.matches(input, None));
        let Some((greedy, _)) = &m.greedy else {
            panic!("greedy path");
        };
        assert!(greedy.is_match(input));
        assert!(m.matches(b"text/html;q=0.9,*/*", None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn greedy_path_decides_and_captures_as_the_fallback(
            chunks in proptest::collection::vec(
                proptest::sample::select(vec![
                    "text/html", "*/*", "*", "/", ";", ",", "=", " ", "\t", "charset", "utf-8",
                    "q=0.9", "c", "x", "y", "a", "b", "z", "12", "3", "@", "'", "\"", "(", "-",
                    "or", "AND", "\n", "{", "X", "Y",
                ]),
                0..10,
            )
        ) {
            let input = chunks.concat().into_bytes();
            for p in POSSESSIVE {
                let m = RxMatcher::compile(p).unwrap();
                let mut caps = Captures::default();
                let hit = m.matches(&input, Some(&mut caps));
                prop_assert_eq!((hit, caps.groups), on_fallback(&m, &input), "{}", p);
                prop_assert_eq!(m.matches(&input, None), hit);
            }
        }
    }
}
