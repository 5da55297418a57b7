//! Translation of PCRE patterns (as ModSecurity v3 compiles them: byte mode, no UTF, no UCP,
//! C-locale tables) into the syntax of Rust's `regex` in bytes mode with Unicode off (which
//! `fancy-regex`'s ASCII bytes mode reads the same way).
//!
//! Why a translator and not the pattern as written: the two syntaxes agree on most of what
//! CRS writes, but differ silently on a few points that change what matches:
//! - `\v` is PCRE's vertical-whitespace class (`[\n\x0B\f\r\x85]`), Rust's vertical tab;
//!   `\h` (horizontal whitespace) does not exist in Rust;
//! - `\<` / `\>` are escaped literals in PCRE, word-boundary assertions in Rust;
//! - inside a class, `[` is a literal in PCRE and starts a nested class in Rust, and `&&`, `--`,
//!   `~~` are literals in PCRE and set operations in Rust; `\b` is a backspace in a PCRE class;
//! - a `{` that does not start a valid quantifier is a literal in PCRE, an error in Rust;
//! - a non-ASCII byte in the pattern is one byte in PCRE (a quantifier after it repeats only
//!   that byte), a whole code point in Rust.
//!
//! So every character class is parsed into the exact set of bytes PCRE would match and written
//! back as explicit byte ranges, every literal that is not ASCII alphanumeric is written as a
//! hex escape, and the PCRE-only constructs (look-around, back-references, atomic groups,
//! possessive quantifiers, `\Z`) are recorded: such a pattern goes to `fancy-regex`.

use std::fmt::Write as _;

/// The result of translating one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Translation {
    /// The pattern in the target's syntax.
    pub pattern: String,
    /// The PCRE-only constructs found (empty when `regex` can run the pattern).
    pub pcre_only: Vec<&'static str>,
    /// The pattern has a `^`. PCRE's multi-line `^` does not match after a newline that ends
    /// the subject; Rust's does, so such a pattern needs the exact form on inputs ending in
    /// `\n` (see [`StartOfLine`]).
    pub has_start_of_line: bool,
    /// With [`translate_greedy`]: the bytes the operands of the possessive quantifiers can
    /// match (both ASCII cases), `None` when an operand is not one byte (a group).
    pub possessive_operands: Option<[u64; 4]>,
}

/// How to write PCRE's multi-line `^`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartOfLine {
    /// `^` as Rust's multi-line mode reads it: also after a final newline.
    Rust,
    /// `(?:\A|(?<=\n)(?!\z))`: PCRE's exact meaning, which needs look-around (fancy-regex).
    Exact,
}

/// A set of bytes (a PCRE character class in byte mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1u64 << (b & 63);
    }

    fn insert_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.insert(b);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1u64 << (b & 63)) != 0
    }

    fn union(&mut self, other: &ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    fn complement(&self) -> ByteSet {
        ByteSet([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }

    fn from_ranges(ranges: &[(u8, u8)]) -> ByteSet {
        let mut set = ByteSet::default();
        for &(lo, hi) in ranges {
            set.insert_range(lo, hi);
        }
        set
    }
}

// PCRE's default character tables are the C locale's (ModSecurity never calls maketables).
const DIGIT: &[(u8, u8)] = &[(b'0', b'9')];
const WORD: &[(u8, u8)] = &[(b'0', b'9'), (b'A', b'Z'), (b'_', b'_'), (b'a', b'z')];
// PCRE2 (and PCRE >= 8.34) includes VT in \s.
const SPACE: &[(u8, u8)] = &[(0x09, 0x0D), (b' ', b' ')];
const HSPACE: &[(u8, u8)] = &[(0x09, 0x09), (0x20, 0x20), (0xA0, 0xA0)];
const VSPACE: &[(u8, u8)] = &[(0x0A, 0x0D), (0x85, 0x85)];

/// The set a class escape letter (`d`, `W`, `h`, ...) stands for, if it is one.
fn class_escape(letter: u8) -> Option<ByteSet> {
    let (ranges, negated) = match letter {
        b'd' => (DIGIT, false),
        b'D' => (DIGIT, true),
        b'w' => (WORD, false),
        b'W' => (WORD, true),
        b's' => (SPACE, false),
        b'S' => (SPACE, true),
        b'h' => (HSPACE, false),
        b'H' => (HSPACE, true),
        b'v' => (VSPACE, false),
        b'V' => (VSPACE, true),
        _ => return None,
    };
    let set = ByteSet::from_ranges(ranges);
    Some(if negated { set.complement() } else { set })
}

/// A POSIX class name (`alpha`, ...) in the C locale.
fn posix_class(name: &[u8]) -> Option<ByteSet> {
    let ranges: &[(u8, u8)] = match name {
        b"alpha" => &[(b'A', b'Z'), (b'a', b'z')],
        b"digit" => DIGIT,
        b"alnum" => &[(b'0', b'9'), (b'A', b'Z'), (b'a', b'z')],
        b"upper" => &[(b'A', b'Z')],
        b"lower" => &[(b'a', b'z')],
        b"space" => SPACE,
        b"blank" => &[(b'\t', b'\t'), (b' ', b' ')],
        b"punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
        b"print" => &[(0x20, 0x7E)],
        b"graph" => &[(0x21, 0x7E)],
        b"cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
        b"xdigit" => &[(b'0', b'9'), (b'A', b'F'), (b'a', b'f')],
        b"word" => WORD,
        b"ascii" => &[(0x00, 0x7F)],
        _ => return None,
    };
    Some(ByteSet::from_ranges(ranges))
}

/// One element of a class: a single byte (which may start a range) or a set.
enum ClassAtom {
    Byte(u8),
    Set(ByteSet),
}

struct Translator<'a> {
    src: &'a [u8],
    pos: usize,
    out: String,
    pcre_only: Vec<&'static str>,
    start_of_line: StartOfLine,
    has_start_of_line: bool,
    /// The bytes the last atom written can match (both ASCII cases); `None` after anything
    /// else (a group, an assertion).
    last_atom: Option<ByteSet>,
    /// Write possessive quantifiers as greedy ones (see [`translate_greedy`]).
    greedy_possessive: bool,
    possessive_operands: Option<ByteSet>,
}

/// Translates `pattern` (a PCRE pattern as ModSecurity's `@rx` gets it) for `target`.
/// Errors say what is wrong and at which byte offset.
pub(crate) fn translate(pattern: &str, start_of_line: StartOfLine) -> Result<Translation, String> {
    translate_with(pattern, start_of_line, false)
}

/// [`translate`] with every possessive quantifier written as the greedy one
/// ([`Translation::possessive_operands`] says on which bytes). On a subject holding none of
/// those bytes each such quantifier has one way to match (its operand matches nothing), so
/// possessive and greedy behave alike and the result runs on `regex`: CRS 3.3's 920600 reads
/// `\s*+` on an `Accept` header, which has no whitespace in nearly every request. On any
/// subject, a possessive pattern matches only where the greedy one does (it drops
/// backtracking paths, it adds none), so the greedy pattern's required literals hold for it.
pub(crate) fn translate_greedy(pattern: &str) -> Result<Translation, String> {
    translate_with(pattern, StartOfLine::Rust, true)
}

fn translate_with(
    pattern: &str,
    start_of_line: StartOfLine,
    greedy_possessive: bool,
) -> Result<Translation, String> {
    let mut t = Translator {
        src: pattern.as_bytes(),
        pos: 0,
        out: String::with_capacity(pattern.len() + 16),
        pcre_only: Vec::new(),
        start_of_line,
        has_start_of_line: false,
        last_atom: None,
        greedy_possessive,
        possessive_operands: Some(ByteSet::default()),
    };
    t.run()?;
    Ok(Translation {
        pattern: t.out,
        pcre_only: t.pcre_only,
        has_start_of_line: t.has_start_of_line,
        possessive_operands: t.possessive_operands.map(|s| s.0),
    })
}

impl Translator<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.pos))
    }

    fn pcre_only(&mut self, what: &'static str) {
        if !self.pcre_only.contains(&what) {
            self.pcre_only.push(what);
        }
    }

    /// Records the bytes the atom just written can match, with their other ASCII case.
    fn note_atom(&mut self, set: ByteSet) {
        let mut both = set;
        for b in (b'A'..=b'Z').chain(b'a'..=b'z') {
            if set.contains(b) {
                both.insert(b ^ 0x20);
            }
        }
        self.last_atom = Some(both);
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(b) = self.peek(0) {
            let prev = self.last_atom.take();
            match b {
                b'\\' => self.escape()?,
                b'[' => self.class()?,
                b'(' => self.group()?,
                b'{' => match quantifier_len(&self.src[self.pos..]) {
                    Some(n) => {
                        let q = &self.src[self.pos..self.pos + n];
                        self.out.push_str(&String::from_utf8_lossy(q));
                        self.pos += n;
                        self.after_quantifier(prev);
                    }
                    None => {
                        self.literal(b'{');
                        self.pos += 1;
                    }
                },
                b'*' | b'+' | b'?' => {
                    self.out.push(char::from(b));
                    self.pos += 1;
                    self.after_quantifier(prev);
                }
                b'^' => {
                    self.has_start_of_line = true;
                    self.out.push_str(match self.start_of_line {
                        StartOfLine::Rust => "^",
                        StartOfLine::Exact => "(?:\\A|(?<=\\n)(?!\\z))",
                    });
                    self.pos += 1;
                }
                b')' | b'|' | b'.' | b'$' => {
                    self.out.push(char::from(b));
                    self.pos += 1;
                    if b == b'.' {
                        self.note_atom(ByteSet::default().complement());
                    }
                }
                _ => {
                    self.literal(b);
                    self.pos += 1;
                }
            }
        }
        Ok(())
    }

    /// After a quantifier on `operand` (the bytes the atom before it matches, if it is one):
    /// `?` makes it lazy (same in both), `+` possessive (PCRE only).
    fn after_quantifier(&mut self, operand: Option<ByteSet>) {
        match self.peek(0) {
            Some(b'?') => {
                self.out.push('?');
                self.pos += 1;
            }
            Some(b'+') => {
                self.pcre_only("possessive quantifier");
                if self.greedy_possessive {
                    match (operand, self.possessive_operands.as_mut()) {
                        (Some(o), Some(all)) => all.union(&o),
                        _ => self.possessive_operands = None,
                    }
                } else {
                    self.out.push('+');
                }
                self.pos += 1;
            }
            _ => {}
        }
    }

    fn hex_byte(&self, b: u8) -> String {
        format!("\\x{b:02X}")
    }

    /// A literal byte, written so neither engine can read it as syntax.
    fn literal(&mut self, b: u8) {
        let mut one = ByteSet::default();
        one.insert(b);
        self.note_atom(one);
        if b.is_ascii_alphanumeric() {
            self.out.push(char::from(b));
        } else {
            let hex = self.hex_byte(b);
            self.out.push_str(&hex);
        }
    }

    fn set(&mut self, set: &ByteSet) {
        self.set_negated(set, false);
    }

    fn set_negated(&mut self, set: &ByteSet, negated: bool) {
        self.note_atom(if negated { set.complement() } else { *set });
        let mut class = String::from(if negated { "[^" } else { "[" });
        let mut b: u16 = 0;
        let mut any = false;
        while b <= 255 {
            let lo = b as u8;
            if !set.contains(lo) {
                b += 1;
                continue;
            }
            let mut hi = lo;
            while hi < 255 && set.contains(hi + 1) {
                hi += 1;
            }
            any = true;
            class.push_str(&self.hex_byte(lo));
            if hi > lo {
                class.push('-');
                class.push_str(&self.hex_byte(hi));
            }
            b = u16::from(hi) + 1;
        }
        if !any {
            // An empty set: `[^\x00-\xFF]` matches nothing, its negation everything.
            if !negated {
                class.push('^');
            }
            class.push_str(&self.hex_byte(0));
            class.push('-');
            class.push_str(&self.hex_byte(255));
        }
        class.push(']');
        self.out.push_str(&class);
    }

    /// `\x`: up to two hex digits, or `\x{...}`; returns the byte.
    fn hex_escape(&mut self) -> Result<u8, String> {
        // self.pos is on the 'x'
        self.pos += 1;
        if self.peek(0) == Some(b'{') {
            let start = self.pos + 1;
            let mut end = start;
            while end < self.src.len() && self.src[end].is_ascii_hexdigit() {
                end += 1;
            }
            if self.src.get(end) != Some(&b'}') || end == start {
                return self.err("malformed \\x{...} escape");
            }
            let digits = std::str::from_utf8(&self.src[start..end]).unwrap_or("");
            let value = u32::from_str_radix(digits, 16).unwrap_or(u32::MAX);
            if value > 0xFF {
                return self.err("character value in \\x{...} above 0xff (PCRE byte mode)");
            }
            self.pos = end + 1;
            return Ok(value as u8);
        }
        let mut value: u8 = 0;
        let mut n = 0;
        while n < 2 {
            match self.peek(0).and_then(crate::hex::digit) {
                Some(d) => {
                    value = value * 16 + d;
                    self.pos += 1;
                    n += 1;
                }
                _ => break,
            }
        }
        Ok(value)
    }

    /// Octal: up to three digits starting at the current position.
    fn octal_escape(&mut self) -> u8 {
        let mut value: u16 = 0;
        let mut n = 0;
        while n < 3 {
            match self.peek(0) {
                Some(d @ b'0'..=b'7') => {
                    value = value * 8 + u16::from(d - b'0');
                    self.pos += 1;
                    n += 1;
                }
                _ => break,
            }
        }
        (value & 0xFF) as u8
    }

    /// Escapes that denote one byte in and out of classes; `self.pos` is on the letter.
    fn byte_escape(&mut self, letter: u8) -> Result<Option<u8>, String> {
        let byte = match letter {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'f' => 0x0C,
            b'a' => 0x07,
            b'e' => 0x1B,
            b'x' => return self.hex_escape().map(Some),
            b'0' => return Ok(Some(self.octal_escape())),
            b'c' => {
                let Some(c) = self.peek(1) else {
                    return self.err("\\c at end of pattern");
                };
                if !c.is_ascii() {
                    return self.err("\\c must be followed by an ASCII character");
                }
                self.pos += 2;
                return Ok(Some(c.to_ascii_uppercase() ^ 0x40));
            }
            b if !b.is_ascii_alphanumeric() => b,
            _ => return Ok(None),
        };
        self.pos += 1;
        Ok(Some(byte))
    }

    fn escape(&mut self) -> Result<(), String> {
        self.pos += 1; // the backslash
        let Some(letter) = self.peek(0) else {
            return self.err("\\ at end of pattern");
        };
        if let Some(set) = class_escape(letter) {
            self.pos += 1;
            self.set(&set);
            return Ok(());
        }
        match letter {
            b'b' | b'B' | b'A' | b'z' => {
                self.out.push('\\');
                self.out.push(char::from(letter));
                self.pos += 1;
                return Ok(());
            }
            // ModSecurity searches once from offset 0, where \G is the start of the subject.
            b'G' => {
                self.out.push_str("\\A");
                self.pos += 1;
                return Ok(());
            }
            b'Z' => {
                self.pcre_only("\\Z");
                self.out.push_str("(?=\\n?\\z)");
                self.pos += 1;
                return Ok(());
            }
            b'N' => {
                self.pos += 1;
                let mut set = ByteSet::default();
                set.insert(b'\n');
                self.set(&set.complement());
                return Ok(());
            }
            b'R' => {
                self.pos += 1;
                self.out.push_str("(?:\\x0D\\x0A|");
                self.set(&ByteSet::from_ranges(VSPACE));
                self.out.push(')');
                return Ok(());
            }
            b'Q' => {
                self.pos += 1;
                while self.pos < self.src.len() {
                    if self.src[self.pos] == b'\\' && self.peek(1) == Some(b'E') {
                        self.pos += 2;
                        return Ok(());
                    }
                    let b = self.src[self.pos];
                    self.literal(b);
                    self.pos += 1;
                }
                return Ok(());
            }
            b'E' => {
                // A stray \E is ignored by PCRE.
                self.pos += 1;
                return Ok(());
            }
            b'1'..=b'9' => {
                self.pcre_only("back-reference");
                self.out.push('\\');
                while let Some(d @ b'0'..=b'9') = self.peek(0) {
                    self.out.push(char::from(d));
                    self.pos += 1;
                }
                return Ok(());
            }
            b'k' => {
                self.pcre_only("back-reference");
                let (open, close) = match self.peek(1) {
                    Some(b'<') => (b'<', b'>'),
                    Some(b'{') => (b'{', b'}'),
                    Some(b'\'') => (b'\'', b'\''),
                    _ => return self.err("malformed \\k back-reference"),
                };
                let _ = open;
                let start = self.pos + 2;
                let Some(len) = self.src[start..].iter().position(|&c| c == close) else {
                    return self.err("unterminated \\k back-reference");
                };
                let name = String::from_utf8_lossy(&self.src[start..start + len]).into_owned();
                let _ = write!(self.out, "\\k<{name}>");
                self.pos = start + len + 1;
                return Ok(());
            }
            _ => {}
        }
        match self.byte_escape(letter)? {
            Some(b) => {
                self.literal(b);
                Ok(())
            }
            None => self.err(&format!(
                "unsupported escape \\{} (PCRE feature with no equivalent here)",
                char::from(letter)
            )),
        }
    }

    fn group(&mut self) -> Result<(), String> {
        self.pos += 1; // '('
        if self.peek(0) == Some(b'*') {
            return self.err("PCRE verbs (*...) are not supported");
        }
        if self.peek(0) != Some(b'?') {
            self.out.push('(');
            return Ok(());
        }
        self.pos += 1; // '?'
        match (self.peek(0), self.peek(1)) {
            (Some(b'#'), _) => {
                let Some(len) = self.src[self.pos..].iter().position(|&c| c == b')') else {
                    return self.err("unterminated (?# comment");
                };
                // PCRE drops a comment entirely.
                self.pos += len + 1;
                Ok(())
            }
            (Some(b':'), _) => {
                self.out.push_str("(?:");
                self.pos += 1;
                Ok(())
            }
            (Some(b'='), _) | (Some(b'!'), _) => {
                self.pcre_only("look-ahead");
                self.out.push_str("(?");
                self.out.push(char::from(self.src[self.pos]));
                self.pos += 1;
                Ok(())
            }
            (Some(b'<'), Some(c @ (b'=' | b'!'))) => {
                self.pcre_only("look-behind");
                self.out.push_str("(?<");
                self.out.push(char::from(c));
                self.pos += 2;
                Ok(())
            }
            (Some(b'>'), _) => {
                self.pcre_only("atomic group");
                self.out.push_str("(?>");
                self.pos += 1;
                Ok(())
            }
            (Some(b'<'), _) | (Some(b'\''), _) | (Some(b'P'), Some(b'<')) => {
                let close = if self.peek(0) == Some(b'\'') {
                    b'\''
                } else {
                    b'>'
                };
                let start = if self.peek(0) == Some(b'P') {
                    self.pos + 2
                } else {
                    self.pos + 1
                };
                let Some(len) = self.src[start..].iter().position(|&c| c == close) else {
                    return self.err("unterminated group name");
                };
                let name = &self.src[start..start + len];
                if name.is_empty() || !name.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    return self.err("invalid group name");
                }
                let _ = write!(self.out, "(?P<{}>", String::from_utf8_lossy(name));
                self.pos = start + len + 1;
                Ok(())
            }
            _ => {
                // Inline flags: (?imsU-imsU) or (?imsU-imsU: ...)
                let start = self.pos;
                while let Some(c) = self.peek(0) {
                    match c {
                        b'i' | b'm' | b's' | b'U' | b'-' => self.pos += 1,
                        b'J' => self.pos += 1, // duplicate names: no effect on matching
                        b')' | b':' => break,
                        b'x' => return self.err("extended mode (?x) is not supported"),
                        _ => {
                            return self
                                .err(&format!("unsupported group syntax (?{}", char::from(c)))
                        }
                    }
                }
                let Some(end) = self.peek(0) else {
                    return self.err("unterminated group");
                };
                let flags: String = self.src[start..self.pos]
                    .iter()
                    .filter(|&&c| c != b'J')
                    .map(|&c| char::from(c))
                    .collect();
                self.pos += 1;
                if flags.is_empty() || flags == "-" {
                    // `(?)` / `(?-)` set nothing.
                    if end == b':' {
                        self.out.push_str("(?:");
                    }
                    return Ok(());
                }
                let _ = write!(self.out, "(?{flags}{}", char::from(end));
                Ok(())
            }
        }
    }

    fn class(&mut self) -> Result<(), String> {
        let start = self.pos;
        self.pos += 1; // '['
        let negated = self.peek(0) == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let mut set = ByteSet::default();
        let mut first = true;
        loop {
            let Some(c) = self.peek(0) else {
                self.pos = start;
                return self.err("missing terminating ] for character class");
            };
            if c == b']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            match self.class_atom()? {
                ClassAtom::Set(s) => set.union(&s),
                ClassAtom::Byte(lo) => {
                    // A range needs `-` followed by something other than `]`.
                    if self.peek(0) == Some(b'-') && !matches!(self.peek(1), Some(b']') | None) {
                        let save = self.pos;
                        self.pos += 1;
                        match self.class_atom()? {
                            ClassAtom::Byte(hi) => {
                                if hi < lo {
                                    return self.err("range out of order in character class");
                                }
                                set.insert_range(lo, hi);
                            }
                            ClassAtom::Set(s) => {
                                // `[a-\d]`: PCRE1/Perl read the hyphen as a literal.
                                let _ = save;
                                set.insert(lo);
                                set.insert(b'-');
                                set.union(&s);
                            }
                        }
                    } else {
                        set.insert(lo);
                    }
                }
            }
        }
        // A negated class stays negated (`[^...]`): under `(?i)` the engine must fold the
        // listed bytes before negating, as PCRE does (`(?i)[^a-z]` matches neither `a` nor
        // `A`); writing out the complement would let folding add the letters back.
        self.set_negated(&set, negated);
        Ok(())
    }

    fn class_atom(&mut self) -> Result<ClassAtom, String> {
        let Some(c) = self.peek(0) else {
            return self.err("missing terminating ] for character class");
        };
        if c == b'[' {
            if let Some(set) = self.posix_class()? {
                return Ok(ClassAtom::Set(set));
            }
            self.pos += 1;
            return Ok(ClassAtom::Byte(b'['));
        }
        if c != b'\\' {
            self.pos += 1;
            return Ok(ClassAtom::Byte(c));
        }
        self.pos += 1;
        let Some(letter) = self.peek(0) else {
            return self.err("\\ at end of pattern");
        };
        if let Some(set) = class_escape(letter) {
            self.pos += 1;
            return Ok(ClassAtom::Set(set));
        }
        match letter {
            b'b' => {
                self.pos += 1;
                Ok(ClassAtom::Byte(0x08))
            }
            b'1'..=b'7' => Ok(ClassAtom::Byte(self.octal_escape())),
            b'8' | b'9' => {
                self.pos += 1;
                Ok(ClassAtom::Byte(letter))
            }
            _ => match self.byte_escape(letter)? {
                Some(b) => Ok(ClassAtom::Byte(b)),
                None => self.err(&format!(
                    "unsupported escape \\{} in character class",
                    char::from(letter)
                )),
            },
        }
    }

    /// `[:name:]` or `[:^name:]` at the current position (on the `[`).
    fn posix_class(&mut self) -> Result<Option<ByteSet>, String> {
        if self.peek(1) != Some(b':') {
            return Ok(None);
        }
        let rest = &self.src[self.pos + 2..];
        let Some(end) = rest.windows(2).position(|w| w == b":]") else {
            return Ok(None);
        };
        let mut name = &rest[..end];
        if !name.iter().all(|c| c.is_ascii_alphabetic() || *c == b'^') {
            return Ok(None);
        }
        let negated = name.first() == Some(&b'^');
        if negated {
            name = &name[1..];
        }
        let Some(set) = posix_class(name) else {
            return self.err(&format!(
                "unknown POSIX class name [:{}:]",
                String::from_utf8_lossy(name)
            ));
        };
        self.pos += 2 + end + 2;
        Ok(Some(if negated { set.complement() } else { set }))
    }
}

/// The length of a PCRE quantifier `{n}`, `{n,}` or `{n,m}` at the start of `s` (PCRE2 10.42,
/// Debian bookworm's: `{,m}` and spaces are not quantifiers, so they are literals).
fn quantifier_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if s.get(i) == Some(&b',') {
        i += 1;
        digits(&mut i);
    }
    (s.get(i) == Some(&b'}')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(p: &str) -> String {
        translate(p, StartOfLine::Rust).unwrap().pattern
    }

    #[test]
    fn literal_brace_that_is_not_a_quantifier_is_escaped() {
        assert_eq!(bytes("a{2}"), "a{2}");
        assert_eq!(bytes("a{2,}"), "a{2,}");
        assert_eq!(bytes("a{2,5}?"), "a{2,5}?");
        assert_eq!(bytes("{"), "\\x7B");
        assert_eq!(bytes("a{,5}"), "a\\x7B\\x2C5\\x7D");
        assert_eq!(bytes("${x}"), "$\\x7Bx\\x7D");
    }

    #[test]
    fn escaped_angle_brackets_are_literals_not_word_boundaries() {
        assert_eq!(bytes("\\<script\\>"), "\\x3Cscript\\x3E");
    }

    #[test]
    fn pcre_vertical_whitespace_is_a_class() {
        assert_eq!(bytes("\\v"), "[\\x0A-\\x0D\\x85]");
        assert_eq!(bytes("\\h"), "[\\x09\\x20\\xA0]");
    }

    #[test]
    fn classes_become_byte_ranges() {
        assert_eq!(bytes("[a-c]"), "[\\x61-\\x63]");
        assert_eq!(bytes("[]a]"), "[\\x5D\\x61]");
        assert_eq!(bytes("[[a]"), "[\\x5B\\x61]");
        assert_eq!(bytes("[a&&b]"), "[\\x26\\x61-\\x62]");
        assert_eq!(bytes("[\\x{7f}-\\x{81}]"), "[\\x7F-\\x81]");
        assert_eq!(bytes("[^\\x00-\\xff]"), "[^\\x00-\\xFF]");
        assert_eq!(bytes("[^a]"), "[^\\x61]");
        assert_eq!(bytes("[\\b]"), "[\\x08]");
        assert_eq!(bytes("[a-]"), "[\\x2D\\x61]");
        assert_eq!(bytes("[\\w-]"), bytes("[-0-9A-Z_a-z]"));
        assert_eq!(bytes("[[:digit:]x]"), "[\\x30-\\x39\\x78]");
        assert_eq!(bytes("[^\\n]"), "[^\\x0A]");
    }

    #[test]
    fn non_ascii_bytes_are_single_bytes() {
        assert_eq!(bytes("é+"), "\\xC3\\xA9+");
    }

    #[test]
    fn pcre_only_constructs_are_reported() {
        for (p, what) in [
            ("(?<!a)b", "look-behind"),
            ("(?<=a)b", "look-behind"),
            ("a(?!xml)", "look-ahead"),
            ("(a)\\1", "back-reference"),
            ("a*+", "possessive quantifier"),
            ("(?>a)", "atomic group"),
            ("a\\Z", "\\Z"),
        ] {
            assert_eq!(
                translate(p, StartOfLine::Rust).unwrap().pcre_only,
                vec![what],
                "{p}"
            );
        }
        assert!(translate("(?i)a(?:b|c)(?<n>d)", StartOfLine::Rust)
            .unwrap()
            .pcre_only
            .is_empty());
    }

    #[test]
    fn malformed_patterns_say_where() {
        let e = translate("ab[cd", StartOfLine::Rust).unwrap_err();
        assert!(
            e.contains("missing terminating ]") && e.contains("byte 2"),
            "{e}"
        );
        assert!(translate("a\\", StartOfLine::Rust)
            .unwrap_err()
            .contains("end of pattern"));
        assert!(translate("[z-a]", StartOfLine::Rust)
            .unwrap_err()
            .contains("out of order"));
        assert!(translate("\\x{100}", StartOfLine::Rust)
            .unwrap_err()
            .contains("0xff"));
    }

    #[test]
    fn comments_and_quotes() {
        assert_eq!(bytes("a(?#comment)b"), "ab");
        assert_eq!(bytes("\\Qa.b\\E"), "a\\x2Eb");
        assert_eq!(bytes("(?i:ab)"), "(?i:ab)");
        assert_eq!(bytes("(?'n'a)"), "(?P<n>a)");
    }
}
