//! The text-shaping transformations: case, whitespace, NULs, comments, `cmdLine`, trim, parity.
//!
//! Each mirrors the ModSecurity 3.0.9 routine named in its doc comment, byte for byte.

use super::{is_c_space, Output};

/// Copies `input` into `out` with `f` applied to each byte, when some byte changes.
fn map_bytes(input: &[u8], out: &mut Vec<u8>, f: impl Fn(u8) -> u8) -> bool {
    let Some(first) = input.iter().position(|&b| f(b) != b) else {
        return false;
    };
    out.clear();
    out.extend_from_slice(&input[..first]);
    out.extend(input[first..].iter().map(|&b| f(b)));
    true
}

/// Copies `input` into `out` without the bytes `drop` selects, when there are some.
fn remove_bytes(input: &[u8], out: &mut Vec<u8>, drop: impl Fn(u8) -> bool) -> bool {
    let Some(first) = input.iter().position(|&b| drop(b)) else {
        return false;
    };
    out.clear();
    out.extend_from_slice(&input[..first]);
    out.extend(input[first..].iter().copied().filter(|&b| !drop(b)));
    true
}

/// `lowercase` (`std::tolower` in the C locale: ASCII only).
pub(super) fn lowercase(input: &[u8], out: &mut Vec<u8>) -> bool {
    map_bytes(input, out, |b| b.to_ascii_lowercase())
}

/// `uppercase` (`std::toupper` in the C locale: ASCII only).
pub(super) fn uppercase(input: &[u8], out: &mut Vec<u8>) -> bool {
    map_bytes(input, out, |b| b.to_ascii_uppercase())
}

/// `removeNulls`: drops every 0x00.
pub(super) fn remove_nulls(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(0, input).is_none() {
        return false;
    }
    out.clear();
    for run in input.split(|&b| b == 0) {
        out.extend_from_slice(run);
    }
    true
}

/// `replaceNulls`: every 0x00 becomes a space.
pub(super) fn replace_nulls(input: &[u8], out: &mut Vec<u8>) -> bool {
    if memchr::memchr(0, input).is_none() {
        return false;
    }
    map_bytes(input, out, |b| if b == 0 { b' ' } else { b })
}

/// `removeWhitespace` (`RemoveWhitespace::evaluate`): drops C-locale `isspace` bytes and the
/// bytes 0xa0 and 0xc2 (ModSecurity's two halves of a UTF-8 no-break space, each on its
/// own).
pub(super) fn remove_whitespace(input: &[u8], out: &mut Vec<u8>) -> bool {
    remove_bytes(input, out, |b| is_c_space(b) || b == 0xa0 || b == 0xc2)
}

/// `compressWhitespace` (`CompressWhitespace::evaluate`): each run of C-locale `isspace`
/// bytes becomes one space. (ModSecurity also tests for 0xa0 against a signed `char`, which
/// never matches, so 0xa0 is kept.)
pub(super) fn compress_whitespace(input: &[u8], out: &mut Vec<u8>) -> bool {
    // Unchanged exactly when every whitespace byte is a lone space.
    let needs_work = input.iter().enumerate().any(|(k, &b)| {
        is_c_space(b) && (b != b' ' || input.get(k + 1).copied().is_some_and(is_c_space))
    });
    if !needs_work {
        return false;
    }
    out.clear();
    let mut in_space = false;
    for &b in input {
        if is_c_space(b) {
            if !in_space {
                out.push(b' ');
                in_space = true;
            }
        } else {
            out.push(b);
            in_space = false;
        }
    }
    true
}

/// `cmdLine` (`CmdLine::evaluate`): drops `\ " ' ^`; each run of space, tab, CR, LF, `,`
/// and `;` becomes one space (dropped bytes do not end a run); a space right before `/` or
/// `(` is removed; everything else is lowercased (ASCII).
pub(super) fn cmd_line(input: &[u8], out: &mut Vec<u8>) -> bool {
    let mut o = Output::new(input, out, 0);
    let mut space = false;
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        // A run of bytes cmdLine keeps as they are goes across in one copy.
        let plain = |b: u8| {
            !matches!(
                b,
                b'"' | b'\''
                    | b'\\'
                    | b'^'
                    | b' '
                    | b','
                    | b';'
                    | b'\t'
                    | b'\r'
                    | b'\n'
                    | b'/'
                    | b'('
            ) && !b.is_ascii_uppercase()
        };
        if plain(b) {
            let end = input[i..]
                .iter()
                .position(|&c| !plain(c))
                .map_or(input.len(), |k| i + k);
            o.copy_input(i, end);
            space = false;
            i = end;
            continue;
        }
        i += 1;
        match b {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    o.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    o.pop();
                }
                space = false;
                o.push(b);
            }
            _ => {
                o.push(b.to_ascii_lowercase());
                space = false;
            }
        }
    }
    o.finish()
}

/// `trim`, `trimLeft`, `trimRight`: C-locale `isspace` bytes off the chosen ends.
pub(super) fn trim(input: &[u8], left: bool, right: bool, out: &mut Vec<u8>) -> bool {
    let mut start = 0;
    let mut end = input.len();
    if left {
        while start < end && is_c_space(input[start]) {
            start += 1;
        }
    }
    if right {
        while end > start && is_c_space(input[end - 1]) {
            end -= 1;
        }
    }
    if start == 0 && end == input.len() {
        return false;
    }
    out.clear();
    out.extend_from_slice(&input[start..end]);
    true
}

/// `replaceComments` (`ReplaceComments::evaluate`): each `/* ... */` becomes one space; an
/// unterminated `/*` swallows the rest and becomes one space.
pub(super) fn replace_comments(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !input.windows(2).any(|w| w == b"/*") {
        return false;
    }
    let mut o = Output::new(input, out, 0);
    let n = input.len();
    let mut i = 0;
    let mut in_comment = false;
    while i < n {
        let pair = input.get(i + 1).copied();
        if !in_comment {
            if input[i] == b'/' && pair == Some(b'*') {
                in_comment = true;
                i += 2;
            } else {
                o.push(input[i]);
                i += 1;
            }
        } else if input[i] == b'*' && pair == Some(b'/') {
            in_comment = false;
            i += 2;
            o.push(b' ');
        } else {
            i += 1;
        }
    }
    if in_comment {
        o.push(b' ');
    }
    o.finish()
}

/// `removeComments` (`RemoveComments::evaluate`): drops `/* ... */` and `<!-- ... -->`, and
/// cuts the value at `--` or `#` outside a comment. ModSecurity's quirks are kept: the byte
/// right after a comment's end is copied unexamined (a NUL when the comment ends the value),
/// and an unterminated comment leaves one space.
pub(super) fn remove_comments(input: &[u8], out: &mut Vec<u8>) -> bool {
    let n = input.len();
    // The C code works on a NUL-terminated copy and may read (and copy) that NUL.
    let at = |k: usize| input.get(k).copied().unwrap_or(0);
    let mut o = Output::new(input, out, 0);
    let mut i = 0;
    let mut in_comment = false;
    while i < n {
        if !in_comment {
            if at(i) == b'/' && i + 1 < n && at(i + 1) == b'*' {
                in_comment = true;
                i += 2;
            } else if at(i) == b'<'
                && i + 3 < n
                && at(i + 1) == b'!'
                && at(i + 2) == b'-'
                && at(i + 3) == b'-'
            {
                in_comment = true;
                i += 4;
            } else if (at(i) == b'-' && i + 1 < n && at(i + 1) == b'-') || at(i) == b'#' {
                break;
            } else {
                o.push(at(i));
                i += 1;
            }
        } else if at(i) == b'*' && i + 1 < n && at(i + 1) == b'/' {
            in_comment = false;
            o.push(at(i + 2));
            i += 3;
        } else if at(i) == b'-' && i + 2 < n && at(i + 1) == b'-' && at(i + 2) == b'>' {
            in_comment = false;
            o.push(at(i + 3));
            i += 4;
        } else {
            i += 1;
        }
    }
    if in_comment {
        o.push(b' ');
    }
    o.finish()
}

/// `removeCommentsChar` (`RemoveCommentsChar::evaluate`): deletes every `/*`, `*/`, `<!--`,
/// `-->`, `--` and `#` token, scanning left to right.
pub(super) fn remove_comments_char(input: &[u8], out: &mut Vec<u8>) -> bool {
    if !input
        .iter()
        .any(|&b| matches!(b, b'/' | b'*' | b'<' | b'-' | b'#'))
    {
        return false;
    }
    let mut o = Output::new(input, out, 0);
    let mut i = 0;
    while i < input.len() {
        let rest = &input[i..];
        let skip = if rest.starts_with(b"/*") || rest.starts_with(b"*/") {
            2
        } else if rest.starts_with(b"<!--") {
            4
        } else if rest.starts_with(b"-->") {
            3
        } else if rest.starts_with(b"--") {
            2
        } else if rest.starts_with(b"#") {
            1
        } else {
            o.push(input[i]);
            1
        };
        i += skip;
    }
    o.finish()
}

/// Which `parity*7bit` transformation.
#[derive(Clone, Copy)]
pub(super) enum Parity {
    Even,
    Odd,
    Zero,
}

/// `parityEven7bit`, `parityOdd7bit`, `parityZero7bit`: set bit 7 so that the byte's
/// parity (counted over all eight bits of the input byte, as ModSecurity does) is even / odd,
/// or clear it.
pub(super) fn parity(input: &[u8], parity: Parity, out: &mut Vec<u8>) -> bool {
    map_bytes(input, out, |b| {
        let odd = b.count_ones() % 2 == 1;
        let set = match parity {
            Parity::Even => odd,
            Parity::Odd => !odd,
            Parity::Zero => false,
        };
        if set {
            b | 0x80
        } else {
            b & 0x7f
        }
    })
}
