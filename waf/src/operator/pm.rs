//! `@pm` / `@pmFromFile`: case-insensitive phrase sets on one Aho-Corasick automaton, with
//! ModSecurity v3's phrase parsing (`parse_pm_content` in `src/utils/acmp.cc`, `PmFromFile::init`).

use super::Captures;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use std::sync::OnceLock;

/// Most phrase bytes a set may hold: far beyond CRS's largest data file (~20 KB), and small
/// enough that building the automaton cannot fail (aho-corasick fails only past 2^31 states,
/// at most one per phrase byte), so it can be built on first use.
const MAX_PHRASE_BYTES: usize = 64 << 20;

/// A compiled phrase set.
#[derive(Debug)]
pub struct PhraseSet {
    /// Built on first use: the engine's plan-wide literal prefilter already holds every
    /// phrase, and runs this operator only on values where one of them occurs, so most sets
    /// (CRS 3.3.4 has ~40, 10% of configure time) are never needed by benign traffic.
    automaton: OnceLock<Option<AhoCorasick>>,
    phrases: Vec<Vec<u8>>,
}

impl PhraseSet {
    /// Checks the set (the automaton is built on first use). ModSecurity's ACMP lowercases
    /// pattern and input bytes with the C locale's `tolower`, i.e. ASCII-only case folding,
    /// which is what `ascii_case_insensitive` does. `Standard` match semantics report the
    /// match that ends first, as ACMP's scan does.
    pub fn new(phrases: Vec<Vec<u8>>) -> Result<PhraseSet, String> {
        let bytes: usize = phrases.iter().map(Vec::len).sum();
        if bytes > MAX_PHRASE_BYTES {
            return Err(format!(
                "cannot build the phrase automaton: {bytes} bytes of phrases, over {MAX_PHRASE_BYTES}"
            ));
        }
        Ok(PhraseSet {
            automaton: OnceLock::new(),
            phrases,
        })
    }

    fn automaton(&self) -> Option<&AhoCorasick> {
        self.automaton
            .get_or_init(|| {
                // The contiguous NFA: a fraction of a DFA's memory (aho-corasick picks a DFA
                // for small sets), and this scan runs only on values the prefilter let through.
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(&self.phrases)
                    .ok()
            })
            .as_ref()
    }

    /// The phrases, as parsed.
    pub fn phrases(&self) -> &[Vec<u8>] {
        &self.phrases
    }

    /// Does any phrase occur in `input`? With `captures`, `TX:0` is the phrase found (as
    /// written in the rule or data file).
    pub fn matches(&self, input: &[u8], captures: Option<&mut Captures>) -> bool {
        // Never `None` within MAX_PHRASE_BYTES (see there).
        let Some(found) = self.automaton().and_then(|a| a.find(input)) else {
            return false;
        };
        if let Some(out) = captures {
            let phrase = self.phrases.get(found.pattern().as_usize()).cloned();
            out.groups.push(phrase);
        }
        true
    }
}

/// `@pm`'s argument: optionally in double quotes, `|hex|` byte sequences, `\` escaping one of
/// `: ; \ "`, then split on whitespace.
///
/// ModSecurity v3's `parse_pm_content` compares hex digits against the integers 0..9 instead
/// of the characters '0'..'9' (so `|41|` loses its digits); CRS never uses `|hex|` in `@pm`, so
/// this follows the intended (v2) reading: pairs of hex digits become bytes. An empty argument
/// gives an empty set (never matches), as in ModSecurity.
pub fn parse_pm_argument(argument: &str) -> Result<Vec<Vec<u8>>, String> {
    let trimmed = argument.trim_start_matches([' ', '\t']).as_bytes();
    let body =
        if trimmed.len() >= 2 && trimmed.first() == Some(&b'"') && trimmed.last() == Some(&b'"') {
            &trimmed[1..trimmed.len() - 1]
        } else {
            trimmed
        };
    let mut content = Vec::with_capacity(body.len());
    let mut in_hex = false;
    let mut escaped = false;
    let mut pending: Option<u8> = None;
    for (i, &c) in body.iter().enumerate() {
        if c == b'|' {
            if in_hex && pending.is_some() {
                return Err(format!(
                    "@pm: odd number of hex digits before `|` at byte {i}"
                ));
            }
            in_hex = !in_hex;
        } else if !escaped && c == b'\\' {
            escaped = true;
        } else if in_hex {
            if let Some(digit) = crate::hex::digit(c) {
                match pending.take() {
                    Some(high) => content.push(high << 4 | digit),
                    None => pending = Some(digit),
                }
            } else if c != b' ' {
                return Err(format!(
                    "@pm: `{}` is not a hex digit inside |...| at byte {i}",
                    char::from(c)
                ));
            }
        } else if escaped {
            if !matches!(c, b':' | b';' | b'\\' | b'"') {
                return Err(format!(
                    "@pm: unsupported escape sequence `\\{}` at byte {i}",
                    char::from(c)
                ));
            }
            content.push(c);
            escaped = false;
        } else {
            content.push(c);
        }
    }
    if in_hex {
        return Err("@pm: unterminated |hex| sequence".to_string());
    }
    // `std::istream_iterator<std::string>` splits on C `isspace`.
    Ok(content
        .split(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r'))
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// One `@pmFromFile` data file: a phrase per line (split on `\n` only, as `std::getline`
/// does, so a `\r` stays in the phrase); empty lines and lines whose first non-space
/// character is `#` are skipped (`PmFromFile::isComment`). A line of spaces is a phrase.
pub fn parse_phrase_file(text: &str) -> Vec<Vec<u8>> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    // A final newline does not start another (empty) line for getline.
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
        .into_iter()
        .filter(|line| !is_comment(line))
        .map(|line| line.as_bytes().to_vec())
        .collect()
}

fn is_comment(line: &str) -> bool {
    if line.is_empty() {
        return true;
    }
    match line.find('#') {
        Some(pos) => line.as_bytes()[..pos]
            .iter()
            .all(|c| c.is_ascii_whitespace() || *c == 0x0B),
        None => false,
    }
}
