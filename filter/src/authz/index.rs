//! Candidate rules per request: each rule is filed under what must hold for it to match
//! (an exact principal, an exact or prefix path, an exact host, a method), so a request
//! tries only the rules filed under its own facts plus the few that cannot be filed.
//!
//! Soundness: a rule's keys are a *necessary* condition (if the rule matches, the request
//! has one of its keys), so the candidates are a superset of the matching rules and the
//! first match by name is the same as a full scan's. `tests_index.rs` checks this against
//! the scan on random policies.

use super::matcher::{Ctx, Matcher, StrMatch, StrMatcher, Truth};
use super::Rule;
use crate::error::Refusal;
use crate::request::RequestView;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hosts longer than this are not indexed (their rules fall back to another key or the
/// scan), so a request's host can be lower-cased into a stack buffer.
const HOST_MAX: usize = 255;

/// How [`Group::first`] finds a group's first matching rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lookup {
    /// Groups with fewer rules are scanned in name order instead of looked up.
    scan_below: usize,
}

impl Lookup {
    /// The filter's: groups under 5 rules are scanned, as a few matcher walks cost less
    /// than the lookups.
    pub(crate) const DEFAULT: Lookup = Lookup { scan_below: 5 };
    /// Every group through the index, however small (tests exercise the index with it).
    #[cfg(test)]
    pub(crate) const INDEX_EVERY_GROUP: Lookup = Lookup { scan_below: 1 };
    /// Every group scanned: the reference the index must agree with.
    #[cfg(test)]
    pub(crate) const SCAN_EVERY_GROUP: Lookup = Lookup {
        scan_below: usize::MAX,
    };
}

/// FxHash (rustc's): the keys come from the configuration, so a fixed hash cannot be
/// flooded by requests; it is several times faster than SipHash on short strings.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const FX_K: u64 = 0x517c_c1b7_2722_0a95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            if let Some(dst) = w.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
            }
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A slice of [`Group::postings`]: ranks, ascending.
#[derive(Debug, Clone, Copy, Default)]
struct Span(u32, u32);

/// What one rule requires, as a disjunction: the rule can only match a request that has
/// one of these facts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Principal(Box<str>),
    /// A principal suffix `*<tail>` (regex `spiffe://.*<tail>`): a candidate principal
    /// after `spiffe://` ends with this, the tail's part after its last `.` (any character
    /// but a newline: the part before it is not literal).
    PrincipalTail(Box<str>),
    /// Lower-case.
    Host(Box<[u8]>),
    /// `host:*` (Istio's idiom for "any port"): the host before the first `:`,
    /// lower-case, itself without `:`. A value starts with `host:` exactly when its
    /// text before the first `:` is `host` and it has a `:`.
    HostAnyPort(Box<[u8]>),
    Method(Box<str>),
    PathExact(Box<str>),
    PathPrefix(Box<str>),
}

/// How selective a key kind is (higher = fewer rules per key in real policies).
fn score(k: &Key) -> u8 {
    match k {
        Key::Principal(_) => 4,
        Key::PrincipalTail(_) => 3,
        Key::Host(_) | Key::HostAnyPort(_) | Key::PathExact(_) => 3,
        Key::PathPrefix(_) => 2,
        Key::Method(_) => 1,
    }
}

fn exact(m: &StrMatcher, ignore_case: bool) -> Option<&str> {
    match &m.m {
        StrMatch::Exact(s) if m.ignore_case == ignore_case => Some(s),
        _ => None,
    }
}

/// The necessary keys of `m` with their weakest score, or `None` when `m` can match
/// a request without any indexable fact (then the rule is scanned).
fn keys(m: &Matcher) -> Option<(u8, Vec<Key>)> {
    let leaf = |k: Key| Some((score(&k), vec![k]));
    match m {
        // Every child is necessary: file under the most selective one.
        Matcher::And(ms) => ms
            .iter()
            .filter_map(keys)
            .max_by_key(|(s, ks)| (*s, std::cmp::Reverse(ks.len()))),
        // Any child may be the one that holds: all must be indexable.
        Matcher::Or(ms) => {
            let mut all = Vec::new();
            let mut weakest = u8::MAX;
            for c in ms.iter() {
                let (s, ks) = keys(c)?;
                weakest = weakest.min(s);
                all.extend(ks);
            }
            (!all.is_empty()).then_some((weakest, all))
        }
        Matcher::Principal(s) => match &s.m {
            StrMatch::SpiffeTail(tail, _) => {
                let literal = tail.rsplit('.').next().filter(|l| !l.is_empty())?;
                leaf(Key::PrincipalTail(literal.into()))
            }
            _ => leaf(Key::Principal(exact(s, false)?.into())),
        },
        Matcher::Host(s) if s.ignore_case => {
            let lower = |h: &str| -> Option<Box<[u8]>> {
                (h.len() <= HOST_MAX).then(|| h.to_ascii_lowercase().into_bytes().into())
            };
            match &s.m {
                StrMatch::Exact(h) => leaf(Key::Host(lower(h)?)),
                StrMatch::Prefix(p) => match p.strip_suffix(':') {
                    Some(h) if !h.contains(':') => leaf(Key::HostAnyPort(lower(h)?)),
                    _ => None,
                },
                _ => None,
            }
        }
        Matcher::Method(s) => leaf(Key::Method(exact(s, false)?.into())),
        Matcher::Path(s) => match &s.m {
            _ if s.ignore_case => None,
            StrMatch::Exact(p) => leaf(Key::PathExact(p.clone())),
            StrMatch::Prefix(p) => leaf(Key::PathPrefix(p.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// A byte trie over exact and prefix paths, frozen into flat arrays.
#[derive(Debug, Clone, Default)]
struct PathTrie {
    nodes: Vec<TrieNode>,
    /// (byte, child), sorted by byte within each node's range.
    edges: Vec<(u8, u32)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct TrieNode {
    edges: Span,
    /// Rules filed under the path up to here as a prefix.
    prefix: Span,
    /// Rules filed under exactly the path up to here.
    exact: Span,
}

#[derive(Default)]
struct TrieBuilder {
    children: Vec<Vec<(u8, u32)>>,
    prefix: Vec<Vec<u32>>,
    exact: Vec<Vec<u32>>,
}

impl TrieBuilder {
    fn new() -> Self {
        TrieBuilder {
            children: vec![Vec::new()],
            prefix: vec![Vec::new()],
            exact: vec![Vec::new()],
        }
    }

    fn node(&mut self, path: &[u8]) -> usize {
        let mut n = 0usize;
        for &b in path {
            let found = self
                .children
                .get(n)
                .and_then(|c| c.iter().find(|(x, _)| *x == b))
                .map(|&(_, c)| c as usize);
            n = match found {
                Some(c) => c,
                None => {
                    let c = self.children.len();
                    self.children.push(Vec::new());
                    self.prefix.push(Vec::new());
                    self.exact.push(Vec::new());
                    if let Some(v) = self.children.get_mut(n) {
                        v.push((b, c as u32));
                    }
                    c
                }
            };
        }
        n
    }

    fn freeze(self, postings: &mut Vec<u32>) -> PathTrie {
        let mut t = PathTrie::default();
        for ((mut ch, p), e) in self.children.into_iter().zip(self.prefix).zip(self.exact) {
            ch.sort_unstable();
            let start = t.edges.len() as u32;
            t.edges.extend(ch);
            t.nodes.push(TrieNode {
                edges: Span(start, t.edges.len() as u32),
                prefix: push_list(postings, p),
                exact: push_list(postings, e),
            });
        }
        t
    }
}

fn push_list(postings: &mut Vec<u32>, mut ranks: Vec<u32>) -> Span {
    ranks.sort_unstable();
    ranks.dedup();
    let start = postings.len() as u32;
    postings.extend(ranks);
    Span(start, postings.len() as u32)
}

impl PathTrie {
    /// Calls `f` with the spans of every prefix of `path` and of `path` itself.
    fn walk(&self, path: &[u8], f: &mut dyn FnMut(Span)) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        f(node.prefix);
        for &b in path {
            let edges = self
                .edges
                .get(node.edges.0 as usize..node.edges.1 as usize)
                .unwrap_or(&[]);
            let Ok(i) = edges.binary_search_by_key(&b, |&(x, _)| x) else {
                return;
            };
            let Some(next) = edges.get(i).and_then(|&(_, c)| self.nodes.get(c as usize)) else {
                return;
            };
            node = next;
            f(node.prefix);
        }
        f(node.exact);
    }
}

/// The rules of one action group (DENY, ALLOW, ... enforced or dry-run), in name order,
/// with their index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    /// Rule ids in name order; a rule's *rank* is its position here.
    order: Box<[u32]>,
    /// All posting lists, back to back.
    postings: Vec<u32>,
    /// Rules with no indexable requirement: always tried.
    scan: Span,
    principals: FxMap<Box<str>, Span>,
    /// [`Key::PrincipalTail`]s, reversed: walking a principal backwards finds every tail
    /// it ends with in one pass (20,000 suffix principals against a certificate with 1,500
    /// SANs were 30 million matcher walks per request; harness/tests/resource_bounds.rs).
    principal_tails: PathTrie,
    has_principal_tails: bool,
    hosts: FxMap<Box<[u8]>, Span>,
    /// `host:*` values, by host.
    hosts_any_port: FxMap<Box<[u8]>, Span>,
    methods: FxMap<Box<str>, Span>,
    paths: PathTrie,
    has_paths: bool,
}

impl Group {
    /// Indexes `order` (rule ids sorted by name).
    pub(crate) fn build(order: Vec<u32>, rules: &[Rule]) -> Group {
        let mut scan = Vec::new();
        let mut by_key: FxMap<Key, Vec<u32>> = FxMap::default();
        for (rank, id) in order.iter().enumerate() {
            let rank = rank as u32;
            match rules.get(*id as usize).and_then(|r| keys(&r.matcher)) {
                Some((_, ks)) => {
                    for k in ks {
                        by_key.entry(k).or_default().push(rank);
                    }
                }
                None => scan.push(rank),
            }
        }
        let mut g = Group {
            order: order.into(),
            ..Group::default()
        };
        g.scan = push_list(&mut g.postings, scan);
        let mut trie = TrieBuilder::new();
        let mut tails = TrieBuilder::new();
        for (k, ranks) in by_key {
            match k {
                Key::Principal(p) => {
                    let s = push_list(&mut g.postings, ranks);
                    g.principals.insert(p, s);
                }
                Key::PrincipalTail(t) => {
                    let reversed: Vec<u8> = t.bytes().rev().collect();
                    let n = tails.node(&reversed);
                    if let Some(v) = tails.prefix.get_mut(n) {
                        v.extend(ranks);
                    }
                    g.has_principal_tails = true;
                }
                Key::Host(h) => {
                    let s = push_list(&mut g.postings, ranks);
                    g.hosts.insert(h, s);
                }
                Key::HostAnyPort(h) => {
                    let s = push_list(&mut g.postings, ranks);
                    g.hosts_any_port.insert(h, s);
                }
                Key::Method(m) => {
                    let s = push_list(&mut g.postings, ranks);
                    g.methods.insert(m, s);
                }
                Key::PathExact(p) => {
                    let n = trie.node(p.as_bytes());
                    if let Some(v) = trie.exact.get_mut(n) {
                        v.extend(ranks);
                    }
                    g.has_paths = true;
                }
                Key::PathPrefix(p) => {
                    let n = trie.node(p.as_bytes());
                    if let Some(v) = trie.prefix.get_mut(n) {
                        v.extend(ranks);
                    }
                    g.has_paths = true;
                }
            }
        }
        if g.has_paths {
            g.paths = trie.freeze(&mut g.postings);
        }
        if g.has_principal_tails {
            g.principal_tails = tails.freeze(&mut g.postings);
        }
        g
    }

    /// True when the group has no rule.
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn span(&self, s: Span) -> &[u32] {
        self.postings.get(s.0 as usize..s.1 as usize).unwrap_or(&[])
    }

    /// The first rule (by name) of this group that matches, trying only candidates; see
    /// [`Self::first_by_scan`] for the answer.
    pub(crate) fn first<R: RequestView + ?Sized>(
        &self,
        rules: &[Rule],
        cx: &Ctx<'_, R>,
        lookup: Lookup,
    ) -> Result<Option<u32>, Refusal> {
        // An unreadable certificate makes principal rules unknown, not absent: the
        // principal index (which skips them) would hide that.
        // Likewise a missing `:authority` or `:method` (Envoy always sends both; a host
        // that does not must not make host- or method-keyed DENY rules vanish).
        if self.order.len() < lookup.scan_below
            || ((!self.principals.is_empty() || self.has_principal_tails)
                && cx.peer_unreadable().is_some())
            || ((!self.hosts.is_empty() || !self.hosts_any_port.is_empty()) && cx.host().is_none())
            || (!self.methods.is_empty() && cx.method().is_none())
        {
            return self.first_by_scan(rules, cx);
        }
        let mut best = u32::MAX;
        let mut unknown = None;
        let mut try_span = |s: Span| {
            for &rank in self.span(s) {
                if rank >= best {
                    break;
                }
                let truth = self
                    .order
                    .get(rank as usize)
                    .and_then(|&id| rules.get(id as usize))
                    .map_or(Truth::False, |r| r.matcher.truth(cx));
                match truth {
                    Truth::True => {
                        best = rank;
                        break;
                    }
                    Truth::False => {}
                    Truth::Unknown(why) => {
                        // The first unknown rule by name, as the scan reports it.
                        if unknown.is_none_or(|(r, _)| rank < r) {
                            unknown = Some((rank, why));
                        }
                    }
                }
            }
        };
        try_span(self.scan);
        if !self.principals.is_empty() {
            cx.peer().any_principal(&mut |p| {
                if let Some(&s) = self.principals.get(p) {
                    try_span(s);
                }
                false
            });
        }
        if self.has_principal_tails {
            let mut reversed = Vec::new();
            cx.peer().any_principal(&mut |p| {
                // `.*` matches no newline: such a principal matches no tail.
                if let Some(rest) = p.strip_prefix("spiffe://").filter(|r| !r.contains('\n')) {
                    reversed.clear();
                    reversed.extend(rest.bytes().rev());
                    self.principal_tails.walk(&reversed, &mut try_span);
                }
                false
            });
        }
        if self.has_paths && !cx.path.is_empty() {
            self.paths.walk(cx.path.as_bytes(), &mut try_span);
        }
        if !self.hosts.is_empty() || !self.hosts_any_port.is_empty() {
            if let Some(h) = cx.host().filter(|h| h.len() <= HOST_MAX) {
                let mut buf = [0u8; HOST_MAX];
                if let Some(dst) = buf.get_mut(..h.len()) {
                    dst.copy_from_slice(h.as_bytes());
                    dst.make_ascii_lowercase();
                    if let Some(&s) = self.hosts.get(&*dst) {
                        try_span(s);
                    }
                    let before_colon = dst
                        .iter()
                        .position(|&b| b == b':')
                        .and_then(|i| dst.get(..i));
                    if let Some(&s) = before_colon.and_then(|n| self.hosts_any_port.get(n)) {
                        try_span(s);
                    }
                }
            }
        }
        if !self.methods.is_empty() {
            if let Some(&s) = cx.method().and_then(|m| self.methods.get(m)) {
                try_span(s);
            }
        }
        match (
            self.order.get(best as usize).copied(),
            unknown.map(|(_, why)| why),
        ) {
            (None, Some(why)) => Err(why),
            (hit, _) => Ok(hit),
        }
    }

    /// The reference evaluation (and the one for tiny groups): every rule in name order.
    /// `Ok(Some)`: the first rule that matches; `Ok(None)`: none can match; `Err`: none
    /// matches for sure but some depend on a fact that cannot be read.
    fn first_by_scan<R: RequestView + ?Sized>(
        &self,
        rules: &[Rule],
        cx: &Ctx<'_, R>,
    ) -> Result<Option<u32>, Refusal> {
        let mut unknown = None;
        for &i in &self.order {
            match rules
                .get(i as usize)
                .map_or(Truth::False, |r| r.matcher.truth(cx))
            {
                Truth::True => return Ok(Some(i)),
                Truth::False => {}
                Truth::Unknown(why) => {
                    unknown.get_or_insert(why);
                }
            }
        }
        unknown.map_or(Ok(None), Err)
    }

    /// How many rules are scanned for every request (for tests and diagnostics).
    #[cfg(test)]
    pub(crate) fn scanned(&self) -> usize {
        self.span(self.scan).len()
    }
}
