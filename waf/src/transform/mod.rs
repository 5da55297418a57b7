//! Transformations (`t:`) with ModSecurity v3's exact byte semantics.
//!
//! Each takes the input bytes and writes the transformed value; a transformation that leaves
//! its input unchanged says so, so the engine can skip copies.
//!
//! The reference is libmodsecurity 3.0.9 (Debian's), read in `src/actions/transformations/*.cc`
//! and `src/utils/{decode,string,base64}.cc` of owasp-modsecurity/ModSecurity and confirmed
//! against the installed library (see `waf/tests/transform_modsecurity.rs`). Quirks of that
//! code (dropped bytes, odd hex arithmetic) are reproduced on purpose: CRS decides on the
//! values ModSecurity computes, not on what a textbook decoder would compute.

mod decode;
mod encode;
mod path;
mod text;

use std::borrow::Cow;

use crate::ast::TransformName;

/// Every transformation with the names `t:` accepts for it; the first is `as_str`'s.
const NAMES: &[(TransformName, &[&str])] = &[
    (TransformName::None, &["none"]),
    (TransformName::Base64Decode, &["base64Decode"]),
    (TransformName::Base64DecodeExt, &["base64DecodeExt"]),
    (TransformName::Base64Encode, &["base64Encode"]),
    (TransformName::CmdLine, &["cmdLine"]),
    (TransformName::CompressWhitespace, &["compressWhitespace"]),
    (TransformName::CssDecode, &["cssDecode"]),
    (TransformName::EscapeSeqDecode, &["escapeSeqDecode"]),
    (TransformName::HexDecode, &["hexDecode"]),
    (TransformName::HexEncode, &["hexEncode"]),
    (TransformName::HtmlEntityDecode, &["htmlEntityDecode"]),
    (TransformName::JsDecode, &["jsDecode"]),
    (TransformName::Length, &["length"]),
    (TransformName::Lowercase, &["lowercase"]),
    (TransformName::Uppercase, &["uppercase"]),
    (TransformName::Md5, &["md5"]),
    (
        TransformName::NormalizePath,
        &["normalizePath", "normalisePath"],
    ),
    (
        TransformName::NormalizePathWin,
        &["normalizePathWin", "normalisePathWin"],
    ),
    (TransformName::ParityEven7bit, &["parityEven7bit"]),
    (TransformName::ParityOdd7bit, &["parityOdd7bit"]),
    (TransformName::ParityZero7bit, &["parityZero7bit"]),
    (TransformName::RemoveComments, &["removeComments"]),
    (TransformName::RemoveCommentsChar, &["removeCommentsChar"]),
    (TransformName::RemoveNulls, &["removeNulls"]),
    (TransformName::RemoveWhitespace, &["removeWhitespace"]),
    (TransformName::ReplaceComments, &["replaceComments"]),
    (TransformName::ReplaceNulls, &["replaceNulls"]),
    (TransformName::Sha1, &["sha1"]),
    (TransformName::SqlHexDecode, &["sqlHexDecode"]),
    (TransformName::Trim, &["trim"]),
    (TransformName::TrimLeft, &["trimLeft"]),
    (TransformName::TrimRight, &["trimRight"]),
    (TransformName::UrlDecode, &["urlDecode"]),
    (TransformName::UrlDecodeUni, &["urlDecodeUni"]),
    (TransformName::UrlEncode, &["urlEncode"]),
    (TransformName::Utf8ToUnicode, &["utf8toUnicode"]),
];

impl TransformName {
    /// The name after `t:` (case-insensitive), e.g. `urlDecodeUni`; `normalisePath` spellings
    /// included.
    pub fn from_name(name: &str) -> Option<TransformName> {
        NAMES.iter().find_map(|(t, names)| {
            names
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
                .then_some(*t)
        })
    }

    /// The canonical SecLang name.
    pub fn as_str(self) -> &'static str {
        use TransformName as T;
        // Exhaustive, so a new variant cannot go unnamed; `NAMES` must agree (tested).
        match self {
            T::None => "none",
            T::Base64Decode => "base64Decode",
            T::Base64DecodeExt => "base64DecodeExt",
            T::Base64Encode => "base64Encode",
            T::CmdLine => "cmdLine",
            T::CompressWhitespace => "compressWhitespace",
            T::CssDecode => "cssDecode",
            T::EscapeSeqDecode => "escapeSeqDecode",
            T::HexDecode => "hexDecode",
            T::HexEncode => "hexEncode",
            T::HtmlEntityDecode => "htmlEntityDecode",
            T::JsDecode => "jsDecode",
            T::Length => "length",
            T::Lowercase => "lowercase",
            T::Uppercase => "uppercase",
            T::Md5 => "md5",
            T::NormalizePath => "normalizePath",
            T::NormalizePathWin => "normalizePathWin",
            T::ParityEven7bit => "parityEven7bit",
            T::ParityOdd7bit => "parityOdd7bit",
            T::ParityZero7bit => "parityZero7bit",
            T::RemoveComments => "removeComments",
            T::RemoveCommentsChar => "removeCommentsChar",
            T::RemoveNulls => "removeNulls",
            T::RemoveWhitespace => "removeWhitespace",
            T::ReplaceComments => "replaceComments",
            T::ReplaceNulls => "replaceNulls",
            T::Sha1 => "sha1",
            T::SqlHexDecode => "sqlHexDecode",
            T::Trim => "trim",
            T::TrimLeft => "trimLeft",
            T::TrimRight => "trimRight",
            T::UrlDecode => "urlDecode",
            T::UrlDecodeUni => "urlDecodeUni",
            T::UrlEncode => "urlEncode",
            T::Utf8ToUnicode => "utf8toUnicode",
        }
    }
}

/// A set of byte values (bit `b` of word `b / 64`).
pub type ByteSet = [u64; 4];

/// The bytes `input` holds.
pub fn byte_set(input: &[u8]) -> ByteSet {
    let mut set = [0u64; 4];
    for &b in input {
        if let Some(w) = set.get_mut(usize::from(b >> 6)) {
            *w |= 1 << (b & 63);
        }
    }
    set
}

fn set_of(bytes: &[u8]) -> ByteSet {
    byte_set(bytes)
}

/// The bytes without which `t` leaves a value alike: [`apply`] returns `false` for every
/// input holding none of them (checked by a test against each routine). Everything for the
/// transformations that may change any value (decoders of whole values, digests, ...).
/// With [`byte_set`], a chain none of whose triggers a value holds is skipped without
/// running it: CRS runs ~40 chains over every argument and header, and most change nothing.
pub fn triggers(t: TransformName) -> ByteSet {
    use TransformName as T;
    const SPACES: &[u8] = b" \t\n\x0b\x0c\r";
    let upper: Vec<u8> = (b'A'..=b'Z').collect();
    let lower: Vec<u8> = (b'a'..=b'z').collect();
    let with = |base: &[u8], more: &[u8]| {
        let mut v = base.to_vec();
        v.extend_from_slice(more);
        set_of(&v)
    };
    match t {
        T::None => [0; 4],
        T::Lowercase => set_of(&upper),
        T::Uppercase => set_of(&lower),
        T::UrlDecode | T::UrlDecodeUni => set_of(b"%+"),
        T::HtmlEntityDecode => set_of(b"&"),
        T::JsDecode | T::EscapeSeqDecode => set_of(b"\\"),
        T::CssDecode => set_of(b"\\\0"),
        T::RemoveNulls | T::ReplaceNulls => set_of(b"\0"),
        T::CompressWhitespace | T::Trim | T::TrimLeft | T::TrimRight => set_of(SPACES),
        T::RemoveWhitespace => with(SPACES, &[0xa0, 0xc2]),
        T::CmdLine => with(&upper, b"\"'\\^ ,;\t\r\n"),
        T::ReplaceComments => set_of(b"/"),
        T::RemoveComments => set_of(b"/<-#"),
        T::RemoveCommentsChar => set_of(b"/*<-#"),
        T::NormalizePath => set_of(b"/."),
        T::NormalizePathWin => set_of(b"/.\\"),
        T::Utf8ToUnicode => {
            let mut v: Vec<u8> = (0x80..=0xff).collect();
            v.push(0);
            set_of(&v)
        }
        T::Base64Decode
        | T::Base64DecodeExt
        | T::Base64Encode
        | T::HexDecode
        | T::HexEncode
        | T::Length
        | T::Md5
        | T::ParityEven7bit
        | T::ParityOdd7bit
        | T::ParityZero7bit
        | T::Sha1
        | T::SqlHexDecode
        | T::UrlEncode => [u64::MAX; 4],
    }
}

/// Whether `a` and `b` share a byte.
pub fn intersects(a: &ByteSet, b: &ByteSet) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

/// Applies `t` to `input`. Returns `true` and the result in `out` (cleared first) when the
/// value changed; `false` (with `out` unspecified) when the transformation leaves `input` as
/// it is. Never panics, whatever the bytes.
pub fn apply(t: TransformName, input: &[u8], out: &mut Vec<u8>) -> bool {
    use TransformName as T;
    match t {
        T::None => false,
        T::Base64Decode => decode::base64(input, out),
        T::Base64DecodeExt => decode::base64_ext(input, out),
        T::Base64Encode => encode::base64(input, out),
        T::CmdLine => text::cmd_line(input, out),
        T::CompressWhitespace => text::compress_whitespace(input, out),
        T::CssDecode => decode::css(input, out),
        T::EscapeSeqDecode => decode::escape_seq(input, out),
        T::HexDecode => decode::hex(input, out),
        T::HexEncode => encode::hex(input, out),
        T::HtmlEntityDecode => decode::html_entity(input, out),
        T::JsDecode => decode::js(input, out),
        T::Length => encode::length(input, out),
        T::Lowercase => text::lowercase(input, out),
        T::Uppercase => text::uppercase(input, out),
        T::Md5 => encode::md5(input, out),
        T::NormalizePath => path::normalize(input, false, out),
        T::NormalizePathWin => path::normalize(input, true, out),
        T::ParityEven7bit => text::parity(input, text::Parity::Even, out),
        T::ParityOdd7bit => text::parity(input, text::Parity::Odd, out),
        T::ParityZero7bit => text::parity(input, text::Parity::Zero, out),
        T::RemoveComments => text::remove_comments(input, out),
        T::RemoveCommentsChar => text::remove_comments_char(input, out),
        T::RemoveNulls => text::remove_nulls(input, out),
        T::RemoveWhitespace => text::remove_whitespace(input, out),
        T::ReplaceComments => text::replace_comments(input, out),
        T::ReplaceNulls => text::replace_nulls(input, out),
        T::Sha1 => encode::sha1(input, out),
        T::SqlHexDecode => decode::sql_hex(input, out),
        T::Trim => text::trim(input, true, true, out),
        T::TrimLeft => text::trim(input, true, false, out),
        T::TrimRight => text::trim(input, false, true, out),
        T::UrlDecode => decode::url(input, false, out),
        T::UrlDecodeUni => decode::url(input, true, out),
        T::UrlEncode => encode::url(input, out),
        T::Utf8ToUnicode => encode::utf8_to_unicode(input, out),
    }
}

/// Applies a rule's transformations in order, as ModSecurity does: `t:none` drops every
/// transformation before it, so only those after the last `none` run. Borrows `input` when
/// none of them changes it; at most two buffers are allocated whatever the chain's length.
pub fn apply_chain<'a>(chain: &[TransformName], input: &'a [u8]) -> Cow<'a, [u8]> {
    let start = chain
        .iter()
        .rposition(|t| *t == TransformName::None)
        .map_or(0, |k| k + 1);
    let mut current = Cow::Borrowed(input);
    let mut spare = Vec::new();
    for &t in chain.get(start..).unwrap_or_default() {
        if apply(t, &current, &mut spare) {
            let previous = std::mem::replace(&mut current, Cow::Owned(std::mem::take(&mut spare)));
            if let Cow::Owned(buffer) = previous {
                spare = buffer;
            }
        }
    }
    current
}

/// A transformation's result under construction. While the result so far equals a prefix
/// of the input, nothing is written (so an unchanged value costs no allocation and no
/// copy); the first differing byte copies that prefix into `out` and writing goes on there.
struct Output<'a> {
    input: &'a [u8],
    out: &'a mut Vec<u8>,
    /// `Some(n)`: the result so far is `input[..n]` and `out` is untouched.
    same: Option<usize>,
}

impl<'a> Output<'a> {
    /// A result that starts as `input[..prefix]` (bytes known to be copied unchanged).
    fn new(input: &'a [u8], out: &'a mut Vec<u8>, prefix: usize) -> Self {
        Output {
            input,
            out,
            same: Some(prefix.min(input.len())),
        }
    }

    /// Appends `input[from..to]` unchanged: free while the result still equals the input
    /// up to `from`.
    #[inline]
    fn copy_input(&mut self, from: usize, to: usize) {
        let to = to.min(self.input.len());
        let from = from.min(to);
        match self.same {
            Some(n) if n == from => self.same = Some(to),
            Some(_) => self.extend(&self.input[from..to]),
            None => self.out.extend_from_slice(&self.input[from..to]),
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        match self.same {
            Some(n) if self.input.get(n) == Some(&b) => self.same = Some(n + 1),
            Some(n) => {
                self.out.clear();
                self.out.reserve(self.input.len());
                self.out.extend_from_slice(&self.input[..n]);
                self.out.push(b);
                self.same = None;
            }
            None => self.out.push(b),
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push(b);
        }
    }

    /// Removes the last byte of the result, if any.
    fn pop(&mut self) {
        match &mut self.same {
            Some(n) => *n = n.saturating_sub(1),
            None => {
                self.out.pop();
            }
        }
    }

    /// Cuts the result at its first NUL, where ModSecurity hands a C string back.
    fn cut_at_nul(&mut self) {
        match &mut self.same {
            Some(n) => {
                if let Some(nul) = self.input[..*n].iter().position(|&b| b == 0) {
                    *n = nul;
                }
            }
            None => {
                if let Some(nul) = self.out.iter().position(|&b| b == 0) {
                    self.out.truncate(nul);
                }
            }
        }
    }

    /// Whether the result differs from the input; when it does, it is in `out`.
    fn finish(self) -> bool {
        match self.same {
            Some(n) if n == self.input.len() => false,
            Some(n) => {
                self.out.clear();
                self.out.extend_from_slice(&self.input[..n]);
                true
            }
            // Diverged once, but a later `pop` may have brought it back.
            None => self.out.as_slice() != self.input,
        }
    }
}

/// `isspace` in the C locale, as ModSecurity calls it (bytes ≥ 0x80 are never space).
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// ModSecurity's `VALID_HEX`.
fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// The value of one hex digit as ModSecurity's `x2c`/`xsingle2c` compute it: no validity
/// check, wrapping byte arithmetic (callers that validate first get the usual value; those
/// that do not, like `hexDecode`, get ModSecurity's garbage).
fn hex_digit(c: u8) -> u8 {
    if c >= b'A' {
        (c & 0xdf).wrapping_sub(b'A').wrapping_add(10)
    } else {
        c.wrapping_sub(b'0')
    }
}

/// ModSecurity's `x2c`: two hex digits to a byte.
fn x2c(hi: u8, lo: u8) -> u8 {
    hex_digit(hi).wrapping_mul(16).wrapping_add(hex_digit(lo))
}

#[cfg(test)]
mod tests;
