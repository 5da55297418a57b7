//! Hex digits, the one helper every decoder of the crate uses (`@pm` hex literals, PCRE
//! escapes, urlencoded bodies, ModSecurity's `uri_decode`). The transformations' `x2c`
//! keeps ModSecurity's unchecked arithmetic on purpose (`transform::hex_digit`).

/// The value of one hex digit (`0-9a-fA-F`), `None` for any other byte.
pub(crate) fn digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XX` at `input[at..]` encodes (`at` indexes the `%`), if both digits are hex.
pub(crate) fn percent_escape(input: &[u8], at: usize) -> Option<u8> {
    let hi = digit(*input.get(at + 1)?)?;
    let lo = digit(*input.get(at + 2)?)?;
    Some(hi << 4 | lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_agrees_with_std() {
        for b in 0..=255u8 {
            let std = (b as char).to_digit(16).map(|d| d as u8);
            assert_eq!(digit(b), std, "{b:#x}");
        }
        assert_eq!(percent_escape(b"a%2Fb", 1), Some(b'/'));
        assert_eq!(percent_escape(b"%fF", 0), Some(0xff));
        assert_eq!(percent_escape(b"%2", 0), None);
        assert_eq!(percent_escape(b"%g0", 0), None);
    }
}
