//! `@detectSQLi`: libinjection's SQL-injection detector (client9/libinjection
//! `src/libinjection_sqli.c` 3.9/3.10: tokenizer, fold, fingerprint, blacklist, whitelist and
//! the as-is / MySQL / single-quote / double-quote passes of `libinjection_is_sqli`),
//! hand-written here for speed.
//!
//! Why not call the `libinjectionrs` crate (0.1.1), which this replaces: it was the most
//! expensive operator on benign traffic. Each keyword lookup upper-cases the word into a new
//! `String` and binary-searches ~9,400 `&str`s, the blacklist check builds another `String`,
//! and the token vectors are heap-allocated. Here nothing is allocated per call: tokens live
//! in a fixed array on the stack with their values in 32-byte inline buffers, and keywords and
//! fingerprints are looked up in open-addressing hash tables keyed by the ASCII-uppercased word
//! (uppercased in registers), behind a 4096-bit filter that rejects most non-keywords.
//!
//! Measured (2026-12, x86_64, release; `libinjectionrs` / this):
//! - time per call, warm (`cargo test --release -p portcullis-waf --lib
//!   operator::sqli::tests::speed -- --ignored --nocapture`): a Firefox user agent
//!   1,760 / 220 ns, "Jane Doe" 810 / 65, "jane@example.com" 475 / 54, "price" 407 / 49,
//!   "2" 218 / 31, "session" 414 / 42, "3f9a1c2b7d" 450 / 55: 7-12x; the attacks
//!   "1' OR '1'='1" 1,165 / 235 and "1' UNION SELECT password FROM users--" 2,630 / 290.
//! - instructions per call (callgrind): the same benign values 16,300 / 3,475,
//!   6,560 / 1,200, 4,370 / 1,020, 3,160 / 830, 1,720 / 545, 3,410 / 750, 4,140 / 1,080
//!   (3.2-5.5x); the two attacks 11,200 / 4,580 and 23,800 / 4,890.
//! - the whole CRS v3.3.4 (PL1) on the engine bench's benign GET (`examples/engine_profile
//!   bench-get`, callgrind): `@detectSQLi` went from 27,400 of 370,000 instructions per request
//!   (7.4%) to 6,400 of 347,000 (1.8%); 34.4 -> 30.4 us CPU per request.
//!
//! The tables are built once per process / VM (~1.6 M instructions, ~170 KiB), when a rule with
//! `@detectSQLi` compiles ([`prepare`]).
//!
//! What it agrees with: `libinjectionrs` 0.1.1 exactly — the verdict of
//! `SqliState::new(input, SqliFlags::FLAG_NONE).detect()` and, on a match, its
//! `get_fingerprint()` — including where that port differs from the C library (a variable's
//! value keeps its `@`s; "1e" without exponent digits is a bareword; `INTO` in the 3-token
//! whitelist is matched case-sensitively; `sp_password` is matched case-insensitively and
//! only in UTF-8 input; a collation name with `_` only when UTF-8; the `{`+empty-bareword
//! early return skips the comment statistics, so no MySQL reparse). The tests below compare
//! both on generated SQL-like and random inputs and on every value of the CRS regression
//! corpus, pass by pass.
//!
//! The keyword and fingerprint data is not copied here: it is read once, at first use, from
//! `libinjectionrs::sqli::sqli_data::SQL_KEYWORDS` (and `CHAR_MAP` for character classes).
//! Never panics: indexes into the input are checked (`get`), token slots are masked.

use libinjectionrs::sqli::sqli_data::{CharType, CHAR_MAP, SQL_KEYWORDS};
use memchr::{memchr, memchr2, memmem};
use std::sync::OnceLock;

/// libinjection's token size: a value keeps at most `TOKEN_SIZE - 1` bytes.
const TOKEN_SIZE: usize = 32;
/// libinjection's `LIBINJECTION_SQLI_MAX_TOKENS`.
const MAX_TOKENS: usize = 5;

// Token types: libinjection's fingerprint characters.
const NONE: u8 = 0;
const KEYWORD: u8 = b'k';
const UNION: u8 = b'U';
const GROUP: u8 = b'B';
const EXPRESSION: u8 = b'E';
const SQLTYPE: u8 = b't';
const FUNCTION: u8 = b'f';
const BAREWORD: u8 = b'n';
const NUMBER: u8 = b'1';
const VARIABLE: u8 = b'v';
const STRING: u8 = b's';
const OPERATOR: u8 = b'o';
const LOGIC_OPERATOR: u8 = b'&';
const COMMENT: u8 = b'c';
const COLLATE: u8 = b'A';
const LEFTPARENS: u8 = b'(';
const RIGHTPARENS: u8 = b')';
const LEFTBRACE: u8 = b'{';
const RIGHTBRACE: u8 = b'}';
const DOT: u8 = b'.';
const COMMA: u8 = b',';
const COLON: u8 = b':';
const SEMICOLON: u8 = b';';
const TSQL: u8 = b'T';
const UNKNOWN: u8 = b'?';
const EVIL: u8 = b'X';
const FINGERPRINT: u8 = b'F';
const BACKSLASH: u8 = b'\\';

/// The SQLi fingerprint of a match (libinjection's, at most 8 type characters, e.g. `s&sos`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    bytes: [u8; 8],
    len: u8,
}

impl Fingerprint {
    /// The fingerprint's characters.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Is `input` SQL injection? The fingerprint when it is. Same answer as `libinjectionrs`
/// 0.1.1's `SqliState::new(input, FLAG_NONE).detect()` (and its `get_fingerprint()`).
pub fn detect(input: &[u8]) -> Option<Fingerprint> {
    if input.is_empty() {
        return None;
    }
    let tables = tables();
    let mut pass = Pass::new();
    // As is (ANSI), then as MySQL when a comment only MySQL reads otherwise was seen.
    if pass.run(tables, input, 0, false) {
        return Some(pass.fp);
    }
    if pass.reparse && pass.run(tables, input, 0, true) {
        return Some(pass.fp);
    }
    // No quote: neither quote pass applies.
    memchr2(b'\'', b'"', input)?;
    // As if the input followed a single quote: ANSI, then MySQL.
    if memchr(b'\'', input).is_some()
        && (pass.run(tables, input, b'\'', false)
            || (pass.reparse && pass.run(tables, input, b'\'', true)))
    {
        return Some(pass.fp);
    }
    // As if the input followed a double quote: MySQL only.
    if memchr(b'"', input).is_some() && pass.run(tables, input, b'"', true) {
        return Some(pass.fp);
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Keyword and fingerprint tables

/// Keyword lookup tables built from `SQL_KEYWORDS`: `entries` for everything except the
/// fingerprints of at most 8 bytes, which are packed into `u64`s in `fps`.
struct Tables {
    /// Open addressing: 0 = empty, else index + 1 into `entries`.
    slots: Vec<u16>,
    entries: Vec<Entry>,
    /// A bit per (length, uppercased first byte, uppercased last byte) of the entries, hashed
    /// into 4096 bits: most words that are no keyword are rejected here.
    signatures: Vec<u64>,
    /// Open addressing of packed fingerprints (never 0: they are not empty).
    fps: Vec<u64>,
    /// Bit per first byte of a packed fingerprint.
    fp_first: [bool; 256],
}

struct Entry {
    /// The word zero-padded, as 4 little-endian words.
    words: [u64; 4],
    len: u8,
    ty: u8,
}

/// Builds the keyword tables now (configure time: `@detectSQLi` compiles), not on the first
/// request that reaches the operator.
pub fn prepare() {
    let _ = tables();
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(Tables::build)
}

/// The type `libinjectionrs`'s `lookup_word` gives a table entry of type byte `b`.
fn entry_type(b: u8) -> u8 {
    match b {
        KEYWORD | FUNCTION | UNION | EXPRESSION | TSQL | SQLTYPE | OPERATOR | LOGIC_OPERATOR
        | VARIABLE | NUMBER | COLLATE | GROUP | FINGERPRINT => b,
        _ => BAREWORD,
    }
}

fn mix(h: u64) -> u64 {
    let h = (h ^ (h >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// Hash of an uppercased, zero-padded word of `len` bytes.
fn hash_word(words: &[u64; 4], len: usize) -> u64 {
    let mut h = (len as u64).wrapping_mul(0x2545_F491_4F6C_DD1D);
    for &w in words.iter().take(len.div_ceil(8)) {
        h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    }
    mix(h)
}

/// ASCII-uppercases the 8 bytes of `x` (SWAR).
fn upper8(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // Bit 7 set for bytes whose low 7 bits are >= 'a' / > 'z'.
    let ge_a = low7.wrapping_add(ONES * u64::from(0x80 - b'a'));
    let gt_z = low7.wrapping_add(ONES * u64::from(0x7f - b'z'));
    let lower = ge_a & !gt_z & !x & HIGH;
    x - (lower >> 2)
}

/// The first `len` bytes of `buf` ASCII-uppercased and zero-padded (what follows them in
/// `buf` is ignored), as 4 little-endian words.
fn upper_words(buf: &[u8; TOKEN_SIZE], len: usize) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (k, (w, chunk)) in words.iter_mut().zip(buf.chunks_exact(8)).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let valid = len.saturating_sub(8 * k).min(8);
        let mask = if valid == 8 {
            u64::MAX
        } else {
            (1u64 << (valid * 8)) - 1
        };
        *w = upper8(u64::from_le_bytes(bytes) & mask);
    }
    words
}

/// `word` zero-padded into a token-sized buffer; `None` when longer than that.
fn padded(word: &[u8]) -> Option<[u8; TOKEN_SIZE]> {
    let mut buf = [0u8; TOKEN_SIZE];
    buf.get_mut(..word.len())?.copy_from_slice(word);
    Some(buf)
}

/// The bit of `signatures` for a word: its length and uppercased first and last bytes.
fn signature(len: usize, first: u8, last: u8) -> usize {
    let key = (len as u32) | u32::from(first) << 8 | u32::from(last) << 16;
    (key.wrapping_mul(0x9E37_79B1) >> 20) as usize
}

impl Tables {
    fn build() -> Tables {
        let mut entries = Vec::new();
        let mut packed = Vec::new();
        let mut fp_first = [false; 256];
        let mut signatures = vec![0u64; 4096 / 64];
        for k in SQL_KEYWORDS {
            let word = k.word.as_bytes();
            let ty = entry_type(k.token_type);
            // `lookup_word` compares with the uppercased word: an entry with a lowercase
            // letter is never found; a bareword is what a miss gives anyway.
            if ty == BAREWORD || word.iter().any(u8::is_ascii_lowercase) || word.is_empty() {
                continue;
            }
            if ty == FINGERPRINT && word.len() <= 8 && !word.contains(&0) {
                packed.push(padded(word).map_or(0, |b| upper_words(&b, word.len())[0]));
                if let Some(&b) = word.first() {
                    fp_first[usize::from(b)] = true;
                }
                continue;
            }
            // Longer than 32 bytes: longer than any word libinjection looks up.
            let (Some(&first), Some(&last), Some(buf)) = (word.first(), word.last(), padded(word))
            else {
                continue;
            };
            let bit = signature(word.len(), first, last);
            if let Some(w) = signatures.get_mut(bit / 64) {
                *w |= 1 << (bit % 64);
            }
            entries.push(Entry {
                words: upper_words(&buf, word.len()),
                len: word.len() as u8,
                ty,
            });
        }
        let size = (entries.len() * 4).next_power_of_two().max(16);
        let mut slots = vec![0u16; size];
        for (i, e) in entries.iter().enumerate() {
            let mut at = hash_word(&e.words, usize::from(e.len)) as usize & (size - 1);
            while slots.get(at).is_some_and(|&s| s != 0) {
                at = (at + 1) & (size - 1);
            }
            if let Some(s) = slots.get_mut(at) {
                *s = u16::try_from(i + 1).unwrap_or(0);
            }
        }
        // ~8,400 fingerprints at a load of about one half: 128 KiB.
        let fp_size = (packed.len() + packed.len() / 2)
            .next_power_of_two()
            .max(16);
        let mut fps = vec![0u64; fp_size];
        for &p in &packed {
            let mut at = mix(p) as usize & (fp_size - 1);
            while fps.get(at).is_some_and(|&s| s != 0 && s != p) {
                at = (at + 1) & (fp_size - 1);
            }
            if let Some(s) = fps.get_mut(at) {
                *s = p;
            }
        }
        Tables {
            slots,
            entries,
            signatures,
            fps,
            fp_first,
        }
    }

    /// The type of `word` as `libinjectionrs`'s `lookup_word` gives it (ASCII
    /// case-insensitive); `BAREWORD` when it is no keyword.
    fn lookup(&self, word: &[u8]) -> u8 {
        padded(word).map_or(BAREWORD, |buf| self.lookup_in(&buf, word.len()))
    }

    /// [`Tables::lookup`] of the first `len` bytes of `buf` (a token's value: what follows
    /// them is ignored).
    fn lookup_in(&self, buf: &[u8; TOKEN_SIZE], len: usize) -> u8 {
        if len == 0 || len > TOKEN_SIZE {
            return BAREWORD;
        }
        let first = buf[0].to_ascii_uppercase();
        let last = buf[(len - 1) & (TOKEN_SIZE - 1)].to_ascii_uppercase();
        let fp_candidate = len <= 8 && self.fp_first[usize::from(first)];
        let bit = signature(len, first, last);
        let in_words = self
            .signatures
            .get(bit / 64)
            .is_some_and(|w| w >> (bit % 64) & 1 == 1);
        if !fp_candidate && !in_words {
            return BAREWORD;
        }
        let words = upper_words(buf, len);
        // Packed with zero padding: a word with a NUL byte is no fingerprint.
        if fp_candidate && !buf.iter().take(len).any(|&c| c == 0) && self.has_fingerprint(words[0])
        {
            return FINGERPRINT;
        }
        if !in_words {
            return BAREWORD;
        }
        let mask = self.slots.len() - 1;
        let mut at = hash_word(&words, len) as usize & mask;
        loop {
            let slot = self.slots.get(at).copied().unwrap_or(0);
            if slot == 0 {
                return BAREWORD;
            }
            if let Some(e) = self.entries.get(usize::from(slot) - 1) {
                if usize::from(e.len) == len && e.words == words {
                    return e.ty;
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// Is the uppercased, packed word a fingerprint of `SQL_KEYWORDS`?
    fn has_fingerprint(&self, packed: u64) -> bool {
        let mask = self.fps.len() - 1;
        let mut at = mix(packed) as usize & mask;
        loop {
            match self.fps.get(at).copied().unwrap_or(0) {
                0 => return false,
                p if p == packed => return true,
                _ => at = (at + 1) & mask,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens and the tokenizer

#[derive(Clone, Copy)]
struct Token {
    ty: u8,
    /// Opening / closing delimiter of a string (0: none, e.g. unterminated).
    open: u8,
    close: u8,
    len: u8,
    /// The value, truncated to 31 bytes; what follows `len` is undefined (never read).
    val: [u8; TOKEN_SIZE],
}

impl Token {
    const EMPTY: Token = Token {
        ty: NONE,
        open: 0,
        close: 0,
        len: 0,
        val: [0; TOKEN_SIZE],
    };

    fn value(&self) -> &[u8] {
        self.val.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The first byte of the value; 0 when empty (libinjection's zeroed value).
    fn first(&self) -> u8 {
        if self.len == 0 {
            0
        } else {
            self.val[0]
        }
    }

    /// libinjection's `st_assign` of `s[from..to]`: the value truncated to 31 bytes.
    fn assign(&mut self, ty: u8, s: &[u8], from: usize, to: usize) {
        self.ty = ty;
        self.len = to.saturating_sub(from).min(TOKEN_SIZE - 1) as u8;
        // The 32 bytes from `from` (fewer at the end of the input): fixed-size, word-wise
        // copies; the bytes after the value are never read.
        let rest = s.get(from..).unwrap_or(&[]);
        match rest.first_chunk::<TOKEN_SIZE>() {
            Some(chunk) => self.val = *chunk,
            None => {
                for (k, dst) in self.val.chunks_exact_mut(8).enumerate() {
                    let part = rest.get(8 * k..).unwrap_or(&[]);
                    let word = match part.first_chunk::<8>() {
                        Some(c) => u64::from_le_bytes(*c),
                        None => part
                            .iter()
                            .rev()
                            .fold(0u64, |w, &c| (w << 8) | u64::from(c)),
                    };
                    dst.copy_from_slice(&word.to_le_bytes());
                }
            }
        }
    }

    /// libinjection's `st_assign_char`.
    fn assign_char(&mut self, ty: u8, c: u8) {
        self.ty = ty;
        self.len = 1;
        self.val[0] = c;
        self.val[1] = 0;
    }

    fn is(&self, ty: u8) -> bool {
        self.ty == ty
    }

    fn value_is(&self, upper: &[u8]) -> bool {
        self.value().eq_ignore_ascii_case(upper)
    }
}

/// Delimiters of a word (`parse_word`).
const WORD_DELIMS: &[u8] = b" []{}<>:\\?=@!#~+-*/&|^%(),';\t\n\x0B\x0C\r\"\xA0\x00";
/// Delimiters of a variable name (`parse_var`).
const VAR_DELIMS: &[u8] = b" <>:\\?=@!#~+-*/&|^%(),;'\t\n\x0B\x0C\r`\"";

const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

const WORD_CHAR: u8 = 0;
const WORD_END: u8 = 1;
const WORD_DOT_OR_TICK: u8 = 2;

/// `parse_word`'s view of a byte.
static WORD_CLASS: [u8; 256] = {
    let delims = byte_set(WORD_DELIMS);
    let mut class = [WORD_CHAR; 256];
    let mut i = 0;
    while i < 256 {
        if delims[i] {
            class[i] = WORD_END;
        } else if i == b'.' as usize || i == b'`' as usize {
            class[i] = WORD_DOT_OR_TICK;
        }
        i += 1;
    }
    class
};
static IS_VAR_DELIM: [bool; 256] = byte_set(VAR_DELIMS);

/// `char_is_white`.
fn is_white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r' | 0xA0 | 0x00)
}

/// The token type of a single-character token's character (`parse_char`).
fn char_type(c: u8) -> u8 {
    match c {
        KEYWORD | UNION | GROUP | EXPRESSION | SQLTYPE | FUNCTION | BAREWORD | NUMBER
        | VARIABLE | STRING | OPERATOR | LOGIC_OPERATOR | COMMENT | COLLATE | LEFTPARENS
        | RIGHTPARENS | LEFTBRACE | RIGHTBRACE | DOT | COMMA | COLON | SEMICOLON | TSQL
        | UNKNOWN | EVIL | FINGERPRINT | BACKSLASH => c,
        _ => NONE,
    }
}

/// First `i` with `h[i] == a && h[i + 1] == b`.
fn find2(h: &[u8], a: u8, b: u8) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = h.get(from..).and_then(|rest| memchr(a, rest)) {
        let i = from + i;
        match h.get(i + 1) {
            Some(&c) if c == b => return Some(i),
            Some(_) => from = i + 1,
            None => return None,
        }
    }
    None
}

/// Is the character after `at` escaped by an odd run of backslashes ending at `at`?
fn backslash_escaped(s: &[u8], at: usize) -> bool {
    let run = s.get(..=at).map_or(0, |head| {
        head.iter().rev().take_while(|&&c| c == b'\\').count()
    });
    run & 1 == 1
}

struct Tokenizer<'a, 't> {
    tables: &'t Tables,
    s: &'a [u8],
    pos: usize,
    /// The quote the input is taken to follow (0: none).
    quote: u8,
    /// MySQL (else ANSI) comment rules.
    mysql: bool,
    /// A `--x` or `#` comment was seen: reparse as MySQL (`reparse_as_mysql`).
    reparse: bool,
    cur: Token,
}

impl<'a, 't> Tokenizer<'a, 't> {
    fn at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn slice(&self, from: usize, to: usize) -> &'a [u8] {
        self.s.get(from..to).unwrap_or(&[])
    }

    fn rest(&self, from: usize) -> &'a [u8] {
        self.s.get(from..).unwrap_or(&[])
    }

    /// The next token into `cur`; `false` at the end of the input.
    fn next(&mut self) -> bool {
        if self.pos >= self.s.len() {
            return false;
        }
        self.cur.ty = NONE;
        self.cur.open = 0;
        self.cur.close = 0;
        if self.pos == 0 && self.quote != 0 {
            // The first token is the rest of a string opened before the input.
            self.pos = self.string_core(0, self.quote, 0);
            self.cur.open = 0;
            return true;
        }
        while let Some(c) = self.at(self.pos) {
            self.pos = self.dispatch(c);
            if self.cur.ty != NONE {
                return true;
            }
        }
        false
    }

    fn dispatch(&mut self, c: u8) -> usize {
        match CHAR_MAP[usize::from(c)] {
            CharType::White => self.pos + 1,
            CharType::Bang | CharType::Op2 => self.operator2(),
            CharType::String => self.string(),
            CharType::Hash => self.hash(),
            CharType::Money => self.money(),
            CharType::Op1 | CharType::Unary => self.operator1(),
            CharType::LeftParens
            | CharType::RightParens
            | CharType::Comma
            | CharType::Semicolon
            | CharType::LeftBrace
            | CharType::RightBrace => {
                self.cur.assign_char(char_type(c), c);
                self.pos + 1
            }
            CharType::Dash => self.dash(),
            CharType::Number => self.number(),
            CharType::Slash => self.slash(),
            CharType::Variable => self.var(),
            CharType::Word => self.word(),
            CharType::BString => self.bstring(),
            CharType::EString => self.estring(),
            CharType::NQString => self.nqstring(),
            CharType::QString => self.qstring_core(0),
            CharType::UString => self.ustring(),
            CharType::XString => self.xstring(),
            CharType::BWord => self.bword(),
            CharType::Backslash => self.backslash(),
            CharType::Tick => self.tick(),
            CharType::Other => {
                self.cur.assign_char(UNKNOWN, c);
                self.pos + 1
            }
        }
    }

    fn operator1(&mut self) -> usize {
        let c = self.at(self.pos).unwrap_or(0);
        self.cur.assign_char(OPERATOR, c);
        self.pos + 1
    }

    fn operator2(&mut self) -> usize {
        let pos = self.pos;
        if pos + 1 >= self.s.len() {
            return self.operator1();
        }
        if self.s.get(pos..pos + 3) == Some(b"<=>") {
            self.cur.assign(OPERATOR, self.s, pos, pos + 3);
            return pos + 3;
        }
        let two = self.slice(pos, pos + 2);
        let ty = self.tables.lookup(two);
        if ty != NONE && ty != BAREWORD {
            let ty = if ty == LOGIC_OPERATOR {
                LOGIC_OPERATOR
            } else {
                OPERATOR
            };
            self.cur.assign(ty, self.s, pos, pos + 2);
            return pos + 2;
        }
        if self.at(pos) == Some(b':') {
            self.cur.assign_char(COLON, b':');
            return pos + 1;
        }
        self.operator1()
    }

    fn hash(&mut self) -> usize {
        self.reparse = true;
        if self.mysql {
            self.eol_comment()
        } else {
            self.cur.assign_char(OPERATOR, b'#');
            self.pos + 1
        }
    }

    fn dash(&mut self) -> usize {
        let pos = self.pos;
        if self.at(pos + 1) == Some(b'-') {
            match self.at(pos + 2) {
                None => return self.eol_comment(),
                Some(c) if is_white(c) => return self.eol_comment(),
                Some(_) => {
                    self.reparse = true;
                    if !self.mysql {
                        return self.eol_comment();
                    }
                }
            }
        }
        self.cur.assign_char(OPERATOR, b'-');
        pos + 1
    }

    fn slash(&mut self) -> usize {
        let pos = self.pos;
        if self.at(pos + 1) != Some(b'*') {
            self.cur.assign_char(OPERATOR, b'/');
            return pos + 1;
        }
        let rest = self.rest(pos + 2);
        let close = find2(rest, b'*', b'/');
        let clen = match close {
            Some(c) => c + 4,
            None => self.s.len() - pos,
        };
        let mut ty = COMMENT;
        if let Some(c) = close {
            // libinjection looks for a nested "/*" one byte too far (into the "*" of "*/").
            let region = rest.get(..(c + 1).min(rest.len())).unwrap_or(&[]);
            if find2(region, b'/', b'*').is_some() {
                ty = EVIL;
            }
        }
        if self.at(pos + 2) == Some(b'!') {
            ty = EVIL;
        }
        self.cur.assign(ty, self.s, pos, pos + clen);
        pos + clen
    }

    fn backslash(&mut self) -> usize {
        let pos = self.pos;
        if self.at(pos + 1) == Some(b'N') {
            self.cur.assign(NUMBER, self.s, pos, pos + 2);
            pos + 2
        } else {
            self.cur.assign_char(BACKSLASH, b'\\');
            pos + 1
        }
    }

    fn eol_comment(&mut self) -> usize {
        let pos = self.pos;
        let rest = self.rest(pos);
        match memchr(b'\n', rest) {
            Some(n) => {
                self.cur.assign(COMMENT, self.s, pos, pos + n);
                pos + n + 1
            }
            None => {
                self.cur.assign(COMMENT, self.s, pos, self.s.len());
                self.s.len()
            }
        }
    }

    fn string(&mut self) -> usize {
        let delim = self.at(self.pos).unwrap_or(0);
        self.string_core(self.pos, delim, 1)
    }

    /// A string whose body starts at `pos + offset`, closed by an unescaped `delim`.
    fn string_core(&mut self, pos: usize, delim: u8, offset: usize) -> usize {
        let len = self.s.len();
        let start = pos + offset;
        let mut from = start;
        while from < len {
            let Some(found) = memchr(delim, self.rest(from)) else {
                break;
            };
            let q = from + found;
            if q > 0 && backslash_escaped(self.s, q - 1) {
                from = q + 1;
            } else if self.at(q + 1) == Some(delim) {
                from = q + 2;
            } else {
                self.cur.assign(STRING, self.s, start, q);
                self.cur.open = delim;
                self.cur.close = delim;
                return q + 1;
            }
        }
        self.cur.assign(STRING, self.s, start, self.s.len());
        self.cur.open = delim;
        self.cur.close = 0;
        len
    }

    fn estring(&mut self) -> usize {
        let pos = self.pos;
        if pos + 2 >= self.s.len() || self.at(pos + 1) != Some(b'\'') {
            return self.word();
        }
        self.string_core(pos, b'\'', 2)
    }

    fn ustring(&mut self) -> usize {
        let pos = self.pos;
        if pos + 2 < self.s.len()
            && self.at(pos + 1) == Some(b'&')
            && self.at(pos + 2) == Some(b'\'')
        {
            self.pos += 2;
            let next = self.string();
            self.cur.open = b'u';
            if self.cur.close == b'\'' {
                self.cur.close = b'u';
            }
            next
        } else {
            self.word()
        }
    }

    fn nqstring(&mut self) -> usize {
        let pos = self.pos;
        if pos + 2 < self.s.len() && self.at(pos + 1) == Some(b'\'') {
            return self.estring();
        }
        self.qstring_core(1)
    }

    /// Oracle's `q'<delim>...<delim>'`.
    fn qstring_core(&mut self, offset: usize) -> usize {
        let p = self.pos + offset;
        let len = self.s.len();
        if !matches!(self.at(p), Some(b'q' | b'Q')) || p + 2 >= len || self.at(p + 1) != Some(b'\'')
        {
            return self.word();
        }
        let open = self.at(p + 2).unwrap_or(0);
        // C compares a signed char: bytes >= 0x80 are below 33 too.
        if (open as i8) < 33 {
            return self.word();
        }
        let close = match open {
            b'(' => b')',
            b'[' => b']',
            b'{' => b'}',
            b'<' => b'>',
            c => c,
        };
        let start = p + 3;
        match find2(self.rest(start), close, b'\'') {
            Some(n) => {
                self.cur.assign(STRING, self.s, start, start + n);
                self.cur.open = b'q';
                self.cur.close = b'q';
                start + n + 2
            }
            None => {
                self.cur.assign(STRING, self.s, start, self.s.len());
                self.cur.open = b'q';
                self.cur.close = 0;
                len
            }
        }
    }

    /// `b'0101'` and `x'beef'` (`digit` says which digits).
    fn digit_string(&mut self, digit: fn(u8) -> bool) -> usize {
        let pos = self.pos;
        let len = self.s.len();
        if pos + 2 >= len || self.at(pos + 1) != Some(b'\'') {
            return self.word();
        }
        let end = pos + 2 + self.rest(pos + 2).iter().take_while(|&&c| digit(c)).count();
        if self.at(end) != Some(b'\'') {
            return self.word();
        }
        self.cur.assign(NUMBER, self.s, pos, end + 1);
        end + 1
    }

    fn bstring(&mut self) -> usize {
        self.digit_string(|c| c == b'0' || c == b'1')
    }

    fn xstring(&mut self) -> usize {
        self.digit_string(|c| c.is_ascii_hexdigit())
    }

    /// SQL Server's `[column name]`.
    fn bword(&mut self) -> usize {
        let pos = self.pos;
        let rest = self.rest(pos);
        match memchr(b']', rest) {
            Some(n) => {
                self.cur.assign(BAREWORD, self.s, pos, pos + n + 1);
                pos + n + 1
            }
            None => {
                self.cur.assign(BAREWORD, self.s, pos, self.s.len());
                self.s.len()
            }
        }
    }

    /// MySQL's backquoted name.
    fn tick(&mut self) -> usize {
        let next = self.string_core(self.pos, b'`', 1);
        self.cur.ty = if self
            .tables
            .lookup_in(&self.cur.val, usize::from(self.cur.len))
            == FUNCTION
        {
            FUNCTION
        } else {
            BAREWORD
        };
        next
    }

    fn var(&mut self) -> usize {
        let pos = self.pos;
        let mut name = pos + 1;
        if self.at(name) == Some(b'@') {
            name += 1;
        }
        match self.at(name) {
            Some(b'`') => {
                self.pos = name;
                let next = self.tick();
                self.cur.ty = VARIABLE;
                return next;
            }
            Some(b'\'' | b'"') => {
                self.pos = name;
                let next = self.string();
                self.cur.ty = VARIABLE;
                return next;
            }
            _ => {}
        }
        let end = name
            + self
                .rest(name)
                .iter()
                .take_while(|&&c| !IS_VAR_DELIM[usize::from(c)])
                .count();
        // The value keeps the `@`s (libinjectionrs; C drops them).
        self.cur.assign(VARIABLE, self.s, pos, end);
        end
    }

    fn money(&mut self) -> usize {
        let pos = self.pos;
        let len = self.s.len();
        if pos + 1 == len {
            self.cur.assign_char(BAREWORD, b'$');
            return len;
        }
        let digits = self
            .rest(pos + 1)
            .iter()
            .take_while(|&&c| c.is_ascii_digit() || c == b'.' || c == b',')
            .count();
        if digits > 0 {
            if digits == 1 && self.at(pos + 1) == Some(b'.') {
                return self.word();
            }
            self.cur.assign(NUMBER, self.s, pos, pos + 1 + digits);
            return pos + 1 + digits;
        }
        if self.at(pos + 1) == Some(b'$') {
            // $$ string $$
            let start = pos + 2;
            return match find2(self.rest(start), b'$', b'$') {
                Some(n) => {
                    self.cur.assign(STRING, self.s, start, start + n);
                    self.cur.open = b'$';
                    self.cur.close = b'$';
                    start + n + 2
                }
                None => {
                    self.cur.assign(STRING, self.s, start, self.s.len());
                    self.cur.open = b'$';
                    self.cur.close = 0;
                    len
                }
            };
        }
        let letters = self
            .rest(pos + 1)
            .iter()
            .take_while(|c| c.is_ascii_alphabetic())
            .count();
        let tag_end = pos + 1 + letters;
        if letters == 0 || self.at(tag_end) != Some(b'$') {
            self.cur.assign_char(BAREWORD, b'$');
            return pos + 1;
        }
        // $tag$ string $tag$
        let tag = self.slice(pos, tag_end + 1);
        let start = tag_end + 1;
        match memmem::find(self.rest(start), tag) {
            Some(n) => {
                self.cur.assign(STRING, self.s, start, start + n);
                self.cur.open = b'$';
                self.cur.close = b'$';
                start + n + tag.len()
            }
            None => {
                self.cur.assign(STRING, self.s, start, self.s.len());
                self.cur.open = b'$';
                self.cur.close = 0;
                len
            }
        }
    }

    fn number(&mut self) -> usize {
        let pos = self.pos;
        if self.at(pos) == Some(b'0') {
            let digit: Option<fn(&u8) -> bool> = match self.at(pos + 1) {
                Some(b'x' | b'X') => Some(u8::is_ascii_hexdigit),
                Some(b'b' | b'B') => Some(|c| *c == b'0' || *c == b'1'),
                _ => None,
            };
            if let Some(digit) = digit {
                let n = self.rest(pos + 2).iter().take_while(|c| digit(c)).count();
                if n == 0 {
                    self.cur.assign(BAREWORD, self.s, pos, pos + 2);
                    return pos + 2;
                }
                self.cur.assign(NUMBER, self.s, pos, pos + 2 + n);
                return pos + 2 + n;
            }
        }
        let digits_from = |t: &Self, i: usize| -> usize {
            t.rest(i).iter().take_while(|c| c.is_ascii_digit()).count()
        };
        let mut end = pos + digits_from(self, pos);
        if self.at(end) == Some(b'.') {
            end += 1;
            end += digits_from(self, end);
            if end - pos == 1 {
                self.cur.assign_char(DOT, b'.');
                return end;
            }
        }
        let mut have_e = false;
        let mut have_exp = false;
        if matches!(self.at(end), Some(b'e' | b'E')) {
            have_e = true;
            end += 1;
            if matches!(self.at(end), Some(b'+' | b'-')) {
                end += 1;
            }
            let n = digits_from(self, end);
            have_exp = n > 0;
            end += n;
        }
        // Oracle's float/double suffix.
        if matches!(self.at(end), Some(b'd' | b'D' | b'f' | b'F')) {
            match self.at(end + 1) {
                None => end += 1,
                Some(c) if is_white(c) || c == b';' || c == b'u' || c == b'U' => end += 1,
                Some(_) => {}
            }
        }
        let ty = if have_e && !have_exp {
            BAREWORD
        } else {
            NUMBER
        };
        self.cur.assign(ty, self.s, pos, end);
        end
    }

    fn word(&mut self) -> usize {
        let pos = self.pos;
        let rest = self.rest(pos);
        let mut word_len = 0;
        let mut dot_or_tick = false;
        for &c in rest {
            match WORD_CLASS[usize::from(c)] {
                WORD_END => break,
                WORD_DOT_OR_TICK => dot_or_tick = true,
                _ => {}
            }
            word_len += 1;
        }
        let word = rest.get(..word_len).unwrap_or(&[]);
        self.cur.assign(BAREWORD, self.s, pos, pos + word_len);
        if dot_or_tick {
            // A keyword before a '.' or '`' inside the word is a token of its own.
            for (i, &c) in word.iter().enumerate() {
                if c == b'.' || c == b'`' {
                    let ty = self.tables.lookup(word.get(..i).unwrap_or(&[]));
                    if ty != NONE && ty != BAREWORD {
                        self.cur = Token::EMPTY;
                        self.cur.assign(ty, self.s, pos, pos + i);
                        return pos + i;
                    }
                }
            }
        }
        if word_len < TOKEN_SIZE {
            // The whole word is the token's value.
            let ty = self.tables.lookup_in(&self.cur.val, word_len);
            if ty != NONE {
                self.cur.ty = ty;
            }
        }
        pos + word_len
    }
}

// ---------------------------------------------------------------------------------------------
// Folding, fingerprint, blacklist, whitelist

fn is_unary_op(t: &Token) -> bool {
    t.ty == OPERATOR
        && match t.value() {
            [b'+' | b'-' | b'!' | b'~'] => true,
            b"!!" => true,
            v => v.eq_ignore_ascii_case(b"NOT"),
        }
}

fn is_arithmetic_op(t: &Token) -> bool {
    t.ty == OPERATOR && t.len == 1 && matches!(t.first(), b'*' | b'/' | b'-' | b'+' | b'%')
}

/// Types `syntax_merge_words` merges (the second also a logic operator).
fn is_mergeable(ty: u8) -> bool {
    matches!(
        ty,
        KEYWORD | BAREWORD | OPERATOR | UNION | FUNCTION | EXPRESSION | TSQL | SQLTYPE
    )
}

/// Functions libinjection also treats as such after a bareword or variable and '('.
const FUNCTION_NAMES: &[&[u8]] = &[
    b"USER_ID",
    b"USER_NAME",
    b"DATABASE",
    b"PASSWORD",
    b"USER",
    b"CURRENT_USER",
    b"CURRENT_DATE",
    b"CURRENT_TIME",
    b"CURRENT_TIMESTAMP",
    b"LOCALTIME",
    b"LOCALTIMESTAMP",
];

/// One pass of libinjection over the input with one set of flags.
struct Pass {
    fp: Fingerprint,
    /// The token slots of the fold; after it, the fingerprinted tokens (libinjectionrs's
    /// `tokens`) are the first `ntokens`.
    tokens: [Token; MAX_TOKENS + 3],
    ntokens: usize,
    /// Tokens the tokenizer produced, comments included (`stats_tokens`).
    stats_tokens: usize,
    /// A comment that needs a MySQL reparse was seen.
    reparse: bool,
}

impl Pass {
    fn new() -> Pass {
        Pass {
            fp: Fingerprint {
                bytes: [0; 8],
                len: 0,
            },
            tokens: [Token::EMPTY; MAX_TOKENS + 3],
            ntokens: 0,
            stats_tokens: 0,
            reparse: false,
        }
    }

    /// Tokenizes, folds and fingerprints `input` with these flags: is it SQLi?
    fn run(&mut self, tables: &Tables, input: &[u8], quote: u8, mysql: bool) -> bool {
        self.ntokens = 0;
        self.stats_tokens = 0;
        self.reparse = false;
        let mut tz = Tokenizer {
            tables,
            s: input,
            pos: 0,
            quote,
            mysql,
            reparse: false,
            cur: Token::EMPTY,
        };
        let count = self.fold(tables, &mut tz);
        self.fingerprint(count);
        self.is_sqli(tables, input)
    }

    /// The next token into slot `at`; `false` at the end.
    fn take(&mut self, tz: &mut Tokenizer, at: usize) -> bool {
        if !tz.next() {
            return false;
        }
        self.stats_tokens += 1;
        self.tokens[at & 7] = tz.cur;
        true
    }

    /// Takes tokens into the slots from `*pos` until `want` stand after `left`: a comment is
    /// set aside in `comment` (its slot reused), any other token clears it. `false` when the
    /// input ended first.
    fn take_upto(
        &mut self,
        tz: &mut Tokenizer,
        pos: &mut usize,
        left: usize,
        want: usize,
        comment: &mut Option<Token>,
    ) -> bool {
        while *pos <= MAX_TOKENS && pos.saturating_sub(left) < want {
            if !self.take(tz, *pos) {
                return false;
            }
            let taken = self.tokens[*pos & 7];
            if taken.is(COMMENT) {
                *comment = Some(taken);
            } else {
                *comment = None;
                *pos += 1;
            }
        }
        true
    }

    /// `libinjection_sqli_fold` (as libinjectionrs has it): folds the token stream into at most
    /// 5 tokens; returns how many to fingerprint.
    fn fold(&mut self, tables: &Tables, tz: &mut Tokenizer) -> usize {
        // The last comment taken, while no other token came after it.
        let mut last_comment: Option<Token> = None;
        // Slot `i` (masked: never out of bounds, and the indexes are < 8 anyway).
        macro_rules! t {
            ($i:expr) => {
                self.tokens[($i) & 7]
            };
        }

        // Skip leading comments, left parentheses, sql types and unary operators.
        let mut more = true;
        loop {
            if !self.take(tz, 0) {
                more = false;
                break;
            }
            let first = &t!(0);
            if !(first.is(COMMENT)
                || first.is(LEFTPARENS)
                || first.is(SQLTYPE)
                || is_unary_op(first))
            {
                break;
            }
        }
        if !more {
            self.reparse = tz.reparse;
            return 0;
        }
        let mut pos = 1usize;
        let mut left = 0usize;

        loop {
            if pos >= MAX_TOKENS {
                let ty = |i: usize| self.tokens[i & 7].ty;
                if (ty(0) == NUMBER
                    && (ty(1) == OPERATOR || ty(1) == COMMA)
                    && ty(2) == LEFTPARENS
                    && ty(3) == NUMBER
                    && ty(4) == RIGHTPARENS)
                    || (ty(0) == BAREWORD
                        && ty(1) == OPERATOR
                        && ty(2) == LEFTPARENS
                        && (ty(3) == BAREWORD || ty(3) == NUMBER)
                        && ty(4) == RIGHTPARENS)
                    || (ty(0) == NUMBER
                        && ty(1) == RIGHTPARENS
                        && ty(2) == COMMA
                        && ty(3) == LEFTPARENS
                        && ty(4) == NUMBER)
                    || (ty(0) == BAREWORD
                        && ty(1) == RIGHTPARENS
                        && ty(2) == OPERATOR
                        && ty(3) == LEFTPARENS
                        && ty(4) == BAREWORD)
                {
                    if pos > MAX_TOKENS {
                        t!(1) = t!(MAX_TOKENS);
                        pos = 2;
                    } else {
                        pos = 1;
                    }
                    left = 0;
                }
            }

            if !more || left >= MAX_TOKENS {
                left = pos;
                break;
            }

            // Get up to two tokens (a comment is kept aside, the slot reused).
            more = more && self.take_upto(tz, &mut pos, left, 2, &mut last_comment);
            if pos.saturating_sub(left) < 2 {
                left = pos;
                continue;
            }

            // Two-token folds.
            let (at, bt) = (t!(left).ty, t!(left + 1).ty);
            if (at == STRING && bt == STRING) || (at == SEMICOLON && bt == SEMICOLON) {
                // "foo" "bar" is one string; ";;" one semicolon.
                pos -= 1;
                continue;
            } else if (at == OPERATOR || at == LOGIC_OPERATOR)
                && (is_unary_op(&t!(left + 1)) || bt == SQLTYPE)
            {
                pos -= 1;
                left = 0;
                continue;
            } else if (at == LEFTPARENS && is_unary_op(&t!(left + 1)))
                || self.merge_words(tables, left)
            {
                // "( -" is "("; "UNION" "ALL" is one keyword.
                pos -= 1;
                left = left.saturating_sub(1);
                continue;
            } else if at == SEMICOLON && bt == FUNCTION && {
                let b = &t!(left + 1);
                b.len >= 2 && matches!(b.val[0], b'I' | b'i') && matches!(b.val[1], b'F' | b'f')
            } {
                // IF after a semicolon: Transact-SQL's control flow.
                t!(left + 1).ty = TSQL;
                continue;
            } else if (at == BAREWORD || at == VARIABLE)
                && bt == LEFTPARENS
                && FUNCTION_NAMES.iter().any(|name| t!(left).value_is(name))
            {
                t!(left).ty = FUNCTION;
                continue;
            } else if at == KEYWORD && (t!(left).value_is(b"IN") || t!(left).value_is(b"NOT IN")) {
                t!(left).ty = if bt == LEFTPARENS { OPERATOR } else { BAREWORD };
                continue;
            } else if at == OPERATOR
                && (t!(left).value_is(b"LIKE") || t!(left).value_is(b"NOT LIKE"))
            {
                if bt == LEFTPARENS {
                    t!(left).ty = FUNCTION;
                }
                // falls through to the three-token folds
            } else if at == SQLTYPE
                && matches!(
                    bt,
                    BAREWORD | NUMBER | SQLTYPE | LEFTPARENS | FUNCTION | VARIABLE | STRING
                )
            {
                t!(left) = t!(left + 1);
                pos -= 1;
                left = 0;
                continue;
            } else if at == COLLATE && bt == BAREWORD {
                // libinjectionrs looks for '_' in the value as UTF-8 text.
                let v = t!(left + 1).value();
                if v.contains(&b'_') && std::str::from_utf8(v).is_ok() {
                    t!(left + 1).ty = SQLTYPE;
                    left = 0;
                }
                // falls through to the three-token folds
            } else if at == BACKSLASH {
                if is_arithmetic_op(&t!(left + 1)) {
                    t!(left).ty = NUMBER;
                } else {
                    t!(left) = t!(left + 1);
                    pos -= 1;
                }
                left = 0;
                continue;
            } else if (at == LEFTPARENS && bt == LEFTPARENS)
                || (at == RIGHTPARENS && bt == RIGHTPARENS)
            {
                pos -= 1;
                left = 0;
                continue;
            } else if at == LEFTBRACE && bt == BAREWORD {
                if t!(left + 1).len == 0 {
                    // MySQL's `{``.``.id}`: blacklisted. libinjectionrs returns here without
                    // its comment statistics (no MySQL reparse).
                    t!(left + 1).ty = EVIL;
                    self.ntokens = (left + 2).min(self.tokens.len());
                    return left + 2;
                }
                left = 0;
                pos = pos.saturating_sub(2);
                continue;
            } else if bt == RIGHTBRACE {
                pos -= 1;
                left = 0;
                continue;
            }

            // Get one more token.
            more = more && self.take_upto(tz, &mut pos, left, 3, &mut last_comment);
            if pos.saturating_sub(left) < 3 {
                left = pos;
                continue;
            }

            // Three-token folds.
            let (at, bt, ct) = (t!(left).ty, t!(left + 1).ty, t!(left + 2).ty);
            if (at == NUMBER && bt == OPERATOR && ct == NUMBER)
                || (at == OPERATOR && bt != LEFTPARENS && ct == OPERATOR)
                || (at == LOGIC_OPERATOR && ct == LOGIC_OPERATOR)
                || (at == VARIABLE && bt == OPERATOR && matches!(ct, VARIABLE | NUMBER | BAREWORD))
                || (matches!(at, BAREWORD | NUMBER)
                    && bt == OPERATOR
                    && matches!(ct, NUMBER | BAREWORD))
                || (matches!(at, BAREWORD | NUMBER | VARIABLE | STRING)
                    && bt == OPERATOR
                    && t!(left + 1).value() == b"::"
                    && ct == SQLTYPE)
                || (matches!(at, BAREWORD | NUMBER | STRING | VARIABLE)
                    && bt == COMMA
                    && matches!(ct, NUMBER | BAREWORD | STRING | VARIABLE))
            {
                pos -= 2;
                left = 0;
                continue;
            } else if (matches!(at, EXPRESSION | GROUP | COMMA)
                && is_unary_op(&t!(left + 1))
                && ct == LEFTPARENS)
                || (matches!(at, KEYWORD | EXPRESSION | GROUP)
                    && is_unary_op(&t!(left + 1))
                    && matches!(ct, NUMBER | BAREWORD | VARIABLE | STRING | FUNCTION))
            {
                // SELECT + (, LIMIT + (, select - 1: drop the unary operator.
                t!(left + 1) = t!(left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if at == COMMA
                && is_unary_op(&t!(left + 1))
                && matches!(ct, NUMBER | BAREWORD | VARIABLE | STRING)
            {
                // ", -1" -> ",1", and back up: "1,-1" -> "1".
                t!(left + 1) = t!(left + 2);
                left = 0;
                pos = pos.saturating_sub(3);
                continue;
            } else if at == COMMA && is_unary_op(&t!(left + 1)) && ct == FUNCTION {
                t!(left + 1) = t!(left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if at == BAREWORD && bt == DOT && ct == BAREWORD {
                // database.table
                pos -= 2;
                left = 0;
                continue;
            } else if at == EXPRESSION && bt == DOT && ct == BAREWORD {
                // select . `foo` -> select `foo`
                t!(left + 1) = t!(left + 2);
                pos -= 1;
                left = 0;
                continue;
            } else if at == FUNCTION && bt == LEFTPARENS && ct != RIGHTPARENS {
                // USER() takes no arguments: USER(foo) is no function.
                if t!(left).value_is(b"USER") {
                    t!(left).ty = BAREWORD;
                }
            }

            left += 1;
        }

        // A sixth token may have been read to type the fifth.
        left = left.min(MAX_TOKENS);

        // PHP's magic backquote comment: an unterminated empty `-name at the end.
        if left > 2 {
            let last = &mut t!(left - 1);
            if last.is(BAREWORD) && last.open == b'`' && last.len == 0 && last.close == 0 {
                last.ty = COMMENT;
            }
        }

        // The fingerprinted tokens: the first `left` (none is untyped) and the last comment.
        let mut n = 0;
        for i in 0..left {
            if t!(i).ty != NONE {
                if n != i {
                    t!(n) = t!(i);
                }
                n += 1;
            }
        }
        self.reparse = tz.reparse;
        if let (true, Some(comment)) = (left < MAX_TOKENS, last_comment) {
            t!(n) = comment;
            n += 1;
            left += 1;
        }
        self.ntokens = n;
        left
    }

    /// `syntax_merge_words`: "a b" when that is a keyword (e.g. `UNION ALL`), into slot `at`.
    fn merge_words(&mut self, tables: &Tables, at: usize) -> bool {
        let (a, b) = (&self.tokens[at & 7], &self.tokens[(at + 1) & 7]);
        if !is_mergeable(a.ty) || !(is_mergeable(b.ty) || b.ty == LOGIC_OPERATOR) {
            return false;
        }
        let (la, lb) = (usize::from(a.len), usize::from(b.len));
        let merged_len = la + lb + 1;
        if merged_len >= TOKEN_SIZE {
            return false;
        }
        let mut val = [0u8; TOKEN_SIZE];
        if let (Some(x), Some(y)) = (val.get_mut(..la), a.val.get(..la)) {
            x.copy_from_slice(y);
        }
        if let Some(space) = val.get_mut(la) {
            *space = b' ';
        }
        if let (Some(x), Some(y)) = (val.get_mut(la + 1..merged_len), b.val.get(..lb)) {
            x.copy_from_slice(y);
        }
        let ty = tables.lookup_in(&val, merged_len);
        if ty == BAREWORD {
            return false;
        }
        let a = &mut self.tokens[at & 7];
        a.ty = ty;
        a.val = val;
        a.len = merged_len as u8;
        true
    }

    /// `libinjection_sqli_fingerprint`: the type characters of the first `count` tokens; any
    /// evil token makes the fingerprint "X".
    fn fingerprint(&mut self, count: usize) {
        let n = count.min(self.ntokens).min(8);
        // Built in a register (byte stores read back as a word stall the CPU).
        let mut word = 0u64;
        let mut evil = false;
        for (i, t) in self.tokens[..n].iter().enumerate() {
            let c = if t.ty == NONE { UNKNOWN } else { t.ty };
            evil |= c == EVIL;
            word |= u64::from(c) << (8 * i);
        }
        let mut len = n;
        if evil {
            word = u64::from(EVIL);
            len = 1;
            if self.ntokens > 0 {
                let mut x = Token::EMPTY;
                x.assign_char(EVIL, b'X');
                self.tokens[0] = x;
                self.ntokens = 1;
            }
        }
        self.fp = Fingerprint {
            bytes: word.to_le_bytes(),
            len: len as u8,
        };
    }

    /// `libinjection_sqli_check_fingerprint`: blacklisted and not whitelisted.
    fn is_sqli(&self, tables: &Tables, input: &[u8]) -> bool {
        self.blacklisted(tables) && self.not_whitelisted(input)
    }

    /// `libinjection_sqli_blacklist`: '0' + the uppercased fingerprint is a known one.
    fn blacklisted(&self, tables: &Tables) -> bool {
        let fp = self.fp.as_bytes();
        if fp.is_empty() {
            return false;
        }
        if fp.len() < 8 {
            // '0' and the fingerprint, packed: uppercasing is `upper8`'s.
            let key = (u64::from_le_bytes(self.fp.bytes) << 8) | u64::from(b'0');
            return tables.has_fingerprint(upper8(key));
        }
        let mut key = [0u8; TOKEN_SIZE];
        key[0] = b'0';
        for (k, &c) in key[1..].iter_mut().zip(fp) {
            *k = c.to_ascii_uppercase();
        }
        tables.lookup_in(&key, fp.len() + 1) == FINGERPRINT
    }

    /// `libinjection_sqli_not_whitelist` (as libinjectionrs has it): false for the small
    /// fingerprints that are more likely benign.
    fn not_whitelisted(&self, input: &[u8]) -> bool {
        let fp = self.fp.as_bytes();
        let tlen = fp.len();
        if tlen > 1 && fp.last() == Some(&COMMENT) && has_sp_password(input) {
            return true;
        }
        let tok = |i: usize| self.tokens.get(i).copied().unwrap_or(Token::EMPTY);
        match tlen {
            2 => {
                if self.ntokens < 2 {
                    return true;
                }
                let (t0, t1) = (tok(0), tok(1));
                if fp[1] == UNION {
                    return self.stats_tokens != 2;
                }
                if t1.first() == b'#' {
                    return false;
                }
                if t0.is(BAREWORD) && t1.is(COMMENT) && t1.first() != b'/' {
                    return false;
                }
                if t0.is(NUMBER) && t1.is(COMMENT) {
                    if t1.first() == b'/' || self.stats_tokens > 2 {
                        return true;
                    }
                    // libinjection reads the character at the first token's length, not at
                    // its end (a bug kept by both).
                    let at = usize::from(t0.len);
                    return match input.get(at) {
                        // signed char: high bytes count as "whitespace" too
                        Some(&c) if (c as i8) <= 32 => true,
                        Some(b'/') => input.get(at + 1) == Some(&b'*'),
                        Some(b'-') => input.get(at + 1) == Some(&b'-'),
                        _ => false,
                    };
                }
                !(t1.len > 2 && t1.first() == b'-')
            }
            3 => {
                if self.ntokens < 3 {
                    return true;
                }
                let (t0, t1, t2) = (tok(0), tok(1), tok(2));
                if fp == b"sos" || fp == b"s&s" {
                    // "...foo" + "bar..." is concatenation
                    return t0.open == 0 && t2.close == 0 && t0.close == t2.open;
                }
                if matches!(fp, b"s&n" | b"n&1" | b"1&1" | b"1&v" | b"1&s")
                    && self.stats_tokens == 3
                {
                    return false;
                }
                if t1.is(KEYWORD) && (t1.len < 5 || !t1.val.starts_with(b"INTO")) {
                    // only INTO OUTFILE / INTO DUMPFILE (libinjectionrs: case-sensitive)
                    return false;
                }
                true
            }
            _ => true,
        }
    }
}

/// The input contains `sp_password` (ASCII case-insensitive) and is UTF-8 (libinjectionrs
/// searches its text, empty when not UTF-8).
fn has_sp_password(input: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"sp_password";
    input
        .windows(NEEDLE.len())
        .any(|w| w.eq_ignore_ascii_case(NEEDLE))
        && std::str::from_utf8(input).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libinjectionrs::{SqliFlags, SqliState};
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// libinjectionrs's answer, as the operator used it.
    fn reference(input: &[u8]) -> Option<Vec<u8>> {
        let mut state = SqliState::new(input, SqliFlags::FLAG_NONE);
        state
            .detect()
            .then(|| state.get_fingerprint().as_str().as_bytes().to_vec())
    }

    /// The five passes of `detect`: (quote, mysql, libinjectionrs flags).
    const PASSES: [(u8, bool, u32); 5] = [
        (0, false, 1 | 8),
        (0, true, 1 | 16),
        (b'\'', false, 2 | 8),
        (b'\'', true, 2 | 16),
        (b'"', true, 4 | 16),
    ];

    /// Verdict and fingerprint agree with libinjectionrs; so do, for every pass on its own,
    /// the fingerprint, the pass's verdict and the MySQL-reparse statistics.
    fn agree(input: &[u8]) -> Result<(), String> {
        let shown = || format!("{:?}", String::from_utf8_lossy(input));
        let ours = detect(input).map(|fp| fp.as_bytes().to_vec());
        let theirs = reference(input);
        if ours != theirs {
            return Err(format!(
                "detect({}): ours {:?}, libinjectionrs {:?}",
                shown(),
                ours.map(|v| String::from_utf8_lossy(&v).into_owned()),
                theirs.map(|v| String::from_utf8_lossy(&v).into_owned())
            ));
        }
        if input.is_empty() {
            return Ok(());
        }
        let tables = tables();
        for (quote, mysql, flags) in PASSES {
            let mut pass = Pass::new();
            let ours_sqli = pass.run(tables, input, quote, mysql);
            let mut state = SqliState::new(input, SqliFlags::new(flags));
            let theirs_sqli = state.is_sqli();
            let theirs_fp = state.fingerprint_string();
            let theirs_reparse = state.stats_comment_ddx != 0 || state.stats_comment_hash != 0;
            if pass.fp.as_bytes() != theirs_fp.as_bytes()
                || ours_sqli != theirs_sqli
                || pass.reparse != theirs_reparse
            {
                return Err(format!(
                    "pass {flags:#x} on {}: ours {:?} sqli={ours_sqli} reparse={}, \
                     libinjectionrs {theirs_fp:?} sqli={theirs_sqli} reparse={theirs_reparse}",
                    shown(),
                    pass.fp,
                    pass.reparse
                ));
            }
        }
        Ok(())
    }

    fn assert_agree(input: &[u8]) {
        if let Err(e) = agree(input) {
            panic!("{e}");
        }
    }

    /// SQL-ish pieces for the generated inputs.
    const FRAGMENTS: &[&[u8]] = &[
        b"SELECT", b"select", b"UNION", b"union all", b"UNION DISTINCT", b"OR", b"or", b"AND",
        b"and", b"XOR", b"NOT", b"not", b"!", b"!!", b"&&", b"||", b"FROM", b"from", b"WHERE",
        b"LIMIT", b"GROUP BY", b"ORDER BY", b"HAVING", b"INTO", b"into", b"OUTFILE", b"DUMPFILE",
        b"IN", b"not in", b"LIKE", b"not like", b"IS", b"NULL", b"\\N", b"COLLATE", b"utf8_bin",
        b"_latin1", b"CAST", b"AS", b"INT", b"char", b"varchar", b"binary", b"CONCAT", b"sleep",
        b"benchmark", b"version", b"USER", b"user_name", b"database", b"current_user",
        b"password", b"IF", b"ifnull", b"WAITFOR", b"DELAY", b"EXEC", b"xp_cmdshell",
        b"sp_password", b"SP_PASSWORD", b"DECLARE", b"BEGIN", b"END", b"CASE", b"WHEN", b"THEN",
        b"ELSE", b"information_schema", b"tables", b"admin", b"x", b"id", b"foo.bar", b"a.b.c",
        b"select.x", b"union`", b"1", b"0", b"42", b"1.5", b"1.", b".5", b"1e5", b"1e", b"1E+",
        b"2e-3", b"1d", b"1f", b"1fUNION", b"0x", b"0x1F", b"0X", b"0b", b"0b101", b"0B2", b"'",
        b"''", b"\"", b"\"\"", b"`", b"``", b"--", b"-- ", b"--x", b"#", b"/*", b"*/", b"/*!",
        b"/*/", b"/**/", b"/*!50000", b"(", b")", b"((", b"))", b",", b";", b";;", b"\\", b"\\\\",
        b"\\'", b"\\\"", b"@", b"@@", b"@var", b"@@version", b"@`x`", b"@'x'", b"$", b"$$",
        b"$1.00", b"$.", b"$1,000", b"$tag$", b"$a$", b"N'", b"n'", b"b'01'", b"B'", b"x'af'",
        b"X'zz'", b"e'", b"E'\\''", b"q'[", b"]'", b"Q'(", b")'", b"q'{", b"}'", b"q'<", b">'",
        b"q'!", b"!'", b"nq'[", b"u&'", b"U&'", b"=", b"<", b">", b"<=", b">=", b"<>", b"<=>",
        b"!=", b"!<", b":=", b"::", b":", b"~", b"+", b"-", b"*", b"/", b"%", b"^", b"|", b"&",
        b"{", b"}", b"{ ``", b"{x", b"[", b"]", b"[col]", b".", b"?", b" ", b"  ", b"\t", b"\n",
        b"\r", b"\x0b", b"\x0c", b"\0", b"\x01", b"\x7f", b"\xa0", b"\xc3\xa9", b"\xff", b"\x80",
        b"\xe2\x80\x8b", b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        b"'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'", b"UNION_ALL_SELECT_x_y_z_aaaaaaaaaaaaaaa",
        b"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9_\xc3\xa9\xc3\xa9\xc3\xa9",
        b"1' OR '1'='1", b"1 UNION SELECT", b"' or 1=1--", b"\" or \"\"=\"", b"1;DROP TABLE t",
    ];

    fn sqlish() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            6 => prop::sample::select(FRAGMENTS).prop_map(<[u8]>::to_vec),
            2 => prop::sample::select(&b" \t\n'\"`-#/*()1a@$\\;,.=|&N:x0bq![]{}<>~+%^?"[..])
                .prop_map(|b| vec![b]),
            1 => prop::collection::vec(any::<u8>(), 1..4),
        ];
        const SEPARATORS: &[&[u8]] = &[b"", b" ", b" ", b"\t", b"\n", b"/**/", b"+"];
        let sep = prop::sample::select(SEPARATORS);
        prop::collection::vec((piece, sep), 0..14).prop_map(|parts| {
            parts
                .into_iter()
                .flat_map(|(p, s)| p.into_iter().chain(s.iter().copied()))
                .collect()
        })
    }

    /// Short statements: 1 to 7 SQL words, values and punctuation, with separators and an
    /// optional whitespace prefix (libinjection reads some characters by absolute position).
    fn statements() -> impl Strategy<Value = Vec<u8>> {
        const WORDS: &[&[u8]] = &[
            b"1",
            b"2",
            b"1.5",
            b"0x1",
            b"'x'",
            b"'",
            b"\"y\"",
            b"\"",
            b"`t`",
            b"`",
            b"x",
            b"id",
            b"@a",
            b"@user",
            b"@@version",
            b"into",
            b"INTO",
            b"Into",
            b"outfile",
            b"DUMPFILE",
            b"select",
            b"UNION",
            b"all",
            b"or",
            b"AND",
            b"xor",
            b"not",
            b"in",
            b"like",
            b"is",
            b"null",
            b"user",
            b"database",
            b"current_user",
            b"sleep",
            b"if",
            b"collate",
            b"utf8_bin",
            b"sp_password",
            b"from",
            b"where",
            b"limit",
            b"order",
            b"by",
            b"--",
            b"-- x",
            b"#",
            b"#x",
            b"/*",
            b"/* x */",
            b"*/",
            b"(",
            b")",
            b",",
            b";",
            b"=",
            b"<",
            b"+",
            b"-",
            b"!",
            b"~",
            b"::",
            b"int",
            b"char",
            b".",
            b"{",
            b"}",
            b"\\",
            b"%",
            b"*",
            b"$",
            b"$$",
            b"\xa0",
            b"\xff",
        ];
        const SEPARATORS: &[&[u8]] = &[b" ", b" ", b" ", b"", b"\xa0", b"\t", b"\n", b"/**/"];
        const PREFIXES: &[&[u8]] = &[
            b"",
            b"",
            b" ",
            b"\xa0",
            b"\xa0\xa0",
            b"\0",
            b"\x01",
            b"\xff",
        ];
        (
            prop::sample::select(PREFIXES),
            prop::collection::vec(
                (
                    prop::sample::select(WORDS),
                    prop::sample::select(SEPARATORS),
                ),
                1..8,
            ),
        )
            .prop_map(|(prefix, parts)| {
                let mut out = prefix.to_vec();
                for (i, (word, sep)) in parts.into_iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(sep);
                    }
                    out.extend_from_slice(word);
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40_000, ..ProptestConfig::default() })]

        #[test]
        fn agrees_with_libinjectionrs_on_short_statements(input in statements()) {
            agree(&input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn agrees_with_libinjectionrs_on_sql_like_input(input in sqlish()) {
            agree(&input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn agrees_with_libinjectionrs_on_random_bytes(
            input in prop::collection::vec(any::<u8>(), 0..48)
        ) {
            agree(&input).map_err(TestCaseError::fail)?;
        }

        #[test]
        fn agrees_with_libinjectionrs_on_a_small_alphabet(
            input in prop::collection::vec(
                prop::sample::select(&b" '\"`-#/*()1e0x.@$\\;,=|&nNqQbBuU:![]{}<>\n\xa0\xff"[..]),
                0..24,
            )
        ) {
            agree(&input).map_err(TestCaseError::fail)?;
        }
    }

    /// Known attacks and benign values, written here (not taken from a corpus).
    const KNOWN: &[&str] = &[
        "1' OR '1'='1",
        "1' OR '1'='1'--",
        "1' UNION SELECT password FROM users--",
        "1 UNION SELECT 1,2,3",
        "-1 union all select null,null,concat(user(),0x3a,database())",
        "1; DROP TABLE users",
        "1'; DROP TABLE users; --",
        "admin'--",
        "admin' #",
        "admin'/*",
        "' or 1=1#",
        "\" or \"\"=\"",
        "\" or 1=1 --",
        "1 AND 1=1",
        "1 AND SLEEP(5)",
        "1' AND SLEEP(5) AND '1'='1",
        "1 OR BENCHMARK(1000000,MD5(1))",
        "1' WAITFOR DELAY '0:0:5'--",
        "1;WAITFOR DELAY '0:0:5'",
        "1) OR (1=1",
        "') OR ('1'='1",
        "1 /*!50000UNION*/ SELECT 1",
        "1/**/UNION/**/SELECT/**/1",
        "1 UNION/*!SELECT*/1",
        "' UNION SELECT @@version --",
        "1 AND (SELECT COUNT(*) FROM information_schema.tables)>0",
        "1 AND EXTRACTVALUE(1,CONCAT(0x5c,USER()))",
        "1' AND 1=CONVERT(int,(SELECT @@version))--",
        "' HAVING 1=1--",
        "' GROUP BY columnnames having 1=1 --",
        "1 ORDER BY 10--",
        "-1' UNION SELECT 1,LOAD_FILE('/etc/passwd')--",
        "1 INTO OUTFILE '/tmp/x'",
        "1 into outfile '/tmp/x'",
        "1 Into Dumpfile x",
        "@user(1) or 1=1",
        "\u{a0}\u{a0}1 --",
        "  12 --",
        "' INTO OUTFILE '/var/www/shell.php",
        "1;EXEC xp_cmdshell('dir')",
        "'; exec master..xp_cmdshell 'ping 10.0.0.1'--",
        "1 AND ASCII(SUBSTRING((SELECT TOP 1 name FROM sysobjects),1,1))>64",
        "1' AND '1'='1",
        "x' AND email IS NULL; --",
        "1 or 1=1",
        "1 || 1",
        "1 && 1",
        "' or ''='",
        "1' or '1'='1' /*",
        "@@version",
        "select * from users",
        "SELECT name FROM sqlite_master WHERE type='table'",
        "1; SELECT pg_sleep(5)",
        "1 AND 1::int=1",
        "$$ or 1=1 $$",
        "1' AND (SELECT 1 FROM (SELECT SLEEP(5))a)--",
        "1 UNION SELECT CHAR(65,66)",
        "1 AND 'a' LIKE 'a",
        "1 RLIKE (SELECT 1)",
        "{ `` . `` . id }",
        "1 COLLATE utf8_bin",
        "1' sp_password --",
        "\\' or 1=1 --",
        "1\\%1",
        "1 union select 1 -- sp_password",
        "IF(1=1,SLEEP(5),0)",
        "; IF 1=1 SELECT 1",
        "USER() -- x",
        "CURRENT_USER()",
        "-1 or @a:=1",
        "N'abc' or 1=1",
        "1 AND 0x41=0x41",
        "1 and b'1'=b'1'",
        "1e1 union select 1",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/126.0.0.0 Safari/537.36",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "en-US,en;q=0.5",
        "gzip, deflate, br",
        "Jane Doe",
        "jane@example.com",
        "Great service",
        "price",
        "2",
        "session",
        "3f9a1c2b7d",
        "O'Brien",
        "Don't stop me now",
        "rock 'n' roll",
        "\"quoted\" text",
        "1-2",
        "2024-01-01",
        "10:30",
        "a=b&c=d",
        "/index.php?id=1",
        "https://example.com/path?q=select+a+product",
        "select a product",
        "union station",
        "Tom & Jerry",
        "50% off",
        "#hashtag",
        "C:\\Windows\\system32",
        "{\"a\":1,\"b\":[1,2]}",
        "<b>bold</b>",
        "-- dash",
        "1 -- one",
        "3.14159",
        "$100",
        "I'm here; you're there",
        "user(name)",
        "AND",
        "or",
        "",
        " ",
        "'",
        "\"",
        "`",
        "\\",
    ];

    #[test]
    fn agrees_with_libinjectionrs_on_known_values() {
        let mut sqli = 0;
        for input in KNOWN {
            assert_agree(input.as_bytes());
            sqli += usize::from(detect(input.as_bytes()).is_some());
        }
        // The list holds both kinds.
        assert!(
            sqli > 40 && sqli < KNOWN.len() - 30,
            "{sqli} of {}",
            KNOWN.len()
        );
        assert_eq!(
            detect(b"1' UNION SELECT password FROM users--").map(|f| f.as_bytes().to_vec()),
            Some(b"sUEnk".to_vec())
        );
    }

    fn url_decode(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while let Some(&c) = s.get(i) {
            let hex = |at: usize| s.get(at).and_then(|&h| (h as char).to_digit(16));
            match (c, hex(i + 1), hex(i + 2)) {
                (b'%', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b'+', _, _) => {
                    out.push(b' ');
                    i += 1;
                }
                _ => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        out
    }

    fn strings(value: &serde_yaml_ng::Value, out: &mut Vec<String>) {
        use serde_yaml_ng::Value;
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
            Value::Mapping(map) => map.iter().for_each(|(k, v)| {
                strings(k, out);
                strings(v, out);
            }),
            Value::Tagged(tagged) => strings(&tagged.value, out),
            _ => {}
        }
    }

    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }

    /// Every string of the CRS v3.3.4 regression tests (URIs, bodies, headers, ...), as is,
    /// URL-decoded and split into parameter names and values.
    #[test]
    fn agrees_with_libinjectionrs_on_the_crs_regression_corpus() {
        let Some(dir) = portcullis_shared_data::CRS_V3_3_4_REGRESSION.for_test() else {
            return;
        };
        let mut files = Vec::new();
        yaml_files(&dir, &mut files);
        assert!(
            files.len() > 100,
            "{} YAML files in {}",
            files.len(),
            dir.display()
        );
        let mut inputs = BTreeSet::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
                continue;
            };
            let mut found = Vec::new();
            strings(&doc, &mut found);
            for s in found {
                let raw = s.as_bytes();
                inputs.insert(raw.to_vec());
                inputs.insert(url_decode(raw));
                let query = raw.splitn(2, |&c| c == b'?').last().unwrap_or(raw);
                for pair in query.split(|&c| c == b'&') {
                    inputs.insert(url_decode(pair));
                    for part in pair.splitn(2, |&c| c == b'=') {
                        inputs.insert(url_decode(part));
                    }
                }
            }
        }
        let mut failures = Vec::new();
        let mut sqli = 0;
        for input in &inputs {
            if let Err(e) = agree(input) {
                failures.push(e);
            }
            sqli += usize::from(detect(input).is_some());
        }
        eprintln!(
            "sqli: {} inputs from {} CRS regression files, {sqli} SQLi",
            inputs.len(),
            files.len()
        );
        assert!(inputs.len() > 3000, "only {} inputs", inputs.len());
        assert!(
            failures.is_empty(),
            "{} of {} differ, e.g.:\n{}",
            failures.len(),
            inputs.len(),
            failures[..failures.len().min(20)].join("\n")
        );
    }

    #[test]
    fn tables_hold_every_keyword() {
        let tables = tables();
        for k in SQL_KEYWORDS {
            let word = k.word.as_bytes();
            assert!(word.len() <= 32, "{}", k.word);
            let want = entry_type(k.token_type);
            assert_eq!(tables.lookup(word), want, "{}", k.word);
            assert_eq!(
                tables.lookup(&word.to_ascii_lowercase()),
                want,
                "{}",
                k.word
            );
        }
        assert_eq!(tables.lookup(b"SELECTX"), BAREWORD);
        assert_eq!(tables.lookup(b""), BAREWORD);
    }

    #[test]
    fn never_panics_on_long_or_odd_input() {
        let mut long = b"1' OR '".to_vec();
        long.extend(std::iter::repeat_n(b'a', 10_000));
        for input in [
            long.clone(),
            vec![0xff; 5000],
            b"/*".repeat(1000),
            b"'".repeat(1001),
            b"\\".repeat(999),
            b"$a$".repeat(500),
            b"q'[".repeat(500),
        ] {
            assert_agree(&input);
        }
    }

    /// Nanoseconds per call, this against libinjectionrs:
    /// `cargo test --release -p portcullis-waf --lib operator::sqli::tests::speed -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn speed() {
        let cases: &[&str] = &[
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            "Jane Doe",
            "jane@example.com",
            "Great service",
            "price",
            "2",
            "session",
            "3f9a1c2b7d",
            "1' OR '1'='1",
            "1' UNION SELECT password FROM users--",
        ];
        let time = |f: &dyn Fn(&[u8]) -> bool, input: &[u8]| {
            let n = 200_000;
            let start = std::time::Instant::now();
            let mut hits = 0usize;
            for _ in 0..n {
                hits += usize::from(f(std::hint::black_box(input)));
            }
            std::hint::black_box(hits);
            start.elapsed().as_nanos() as f64 / f64::from(n)
        };
        let ours = |i: &[u8]| detect(i).is_some();
        let theirs = |i: &[u8]| SqliState::new(i, SqliFlags::FLAG_NONE).detect();
        for input in cases {
            let (a, b) = (
                time(&ours, input.as_bytes()),
                time(&theirs, input.as_bytes()),
            );
            eprintln!("{a:8.1} ns  {b:8.1} ns  x{:5.1}  {input:?}", b / a);
        }
    }
}
