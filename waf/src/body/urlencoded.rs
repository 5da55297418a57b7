//! Query strings and `application/x-www-form-urlencoded` bodies, split and decoded as
//! ModSecurity v3.0.9 does it (`Transaction::extractArguments`, `utils::urldecode_nonstrict_inplace`).

use super::Pair;

/// What a urlencoded parse saw besides its pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UrlencodedOutcome {
    /// An invalid `%` encoding was seen somewhere (`URLENCODED_ERROR`), including in pairs
    /// dropped over the limit: ModSecurity decodes those too before it skips them.
    pub invalid_encoding: bool,
    /// More than `max_args` pairs were present; the extra ones were not added.
    pub truncated: bool,
}

/// Splits `input` on `separator` and each piece at its first `=`, as ModSecurity does:
/// - pieces come from `std::getline`, so `a&&b` has an empty middle piece (an argument with an
///   empty name and value) but a trailing separator adds nothing;
/// - a piece without `=` is a name with an empty value;
/// - names and values are URL-decoded: `+` is a space, `%XX` with two hex digits is a byte, any
///   other `%` stays as it is and counts as invalid.
///
/// At most `max_args` pairs are pushed (ModSecurity's `SecArgumentsLimit` skips the rest).
pub fn parse_urlencoded_outcome(
    input: &[u8],
    separator: u8,
    max_args: usize,
    out: &mut Vec<Pair>,
) -> UrlencodedOutcome {
    let mut outcome = UrlencodedOutcome::default();
    let mut added = 0usize;
    for piece in getline_pieces(input, separator) {
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &piece[piece.len()..]),
        };
        if added >= max_args {
            outcome.truncated = true;
            // Still look for invalid encodings: ModSecurity decodes before it checks the limit.
            if !outcome.invalid_encoding && has_invalid_percent(piece) {
                outcome.invalid_encoding = true;
            }
            continue;
        }
        let (name, bad_name) = url_decode(name);
        let (value, bad_value) = url_decode(value);
        outcome.invalid_encoding |= bad_name | bad_value;
        out.push((name, value));
        added += 1;
    }
    outcome
}

/// Pieces of `input` between `separator`s as C++ `std::getline` yields them: an empty input
/// or a trailing separator yields no final empty piece.
pub(crate) fn getline_pieces(input: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    let trimmed = match input.last() {
        Some(&last) if last == separator => &input[..input.len() - 1],
        _ => input,
    };
    let empty = input.is_empty();
    trimmed
        .split(move |&b| b == separator)
        .filter(move |_| !empty)
}

/// `urldecode_nonstrict_inplace`: `+` → space, `%XX` → byte, any other `%` kept and counted.
pub fn url_decode(input: &[u8]) -> (Vec<u8>, bool) {
    let mut decoded = Vec::with_capacity(input.len());
    let mut invalid = false;
    let mut i = 0;
    while let Some(&byte) = input.get(i) {
        match byte {
            b'%' => match crate::hex::percent_escape(input, i) {
                Some(b) => {
                    decoded.push(b);
                    i += 3;
                }
                None => {
                    decoded.push(b'%');
                    invalid = true;
                    i += 1;
                }
            },
            b'+' => {
                decoded.push(b' ');
                i += 1;
            }
            other => {
                decoded.push(other);
                i += 1;
            }
        }
    }
    (decoded, invalid)
}

fn has_invalid_percent(input: &[u8]) -> bool {
    input
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'%' && crate::hex::percent_escape(input, i).is_none())
}
