//! The encoding transformations: hex, base64, URL, `%uXXXX`, `length` and the digests.
//!
//! Each mirrors the ModSecurity 3.0.9 routine named in its doc comment, byte for byte.

use md5::Md5;
use sha1::{Digest, Sha1};

use super::Output;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `hexEncode`: two lowercase hex digits per byte.
pub(super) fn hex(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    for &b in input {
        o.extend(&[
            HEX_DIGITS[usize::from(b >> 4)],
            HEX_DIGITS[usize::from(b & 15)],
        ]);
    }
    o.finish()
}

/// `length`: the value's length in bytes, in decimal.
pub(super) fn length(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    o.extend(input.len().to_string().as_bytes());
    o.finish()
}

/// `md5`: the raw 16-byte digest (not hex).
pub(super) fn md5(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    o.extend(&Md5::digest(input));
    o.finish()
}

/// `sha1`: the raw 20-byte digest (not hex).
pub(super) fn sha1(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    o.extend(&Sha1::digest(input));
    o.finish()
}

/// `base64Encode`: standard alphabet with `=` padding.
pub(super) fn base64(input: &[u8], out: &mut Vec<u8>) -> bool {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |v: u32| ALPHABET[(v & 63) as usize];
    let mut o = Output::new(input, out, 0);
    for chunk in input.chunks(3) {
        let b = |k: usize| u32::from(chunk.get(k).copied().unwrap_or(0));
        let v = (b(0) << 16) | (b(1) << 8) | b(2);
        o.push(sextet(v >> 18));
        o.push(sextet(v >> 12));
        o.push(if chunk.len() > 1 {
            sextet(v >> 6)
        } else {
            b'='
        });
        o.push(if chunk.len() > 2 { sextet(v) } else { b'=' });
    }
    o.finish()
}

/// `urlEncode` (`UrlEncode::url_enc`): space → `+`; ASCII letters, digits and `*` kept;
/// every other byte → `%hh` (lowercase hex).
pub(super) fn url(input: &[u8], out: &mut Vec<u8>) -> bool {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b == b'*';
    if input.iter().all(|&b| keep(b)) {
        return false;
    }
    out.clear();
    for &b in input {
        if b == b' ' {
            out.push(b'+');
        } else if keep(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX_DIGITS[usize::from(b >> 4)],
                HEX_DIGITS[usize::from(b & 15)],
            ]);
        }
    }
    true
}

/// `utf8toUnicode` (`Utf8ToUnicode::inplace`): each well-formed 2-, 3- or 4-byte UTF-8
/// sequence becomes `%u` and the code point in lowercase hex, padded to at least four
/// digits. ModSecurity's quirks are kept: ASCII is copied, NUL bytes vanish, a lead byte
/// whose continuation bytes are missing or wrong vanishes (its followers are examined on
/// their own), a stray continuation byte or 0xf8–0xff is copied, 0xf5–0xf7 is copied before
/// its sequence is decoded, and an overlong form or a surrogate gets its lead byte copied
/// after the `%u` escape.
pub(super) fn utf8_to_unicode(input: &[u8], out: &mut Vec<u8>) -> bool {
    if input.iter().all(|&b| b != 0 && b < 0x80) {
        return false;
    }
    let mut o = Output::new(input, out, 0);
    let cont = |k: usize| input.get(k).copied().filter(|b| b & 0xc0 == 0x80);
    let mut i = 0;
    while i < input.len() {
        let c = input[i];
        let mut seq_len = 0;
        let mut d: u32 = 0;
        if c & 0x80 == 0 {
            // NUL is written without advancing and so overwritten (or cut by `strlen`).
            if c != 0 {
                o.push(c);
            }
        } else if c & 0xe0 == 0xc0 {
            if let Some(c1) = cont(i + 1) {
                seq_len = 2;
                d = (u32::from(c & 0x1f) << 6) | u32::from(c1 & 0x3f);
            }
        } else if c & 0xf0 == 0xe0 {
            if let (Some(c1), Some(c2)) = (cont(i + 1), cont(i + 2)) {
                seq_len = 3;
                d = (u32::from(c & 0x0f) << 12)
                    | (u32::from(c1 & 0x3f) << 6)
                    | u32::from(c2 & 0x3f);
            }
        } else if c & 0xf8 == 0xf0 {
            if c >= 0xf5 {
                o.push(c);
            }
            if let (Some(c1), Some(c2), Some(c3)) = (cont(i + 1), cont(i + 2), cont(i + 3)) {
                seq_len = 4;
                d = (u32::from(c & 0x07) << 18)
                    | (u32::from(c1 & 0x3f) << 12)
                    | (u32::from(c2 & 0x3f) << 6)
                    | u32::from(c3 & 0x3f);
            }
        } else {
            o.push(c);
        }
        if seq_len > 0 {
            // `%u` and `%x` of the code point, zero-padded to four digits (up to six).
            let digits = match d {
                0..=0xffff => 4,
                0x1_0000..=0xf_ffff => 5,
                _ => 6,
            };
            o.extend(b"%u");
            for shift in (0..digits).rev() {
                o.push(HEX_DIGITS[((d >> (4 * shift)) & 0xf) as usize]);
            }
        }
        if (0xd800..=0xdfff).contains(&d) {
            o.push(c);
        }
        let overlong = match seq_len {
            4 => d < 0x1_0000,
            3 => d < 0x800,
            2 => d < 0x80,
            _ => false,
        };
        if overlong {
            o.push(c);
        }
        i += if seq_len > 0 { seq_len } else { 1 };
    }
    o.finish()
}
