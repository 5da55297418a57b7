//! `normalizePath` and `normalizePathWin`: remove `//`, `/./` and `/../` segments.
//!
//! A port of ModSecurity 3.0.9's `NormalisePath::normalize_path_inplace` (the pointer walk
//! over one buffer, with its relative-path and root rules), kept step for step.

/// Normalises `input` as a path; with `win`, backslashes are separators too and become `/`.
pub(super) fn normalize(input: &[u8], win: bool, out: &mut Vec<u8>) -> bool {
    if already_normal(input, win) {
        return false;
    }
    let reused = out.capacity() > 0;
    out.clear();
    out.extend_from_slice(input);
    let len = normalize_in_place(out, win);
    out.truncate(len);
    let changed = out.as_slice() != input;
    if !changed && !reused {
        // `already_normal` is only sufficient (a lone relative `..` passes through the walk
        // unchanged): give the copy back so an unchanged value keeps costing nothing.
        *out = Vec::new();
    }
    changed
}

/// A cheap sufficient test that the routine would return `input` unchanged, so the usual
/// clean path costs no copy: every rewrite it makes needs `//`, `/./`, `../`, a leading `./`,
/// a trailing `/.` or `..`, a lone `.`, or (Windows) a backslash — except that a relative
/// path's leading `../` segments (and a final `..` right after them) are kept as they are.
pub(super) fn already_normal(input: &[u8], win: bool) -> bool {
    if win && input.contains(&b'\\') {
        return false;
    }
    let mut rest = input;
    if !input.starts_with(b"/") {
        while let Some(after) = rest.strip_prefix(b"../") {
            rest = after;
        }
        if rest.len() < input.len() && (rest == b".." || rest.starts_with(b"/")) {
            return rest == b"..";
        }
    }
    if rest == b"." || rest.starts_with(b"./") || rest.ends_with(b"/.") || rest.ends_with(b"..") {
        return false;
    }
    // `//`, `/./` and `../` all touch a slash: one pass over the slashes finds them.
    memchr::memchr_iter(b'/', rest).all(|k| {
        let after = rest.get(k + 1..).unwrap_or_default();
        let before = rest.get(k.saturating_sub(2)..k).unwrap_or_default();
        !(after.starts_with(b"/") || after.starts_with(b"./") || before == b"..")
    })
}

/// The C routine on `buf` (non-empty): `src` reads ahead of `dst`, which rewrites the buffer;
/// returns the normalised length. Indices are signed because the C code steps `dst` back
/// past the start before clamping it.
pub(super) fn normalize_in_place(buf: &mut [u8], win: bool) -> usize {
    let end = buf.len() as isize - 1;
    let get = |buf: &[u8], k: isize| -> u8 {
        usize::try_from(k)
            .ok()
            .and_then(|k| buf.get(k).copied())
            .unwrap_or(0)
    };
    let is_sep = |b: u8| b == b'/' || (win && b == b'\\');
    let relative = !is_sep(get(buf, 0));
    let trailing = is_sep(get(buf, end));
    let mut src: isize = 0;
    let mut dst: isize = 0;
    let mut hit_root = false;
    let mut done = false;
    let mut ldst: isize = 1;

    while !done && src <= end && dst <= end {
        if win {
            if get(buf, src) == b'\\' {
                set(buf, src, b'/');
            }
            if src < end && get(buf, src + 1) == b'\\' {
                set(buf, src + 1, b'/');
            }
        }
        // Normalise at the end of the input or of a path segment; else just copy.
        let mut normalise = true;
        if src == end {
            done = true;
        } else if get(buf, src + 1) != b'/' {
            normalise = false;
        }
        let mut skip_copy = false;
        if normalise {
            let c = get(buf, src);
            if src != end && c == b'/' {
                // An empty segment: the copy below collapses the slashes.
            } else if c == b'.' {
                if dst > 0 && get(buf, dst - 1) == b'.' {
                    // A back-reference.
                    if relative && (hit_root || dst - 2 <= 0) {
                        hit_root = true;
                    } else {
                        dst -= 3;
                        while dst > 0 && get(buf, dst) != b'/' {
                            dst -= 1;
                        }
                        if dst <= 0 {
                            hit_root = true;
                            dst = 0;
                            if !relative && src == end {
                                dst += 1;
                            }
                        }
                        if done {
                            skip_copy = true;
                        } else {
                            src += 1;
                        }
                    }
                } else if dst == 0 {
                    // A relative self-reference.
                    if done {
                        skip_copy = true;
                    } else {
                        src += 1;
                    }
                } else if get(buf, dst - 1) == b'/' {
                    // A self-reference.
                    if done {
                        skip_copy = true;
                    } else {
                        dst -= 1;
                        src += 1;
                    }
                }
            } else if dst > 0 {
                hit_root = false;
            }
        }
        if !skip_copy {
            let mut copy = true;
            if get(buf, src) == b'/' {
                // Skip to the last of several slashes.
                while src < end && is_sep(get(buf, src + 1)) {
                    src += 1;
                }
                // A relative path does not get a leading slash.
                if relative && dst == 0 {
                    src += 1;
                    copy = false;
                }
            }
            if copy {
                let b = get(buf, src);
                set(buf, dst, b);
                dst += 1;
                src += 1;
            }
        }
        ldst = dst;
    }
    // No trailing slash unless the input had one.
    if !trailing && dst > 0 && get(buf, dst - 1) == b'/' {
        ldst -= 1;
    }
    usize::try_from(ldst).unwrap_or(0).min(buf.len())
}

/// Writes `b` at `k` when `k` is inside `buf` (the C code only writes inside it).
fn set(buf: &mut [u8], k: isize, b: u8) {
    if let Some(slot) = usize::try_from(k).ok().and_then(|k| buf.get_mut(k)) {
        *slot = b;
    }
}
