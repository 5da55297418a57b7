//! The proxy-wasm byte formats the glue exchanges with the host (abi.md §1d): header
//! maps and property paths. Native, so it is tested without a VM; decoding is checked
//! (a malformed map from the host is an error, never a panic).

/// Encodes header pairs: `count:u32le`, then `(name_len:u32le, value_len:u32le)` per pair,
/// then each name and value followed by a NUL.
///
/// ```
/// use portcullis_filter::wire::{decode_pairs, encode_pairs};
/// let bytes = encode_pairs(&[("a", "1")]);
/// assert_eq!(decode_pairs(&bytes).unwrap(), vec![("a".to_owned(), b"1".to_vec())]);
/// ```
pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()).to_le_bytes());
        out.extend_from_slice(&len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Lengths in the format are u32; the filter never builds a value of 4 GiB (saturates).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Why the host's bytes are not a header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedMap;

/// Decodes a header map. Names that are not UTF-8 are read lossily (HTTP names are
/// tokens: Envoy never hands others); values stay bytes. Empty input is an empty map.
pub fn decode_pairs(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, MalformedMap> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let u32_at = |at: usize| -> Result<usize, MalformedMap> {
        let b = bytes.get(at..at.checked_add(4).ok_or(MalformedMap)?);
        let arr: [u8; 4] = b.and_then(|b| b.try_into().ok()).ok_or(MalformedMap)?;
        Ok(u32::from_le_bytes(arr) as usize)
    };
    let count = u32_at(0)?;
    let mut data = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .ok_or(MalformedMap)?;
    if data > bytes.len() {
        return Err(MalformedMap);
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (k_len, v_len) = (u32_at(4 + i * 8)?, u32_at(8 + i * 8)?);
        let mut take = |n: usize| -> Result<&[u8], MalformedMap> {
            let end = data.checked_add(n).ok_or(MalformedMap)?;
            let s = bytes.get(data..end).ok_or(MalformedMap)?;
            data = end.checked_add(1).ok_or(MalformedMap)?; // the NUL
            Ok(s)
        };
        let k = String::from_utf8_lossy(take(k_len)?).into_owned();
        let v = take(v_len)?.to_vec();
        out.push((k, v));
    }
    Ok(out)
}

/// Encodes a property path (`["source", "address"]` → `source\0address`).
pub fn encode_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_bytes() {
        let b = encode_pairs(&[(":path", "/x"), ("k", "")]);
        let mut want = vec![2, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b":path\0/x\0k\0\0");
        assert_eq!(b, want);
        assert_eq!(encode_path(&["source", "address"]), b"source\0address");
        assert_eq!(encode_pairs(&[]), vec![0, 0, 0, 0]);
        assert_eq!(decode_pairs(&[]), Ok(vec![]));
    }

    #[test]
    fn non_utf8_values_are_kept_and_names_read_lossily() {
        let mut b = vec![1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0];
        b.extend_from_slice(&[0xff, 0, 0xfe, 0]);
        assert_eq!(
            decode_pairs(&b),
            Ok(vec![("\u{fffd}".to_owned(), vec![0xfe])])
        );
    }

    #[test]
    fn malformed_maps_are_errors() {
        assert_eq!(decode_pairs(&[1, 0]), Err(MalformedMap));
        assert_eq!(decode_pairs(&[1, 0, 0, 0]), Err(MalformedMap));
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), Err(MalformedMap));
        // Lengths past the end.
        assert_eq!(
            decode_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, b'a']),
            Err(MalformedMap)
        );
    }

    proptest::proptest! {
        #[test]
        fn round_trip(pairs in proptest::collection::vec((".{0,8}", ".{0,8}"), 0..8)) {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let back = decode_pairs(&encode_pairs(&refs)).unwrap();
            let want: Vec<(String, Vec<u8>)> = pairs.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
            proptest::prop_assert_eq!(back, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode_pairs(&bytes);
        }
    }
}
