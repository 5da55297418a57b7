//! `Cookie` header values split into `REQUEST_COOKIES` as ModSecurity v3.0.9 does it
//! (`Transaction::addRequestHeader`, the `cookie` branch): no decoding, names left-trimmed only.

use super::urlencoded::getline_pieces;
use super::Pair;

/// C's `isspace` in the "C" locale, which ModSecurity uses to trim.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits one `Cookie` header value:
/// - pieces between `;` as `std::getline` yields them (a trailing `;` adds nothing);
/// - the last piece loses its trailing white space (the only right-trim ModSecurity does:
///   `a=1 ;b=2 ` gives `a` = `1 ` and `b` = `2`);
/// - a piece splits at its first `=` (`a=b=c` → `a` = `b=c`); without `=` it is a name with an
///   empty value;
/// - the name loses its leading white space; a piece whose name is then empty is dropped
///   (`;;`, `  =bar`); values are kept byte for byte.
pub fn split_cookie_header(header: &[u8], out: &mut Vec<Pair>) {
    let pieces: Vec<&[u8]> = getline_pieces(header, b';').collect();
    let last = pieces.len().saturating_sub(1);
    for (index, piece) in pieces.into_iter().enumerate() {
        let piece = if index == last {
            let end = piece
                .iter()
                .rposition(|&b| !is_c_space(b))
                .map_or(0, |p| p + 1);
            &piece[..end]
        } else {
            piece
        };
        let (name, value) = match piece.iter().position(|&b| b == b'=') {
            Some(eq) => (&piece[..eq], &piece[eq + 1..]),
            None => (piece, &piece[piece.len()..]),
        };
        let start = name
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(name.len());
        let name = &name[start..];
        if name.is_empty() {
            continue;
        }
        out.push((name.to_vec(), value.to_vec()));
    }
}
