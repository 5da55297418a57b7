//! CIDR sets with a lookup whose cost does not grow with the number of CIDRs.
//!
//! Written by hand rather than taken from a prefix-trie crate (`prefix-trie`, `treebitmap`)
//! for two reasons: those answer a *longest*-prefix match, while an allow-list needs *every*
//! partner whose networks contain the address (overlaps between partners are normal); and
//! their lookups chase one pointer per trie level (17+ dependent loads at 100k random
//! prefixes), which is what our per-request budget cannot afford.
//!
//! The table flattens all CIDRs into disjoint address intervals, each labelled with the
//! (interned) set of partners that contain it, sorted by start address. A radix index over
//! the address bits below the common prefix of all intervals narrows a lookup to a handful
//! of intervals (a few on average, whatever the total), and a binary search over those picks
//! the interval. No allocation and no hashing per lookup.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// Index of a partner in the configuration's `partners` list.
pub type PartnerId = u32;

/// Builder for an [`IpTable`]: add CIDRs with the partner they belong to, then [`build`].
///
/// ```
/// use portcullis_filter::iplist::IpTableBuilder;
/// let mut b = IpTableBuilder::default();
/// b.insert("10.0.0.0/8".parse().unwrap(), 0);
/// b.insert("10.1.0.0/16".parse().unwrap(), 1);
/// let t = b.build();
/// assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), &[0, 1]);
/// assert_eq!(t.lookup("10.2.0.1".parse().unwrap()), &[0]);
/// assert!(t.lookup("192.0.2.1".parse().unwrap()).is_empty());
/// ```
///
/// [`build`]: IpTableBuilder::build
#[derive(Default, Debug, Clone)]
pub struct IpTableBuilder {
    v4: Vec<(u32, u32, PartnerId)>,
    v6: Vec<(u128, u128, PartnerId)>,
    exact_family: bool,
}

impl IpTableBuilder {
    /// A builder whose table keeps the address families apart, as Envoy's RBAC
    /// (`CidrRange::isInRange`) does: `::ffff:203.0.113.7` is not in `203.0.113.0/24`, and an
    /// IPv4-mapped network stays IPv6. For Istio `ipBlocks`/`remoteIpBlocks`; the partner
    /// table folds mapped addresses into IPv4 instead.
    ///
    /// ```
    /// use portcullis_filter::iplist::IpTableBuilder;
    /// let mut b = IpTableBuilder::exact_family();
    /// b.insert("203.0.113.0/24".parse().unwrap(), 0);
    /// let t = b.build();
    /// assert_eq!(t.lookup("203.0.113.7".parse().unwrap()), &[0]);
    /// assert!(t.lookup("::ffff:203.0.113.7".parse().unwrap()).is_empty());
    /// ```
    pub fn exact_family() -> IpTableBuilder {
        IpTableBuilder {
            exact_family: true,
            ..IpTableBuilder::default()
        }
    }

    /// Adds `net` for `partner`. Host bits set in `net` are ignored (as Envoy does).
    /// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is stored as the IPv4 network.
    pub fn insert(&mut self, net: IpNet, partner: PartnerId) {
        match net {
            IpNet::V4(n) => {
                let n = n.trunc();
                self.v4
                    .push((u32::from(n.network()), u32::from(n.broadcast()), partner));
            }
            IpNet::V6(n) => {
                let n = n.trunc();
                let start = n.network();
                if let (Some(v4), true, false) = (
                    start.to_ipv4_mapped(),
                    n.prefix_len() >= 96,
                    self.exact_family,
                ) {
                    let len = n.prefix_len() - 96;
                    if let Ok(n4) = ipnet::Ipv4Net::new(v4, len) {
                        return self.insert(IpNet::V4(n4), partner);
                    }
                }
                self.v6
                    .push((u128::from(start), u128::from(n.broadcast()), partner));
            }
        }
    }

    /// Number of CIDRs added so far.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when no CIDR was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compiles the table. Cost O(n log n) in the number of CIDRs.
    pub fn build(self) -> IpTable {
        let mut sets = SetInterner::default();
        let v4 = Family::build(self.v4, &mut sets);
        let v6 = Family::build(self.v6, &mut sets);
        let mut ranges = Vec::with_capacity(sets.sets.len());
        let mut members = Vec::new();
        for set in &sets.sets {
            let from = members.len() as u32;
            members.extend_from_slice(set);
            ranges.push((from, members.len() as u32));
        }
        IpTable {
            v4,
            v6,
            ranges,
            members,
            exact_family: self.exact_family,
        }
    }
}

/// A compiled CIDR table: maps an address to the partners whose networks contain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpTable {
    v4: Family<u32>,
    v6: Family<u128>,
    /// Interned partner sets, flattened: set `i` is `members[ranges[i].0..ranges[i].1]`;
    /// set 0 is the empty set.
    ranges: Vec<(u32, u32)>,
    members: Vec<PartnerId>,
    /// Built by [`IpTableBuilder::exact_family`]: no IPv4-mapped folding.
    exact_family: bool,
}

impl IpTable {
    /// The partners (ascending ids) whose CIDRs contain `addr`; empty if none.
    /// IPv4-mapped IPv6 addresses are looked up as IPv4, unless the table was built by
    /// [`IpTableBuilder::exact_family`].
    #[inline]
    pub fn lookup(&self, addr: IpAddr) -> &[PartnerId] {
        let addr = if self.exact_family {
            addr
        } else {
            addr.to_canonical()
        };
        let set = match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        };
        // `set` comes from our own build; `get` keeps a corrupted index from panicking.
        match self.ranges.get(set as usize) {
            Some(&(from, to)) => self.members.get(from as usize..to as usize).unwrap_or(&[]),
            None => &[],
        }
    }

    /// Number of disjoint intervals (v4 + v6), for diagnostics and benchmarks.
    pub fn intervals(&self) -> usize {
        self.v4.entries.len() + self.v6.entries.len()
    }

    /// The compiled table in a compact form another VM reads back with [`Self::from_bytes`]
    /// without recompiling the CIDRs: the partner sets, then each family's intervals
    /// (start, set id), all little-endian. The radix index is not stored: reading rebuilds
    /// it in one linear pass. About 8 bytes per IPv4 interval and 20 per IPv6 one.
    ///
    /// ```
    /// use portcullis_filter::iplist::{IpTable, IpTableBuilder};
    /// let mut b = IpTableBuilder::default();
    /// b.insert("10.0.0.0/8".parse().unwrap(), 3);
    /// let t = b.build();
    /// let back = IpTable::from_bytes(&t.to_bytes()).unwrap();
    /// assert_eq!(back.lookup("10.9.9.9".parse().unwrap()), &[3]);
    /// assert_eq!(back, t);
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            17 + self.ranges.len() * 8
                + self.members.len() * 4
                + self.v4.entries.len() * 8
                + self.v6.entries.len() * 20,
        );
        out.push(u8::from(self.exact_family));
        put_len(&mut out, self.ranges.len());
        for &(from, to) in &self.ranges {
            out.extend_from_slice(&from.to_le_bytes());
            out.extend_from_slice(&to.to_le_bytes());
        }
        put_len(&mut out, self.members.len());
        for m in &self.members {
            out.extend_from_slice(&m.to_le_bytes());
        }
        self.v4.write(&mut out);
        self.v6.write(&mut out);
        out
    }

    /// Reads [`Self::to_bytes`]' form back, checking every invariant a lookup relies on
    /// (sets in bounds, intervals ascending from address 0); an error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<IpTable, String> {
        let mut r = Reader(bytes);
        let exact_family = match r.take(1, 1, "the family flag")? {
            [0] => false,
            [1] => true,
            _ => return Err("the family flag is neither 0 nor 1".into()),
        };
        let n = r.len("partner sets")?;
        let raw = r.take(n, 8, "partner sets")?;
        let ranges: Vec<(u32, u32)> = raw
            .chunks_exact(8)
            .map(|c| (le_u32(c, 0), le_u32(c, 4)))
            .collect();
        let n = r.len("set members")?;
        let raw = r.take(n, 4, "set members")?;
        let members: Vec<PartnerId> = raw.chunks_exact(4).map(|c| le_u32(c, 0)).collect();
        // No sets at all for a table without CIDRs; else set 0 is the empty set.
        if ranges.first().is_some_and(|&(from, to)| from != to) {
            return Err("partner set 0 is not the empty set".into());
        }
        if let Some(i) = ranges
            .iter()
            .position(|&(from, to)| from > to || to as usize > members.len())
        {
            return Err(format!("partner set {i} is out of bounds"));
        }
        let sets = ranges.len() as u32;
        let v4 = Family::read(&mut r, sets, "IPv4")?;
        let v6 = Family::read(&mut r, sets, "IPv6")?;
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the table", r.0.len()));
        }
        Ok(IpTable {
            v4,
            v6,
            ranges,
            members,
            exact_family,
        })
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Counts come from tables built in memory: far below u32::MAX.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// `u32` at `at` in a chunk known to hold it (from `chunks_exact`); 0 otherwise.
fn le_u32(chunk: &[u8], at: usize) -> u32 {
    chunk
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// A cursor over serialized bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn len(&mut self, what: &str) -> Result<usize, String> {
        let b = self.take(1, 4, what)?;
        Ok(le_u32(b, 0) as usize)
    }

    fn take(&mut self, n: usize, width: usize, what: &str) -> Result<&'a [u8], String> {
        let bytes = n
            .checked_mul(width)
            .filter(|&b| b <= self.0.len())
            .ok_or_else(|| format!("truncated in the {what}"))?;
        let (head, rest) = self.0.split_at(bytes);
        self.0 = rest;
        Ok(head)
    }
}

#[derive(Default)]
struct SetInterner {
    sets: Vec<Box<[PartnerId]>>,
    ids: HashMap<Box<[PartnerId]>, u32>,
}

impl SetInterner {
    fn intern(&mut self, set: &[PartnerId]) -> u32 {
        if self.sets.is_empty() {
            self.sets.push(Box::new([]));
            self.ids.insert(Box::new([]), 0);
        }
        if let Some(&id) = self.ids.get(set) {
            return id;
        }
        let id = self.sets.len() as u32;
        self.sets.push(set.into());
        self.ids.insert(set.into(), id);
        id
    }
}

/// Unsigned address key (u32 for IPv4, u128 for IPv6).
trait Key: Copy + Ord + Eq + std::fmt::Debug + Default {
    const BITS: u32;
    const MAX: Self;
    fn leading_zeros(self) -> u32;
    fn xor(self, o: Self) -> Self;
    fn shr(self, n: u32) -> Self;
    fn low_u32(self) -> u32;
    fn checked_inc(self) -> Option<Self>;
    fn checked_dec(self) -> Option<Self>;
    /// Little-endian bytes (4 or 16).
    fn write_le(self, out: &mut Vec<u8>);
    fn read_le(bytes: &[u8]) -> Option<Self>;
}

impl Key for u32 {
    const BITS: u32 = 32;
    const MAX: Self = u32::MAX;
    fn leading_zeros(self) -> u32 {
        u32::leading_zeros(self)
    }
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    fn shr(self, n: u32) -> Self {
        self.checked_shr(n).unwrap_or(0)
    }
    fn low_u32(self) -> u32 {
        self
    }
    fn checked_inc(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn checked_dec(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Option<Self> {
        Some(u32::from_le_bytes(bytes.try_into().ok()?))
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    const MAX: Self = u128::MAX;
    fn leading_zeros(self) -> u32 {
        u128::leading_zeros(self)
    }
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    fn shr(self, n: u32) -> Self {
        self.checked_shr(n).unwrap_or(0)
    }
    fn low_u32(self) -> u32 {
        self as u32
    }
    fn checked_inc(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn checked_dec(self) -> Option<Self> {
        self.checked_sub(1)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Option<Self> {
        Some(u128::from_le_bytes(bytes.try_into().ok()?))
    }
}

/// One address family's disjoint intervals plus the radix index over them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Family<K> {
    /// (start, partner-set id) of each interval, ascending by start; the first starts at
    /// address 0 when non-empty, so every address has an interval. Start and set share a
    /// cache line: a lookup touches the index, one run of entries and the set.
    entries: Vec<(K, u32)>,
    /// Bits of the common prefix of all non-empty intervals (`prefix_bits` high bits);
    /// addresses outside that block match nothing.
    prefix: K,
    prefix_bits: u32,
    /// The index uses the `index_bits` bits right below the common prefix.
    index_shift: u32,
    index_mask: u32,
    /// `index[b]` = number of intervals starting before bucket `b` (len = buckets + 1).
    index: Vec<u32>,
}

impl<K: Key> Family<K> {
    fn build(mut nets: Vec<(K, K, PartnerId)>, sets: &mut SetInterner) -> Self {
        if nets.is_empty() {
            return Family::default();
        }
        // Sweep over start / end+1 events keeping a count per active partner.
        let mut events: Vec<(K, bool, PartnerId)> = Vec::with_capacity(nets.len() * 2);
        for &(s, e, p) in &nets {
            events.push((s, true, p));
            if let Some(after) = e.checked_inc() {
                events.push((after, false, p));
            }
        }
        events.sort_unstable();
        let lo = nets.iter().map(|n| n.0).min().unwrap_or_default();
        let hi = nets.iter().map(|n| n.1).max().unwrap_or_default();
        nets.clear();

        let mut active: Vec<(PartnerId, u32)> = Vec::new(); // sorted by partner, with count
        let mut members: Vec<PartnerId> = Vec::new();
        let mut starts: Vec<K> = vec![K::default()];
        let mut set_ids: Vec<u32> = vec![sets.intern(&[])];
        let mut i = 0;
        while i < events.len() {
            let pos = events[i].0;
            while i < events.len() && events[i].0 == pos {
                let (_, add, p) = events[i];
                match active.binary_search_by_key(&p, |a| a.0) {
                    Ok(j) if add => active[j].1 += 1,
                    Ok(j) => {
                        active[j].1 -= 1;
                        if active[j].1 == 0 {
                            active.remove(j);
                        }
                    }
                    Err(j) if add => active.insert(j, (p, 1)),
                    Err(_) => {} // unreachable: every end follows its start
                }
                i += 1;
            }
            members.clear();
            members.extend(active.iter().map(|a| a.0));
            let id = sets.intern(&members);
            if set_ids.last() == Some(&id) {
                continue;
            }
            if starts.last() == Some(&pos) {
                // An interval starting at address 0 replaces the initial empty one.
                let n = set_ids.len() - 1;
                set_ids[n] = id;
                if n > 0 && set_ids[n - 1] == id {
                    set_ids.pop();
                    starts.pop();
                }
            } else {
                starts.push(pos);
                set_ids.push(id);
            }
        }

        Family::indexed(starts, set_ids, lo, hi)
    }

    /// The family over disjoint intervals (`starts` ascending from 0, `set_ids` their
    /// partner sets, set 0 = empty) whose non-empty ones lie within `lo..=hi`: builds the
    /// radix index. Linear in intervals + buckets (no sort), so a table read back from its
    /// serialized form ([`IpTable::from_bytes`]) skips the expensive part of [`Self::build`].
    fn indexed(starts: Vec<K>, set_ids: Vec<u32>, lo: K, hi: K) -> Self {
        let prefix_bits = lo.xor(hi).leading_zeros();
        let free_bits = K::BITS - prefix_bits;
        // About 2 intervals per bucket, between 16 and 2^18 buckets.
        let want = (usize::BITS - starts.len().leading_zeros()).clamp(4, 20);
        let index_bits = want.min(free_bits);
        let index_shift = free_bits - index_bits;
        let index_mask = if index_bits == 0 {
            0
        } else {
            u32::MAX >> (32 - index_bits)
        };
        let prefix = lo.shr(free_bits);
        let buckets = 1usize << index_bits;
        let mut index = vec![0u32; buckets + 1];
        // Intervals below the common-prefix block all sort before bucket 0.
        let mut j = 0usize;
        for (b, slot) in index.iter_mut().enumerate() {
            while j < starts.len()
                && bucket_of(starts[j], prefix, free_bits, index_shift, index_mask)
                    .is_some_and(|sb| (sb as usize) < b)
                || j < starts.len() && below_block(starts[j], prefix, free_bits)
            {
                j += 1;
            }
            *slot = j as u32;
        }
        Family {
            entries: starts.into_iter().zip(set_ids).collect(),
            prefix,
            prefix_bits,
            index_shift,
            index_mask,
            index,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        put_len(out, self.entries.len());
        for &(start, set) in &self.entries {
            start.write_le(out);
            out.extend_from_slice(&set.to_le_bytes());
        }
    }

    /// Reads what [`Self::write`] wrote and rebuilds the index.
    fn read(r: &mut Reader, sets: u32, family: &str) -> Result<Self, String> {
        let n = r.len(family)?;
        let width = K::BITS as usize / 8;
        let raw = r.take(n, width + 4, family)?;
        let mut starts = Vec::with_capacity(n);
        let mut set_ids = Vec::with_capacity(n);
        for c in raw.chunks_exact(width + 4) {
            let (start, set) = c.split_at(width);
            let start = K::read_le(start).ok_or_else(|| format!("bad {family} interval"))?;
            let set = le_u32(set, 0);
            if set >= sets {
                return Err(format!(
                    "{family} interval {start:?}: unknown partner set {set}"
                ));
            }
            if starts.last().is_some_and(|&prev| prev >= start) {
                return Err(format!("{family} intervals not ascending at {start:?}"));
            }
            starts.push(start);
            set_ids.push(set);
        }
        if starts.first().is_some_and(|&s| s != K::default()) {
            return Err(format!("the first {family} interval does not start at 0"));
        }
        // The block the index covers: from the first non-empty interval to the end of
        // the last one (the address before the interval after it), as `build` had it.
        let (Some(first), Some(last)) = (
            set_ids.iter().position(|&s| s != 0),
            set_ids.iter().rposition(|&s| s != 0),
        ) else {
            return Ok(Family::default());
        };
        let lo = starts.get(first).copied().unwrap_or_default();
        let hi = match starts.get(last + 1) {
            Some(next) => next.checked_dec().unwrap_or_default(),
            None => K::MAX,
        };
        Ok(Family::indexed(starts, set_ids, lo, hi))
    }

    #[inline]
    fn lookup(&self, addr: K) -> u32 {
        if self.entries.is_empty() {
            return 0;
        }
        let free_bits = K::BITS - self.prefix_bits;
        let Some(b) = bucket_of(
            addr,
            self.prefix,
            free_bits,
            self.index_shift,
            self.index_mask,
        ) else {
            return 0; // outside the block that holds every non-empty interval
        };
        let b = b as usize;
        let (Some(&from), Some(&to)) = (self.index.get(b), self.index.get(b + 1)) else {
            return 0;
        };
        let (from, to) = (from as usize, to as usize);
        // The covering interval is the last one starting at or before `addr`: either one
        // starting inside this bucket, or the one running into it (from - 1).
        let within = self.entries.get(from..to).unwrap_or(&[]);
        let n = within.partition_point(|e| e.0 <= addr);
        let k = if n > 0 {
            from + n - 1
        } else {
            from.wrapping_sub(1)
        };
        self.entries.get(k).map_or(0, |e| e.1)
    }
}

#[inline]
fn bucket_of<K: Key>(addr: K, prefix: K, free_bits: u32, shift: u32, mask: u32) -> Option<u32> {
    if addr.shr(free_bits) != prefix {
        return None;
    }
    Some(addr.shr(shift).low_u32() & mask)
}

#[inline]
fn below_block<K: Key>(addr: K, prefix: K, free_bits: u32) -> bool {
    addr.shr(free_bits) < prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(nets: &[(&str, PartnerId)]) -> IpTable {
        let mut b = IpTableBuilder::default();
        for (n, p) in nets {
            b.insert(n.parse::<crate::config::Cidr>().unwrap().0, *p);
        }
        b.build()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlapping_partners_are_all_returned() {
        let t = table(&[("10.0.0.0/8", 2), ("10.1.0.0/16", 0), ("10.1.2.0/24", 1)]);
        assert_eq!(t.lookup(ip("10.1.2.3")), &[0, 1, 2]);
        assert_eq!(t.lookup(ip("10.1.3.3")), &[0, 2]);
        assert_eq!(t.lookup(ip("10.200.0.0")), &[2]);
        assert_eq!(t.lookup(ip("11.0.0.0")), &[] as &[u32]);
        assert_eq!(t.lookup(ip("9.255.255.255")), &[] as &[u32]);
    }

    #[test]
    fn duplicates_and_host_bits_are_harmless() {
        let t = table(&[("192.0.2.7/24", 0), ("192.0.2.0/24", 0), ("192.0.2.9", 0)]);
        assert_eq!(t.lookup(ip("192.0.2.255")), &[0]);
        assert_eq!(t.lookup(ip("192.0.3.0")), &[] as &[u32]);
    }

    #[test]
    fn whole_address_space_and_edges() {
        let t = table(&[("0.0.0.0/0", 0), ("255.255.255.255/32", 1), ("::/0", 2)]);
        assert_eq!(t.lookup(ip("0.0.0.0")), &[0]);
        assert_eq!(t.lookup(ip("255.255.255.255")), &[0, 1]);
        assert_eq!(
            t.lookup(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            &[2]
        );
        assert_eq!(t.lookup(ip("::")), &[2]);
    }

    #[test]
    fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
        let t = table(&[("203.0.113.0/24", 0), ("::ffff:198.51.100.0/120", 1)]);
        assert_eq!(t.lookup(ip("::ffff:203.0.113.9")), &[0]);
        assert_eq!(t.lookup(ip("198.51.100.200")), &[1]);
        assert_eq!(t.lookup(ip("2001:db8::1")), &[] as &[u32]);
    }

    #[test]
    fn ipv6_clustered_prefixes() {
        let t = table(&[
            ("2001:db8::/32", 0),
            ("2001:db8:1::/48", 1),
            ("2001:db9::1", 2),
        ]);
        assert_eq!(t.lookup(ip("2001:db8:1::5")), &[0, 1]);
        assert_eq!(t.lookup(ip("2001:db8:2::5")), &[0]);
        assert_eq!(t.lookup(ip("2001:db9::1")), &[2]);
        assert_eq!(t.lookup(ip("2001:db9::2")), &[] as &[u32]);
        assert_eq!(t.lookup(ip("2002::")), &[] as &[u32]);
    }

    #[test]
    fn empty_table_matches_nothing() {
        let t = IpTableBuilder::default().build();
        assert!(t.lookup(ip("10.0.0.1")).is_empty());
        assert!(t.lookup(ip("::1")).is_empty());
    }

    fn linear(nets: &[(IpNet, PartnerId)], addr: IpAddr) -> Vec<PartnerId> {
        let addr = addr.to_canonical();
        let mut v: Vec<PartnerId> = nets
            .iter()
            .filter(|(n, _)| {
                let n = match n {
                    IpNet::V6(n6)
                        if n6.prefix_len() >= 96 && n6.network().to_ipv4_mapped().is_some() =>
                    {
                        IpNet::V4(
                            ipnet::Ipv4Net::new(
                                n6.network().to_ipv4_mapped().unwrap(),
                                n6.prefix_len() - 96,
                            )
                            .unwrap(),
                        )
                    }
                    n => *n,
                };
                n.contains(&addr)
            })
            .map(|(_, p)| *p)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Addresses near interesting points (network starts and ends) plus random ones.
    fn arb_case() -> impl Strategy<Value = (Vec<(IpNet, PartnerId)>, Vec<IpAddr>)> {
        // Confine some nets to a small region so overlaps are frequent.
        let v4 = (any::<u32>(), 0u8..=32, any::<bool>()).prop_map(|(a, l, near)| {
            let a = if near {
                0x0a00_0000 | (a & 0x0000_ffff)
            } else {
                a
            };
            IpNet::V4(ipnet::Ipv4Net::new(a.into(), l).unwrap().trunc())
        });
        let v6 = (any::<u128>(), 0u8..=128, any::<bool>()).prop_map(|(a, l, near)| {
            let a = if near {
                (0x2001_0db8u128 << 96) | (a & 0xffff_ffff)
            } else {
                a
            };
            IpNet::V6(ipnet::Ipv6Net::new(a.into(), l).unwrap().trunc())
        });
        let net = prop_oneof![v4, v6];
        let nets = prop::collection::vec((net, 0u32..5), 0..40);
        nets.prop_flat_map(|nets| {
            let mut probes: Vec<BoxedStrategy<IpAddr>> = Vec::new();
            for (n, _) in &nets {
                let (lo, hi) = (n.network(), n.broadcast());
                probes.push(Just(lo).boxed());
                probes.push(Just(hi).boxed());
                match (lo, hi) {
                    (IpAddr::V4(l), IpAddr::V4(h)) => {
                        if let Some(x) = u32::from(l).checked_sub(1) {
                            probes.push(Just(IpAddr::V4(x.into())).boxed());
                        }
                        if let Some(x) = u32::from(h).checked_add(1) {
                            probes.push(Just(IpAddr::V4(x.into())).boxed());
                        }
                    }
                    (IpAddr::V6(l), IpAddr::V6(h)) => {
                        if let Some(x) = u128::from(l).checked_sub(1) {
                            probes.push(Just(IpAddr::V6(x.into())).boxed());
                        }
                        if let Some(x) = u128::from(h).checked_add(1) {
                            probes.push(Just(IpAddr::V6(x.into())).boxed());
                        }
                    }
                    _ => {}
                }
            }
            probes.push(any::<u32>().prop_map(|a| IpAddr::V4(a.into())).boxed());
            probes.push(any::<u128>().prop_map(|a| IpAddr::V6(a.into())).boxed());
            probes.push(
                any::<u32>()
                    .prop_map(|a| IpAddr::V4((0x0a00_0000 | (a & 0xffff)).into()))
                    .boxed(),
            );
            let probes = prop::collection::vec(prop::strategy::Union::new(probes), 1..60);
            (Just(nets), probes)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn table_agrees_with_linear_scan((nets, probes) in arb_case()) {
            let mut b = IpTableBuilder::default();
            for (n, p) in &nets {
                b.insert(*n, *p);
            }
            let t = b.build();
            let back = IpTable::from_bytes(&t.to_bytes()).unwrap();
            prop_assert_eq!(&back, &t);
            for a in probes {
                prop_assert_eq!(t.lookup(a).to_vec(), linear(&nets, a), "address {}", a);
                prop_assert_eq!(back.lookup(a).to_vec(), linear(&nets, a), "address {}", a);
            }
        }

        /// Whatever the bytes, reading them back never panics, and a table it accepts
        /// answers lookups without panicking.
        #[test]
        fn corrupt_bytes_are_refused_not_panicked_on(
            (nets, _) in arb_case(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = IpTableBuilder::default();
            for (n, p) in &nets {
                b.insert(*n, *p);
            }
            let mut bytes = b.build().to_bytes();
            for (at, x) in flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            if let Ok(t) = IpTable::from_bytes(&bytes) {
                let _ = t.lookup(ip("10.0.0.1"));
                let _ = t.lookup(ip("2001:db8::1"));
            }
            let n = cut.index(bytes.len());
            prop_assert!(IpTable::from_bytes(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn corrupt_tables_say_why() {
        let t = table(&[("10.0.0.0/8", 0), ("2001:db8::/32", 1)]);
        let good = t.to_bytes();
        assert_eq!(IpTable::from_bytes(&good).unwrap(), t);
        let e = IpTable::from_bytes(&good[..good.len() - 1]).unwrap_err();
        assert!(e.contains("truncated in the IPv6"), "{e}");
        let mut long = good.clone();
        long.push(0);
        assert_eq!(
            IpTable::from_bytes(&long).unwrap_err(),
            "1 bytes after the table"
        );
        assert!(IpTable::from_bytes(&[]).unwrap_err().contains("truncated"));
        // An interval pointing at a partner set that does not exist.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&99u32.to_le_bytes());
        let e = IpTable::from_bytes(&bad).unwrap_err();
        assert!(e.contains("unknown partner set 99"), "{e}");
    }
}
