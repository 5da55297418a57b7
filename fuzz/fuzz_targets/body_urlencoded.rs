//! The urlencoded body/query parser against a textbook reference written here: pieces
//! between separators (no final empty piece), name and value split at the first `=`, `+` a
//! space, `%XX` a byte, any other `%` kept and flagged; at most `max_args` pairs.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis_waf::body::{parse_urlencoded_outcome, url_decode};

#[derive(Debug, Arbitrary)]
struct Input {
    semicolon: bool,
    max_args: u8,
    body: Vec<u8>,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode(s: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut bad = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => {
                    bad = true;
                    out.push(b'%');
                }
            },
            b => out.push(b),
        }
        i += 1;
    }
    (out, bad)
}

fuzz_target!(|input: Input| {
    let sep = if input.semicolon { b';' } else { b'&' };
    let max = usize::from(input.max_args);
    let mut got = Vec::new();
    let outcome = parse_urlencoded_outcome(&input.body, sep, max, &mut got);

    let body = input.body.as_slice();
    let trimmed = if body.last() == Some(&sep) {
        &body[..body.len() - 1]
    } else {
        body
    };
    let mut want = Vec::new();
    let mut bad = false;
    let mut pieces = 0;
    if !body.is_empty() {
        for piece in trimmed.split(|&b| b == sep) {
            pieces += 1;
            let (n, v) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (&piece[..eq], &piece[eq + 1..]),
                None => (piece, &piece[..0]),
            };
            let (n, bn) = decode(n);
            let (v, bv) = decode(v);
            bad |= bn | bv;
            if want.len() < max {
                want.push((n, v));
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(outcome.invalid_encoding, bad);
    assert_eq!(outcome.truncated, pieces > max);
    assert_eq!(url_decode(&input.body), decode(&input.body));
});
