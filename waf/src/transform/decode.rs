//! The decoding transformations: URL, HTML entities, JavaScript, CSS, C escapes, hex, base64.
//!
//! Each mirrors the ModSecurity 3.0.9 routine named in its doc comment, byte for byte.

use super::{is_hex, x2c, Output};

/// Where a decoder's work starts: the first `trigger` byte, or `None` when there is none
/// and so nothing to decode (`memchr`'s vectorised scan: most values hold no escape at all).
fn start_at(input: &[u8], trigger: u8) -> Option<usize> {
    memchr::memchr(trigger, input)
}

/// `urlDecode` (`utils::urldecode_nonstrict_inplace`) and `urlDecodeUni`
/// (`UrlDecodeUni::inplace`, no `SecUnicodeMapFile`): `%XX` with two hex digits decodes,
/// `+` becomes a space, any other `%` stays as it is. With `uni`, `%uXXXX` (`u` or `U`, four
/// hex digits) keeps only the low byte, plus 0x20 for full-width ASCII `%uFF01`–`%uFF5E`;
/// an invalid `%u` copies `%u` and goes on after it.
pub(super) fn url(input: &[u8], uni: bool, out: &mut Vec<u8>) -> bool {
    let Some(mut i) = memchr::memchr2(b'%', b'+', input) else {
        return false;
    };
    let mut o = Output::new(input, out, i);
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    while i < input.len() {
        let c = at(i);
        if c != b'%' && c != b'+' {
            let next = memchr::memchr2(b'%', b'+', &input[i..]).map_or(input.len(), |k| i + k);
            o.copy_input(i, next);
            i = next;
        } else if c == b'%' {
            if uni && (at(i + 1) == b'u' || at(i + 1) == b'U') {
                if i + 5 < input.len()
                    && is_hex(at(i + 2))
                    && is_hex(at(i + 3))
                    && is_hex(at(i + 4))
                    && is_hex(at(i + 5))
                {
                    o.push(full_width(at(i + 2), at(i + 3), x2c(at(i + 4), at(i + 5))));
                    i += 6;
                } else {
                    o.extend(&[c, at(i + 1)]);
                    i += 2;
                }
            } else if i + 2 < input.len() && is_hex(at(i + 1)) && is_hex(at(i + 2)) {
                o.push(x2c(at(i + 1), at(i + 2)));
                i += 3;
            } else {
                o.push(c);
                i += 1;
            }
        } else {
            o.push(b' ');
            i += 1;
        }
    }
    o.finish()
}

/// The low byte of a `%uHHLL` / `\uHHLL` escape: full-width ASCII (`HH` = `ff`, `LL` in
/// 0x01..=0x5e) maps to ASCII by adding 0x20; everything else keeps `LL` alone.
fn full_width(h1: u8, h2: u8, low: u8) -> u8 {
    if low > 0 && low < 0x5f && (h1 | 0x20) == b'f' && (h2 | 0x20) == b'f' {
        low + 0x20
    } else {
        low
    }
}

/// `strtol(digits, NULL, radix)` cast to `unsigned char`: the low byte of the value, or of
/// `LONG_MAX` when it overflows (64-bit `long`, as on the platforms ModSecurity runs on).
fn strtol_low_byte(digits: &[u8], radix: u32) -> u8 {
    let mut value: u64 = 0;
    for &d in digits {
        let v = u64::from(char::from(d).to_digit(radix).unwrap_or(0));
        value = match value
            .checked_mul(u64::from(radix))
            .and_then(|x| x.checked_add(v))
        {
            Some(x) if x <= i64::MAX as u64 => x,
            _ => i64::MAX as u64,
        };
    }
    (value & 0xff) as u8
}

/// `htmlEntityDecode` (`HtmlEntityDecode::inplace`): `&#DDD`, `&#xHH` (any number of digits,
/// value's low byte, `strtol` saturation) and the named `&quot; &amp; &lt; &gt; &nbsp;`
/// (case-insensitive; `&nbsp;` is 0xa0); the `;` is optional and eaten when present. Anything
/// else, including unknown names, is copied as written.
pub(super) fn html_entity(input: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(mut i) = start_at(input, b'&') else {
        return false;
    };
    let mut o = Output::new(input, out, i);
    let n = input.len();
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    while i < n {
        if at(i) != b'&' {
            let next = memchr::memchr(b'&', &input[i..]).map_or(n, |k| i + k);
            o.copy_input(i, next);
            i = next;
            continue;
        }
        // How many raw bytes to copy when no entity is decoded here.
        let mut copy = 1;
        if at(i) == b'&' && i + 1 < n {
            let mut j = i + 1;
            if at(j) == b'#' {
                copy += 1;
                if j + 1 < n {
                    j += 1;
                    let (radix, ok) = if at(j) == b'x' || at(j) == b'X' {
                        copy += 1;
                        j += 1;
                        (16, j < n)
                    } else {
                        (10, true)
                    };
                    if ok {
                        let k = j;
                        while j < n
                            && (if radix == 16 {
                                at(j).is_ascii_hexdigit()
                            } else {
                                at(j).is_ascii_digit()
                            })
                        {
                            j += 1;
                        }
                        if j > k {
                            o.push(strtol_low_byte(&input[k..j], radix));
                            i = if at(j) == b';' && j < n { j + 1 } else { j };
                            continue;
                        }
                    }
                }
            } else {
                let k = j;
                while j < n && at(j).is_ascii_alphanumeric() {
                    j += 1;
                }
                if j > k {
                    let name = &input[k..j];
                    let decoded = [
                        (&b"quot"[..], b'"'),
                        (b"amp", b'&'),
                        (b"lt", b'<'),
                        (b"gt", b'>'),
                        (b"nbsp", 0xa0),
                    ]
                    .iter()
                    .find(|(entity, _)| name.eq_ignore_ascii_case(entity))
                    .map(|(_, b)| *b);
                    if let Some(b) = decoded {
                        o.push(b);
                        i = if j < n && at(j) == b';' { j + 1 } else { j };
                        continue;
                    }
                    copy = j - k + 1;
                }
            }
        }
        let end = (i + copy).min(n);
        o.copy_input(i, end);
        i = end;
    }
    o.finish()
}

/// ModSecurity's `ISODIGIT`.
fn is_octal(b: u8) -> bool {
    (b'0'..=b'7').contains(&b)
}

/// The octal digits after a backslash at `i` (at most 3) and their count, as `jsDecode` and
/// `escapeSeqDecode` collect them.
fn octal_run(input: &[u8], i: usize) -> usize {
    let mut j = 0;
    while i + 1 + j < input.len() && j < 3 && is_octal(input[i + 1 + j]) {
        j += 1;
    }
    j
}

/// `jsDecode` (`JsDecode::inplace`): `\uHHHH` (lowercase `u`; low byte with the full-width
/// rule), `\xHH` (lowercase `x`), `\OOO` (at most one byte: a three-digit run starting above
/// `3` uses two digits), `\a \b \f \n \r \t \v`, and `\C` → `C` for any other byte; a lone
/// trailing backslash stays.
pub(super) fn js(input: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(mut i) = start_at(input, b'\\') else {
        return false;
    };
    let mut o = Output::new(input, out, i);
    let n = input.len();
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    while i < n {
        if at(i) != b'\\' {
            let next = memchr::memchr(b'\\', &input[i..]).map_or(n, |k| i + k);
            o.copy_input(i, next);
            i = next;
        } else if i + 5 < n
            && at(i + 1) == b'u'
            && is_hex(at(i + 2))
            && is_hex(at(i + 3))
            && is_hex(at(i + 4))
            && is_hex(at(i + 5))
        {
            o.push(full_width(at(i + 2), at(i + 3), x2c(at(i + 4), at(i + 5))));
            i += 6;
        } else if i + 3 < n && at(i + 1) == b'x' && is_hex(at(i + 2)) && is_hex(at(i + 3)) {
            o.push(x2c(at(i + 2), at(i + 3)));
            i += 4;
        } else if i + 1 < n && is_octal(at(i + 1)) {
            let mut j = octal_run(input, i);
            if j == 3 && at(i + 1) > b'3' {
                j = 2;
            }
            o.push(strtol_low_byte(&input[i + 1..i + 1 + j], 8));
            i += 1 + j;
        } else if i + 1 < n {
            o.push(match at(i + 1) {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                c => c,
            });
            i += 2;
        } else {
            o.push(at(i));
            i += 1;
        }
    }
    o.finish()
}

/// `cssDecode` (`CssDecode::css_decode_inplace`): a backslash and 1–6 hex digits decode to
/// the last two digits' byte (one digit: its value); four digits, five starting with `0`, or
/// six starting with `00` apply the full-width rule to the two digits before them; one
/// whitespace after a hex escape is eaten. `\` + newline vanishes, `\C` → `C`, and a
/// trailing lone backslash is dropped. The result ends at its first NUL (ModSecurity returns
/// it as a C string).
pub(super) fn css(input: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(mut i) = memchr::memchr2(b'\\', 0, input) else {
        return false;
    };
    let mut o = Output::new(input, out, i);
    let n = input.len();
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    while i < n {
        if at(i) != b'\\' {
            let next = memchr::memchr(b'\\', &input[i..]).map_or(n, |k| i + k);
            o.copy_input(i, next);
            i = next;
            continue;
        }
        if i + 1 >= n {
            // A backslash at the end continues to nothing.
            i += 1;
            continue;
        }
        i += 1;
        let mut j = 0;
        while j < 6 && i + j < n && is_hex(at(i + j)) {
            j += 1;
        }
        if j > 0 {
            let last = if j == 1 {
                super::hex_digit(at(i))
            } else {
                x2c(at(i + j - 2), at(i + j - 1))
            };
            let full_check = match j {
                4 => true,
                5 => at(i) == b'0',
                6 => at(i) == b'0' && at(i + 1) == b'0',
                _ => false,
            };
            o.push(if full_check {
                full_width(at(i + j - 4), at(i + j - 3), last)
            } else {
                last
            });
            if i + j < n && super::is_c_space(at(i + j)) {
                j += 1;
            }
            i += j;
        } else if at(i) == b'\n' {
            i += 1;
        } else {
            o.push(at(i));
            i += 1;
        }
    }
    // ModSecurity hands the decoded buffer back as a C string: it ends at the first NUL.
    o.cut_at_nul();
    o.finish()
}

/// `escapeSeqDecode` (`EscapeSeqDecode::ansi_c_sequences_decode_inplace`): the C escapes
/// `\a \b \f \n \r \t \v \\ \? \' \"`, `\xHH` / `\XHH` (two hex digits), `\O`–`\OOO` (low
/// byte of the octal value); for any other `\C` the backslash is dropped and `C` kept, and a
/// trailing backslash stays.
pub(super) fn escape_seq(input: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(mut i) = start_at(input, b'\\') else {
        return false;
    };
    let mut o = Output::new(input, out, i);
    let n = input.len();
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    while i < n {
        if at(i) != b'\\' {
            let next = memchr::memchr(b'\\', &input[i..]).map_or(n, |k| i + k);
            o.copy_input(i, next);
            i = next;
            continue;
        }
        if i + 1 >= n {
            o.push(at(i));
            i += 1;
            continue;
        }
        let simple = match at(i + 1) {
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'?' => Some(b'?'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(c) = simple {
            o.push(c);
            i += 2;
        } else if (at(i + 1) == b'x' || at(i + 1) == b'X')
            && i + 3 < n
            && is_hex(at(i + 2))
            && is_hex(at(i + 3))
        {
            o.push(x2c(at(i + 2), at(i + 3)));
            i += 4;
        } else if is_octal(at(i + 1)) {
            let j = octal_run(input, i);
            o.push(strtol_low_byte(&input[i + 1..i + 1 + j], 8));
            i += 1 + j;
        } else {
            o.push(at(i + 1));
            i += 2;
        }
    }
    o.finish()
}

/// `hexDecode` (`HexDecode::inplace`): every pair of bytes through ModSecurity's `x2c`, with
/// no validity check (non-hex pairs give its arithmetic's byte); an odd last byte is dropped.
pub(super) fn hex(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    for pair in input.chunks_exact(2) {
        o.push(x2c(pair[0], pair[1]));
    }
    o.finish()
}

/// `sqlHexDecode` (`SqlHexDecode::inplace`): `0x` or `0X` followed by hex pairs decodes the
/// pairs (an odd last digit stays). ModSecurity's loop also stops at the first NUL and never
/// copies the input's last byte unless a hex run consumed it; that is reproduced.
pub(super) fn sql_hex(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Mirrors the C loop `for (d = data; (++count < len) && *data; *d++ = *data++)`, where
    // `count` counts consumed input bytes and reads past the end see NUL.
    let n = input.len();
    if n == 0 {
        return false;
    }
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    let mut o = Output::new(input, out, 0);
    let mut p = 0usize;
    let mut count = 0usize;
    loop {
        count += 1;
        if !(count < n && at(p) != 0) {
            break;
        }
        if at(p) == b'0' && (at(p + 1) | 0x20) == b'x' && is_hex(at(p + 2)) && is_hex(at(p + 3)) {
            p += 2;
            count += 2;
            while is_hex(at(p)) && is_hex(at(p + 1)) {
                o.push(x2c(at(p), at(p + 1)));
                p += 2;
                count += 2;
            }
        }
        // The loop's increment copies one byte (NUL when past the end).
        o.push(at(p));
        p += 1;
    }
    // ModSecurity returns `strlen` of the buffer.
    o.cut_at_nul();
    o.finish()
}

/// The base64 alphabet's value of `b`, if it is in it.
fn base64_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// `base64Decode` (`Utils::Base64::decode`, which runs mbedtls' `mbedtls_base64_decode` on
/// the value up to its first NUL): any byte outside the alphabet (bar line breaks and
/// padding in mbedtls' places) makes the whole result empty; a trailing partial quantum is
/// dropped. Hand-written because no crate reproduces mbedtls' acceptance rules.
pub(super) fn base64(input: &[u8], out: &mut Vec<u8>) -> bool {
    let src = match input.iter().position(|&b| b == 0) {
        Some(nul) => &input[..nul],
        None => input,
    };
    let mut o = Output::new(input, out, 0);
    if let Some(valid) = mbedtls_base64_check(src) {
        let mut acc: u32 = 0;
        let mut n = 0;
        let mut keep = 3u32;
        for &b in &src[..valid] {
            if b == b'\r' || b == b'\n' || b == b' ' {
                continue;
            }
            if b == b'=' {
                keep -= 1;
            }
            acc = (acc << 6) | u32::from(base64_value(b).unwrap_or(0));
            n += 1;
            if n == 4 {
                n = 0;
                let bytes = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
                o.extend(&bytes[..keep.min(3) as usize]);
            }
        }
    }
    o.finish()
}

/// mbedtls' first pass: `Some(bytes to decode)` when `src` is acceptable, `None` when it is
/// not (ModSecurity then yields an empty value).
fn mbedtls_base64_check(src: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut pads = 0;
    while i < src.len() {
        let mut spaces = 0;
        while i < src.len() && src[i] == b' ' {
            i += 1;
            spaces += 1;
        }
        if i == src.len() {
            break;
        }
        if src.len() - i >= 2 && src[i] == b'\r' && src[i + 1] == b'\n' {
            i += 1;
            continue;
        }
        if src[i] == b'\n' {
            i += 1;
            continue;
        }
        if spaces != 0 {
            return None;
        }
        if src[i] == b'=' {
            pads += 1;
            if pads > 2 {
                return None;
            }
        } else if base64_value(src[i]).is_none() || pads != 0 {
            return None;
        }
        i += 1;
    }
    Some(i)
}

/// `base64DecodeExt` (`Utils::Base64::decode_forgiven_engine`): bytes outside the alphabet
/// (NUL included) are skipped, and so is `=`; a trailing partial quantum keeps its whole
/// bytes. The result is empty when a `=` comes right after the first sextet of a quantum
/// and is not followed by another `=`, or when the value ends with `=` or `9` (the engine
/// compares the last sextet's value, 61 for `9`, with the `=` byte) after such a sextet.
pub(super) fn base64_ext(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    let mut acc: u32 = 0;
    let mut n = 0usize;
    // The engine's `ch`: the last byte if it was `=`, else the last byte's table value.
    let mut last: i32 = 0;
    for (k, &b) in input.iter().enumerate() {
        if b == b'=' {
            if input.get(k + 1).copied().unwrap_or(0) != b'=' && n % 4 == 1 {
                return Output::new(input, o.out, 0).finish();
            }
            last = i32::from(b'=');
            continue;
        }
        let Some(v) = base64_value(b) else {
            last = -1;
            continue;
        };
        last = i32::from(v);
        acc = (acc << 6) | u32::from(v);
        n += 1;
        if n.is_multiple_of(4) {
            o.extend(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            acc = 0;
        }
    }
    if last == i32::from(b'=') && n % 4 == 1 {
        return Output::new(input, o.out, 0).finish();
    }
    match n % 4 {
        2 => o.push((acc >> 4) as u8),
        3 => o.extend(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    o.finish()
}
