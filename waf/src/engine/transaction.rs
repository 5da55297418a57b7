//! One request's evaluation: the variables as phases fill them, the TX collection, the
//! per-rule loop (targets, transformations, operator, actions) and the decision.
//!
//! Follows ModSecurity v3's `Transaction::process*` (`src/transaction.cc`),
//! `RulesSet::evaluate` (`src/rules_set.cc`) and `RuleWithOperator::evaluate`.

use super::compile::{
    has_group, After, CRule, CtlC, Disruptive, Link, Literals, Op, Plan, Prefilter, SetOp, Step,
};
use super::fold::{Class, Folded, FoldedMatch, Folding};
use super::macros::{MacroString, Part};
use super::variables::{
    stable_in_phase, Data, FnvMap, Selector, Slot, Target, Val, Values, SLOT_SOURCES,
};
use super::{DisruptiveAction, Intervention, MatchedRule, Request};
use crate::ast::{AllowScope, BodyLimitAction, EngineMode, IdRange, OperatorName};
use crate::body;
use crate::operator::{Captures, CompiledOperator};
use crate::transform::{self, ByteSet};
use std::borrow::Cow;
use std::sync::Arc;

/// Most arguments (query + body) a transaction keeps; beyond it ModSecurity-style parsing
/// stops adding (bounded memory on hostile input).
pub const MAX_ARGS: usize = 4096;
/// Deepest JSON/XML nesting parsed.
pub const MAX_BODY_DEPTH: usize = 512;

/// A run-time operator of one rule link: the expanded argument it was compiled from.
type RuntimeSlot = (String, Option<Arc<CompiledOperator>>);
/// A value's evaluation for one transformation chain, cached within a phase: CRS runs the
/// same chains over the same arguments in hundreds of rules.
#[derive(Debug, Default)]
struct Evaluated {
    /// For values without a slot (keyed by a hash of their bytes): the input, compared in
    /// full on a hit.
    input: Option<Box<[u8]>>,
    /// The transformed value; `None` when the chain changed nothing (the original is used).
    out: Option<Arc<[u8]>>,
    /// The literal scan of the transformed value, once scanned (an entry of [`Scans`]).
    scan: Option<u32>,
}

/// Where a (chain, value) evaluation is cached.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// An index into [`EvalCache::table`].
    Table(usize),
    /// A key of [`EvalCache::by_hash`].
    Hash((usize, u64)),
}

/// What [`EvalCache::lookup`] found.
enum Lookup {
    Hit(Place, Option<Arc<[u8]>>, Option<u32>),
    Miss(Place),
    /// A hash collision: evaluate without caching.
    Uncacheable,
}

/// [`EvalCache::table`]: nothing cached.
const EMPTY: u32 = u32::MAX;
/// [`EvalCache::table`]: the chain leaves the value alike, not scanned yet.
const SAME: u32 = u32::MAX - 1;
/// [`EvalCache::table`]: with this bit, the chain leaves the value alike and the rest is its
/// scan; without, an index into [`EvalCache::changed`].
const SAME_SCANNED: u32 = 1 << 31;

/// The phase's (chain, value) evaluations. Values with a slot (arguments, headers, ...: nearly
/// all) are indexed directly, `(slot's rank, chain)` into a table of `u32`s — no hashing, and
/// a value a chain leaves alike (most: a JSON body's arguments under most chains) costs four
/// bytes; the 4 KiB JSON POST's cache fell from ~1 MiB of hash table to ~80 KiB. The others
/// (TX, counts) are hashed by their bytes.
#[derive(Debug, Default)]
struct EvalCache {
    chains: usize,
    /// Per slot source: the rank of its first slot, and how many it has in the table.
    bases: [(usize, usize); SLOT_SOURCES],
    table: Vec<u32>,
    /// Values a chain changed: the output and its scan (`u32::MAX`: not scanned).
    changed: Vec<(Arc<[u8]>, u32)>,
    by_hash: FnvMap<(usize, u64), Evaluated>,
    /// Per slot (by rank): the bytes its value holds and the scan of the value itself.
    slots: Vec<SlotInfo>,
}

/// What the phase knows of a slot's value, whatever the chain.
#[derive(Debug, Clone, Copy, Default)]
struct SlotInfo {
    /// The bytes the value holds, once needed.
    bytes: Option<ByteSet>,
    /// The scan of the untransformed value (an entry of [`Scans`]), once scanned: every chain
    /// that leaves the value alike shares it, without hashing the value again.
    scan: Option<u32>,
}

/// Most table entries (4 bytes each) per phase; slots past it are hashed.
const EVAL_TABLE_MAX: usize = 1 << 19;

impl EvalCache {
    /// Empties the cache (capacity kept).
    fn clear(&mut self) {
        self.chains = 0;
        self.bases = [(0, 0); SLOT_SOURCES];
        self.table.clear();
        self.changed.clear();
        self.by_hash.clear();
        self.slots.clear();
    }

    /// Empties the cache and sizes the table for `data`'s slots now.
    fn reset(&mut self, data: &Data, chains: usize) {
        self.chains = chains.max(1);
        self.changed.clear();
        self.by_hash.clear();
        let mut rank = 0usize;
        for (b, n) in self.bases.iter_mut().zip(data.slot_counts()) {
            let room = (EVAL_TABLE_MAX / self.chains).saturating_sub(rank);
            let n = n.min(room);
            *b = (rank, n);
            rank += n;
        }
        self.table.clear();
        self.table.resize(rank * self.chains, EMPTY);
        self.slots.clear();
        self.slots.resize(rank, SlotInfo::default());
    }

    /// The slot's rank in the table, when it has one.
    fn rank(&self, slot: Slot) -> Option<usize> {
        let (base, n) = *self.bases.get(usize::try_from(slot >> 32).ok()?)?;
        let i = usize::try_from(slot & 0xffff_ffff).ok()?;
        (i < n).then_some(base + i)
    }

    fn position(&self, chain: usize, slot: Slot) -> Option<usize> {
        let rank = self.rank(slot)?;
        (chain < self.chains).then(|| rank * self.chains + chain)
    }

    /// The bytes `value` holds, kept per slot for the phase.
    fn bytes(&mut self, slot: Option<Slot>, value: &[u8]) -> ByteSet {
        match slot
            .and_then(|s| self.rank(s))
            .and_then(|r| self.slots.get_mut(r))
        {
            Some(info) => *info.bytes.get_or_insert_with(|| transform::byte_set(value)),
            None => transform::byte_set(value),
        }
    }

    /// Whether a chain with these `triggers` surely leaves the slot's `value` alike (computing
    /// and keeping the bytes the value holds). `false` for values without a rank.
    fn leaves_alike(&mut self, slot: Option<Slot>, value: &[u8], triggers: &ByteSet) -> bool {
        let Some(info) = slot
            .and_then(|s| self.rank(s))
            .and_then(|r| self.slots.get_mut(r))
        else {
            return false;
        };
        let bytes = info.bytes.get_or_insert_with(|| transform::byte_set(value));
        !transform::intersects(bytes, triggers)
    }

    /// The scan of the value itself when a chain with these `scan_triggers` (its triggers
    /// without its case changes) can change at most the value's case: the literal scan ignores
    /// ASCII case, so the transformed value scans the same. `None` otherwise.
    #[allow(clippy::too_many_arguments)]
    fn case_only_scan(
        &mut self,
        scans: &mut Scans,
        literals: &Literals,
        slot: Option<Slot>,
        value: &[u8],
        scan_triggers: &ByteSet,
        budget: &mut usize,
    ) -> Option<ScanRef> {
        self.leaves_alike(slot, value, scan_triggers)
            .then(|| self.scan(scans, literals, slot, value, None, budget))
    }

    /// The literal scan of `tv`: `out` when a chain changed the value, else the value itself
    /// (whose scan is kept per slot).
    fn scan(
        &mut self,
        scans: &mut Scans,
        literals: &Literals,
        slot: Option<Slot>,
        value: &[u8],
        out: Option<&[u8]>,
        budget: &mut usize,
    ) -> ScanRef {
        if let Some(out) = out {
            return scans.scan(literals, out, budget);
        }
        let rank = slot.and_then(|s| self.rank(s));
        if let Some(i) = rank.and_then(|r| self.slots.get(r)).and_then(|x| x.scan) {
            return ScanRef::Cached(i);
        }
        let r = scans.scan(literals, value, budget);
        if let (ScanRef::Cached(i), Some(info)) = (r, rank.and_then(|r| self.slots.get_mut(r))) {
            info.scan = Some(i);
        }
        r
    }

    fn lookup(&self, chain: usize, slot: Option<Slot>, value: &[u8]) -> Lookup {
        if let Some(pos) = slot.and_then(|s| self.position(chain, s)) {
            let place = Place::Table(pos);
            return match self.table.get(pos).copied().unwrap_or(EMPTY) {
                EMPTY => Lookup::Miss(place),
                SAME => Lookup::Hit(place, None, None),
                x if x & SAME_SCANNED != 0 => Lookup::Hit(place, None, Some(x & !SAME_SCANNED)),
                i => match self.changed.get(i as usize) {
                    Some((out, scan)) => Lookup::Hit(
                        place,
                        Some(Arc::clone(out)),
                        (*scan != u32::MAX).then_some(*scan),
                    ),
                    None => Lookup::Uncacheable,
                },
            };
        }
        let key = (
            chain,
            match slot {
                Some(s) => s | SLOT_KEY,
                None => value_hash(value) & !SLOT_KEY,
            },
        );
        match self.by_hash.get(&key) {
            Some(e) if slot.is_some() || e.input.as_deref() == Some(value) => {
                Lookup::Hit(Place::Hash(key), e.out.clone(), e.scan)
            }
            Some(_) => Lookup::Uncacheable,
            None => Lookup::Miss(Place::Hash(key)),
        }
    }

    /// Records the scan of an entry found by [`EvalCache::lookup`].
    fn set_scan(&mut self, place: Place, scan: u32) {
        match place {
            Place::Table(pos) => {
                let Some(x) = self.table.get_mut(pos) else {
                    return;
                };
                if *x == SAME {
                    if scan < SAME_SCANNED - 2 {
                        *x = SAME_SCANNED | scan;
                    }
                } else if *x & SAME_SCANNED == 0 {
                    if let Some(e) = self.changed.get_mut(*x as usize) {
                        e.1 = scan;
                    }
                }
            }
            Place::Hash(key) => {
                if let Some(e) = self.by_hash.get_mut(&key) {
                    e.scan = Some(scan);
                }
            }
        }
    }

    /// Caches an evaluation at `place` (a [`Lookup::Miss`]) when `budget` allows.
    fn insert(
        &mut self,
        place: Place,
        value: &[u8],
        out: Option<Arc<[u8]>>,
        scan: Option<u32>,
        budget: &mut usize,
    ) {
        match place {
            Place::Table(pos) => {
                let code = match out {
                    None => match scan {
                        Some(k) if k < SAME_SCANNED - 2 => SAME_SCANNED | k,
                        _ => SAME,
                    },
                    Some(out) => {
                        let cost = out.len() + 32;
                        let Ok(i) = u32::try_from(self.changed.len()) else {
                            return;
                        };
                        if *budget + cost > TRANSFORM_CACHE_BYTES || i >= SAME_SCANNED {
                            return;
                        }
                        *budget += cost;
                        self.changed.push((out, scan.unwrap_or(u32::MAX)));
                        i
                    }
                };
                if let Some(x) = self.table.get_mut(pos) {
                    *x = code;
                }
            }
            Place::Hash(key) => {
                let input = (key.1 & SLOT_KEY == 0).then(|| Box::<[u8]>::from(value));
                let cost = input.as_ref().map_or(0, |i| i.len())
                    + out.as_ref().map_or(0, |o| o.len())
                    + 64;
                if *budget + cost <= TRANSFORM_CACHE_BYTES {
                    *budget += cost;
                    self.by_hash.insert(key, Evaluated { input, out, scan });
                }
            }
        }
    }
}

/// The plan's literal scans of transformed values, cached by their bytes within a transaction: a
/// value most chains leave alike is scanned once for all of them. The literal scan ignores ASCII
/// case, so values differing only in it share a scan (a chain ending in `t:lowercase` and
/// one without find the same entry).
#[derive(Debug, Default)]
struct Scans {
    /// Hash of the scanned bytes → entry.
    index: FnvMap<u64, u32>,
    /// Each entry's scanned bytes, compared in full on a hit.
    inputs: Vec<Box<[u8]>>,
    /// Entry `i`'s bitset: `bits[i * words..(i + 1) * words]`.
    bits: Vec<u64>,
    /// The bitset of a value not cached (over the budget, or a hash collision).
    scratch: Vec<u64>,
    /// What the entries cost (counted in the transaction's cache budget).
    bytes: usize,
}

/// Where [`Scans::scan`] left a bitset.
#[derive(Debug, Clone, Copy)]
enum ScanRef {
    Cached(u32),
    Scratch,
}

impl Scans {
    fn clear(&mut self) {
        self.index.clear();
        self.inputs.clear();
        self.bits.clear();
        self.bytes = 0;
    }

    /// Scans `tv` (or finds its cached scan), counting what a new entry keeps in `budget`.
    fn scan(&mut self, literals: &Literals, tv: &[u8], budget: &mut usize) -> ScanRef {
        let words = literals.words();
        let h = folded_hash(tv);
        let cached = self.index.get(&h).copied();
        if let Some(i) = cached {
            if self
                .inputs
                .get(i as usize)
                .is_some_and(|b| b.eq_ignore_ascii_case(tv))
            {
                return ScanRef::Cached(i);
            }
        }
        let cost = tv.len() + words * 8 + 48;
        let fits = *budget + cost <= TRANSFORM_CACHE_BYTES;
        let Ok(i) = u32::try_from(self.inputs.len()) else {
            return self.scan_uncached(literals, tv);
        };
        if cached.is_some() || !fits {
            return self.scan_uncached(literals, tv);
        }
        *budget += cost;
        self.bytes += cost;
        let start = self.bits.len();
        self.bits.resize(start + words, 0);
        if let Some(bits) = self.bits.get_mut(start..) {
            literals.scan(tv, bits);
        }
        self.inputs.push(tv.into());
        self.index.insert(h, i);
        ScanRef::Cached(i)
    }

    fn scan_uncached(&mut self, literals: &Literals, tv: &[u8]) -> ScanRef {
        self.scratch.clear();
        self.scratch.resize(literals.words(), 0);
        literals.scan(tv, &mut self.scratch);
        ScanRef::Scratch
    }

    fn bits(&self, r: ScanRef, words: usize) -> &[u64] {
        match r {
            ScanRef::Cached(i) => {
                let start = i as usize * words;
                self.bits.get(start..start + words).unwrap_or_default()
            }
            ScanRef::Scratch => &self.scratch,
        }
    }
}

/// `acc |= bits` (both of the plan's bitset width).
fn or_groups(acc: &mut [u64], bits: &[u64]) {
    for (a, b) in acc.iter_mut().zip(bits) {
        *a |= b;
    }
}

/// Every byte: the triggers of a chain not known to the plan (never skipped).
const ALL_BYTES: ByteSet = [u64::MAX; 4];

/// The evaluation cache key's flag for slot keys (hash keys have the top bit clear).
const SLOT_KEY: u64 = 1 << 63;

/// Most bytes of transformation results cached per transaction.
const TRANSFORM_CACHE_BYTES: usize = 4 << 20;

/// A word-at-a-time hash for the transformation cache (keys are compared in full on a hit,
/// so only speed matters: it runs once per value per rule, over headers of 100+ bytes).
fn value_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29);
    }
    let mut a = [0u8; 8];
    let rest = words.remainder();
    a[..rest.len()].copy_from_slice(rest);
    (h ^ u64::from_le_bytes(a)).wrapping_mul(K).rotate_left(29)
}

/// [`value_hash`] of `bytes` with ASCII letters folded to lower case (other bytes may fold
/// together too: it is a hash, and entries are compared in full, ignoring ASCII case).
fn folded_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut h: u64 = (bytes.len() as u64).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        h = (h ^ (u64::from_le_bytes(a) | FOLD))
            .wrapping_mul(K)
            .rotate_left(29);
    }
    let mut a = [0u8; 8];
    let rest = words.remainder();
    a[..rest.len()].copy_from_slice(rest);
    (h ^ (u64::from_le_bytes(a) | FOLD))
        .wrapping_mul(K)
        .rotate_left(29)
}

/// How the request body will be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Unknown,
    Urlencoded,
    Multipart,
    Json,
    Xml,
}

/// The evaluation of one request against a [`super::Ruleset`].
#[derive(Debug)]
pub struct Transaction {
    plan: Arc<Plan>,
    data: Data,
    engine: EngineMode,
    body_access: bool,
    body_kind: BodyKind,
    content_type: Vec<u8>,
    body_limit_hit: bool,
    removed_ids: Vec<IdRange>,
    removed_tags: Vec<String>,
    removed_targets_by_id: Vec<(IdRange, Target)>,
    removed_targets_by_tag: Vec<(String, Target)>,
    skip_marker: Option<usize>,
    skip_next: u32,
    allow: Option<AllowScope>,
    intervention: Option<Intervention>,
    detected: Option<Intervention>,
    /// The matched rules are the first `matched_len`; the entries after them are kept from
    /// earlier transactions for their buffers.
    matched: Vec<MatchedRule>,
    matched_len: usize,
    /// Operators whose argument had macros: (rule, link) → (expanded argument, operator).
    runtime_ops: FnvMap<(usize, usize), RuntimeSlot>,
    /// Transformed values by (chain id, value). Reset at each phase (a slot's value may
    /// change between phases).
    evaluated: EvalCache,
    /// Literal scans of transformed values by their bytes, for the whole transaction.
    scans: Scans,
    /// (chain id, collection code) → the union of the literal groups of every member of a
    /// collection stable in the phase, after that chain: a link whose group is in no union of
    /// its targets cannot match and is skipped without reading its values. Cleared at each
    /// phase.
    collection_groups: Vec<u32>,
    /// The unions of `collection_groups`, each of the plan's bitset width, from the offset
    /// the map gives (one buffer, no allocation per union).
    union_bits: Vec<u64>,
    transformed_bytes: usize,
    /// Run-time operator arguments that did not compile (they never match).
    runtime_errors: Vec<String>,
    phases_done: [bool; 5],
    response_body_wanted: bool,
    /// Reusable value buffers, one per chain depth in use (no allocation per rule).
    values_pool: Vec<Values>,
    /// Where the buffers go back when the transaction ends.
    recycle: Arc<ScratchPool>,
}

/// A transaction's buffers (TX, matched rules, the per-phase caches), kept by the ruleset
/// between transactions: allocating and freeing them per request (the TX map and the matched
/// list are sized for CRS up front) cost ~4% of a benign GET in callgrind, and a proxy runs
/// one transaction after another. Everything is emptied before reuse; the per-phase caches
/// are reset at each phase anyway.
#[derive(Debug, Default)]
struct Scratch {
    tx: Vec<(Vec<u8>, Vec<u8>)>,
    tx_index: FnvMap<Vec<u8>, usize>,
    tx_slots: Vec<u32>,
    /// TX entries of earlier transactions, their buffers kept for the next one's variables
    /// (CRS sets ~60 per request: a key and a value allocation each).
    tx_spare: Vec<(Vec<u8>, Vec<u8>)>,
    matched: Vec<MatchedRule>,
    runtime_ops: FnvMap<(usize, usize), RuntimeSlot>,
    evaluated: EvalCache,
    scans: Scans,
    collection_groups: Vec<u32>,
    union_bits: Vec<u64>,
    matched_vars: Vec<(Vec<u8>, Vec<u8>)>,
    values_pool: Vec<Values>,
}

/// Most bytes of value snapshot buffers kept (all of them together): a request body at the
/// default limit (128 KiB) with its arguments, in two chain links. Like the evaluation table
/// (kept up to [`EVAL_TABLE_MAX`] entries), these are the large buffers a big request needs
/// every time: freed and allocated again per request, they let a VM's heap fragment and grow
/// (the 128 KiB form body of `harness/tests/resource_bounds.rs` grew the VM by 576 KiB on its
/// third request); kept, the heap is stable from the second request on.
const VALUES_RETAINED: usize = 512 << 10;

/// Most matched-rule entries (and MATCHED_VARS pairs) a transaction may leave for the next
/// one: past it, none is kept.
const MATCHED_KEPT: usize = 256;

/// Largest TX key or value buffer kept for the next transaction (bytes).
const TX_SPARE_BYTES: usize = 256;

/// Most [`Scratch`]es a ruleset keeps (one per transaction alive at once; more are dropped).
const SCRATCH_KEPT: usize = 4;

/// Largest buffers kept for reuse (entries): a transaction that grew past them (a hostile
/// request with tens of thousands of TX keys or cached values) frees its buffers instead of
/// pinning them. The evaluation table and the value snapshots have their own bounds
/// ([`EVAL_TABLE_MAX`], [`VALUES_RETAINED`]).
const SCRATCH_RETAINED: usize = 1 << 14;

impl Scratch {
    fn fresh() -> Scratch {
        let mut s = Scratch::default();
        // CRS sets ~60 TX variables and a benign request matches ~80 rules (setup and
        // paranoia-level skips); CRS reads ~40 (chain, collection) unions per phase.
        s.tx.reserve(64);
        s.tx_index.reserve(64);
        s.matched.reserve(96);
        s.collection_groups.reserve(1024);
        s
    }

    fn small(&self) -> bool {
        self.tx.capacity() <= SCRATCH_RETAINED
            && self.tx_index.capacity() <= SCRATCH_RETAINED
            && self.tx_spare.len() <= SCRATCH_RETAINED
            && self.matched.capacity() <= SCRATCH_RETAINED
            && self.runtime_ops.capacity() <= SCRATCH_RETAINED
            && self.evaluated.table.capacity() <= EVAL_TABLE_MAX
            && self.evaluated.changed.capacity() <= SCRATCH_RETAINED
            && self.evaluated.by_hash.capacity() <= SCRATCH_RETAINED
            && self.scans.index.capacity() <= SCRATCH_RETAINED
            && self.scans.inputs.capacity() <= SCRATCH_RETAINED
            && self.scans.bits.capacity() <= SCRATCH_RETAINED * 8
            && self.collection_groups.capacity() <= SCRATCH_RETAINED
            && self.union_bits.capacity() <= SCRATCH_RETAINED * 8
            && self.matched_vars.len() <= SCRATCH_RETAINED
            && self.values_pool.len() <= 64
            && self.values_pool.iter().map(Values::capacity).sum::<usize>() <= VALUES_RETAINED
    }

    fn clear(&mut self) {
        // Small buffers go back to the spare list; a large one (a hostile request's) is freed.
        let spare = &mut self.tx_spare;
        spare.extend(
            self.tx
                .drain(..)
                .filter(|(k, v)| k.capacity() <= TX_SPARE_BYTES && v.capacity() <= TX_SPARE_BYTES),
        );
        self.tx_index.clear();
        self.tx_slots.clear();
        // `matched` keeps its entries: their strings' buffers serve the next transaction —
        // small ones only, and only after a request of usual size: buffers kept from a
        // hostile request (a matched 128 KiB body, thousands of MATCHED_VARS) would sit in
        // the VM's heap between the next requests' allocations and fragment it.
        let small = |s: &String| s.capacity() <= TX_SPARE_BYTES;
        if self.matched.len() > MATCHED_KEPT {
            self.matched = Vec::new();
        }
        for m in &mut self.matched {
            let keep = m.var_name.capacity() <= TX_SPARE_BYTES
                && m.var_value.capacity() <= TX_SPARE_BYTES
                && m.msg.as_ref().is_none_or(small)
                && m.logdata.as_ref().is_none_or(small);
            if !keep {
                *m = MatchedRule::default();
            }
        }
        // Run-time operators stay for the next transaction of the same plan (each use
        // compares its expanded argument first): CRS's `@within %{tx.allowed_methods}` and
        // friends are compiled once, not looked up per request. Arguments up to 4 KiB (one
        // entry per rule link with a macro operand at most).
        // One that did not compile is dropped: the next transaction reports its error too.
        self.runtime_ops
            .retain(|_, (arg, op)| op.is_some() && arg.len() <= 4096);
        self.evaluated.clear();
        self.scans.clear();
        self.scans.scratch.clear();
        self.collection_groups.clear();
        self.union_bits.clear();
        // MATCHED_VARS' pairs keep their buffers (the transaction counts how many are set),
        // on the same terms.
        if self.matched_vars.len() > MATCHED_KEPT {
            self.matched_vars = Vec::new();
        }
        self.matched_vars
            .retain(|(n, v)| n.capacity() <= TX_SPARE_BYTES && v.capacity() <= TX_SPARE_BYTES);
        for v in &mut self.values_pool {
            v.clear();
        }
    }
}

/// The [`Scratch`]es a ruleset keeps between transactions.
#[derive(Debug, Default)]
pub(crate) struct ScratchPool(std::sync::Mutex<Vec<Scratch>>);

impl ScratchPool {
    fn take(&self) -> Scratch {
        self.0
            .lock()
            .ok()
            .and_then(|mut kept| kept.pop())
            .unwrap_or_else(Scratch::fresh)
    }

    fn put(&self, mut scratch: Scratch) {
        if !scratch.small() {
            return;
        }
        scratch.clear();
        if let Ok(mut kept) = self.0.lock() {
            if kept.len() < SCRATCH_KEPT {
                kept.push(scratch);
            }
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let scratch = Scratch {
            tx: std::mem::take(&mut self.data.tx),
            tx_index: std::mem::take(&mut self.data.tx_index),
            tx_slots: std::mem::take(&mut self.data.tx_slots),
            tx_spare: std::mem::take(&mut self.data.tx_spare),
            matched: std::mem::take(&mut self.matched),
            runtime_ops: std::mem::take(&mut self.runtime_ops),
            evaluated: std::mem::take(&mut self.evaluated),
            scans: std::mem::take(&mut self.scans),
            collection_groups: std::mem::take(&mut self.collection_groups),
            union_bits: std::mem::take(&mut self.union_bits),
            matched_vars: std::mem::take(&mut self.data.matched_vars),
            values_pool: std::mem::take(&mut self.values_pool),
        };
        self.recycle.put(scratch);
    }
}

/// ModSecurity's `utils::uri_decode`: `%XX` with two hex digits decoded, nothing else (`+`
/// stays).
fn uri_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        // `i + 2 < len`: ModSecurity does not decode an escape ending the input.
        if input[i] == b'%' && i + 2 < input.len() {
            if let Some(b) = crate::hex::percent_escape(input, i) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn find(hay: &[u8], b: u8) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

/// `stoi` as ModSecurity's setvar uses it: leading whitespace, sign, digits; anything else 0.
fn atoi(v: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(v);
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().unwrap_or(0);
    if neg {
        -n
    } else {
        n
    }
}

impl Transaction {
    pub(crate) fn new(plan: Arc<Plan>, recycle: Arc<ScratchPool>, request: Request) -> Transaction {
        let scratch = recycle.take();
        let mut tx_slots = scratch.tx_slots;
        tx_slots.resize(plan.tx_keys.len(), 0);
        let mut data = Data {
            tx: scratch.tx,
            tx_index: scratch.tx_index,
            tx_keys: Arc::clone(&plan.tx_keys),
            rule_msgs: Arc::clone(&plan.rule_msgs),
            tx_slots,
            tx_spare: scratch.tx_spare,
            matched_vars: scratch.matched_vars,
            ..Data::default()
        };
        let Request {
            method,
            uri,
            protocol,
            headers,
            remote_addr,
            remote_port,
            server_addr,
            server_port,
            unique_id,
        } = request;
        // Request line and URI variables (`Transaction::processURI`): the URI is cut at the
        // first raw `#` (a fragment) for everything but REQUEST_URI_RAW and REQUEST_LINE.
        let target = match find(&uri, b'#') {
            Some(i) => &uri[..i],
            None => &uri[..],
        };
        let decoded = uri_decode(target);
        let path = match find(&decoded, b'?') {
            Some(i) => decoded[..i].to_vec(),
            None => decoded.clone(),
        };
        if let Some(i) = find(target, b'?') {
            data.query_string = target[i + 1..].to_vec();
        }
        if let Some(i) = path.iter().rposition(|&c| c == b'/' || c == b'\\') {
            if path.len() > i + 1 {
                data.basename = Some(path[i + 1..].to_vec());
            }
        }
        data.uri = absolute_uri_path(&decoded);
        data.filename = path;
        let mut line = method.as_bytes().to_vec();
        line.push(b' ');
        line.extend_from_slice(&uri);
        line.push(b' ');
        line.extend_from_slice(protocol.as_bytes());
        data.request_line = line;
        data.uri_raw = uri;
        data.method = method.into_bytes();
        data.protocol = protocol.into_bytes();
        let separator = plan.config.argument_separator;
        if !data.query_string.is_empty() {
            data.urlencoded_error |=
                body::parse_urlencoded(&data.query_string, separator, MAX_ARGS, &mut data.args_get);
        }
        let mut body_kind = BodyKind::Unknown;
        let mut content_type = Vec::new();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case(b"cookie") {
                body::parse_cookies(v, &mut data.cookies);
            } else if k.eq_ignore_ascii_case(b"content-type") {
                let l = v.to_ascii_lowercase();
                content_type = v.clone();
                if l.starts_with(b"multipart/form-data") {
                    body_kind = BodyKind::Multipart;
                    data.reqbody_processor = Some(b"MULTIPART".to_vec());
                }
                if l.starts_with(b"application/x-www-form-urlencoded") {
                    body_kind = BodyKind::Urlencoded;
                    data.reqbody_processor = Some(b"URLENCODED".to_vec());
                }
            } else if k.eq_ignore_ascii_case(b"host") {
                let host = v.split(|&c| c == b':').next().unwrap_or(&[]);
                data.server_name = Some(host.to_vec());
            } else if k.eq_ignore_ascii_case(b"authorization") {
                let kind = v.split(|&c| c == b' ').next().unwrap_or(&[]);
                data.auth_type = Some(kind.to_vec());
            }
        }
        data.headers = headers;
        data.remote_addr = remote_addr.into_bytes();
        data.remote_port = remote_port.to_string().into_bytes();
        data.server_addr = server_addr.into_bytes();
        data.server_port = server_port.to_string().into_bytes();
        data.unique_id = unique_id.into_bytes();
        Transaction {
            engine: plan.config.engine_mode,
            body_access: plan.config.request_body_access,
            plan,
            data,
            body_kind,
            content_type,
            body_limit_hit: false,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets_by_id: Vec::new(),
            removed_targets_by_tag: Vec::new(),
            skip_marker: None,
            skip_next: 0,
            allow: None,
            intervention: None,
            detected: None,
            matched: scratch.matched,
            matched_len: 0,
            runtime_ops: scratch.runtime_ops,
            evaluated: scratch.evaluated,
            scans: scratch.scans,
            collection_groups: scratch.collection_groups,
            union_bits: scratch.union_bits,
            transformed_bytes: 0,
            runtime_errors: Vec::new(),
            phases_done: [false; 5],
            response_body_wanted: false,
            values_pool: scratch.values_pool,
            recycle,
        }
    }

    /// Phase 1: request headers. Returns the intervention when a rule disrupts.
    pub fn process_request_headers(&mut self) -> Option<Intervention> {
        if !self.phases_done[0] {
            self.phases_done[0] = true;
            self.run_phase(1);
        }
        self.intervention.clone()
    }

    /// Appends request body bytes (call as chunks arrive; up to `SecRequestBodyLimit` is kept).
    pub fn append_request_body(&mut self, chunk: &[u8]) {
        let limit = usize::try_from(self.plan.config.request_body_limit).unwrap_or(usize::MAX);
        let room = limit.saturating_sub(self.data.body.len());
        if chunk.len() > room {
            self.body_limit_hit = true;
        }
        self.data
            .body
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Phase 2: parses the body (processor from Content-Type or `ctl:requestBodyProcessor`)
    /// and runs the request-body rules. Runs phase 1 first if it has not run.
    pub fn process_request_body(&mut self) -> Option<Intervention> {
        self.process_request_headers();
        if self.phases_done[1] {
            return self.intervention.clone();
        }
        self.phases_done[1] = true;
        if self.engine == EngineMode::Off || self.intervention.is_some() {
            return self.intervention.clone();
        }
        if self.body_limit_hit
            && self.plan.config.request_body_limit_action == BodyLimitAction::Reject
        {
            self.data.inbound_data_error = Some(true);
            let iv = Intervention {
                status: 413,
                rule_id: 0,
                msg: Some("Request body is larger than SecRequestBodyLimit".into()),
                action: DisruptiveAction::Deny,
                redirect_url: None,
                phase: 2,
            };
            self.decide(iv);
            if self.intervention.is_some() {
                return self.intervention.clone();
            }
        }
        if self.data.inbound_data_error.is_none() {
            self.data.inbound_data_error = Some(self.body_limit_hit);
        }
        // ModSecurity v3 skips phase 2 altogether without body access.
        if !self.body_access {
            return self.intervention.clone();
        }
        self.parse_body();
        let mut full = Vec::new();
        for (k, v) in &self.data.headers {
            full.extend_from_slice(k);
            full.extend_from_slice(b": ");
            full.extend_from_slice(v);
            full.push(b'\n');
        }
        full.extend_from_slice(b"\n\n");
        full.extend_from_slice(&self.data.body);
        self.data.full_request = Some(full);
        self.data.body_length_visible = !self.data.body.is_empty();
        // REQUEST_BODY under the XML processor is empty, as in ModSecurity v2
        // (`modsecurity_request_body_end` builds the raw buffer only for URLENCODED or without
        // a processor) and Coraza; v3 keeps the raw body there. CRS 3.3's tests expect v2
        // (944100-11 and 29 others: a Java class name as an XML element or attribute *name*
        // must not fire): the document's data is inspected through XML:/* and XML://@*, its
        // markup is not. JSON and multipart keep v3's raw REQUEST_BODY (no CRS test tells).
        self.data.body_visible = self.data.body_length_visible && self.body_kind != BodyKind::Xml;
        self.run_phase(2);
        self.intervention.clone()
    }

    fn parse_body(&mut self) {
        let d = &mut self.data;
        // The body parsers word REQBODY_ERROR_MSG as ModSecurity does ("JSON parsing error:
        // ...").
        let set_error = |d: &mut Data, e: body::BodyError| {
            d.reqbody_error = Some(true);
            d.reqbody_error_msg = Some(e.message.into_bytes());
        };
        match self.body_kind {
            BodyKind::Xml => match body::parse_xml(&d.body, MAX_BODY_DEPTH) {
                Ok(doc) => {
                    d.xml = Some(doc);
                    d.reqbody_error = Some(false);
                }
                Err(e) => set_error(d, e),
            },
            BodyKind::Json => {
                let mut args = Vec::new();
                match body::parse_json(&d.body, MAX_BODY_DEPTH, MAX_ARGS, &mut args) {
                    Err(e) if !d.body.is_empty() => set_error(d, e),
                    _ => d.reqbody_error = Some(false),
                }
                d.args_post = args;
            }
            BodyKind::Multipart => {
                // Flags (and what was parsed) stay visible when the body is refused, as in
                // ModSecurity: MULTIPART_STRICT_ERROR still reads them.
                let outcome = body::parse_multipart_outcome(&self.content_type, &d.body, MAX_ARGS);
                d.args_post = outcome.multipart.args.clone();
                d.multipart = Some(outcome.multipart);
                match outcome.error {
                    Some(e) => set_error(d, e),
                    None => d.reqbody_error = Some(false),
                }
            }
            BodyKind::Urlencoded => {
                let sep = self.plan.config.argument_separator;
                let room = MAX_ARGS.saturating_sub(d.args_get.len());
                let mut args = Vec::new();
                d.urlencoded_error |= body::parse_urlencoded(&d.body, sep, room, &mut args);
                d.args_post = args;
                d.reqbody_error = Some(false);
            }
            BodyKind::Unknown => d.reqbody_error = Some(false),
        }
    }

    /// Phase 3: response headers.
    pub fn process_response_headers(
        &mut self,
        status: u16,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Option<Intervention> {
        self.process_request_body();
        if self.phases_done[2] {
            return self.intervention.clone();
        }
        self.phases_done[2] = true;
        let ct = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
            .map(|(_, v)| v.clone());
        self.data.response_status = Some(status.to_string().into_bytes());
        self.data.response_protocol = Some(self.data.protocol.clone());
        self.data.response_headers = headers;
        // Response bodies are inspected only for the configured MIME types.
        self.response_body_wanted = self.plan.config.response_body_access
            && ct.is_some_and(|ct| {
                let ct = String::from_utf8_lossy(&ct).to_ascii_lowercase();
                let mime = ct.split(';').next().unwrap_or("").trim().to_string();
                self.plan
                    .config
                    .response_mime_types
                    .iter()
                    .any(|m| m.eq_ignore_ascii_case(&mime))
            });
        self.run_phase(3);
        self.intervention.clone()
    }

    /// Appends response body bytes (kept only when phase 4 will inspect them, up to
    /// `SecResponseBodyLimit`).
    pub fn append_response_body(&mut self, chunk: &[u8]) {
        if !self.response_body_wanted {
            return;
        }
        let limit = usize::try_from(self.plan.config.response_body_limit).unwrap_or(usize::MAX);
        let body = self.data.response_body.get_or_insert_with(Vec::new);
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// Phase 4: response body (runs only with `SecResponseBodyAccess On` and a matching MIME
    /// type, as ModSecurity).
    pub fn process_response_body(&mut self) -> Option<Intervention> {
        if self.phases_done[3] {
            return self.intervention.clone();
        }
        self.phases_done[3] = true;
        if !self.response_body_wanted {
            return self.intervention.clone();
        }
        if self.data.response_body.is_none() {
            self.data.response_body = Some(Vec::new());
        }
        self.run_phase(4);
        self.intervention.clone()
    }

    /// Phase 5: logging (never disrupts).
    pub fn process_logging(&mut self) {
        if self.phases_done[4] {
            return;
        }
        self.phases_done[4] = true;
        self.run_phase(5);
    }

    /// Every rule whose whole chain matched, in order (including `nolog` ones, flagged).
    pub fn matched_rules(&self) -> &[MatchedRule] {
        self.matched.get(..self.matched_len).unwrap_or_default()
    }

    /// The intervention taken (engine `On`), if any.
    pub fn intervention(&self) -> Option<&Intervention> {
        self.intervention.as_ref()
    }

    /// With `DetectionOnly`: the first intervention a rule would have taken.
    pub fn detected_intervention(&self) -> Option<&Intervention> {
        self.detected.as_ref()
    }

    /// The rule engine mode in effect now (`ctl:ruleEngine` may have changed it).
    pub fn engine_mode(&self) -> EngineMode {
        self.engine
    }

    /// `TX:name` (case-insensitive), lossy UTF-8.
    pub fn tx_var(&self, name: &str) -> Option<String> {
        self.data
            .tx_get(name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The inbound anomaly score CRS computed: `TX:blocking_inbound_anomaly_score` (CRS 4),
    /// else `TX:anomaly_score` (CRS 3), else `TX:inbound_anomaly_score`; 0 when none is set.
    pub fn inbound_anomaly_score(&self) -> i64 {
        [
            "blocking_inbound_anomaly_score",
            "anomaly_score",
            "inbound_anomaly_score",
        ]
        .iter()
        .find_map(|k| self.data.tx_get(k.as_bytes()))
        .map(atoi)
        .unwrap_or(0)
    }

    /// Operator arguments expanded at run time that did not compile (such a rule never
    /// matches); empty normally.
    pub fn runtime_errors(&self) -> &[String] {
        &self.runtime_errors
    }

    fn decide(&mut self, iv: Intervention) {
        match self.engine {
            EngineMode::On => {
                if self.intervention.is_none() {
                    self.intervention = Some(iv);
                }
            }
            EngineMode::DetectionOnly => {
                if self.detected.is_none() {
                    self.detected = Some(iv);
                }
            }
            EngineMode::Off => {}
        }
    }

    fn run_phase(&mut self, phase: u8) {
        if self.engine == EngineMode::Off {
            return;
        }
        if phase < 5 && self.intervention.is_some() {
            return;
        }
        match self.allow {
            Some(AllowScope::Transaction) => return,
            Some(AllowScope::Request) if phase <= 2 => return,
            Some(AllowScope::Request) | Some(AllowScope::Phase) => self.allow = None,
            None => {}
        }
        let plan = Arc::clone(&self.plan);
        self.evaluated.reset(&self.data, plan.chain_count);
        // The literal scans are kept from phase to phase: an entry depends on the scanned
        // bytes only (headers and arguments scanned in phase 1 are not scanned again in phase
        // 2), and it keeps counting against the transaction's cache budget.
        self.collection_groups.clear();
        self.collection_groups.resize(plan.union_slots, NO_UNION);
        self.union_bits.clear();
        self.transformed_bytes = self.scans.bytes;
        let Some(steps) = plan.phases.get(usize::from(phase) - 1) else {
            return;
        };
        if phase == 1 {
            // What the folded prologue left in TX (nothing ran before it).
            for (key, id, value) in &plan.folding.tx {
                self.data.tx_set_bytes_id(key, *id, value);
            }
        }
        let markers = plan.marker_steps.get(usize::from(phase) - 1);
        let mut k = 0;
        while let Some(step) = steps.get(k) {
            k += 1;
            match *step {
                Step::Marker(m) => {
                    if self.skip_marker == Some(m) {
                        self.skip_marker = None;
                    }
                }
                Step::Rule(ri) => {
                    if let Some(m) = self.skip_marker {
                        k = marker_step(markers, m, k, steps.len());
                        continue;
                    }
                    if self.skip_next > 0 {
                        self.skip_next -= 1;
                        continue;
                    }
                    if self.allow.is_some() {
                        continue;
                    }
                    let Some(rule) = plan.rules.get(ri) else {
                        continue;
                    };
                    if self.rule_removed(rule) {
                        continue;
                    }
                    if let Some(f) = plan.folding.rule(ri).filter(|_| {
                        self.removed_targets_by_id.is_empty()
                            && self.removed_targets_by_tag.is_empty()
                    }) {
                        self.replay(rule, ri, f);
                        continue;
                    }
                    self.eval_rule(&plan, ri, phase);
                    if phase < 5 && self.intervention.is_some() {
                        break;
                    }
                }
            }
        }
    }

    /// Whether a `ctl:ruleRemoveById`/`ByTag` of this transaction removed `rule`.
    fn rule_removed(&self, rule: &CRule) -> bool {
        self.removed_ids.iter().any(|r| r.contains(rule.id))
            || (!self.removed_tags.is_empty()
                && rule
                    .tags
                    .iter()
                    .any(|t| self.removed_tags.iter().any(|r| r == t)))
    }

    /// RULE:* (and the rule's index for RULE:msg) for macros while `rule` runs.
    fn enter_rule(&mut self, rule: &CRule, ri: usize) {
        self.data.rule = super::variables::RuleContext {
            id: rule.id,
            phase: rule.phase,
            severity: rule.severity,
            index: ri,
        };
    }

    /// HIGHEST_SEVERITY after `rule` matched.
    fn note_severity(&mut self, rule: &CRule) {
        if let Some(s) = rule.severity {
            let h = self.data.highest_severity.get_or_insert(s);
            *h = (*h).min(s);
        }
    }

    fn eval_rule(&mut self, plan: &Plan, ri: usize, phase: u8) {
        let rule = &plan.rules[ri];
        self.enter_rule(rule, ri);
        // Whether a value matched (then MATCHED_VAR holds the last one, as `last` would).
        let mut last = false;
        if !self.eval_link(plan, ri, 0, &mut last) {
            return;
        }
        let msg = rule.msg.as_ref().map(|m| self.expand_string(m));
        let logdata = rule.logdata.as_ref().map(|m| self.expand_string(m));
        self.note_severity(rule);
        let var = if last { self.data.matched_var() } else { None };
        record(
            &mut self.matched,
            &mut self.matched_len,
            rule,
            msg.as_ref(),
            logdata,
            var.unwrap_or_default(),
        );
        self.disrupt(rule, msg, phase);
    }

    /// A folded rule ([`super::fold`]): what [`Transaction::eval_rule`] would do, from the
    /// outcome found when the plan was built.
    fn replay(&mut self, rule: &CRule, ri: usize, folded: &Folded) {
        let m = match folded {
            Folded::NoMatch => {
                self.data.matched_var_set = false;
                self.data.clear_matched_vars();
                return;
            }
            Folded::Match(m) => m,
        };
        self.enter_rule(rule, ri);
        for (name, value) in &m.pushes {
            let (n, v) = &mut self.data.matched_var;
            n.clear();
            n.extend_from_slice(name);
            v.clear();
            v.extend_from_slice(value);
            self.data.matched_var_set = true;
            self.data.push_matched_var();
        }
        self.note_severity(rule);
        let var = m
            .pushes
            .last()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .unwrap_or_default();
        record(
            &mut self.matched,
            &mut self.matched_len,
            rule,
            m.msg.as_ref(),
            m.logdata.clone(),
            var,
        );
        self.skip_next = m.skip_next;
        self.skip_marker = m.skip_marker;
        if m.ctls {
            for link in rule.links.iter().rev() {
                for a in &link.after {
                    if let After::Ctl(c) = a {
                        self.run_ctl(c);
                    }
                }
            }
        }
    }

    fn disrupt(&mut self, rule: &CRule, msg: Option<String>, phase: u8) {
        let action = match rule.disruptive {
            None => return,
            Some(Disruptive::Allow(scope)) => {
                if self.engine == EngineMode::On {
                    self.allow = Some(scope);
                }
                return;
            }
            Some(Disruptive::Deny) => DisruptiveAction::Deny,
            Some(Disruptive::Drop) => DisruptiveAction::Drop,
            Some(Disruptive::Redirect) => DisruptiveAction::Redirect,
        };
        if phase == 5 {
            return;
        }
        let (status, redirect_url) = match action {
            DisruptiveAction::Redirect => (
                rule.status
                    .filter(|s| matches!(s, 301 | 302 | 303 | 307 | 308))
                    .unwrap_or(302),
                rule.redirect.as_ref().map(|m| self.expand_string(m)),
            ),
            _ => (rule.status.unwrap_or(403), None),
        };
        self.decide(Intervention {
            status,
            rule_id: rule.id,
            msg,
            action,
            redirect_url,
            phase,
        });
    }

    fn target_removed(&self, rule: &CRule, v: &Val) -> bool {
        if self.removed_targets_by_id.is_empty() && self.removed_targets_by_tag.is_empty() {
            return false;
        }
        self.removed_targets_by_id
            .iter()
            .any(|(r, t)| r.contains(rule.id) && t.names(v))
            || self
                .removed_targets_by_tag
                .iter()
                .any(|(tag, t)| rule.tags.iter().any(|x| x == tag) && t.names(v))
    }

    /// Evaluates link `li` of rule `ri` and the links after it; runs this link's
    /// after-match actions when the rest of the chain matched.
    fn eval_link(&mut self, plan: &Plan, ri: usize, li: usize, last: &mut bool) -> bool {
        let rule = &plan.rules[ri];
        let Some(link) = rule.links.get(li) else {
            return false;
        };
        let mut matched = false;
        if link.unconditional {
            matched = true;
            self.run_setvars(link);
        } else if let Some(m) = self.eval_single_tx(plan, ri, li, last) {
            matched = m;
        } else if self.cannot_match(plan, link) {
            // As when no value matched.
        } else {
            let mut vals = self.values_pool.pop().unwrap_or_default();
            vals.clear();
            for t in &link.targets {
                self.data.collect(t, &mut vals);
            }
            let mut scratch = Vec::new();
            for i in 0..vals.len() {
                let Some(v) = vals.get(i) else {
                    continue;
                };
                if link.exclusions.iter().any(|e| e.names(&v)) || self.target_removed(rule, &v) {
                    continue;
                }
                if link.multi_match {
                    // The original, then every value a transformation changed (none when the
                    // value holds none of the chain's trigger bytes).
                    matched |= self.match_value(plan, ri, li, &v, v.value, true, last);
                    let triggers = plan.chain_triggers.get(link.chain_id).unwrap_or(&ALL_BYTES);
                    if self.evaluated.leaves_alike(v.slot, v.value, triggers) {
                        continue;
                    }
                    scratch.clear();
                    changed_values(&link.transforms, v.value, &mut scratch);
                    for tv in std::mem::take(&mut scratch) {
                        matched |= self.match_value(plan, ri, li, &v, &tv, true, last);
                    }
                } else {
                    let (out, may_match) = self.evaluate_value(plan, link, &v);
                    if !may_match && !link.negated {
                        continue;
                    }
                    let tv = out.as_deref().unwrap_or(v.value);
                    matched |= self.match_value(plan, ri, li, &v, tv, may_match, last);
                }
            }
            self.values_pool.push(vals);
        }
        if !matched {
            self.data.matched_var_set = false;
            self.data.clear_matched_vars();
            return false;
        }
        if li + 1 < rule.links.len() && !self.eval_link(plan, ri, li + 1, last) {
            return false;
        }
        for a in &link.after {
            match a {
                After::Skip(n) => self.skip_next = *n,
                After::SkipAfter(m) => self.skip_marker = Some(*m),
                After::Ctl(c) => self.run_ctl(c),
            }
        }
        true
    }

    /// A [`Link::single_tx`] link, without collecting its value: whether it matched; `None`
    /// when it is not such a link (or its value is too long to copy here, or a `ctl` removed
    /// targets): the general path then runs. The same steps as the general path, without
    /// its buffers.
    ///
    /// [`Link::single_tx`]: super::compile::Link::single_tx
    fn eval_single_tx(
        &mut self,
        plan: &Plan,
        ri: usize,
        li: usize,
        last: &mut bool,
    ) -> Option<bool> {
        let link = plan.rules.get(ri)?.links.get(li)?;
        if !link.single_tx
            || !self.removed_targets_by_id.is_empty()
            || !self.removed_targets_by_tag.is_empty()
        {
            return None;
        }
        let t = link.targets.first()?;
        let (Selector::Key(key), Some(id)) = (&t.selector, t.tx_key) else {
            return None;
        };
        // A copy: the link's setvars may change the variable it read.
        let mut buf = [0u8; 32];
        let value = self.data.tx_get_id(id);
        let len = if t.count {
            buf[0] = if value.is_some() { b'1' } else { b'0' };
            1
        } else {
            let v = match value {
                None => return Some(false),
                Some(v) => v,
            };
            buf.get_mut(..v.len())?.copy_from_slice(v);
            v.len()
        };
        let value = buf.get(..len)?;
        let v = Val {
            collection: crate::ast::Collection::Tx,
            key: Some(key),
            value,
            slot: None,
        };
        Some(self.match_value(plan, ri, li, &v, value, true, last))
    }

    /// Whether no value `link`'s targets select can hold any of its required literals (its
    /// prefilter group) after its transformations, decided from per-phase unions over whole
    /// collections: then the link cannot match (it is not negated, and counts are excluded)
    /// and its values need not be read. `false` when that cannot be decided this way.
    fn cannot_match(&mut self, plan: &Plan, link: &Link) -> bool {
        let Some(Prefilter::Group(g)) = link.prefilter else {
            return false;
        };
        if link.negated
            || link.multi_match
            || link
                .targets
                .iter()
                .any(|t| t.count || !stable_in_phase(t.collection))
        {
            return false;
        }
        let chain = link.chain_id;
        let literals = &plan.literals;
        let triggers = (
            plan.chain_triggers.get(chain).unwrap_or(&ALL_BYTES),
            plan.scan_triggers.get(chain).unwrap_or(&ALL_BYTES),
        );
        let Transaction {
            data,
            evaluated,
            transformed_bytes,
            scans,
            collection_groups,
            union_bits,
            ..
        } = self;
        let words = literals.words();
        for t in &link.targets {
            // A single key selects few members: their union is computed here, not kept.
            // Every other selector is answered by the whole collection's union (a superset),
            // numbered when the plan was built.
            let keyed = t.union_id == u32::MAX;
            let kept = if keyed {
                None
            } else {
                collection_groups
                    .get(t.union_id as usize)
                    .filter(|&&s| s != NO_UNION)
                    .map(|&s| s as usize)
            };
            // Every member holds none of the bytes that would make the chain change more than
            // its case: the chain's union is the collection's own (the scan ignores case),
            // computed once per collection, not once per chain.
            let raw = match kept {
                None if !keyed => {
                    let raw = raw_union(
                        data,
                        evaluated,
                        transformed_bytes,
                        scans,
                        literals,
                        collection_groups,
                        union_bits,
                        t,
                    );
                    let bytes = union_bits
                        .get(raw + words..raw + words + 4)
                        .and_then(|b| <&ByteSet>::try_from(b).ok());
                    bytes
                        .is_some_and(|b| !transform::intersects(b, triggers.1))
                        .then_some(raw)
                }
                _ => None,
            };
            let start = match (kept, raw) {
                (Some(start), _) => start,
                (None, Some(raw)) => {
                    set_union(collection_groups, t.union_id, raw);
                    raw
                }
                (None, None) => {
                    let start = union_bits.len();
                    union_bits.resize(start + words, 0);
                    let acc = union_bits.get_mut(start..).unwrap_or_default();
                    data.for_each_member(t, !keyed, &mut |value, slot| {
                        or_member_groups(
                            evaluated,
                            transformed_bytes,
                            scans,
                            literals,
                            &link.transforms,
                            triggers,
                            chain,
                            value,
                            slot,
                            acc,
                        )
                    });
                    if !keyed {
                        set_union(collection_groups, t.union_id, start);
                    }
                    start
                }
            };
            let found = has_group(union_bits.get(start..).unwrap_or_default(), g);
            if keyed {
                union_bits.truncate(start);
            }
            if found {
                return false;
            }
        }
        true
    }

    /// Runs the operator on one (transformed) value (unless the literal prefilter ruled a
    /// match out: `may_match` false); on a match, records it and runs the link's per-match
    /// actions (capture, MATCHED_VAR*, setvar).
    #[allow(clippy::too_many_arguments)]
    fn match_value(
        &mut self,
        plan: &Plan,
        ri: usize,
        li: usize,
        v: &Val,
        tv: &[u8],
        may_match: bool,
        last: &mut bool,
    ) -> bool {
        let link = &plan.rules[ri].links[li];
        let mut caps = Captures::default();
        let op_matched =
            may_match && self.run_operator(plan, ri, li, tv, link.capture.then_some(&mut caps));
        let hit = op_matched != link.negated;
        if !hit {
            return false;
        }
        if link.capture {
            const KEYS: [&[u8]; 10] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"];
            for (key, g) in KEYS.iter().zip(&caps.groups) {
                if let Some(g) = g {
                    self.data.tx_set_bytes_id(key, None, g);
                }
            }
        }
        // MATCHED_VAR's buffers are reused from match to match.
        let (name, value) = &mut self.data.matched_var;
        self.data.matched_var_set = true;
        v.write_full_name(name);
        value.clear();
        value.extend_from_slice(tv);
        self.data.push_matched_var();
        self.run_setvars(link);
        *last = true;
        true
    }

    /// `v` through the link's transformation chain (`None`: unchanged) and whether the
    /// link's literal prefilter lets it match, cached per (value, chain) within the phase:
    /// a value is transformed and scanned for literals once per chain, not once per rule.
    fn evaluate_value(&mut self, plan: &Plan, link: &Link, v: &Val) -> (Option<Arc<[u8]>>, bool) {
        let group = match &link.prefilter {
            Some(Prefilter::Group(g)) => Some(*g),
            _ => None,
        };
        if link.transforms.is_empty() && group.is_none() {
            return (None, true);
        }
        let Transaction {
            evaluated,
            scans,
            transformed_bytes,
            ..
        } = self;
        // A value whose literals rule the link out needs no transformation, when the chain
        // changes at most its case (the scan ignores case). A negated link reads the value
        // whatever the literals say.
        if let (Some(g), false) = (group, link.negated) {
            let scan_triggers = plan.scan_triggers.get(link.chain_id).unwrap_or(&ALL_BYTES);
            let own = evaluated.case_only_scan(
                scans,
                &plan.literals,
                v.slot,
                v.value,
                scan_triggers,
                transformed_bytes,
            );
            if own.is_some_and(|r| !has_group(scans.bits(r, plan.literals.words()), g)) {
                return (None, false);
            }
        }
        let (out, r) = evaluate(
            evaluated,
            transformed_bytes,
            scans,
            &plan.literals,
            &link.transforms,
            plan.chain_triggers.get(link.chain_id).unwrap_or(&ALL_BYTES),
            link.chain_id,
            v.value,
            v.slot,
            group.is_some(),
        );
        let may = match (group, r) {
            (Some(g), Some(r)) => has_group(scans.bits(r, plan.literals.words()), g),
            _ => true,
        };
        (out, may)
    }

    fn run_ctl(&mut self, c: &CtlC) {
        match c {
            CtlC::RuleEngine(m) => self.engine = *m,
            CtlC::RemoveById(r) => self.removed_ids.push(*r),
            CtlC::RemoveByTag(t) => self.removed_tags.push(t.clone()),
            CtlC::RemoveTargetById(r, t) => self.removed_targets_by_id.push((*r, t.clone())),
            CtlC::RemoveTargetByTag(tag, t) => {
                self.removed_targets_by_tag.push((tag.clone(), t.clone()))
            }
            CtlC::BodyProcessor(p) => {
                self.body_kind = match p.as_str() {
                    "JSON" => BodyKind::Json,
                    "XML" => BodyKind::Xml,
                    "MULTIPART" => BodyKind::Multipart,
                    _ => BodyKind::Urlencoded,
                };
                self.data.reqbody_processor = Some(p.clone().into_bytes());
            }
            CtlC::BodyAccess(b) => self.body_access = *b,
            CtlC::NoOp => {}
        }
    }

    fn run_operator(
        &mut self,
        plan: &Plan,
        ri: usize,
        li: usize,
        value: &[u8],
        captures: Option<&mut Captures>,
    ) -> bool {
        let link = &plan.rules[ri].links[li];
        match &link.op {
            Op::Compiled(op) => {
                // Exact: a value holding none of the required literals cannot match.
                if let Some(Prefilter::Own(p)) = &link.prefilter {
                    if !p.is_match(value) {
                        return false;
                    }
                }
                op.matches(value, captures)
            }
            Op::Macro(m) => {
                let arg = self.expand_string(m);
                let stale = self
                    .runtime_ops
                    .get(&(ri, li))
                    .is_none_or(|(a, _)| *a != arg);
                if stale {
                    let op = match plan.runtime_ops.get(link.op_name, &arg) {
                        Ok(op) => Some(op),
                        Err(e) => {
                            self.runtime_errors.push(format!(
                                "rule {}: @{} {arg:?}: {e}",
                                plan.rules[ri].id,
                                op_label(link.op_name)
                            ));
                            None
                        }
                    };
                    self.runtime_ops.insert((ri, li), (arg, op));
                }
                match self.runtime_ops.get(&(ri, li)) {
                    Some((_, Some(op))) => op.matches(value, captures),
                    _ => false,
                }
            }
        }
    }

    fn run_setvars(&mut self, link: &super::compile::Link) {
        for sv in &link.setvars {
            // A literal name was lower-cased and numbered when the plan was built.
            let (name, id) = match &sv.key {
                Some((key, id)) => (Cow::Borrowed(key.as_slice()), Some(*id)),
                None => (self.expand_cow(&sv.name), None),
            };
            match &sv.op {
                SetOp::Set(v) => {
                    let v = self.expand_cow(v);
                    match id {
                        Some(_) => self.data.tx_set_bytes_id(&name, id, &v),
                        None => self.data.tx_set_bytes(&name, &v),
                    }
                }
                SetOp::Add(v) | SetOp::Sub(v) => {
                    let delta = atoi(&self.expand_cow(v));
                    let cur = match id {
                        Some(id) => self.data.tx_get_id(id),
                        None => self.data.tx_get(&name),
                    };
                    let cur = cur.map(atoi).unwrap_or(0);
                    let n = if matches!(sv.op, SetOp::Add(_)) {
                        cur.saturating_add(delta)
                    } else {
                        cur.saturating_sub(delta)
                    };
                    let mut digits = [0u8; 20];
                    match id {
                        Some(_) => self
                            .data
                            .tx_set_bytes_id(&name, id, format_i64(n, &mut digits)),
                        None => self.data.tx_set_bytes(&name, format_i64(n, &mut digits)),
                    }
                }
                SetOp::Delete => self.data.tx_delete(&name),
            }
        }
    }

    /// `m` expanded, borrowed when it is one literal (most setvar names and values).
    fn expand_cow<'m>(&self, m: &'m MacroString) -> Cow<'m, [u8]> {
        match m.parts() {
            [] => Cow::Borrowed(&[]),
            [Part::Literal(l)] => Cow::Borrowed(l),
            _ => Cow::Owned(self.expand(m)),
        }
    }

    fn expand(&self, m: &MacroString) -> Vec<u8> {
        let mut out = Vec::new();
        for p in m.parts() {
            match p {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Var {
                    tx_key: Some(id), ..
                } => {
                    if let Some(v) = self.data.tx_get_id(*id) {
                        out.extend_from_slice(v);
                    }
                }
                Part::Var {
                    collection, key, ..
                } => {
                    self.data
                        .append_first(*collection, key.as_deref(), &mut out);
                }
            }
        }
        out
    }

    fn expand_string(&self, m: &MacroString) -> String {
        let bytes = self.expand(m);
        String::from_utf8(bytes).unwrap_or_else(|e| lossy_string(e.as_bytes()))
    }
}

/// `bytes` as a `String`, invalid UTF-8 replaced: validated first (`from_utf8_lossy`'s chunk
/// iteration showed in profiles).
fn lossy_string(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// `n` in decimal, written into `buf` (no allocation: anomaly scores are added up in most
/// matching rules).
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

fn op_label(n: OperatorName) -> String {
    format!("{n:?}")
}

/// For `multiMatch`: each value a transformation of the chain changed, in order (the
/// operator also sees the original).
fn changed_values(chain: &[crate::ast::TransformName], input: &[u8], out: &mut Vec<Vec<u8>>) {
    let mut cur: Cow<[u8]> = Cow::Borrowed(input);
    let mut buf = Vec::new();
    for t in chain {
        if transform::apply(*t, &cur, &mut buf) {
            out.push(buf.clone());
            cur = Cow::Owned(std::mem::take(&mut buf));
        }
    }
}

/// `value` through `transforms` (chain `chain`; `None`: unchanged) and, when `want_scan`,
/// the literal scan of the result — cached per (value, chain) within the phase: a value is
/// transformed once per chain, and scanned once per distinct result.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    evaluated: &mut EvalCache,
    transformed_bytes: &mut usize,
    scans: &mut Scans,
    literals: &Literals,
    transforms: &[crate::ast::TransformName],
    triggers: &ByteSet,
    chain: usize,
    value: &[u8],
    slot: Option<Slot>,
    want_scan: bool,
) -> (Option<Arc<[u8]>>, Option<ScanRef>) {
    match evaluated.lookup(chain, slot, value) {
        Lookup::Hit(_, out, Some(i)) => (out, want_scan.then_some(ScanRef::Cached(i))),
        Lookup::Hit(place, out, None) => {
            if !want_scan {
                return (out, None);
            }
            let r = evaluated.scan(
                scans,
                literals,
                slot,
                value,
                out.as_deref(),
                transformed_bytes,
            );
            if let ScanRef::Cached(i) = r {
                evaluated.set_scan(place, i);
            }
            (out, Some(r))
        }
        Lookup::Uncacheable => {
            let out = transform_chain(transforms, value);
            let r = want_scan
                .then(|| scans.scan(literals, out.as_deref().unwrap_or(value), transformed_bytes));
            (out, r)
        }
        Lookup::Miss(place) => {
            let out = if evaluated.leaves_alike(slot, value, triggers) {
                None
            } else {
                transform_chain(transforms, value)
            };
            let r = want_scan.then(|| {
                evaluated.scan(
                    scans,
                    literals,
                    slot,
                    value,
                    out.as_deref(),
                    transformed_bytes,
                )
            });
            let scan = match r {
                Some(ScanRef::Cached(i)) => Some(i),
                _ => None,
            };
            evaluated.insert(place, value, out.clone(), scan, transformed_bytes);
            (out, r)
        }
    }
}

/// [`Transaction::collection_groups`]: no union kept yet.
const NO_UNION: u32 = u32::MAX;

/// Records that union `id` starts at `start` in `union_bits` (not kept past `u32` offsets:
/// it is then computed again).
fn set_union(table: &mut [u32], id: u32, start: usize) {
    if let (Some(x), Ok(s)) = (table.get_mut(id as usize), u32::try_from(start)) {
        if s != NO_UNION {
            *x = s;
        }
    }
}

/// The offset in `union_bits` of `t`'s collection's own union (members untransformed),
/// followed by the four words of the bytes they hold; computed on first use in the phase.
#[allow(clippy::too_many_arguments)]
fn raw_union(
    data: &Data,
    evaluated: &mut EvalCache,
    transformed_bytes: &mut usize,
    scans: &mut Scans,
    literals: &Literals,
    collection_groups: &mut [u32],
    union_bits: &mut Vec<u64>,
    t: &Target,
) -> usize {
    if let Some(&start) = collection_groups
        .get(t.raw_union_id as usize)
        .filter(|&&s| s != NO_UNION)
    {
        return start as usize;
    }
    let words = literals.words();
    let start = union_bits.len();
    union_bits.resize(start + words + 4, 0);
    let (acc, bytes) = union_bits
        .get_mut(start..)
        .unwrap_or_default()
        .split_at_mut(words);
    data.for_each_member(t, true, &mut |value, slot| {
        for (b, v) in bytes.iter_mut().zip(evaluated.bytes(slot, value)) {
            *b |= v;
        }
        let r = evaluated.scan(scans, literals, slot, value, None, transformed_bytes);
        or_groups(acc, scans.bits(r, words));
    });
    set_union(collection_groups, t.raw_union_id, start);
    start
}

/// ORs into `acc` the literal groups of `value` after `transforms` (chain `chain`), through
/// the phase's evaluation cache (the entry made here serves the rules that do read the
/// value).
#[allow(clippy::too_many_arguments)]
fn or_member_groups(
    evaluated: &mut EvalCache,
    transformed_bytes: &mut usize,
    scans: &mut Scans,
    literals: &Literals,
    transforms: &[crate::ast::TransformName],
    (triggers, scan_triggers): (&ByteSet, &ByteSet),
    chain: usize,
    value: &[u8],
    slot: Option<Slot>,
    acc: &mut [u64],
) {
    // A chain that changes at most the case scans as the value itself; its transformation is
    // left to a rule that reads the value.
    let r = match evaluated.case_only_scan(
        scans,
        literals,
        slot,
        value,
        scan_triggers,
        transformed_bytes,
    ) {
        Some(r) => Some(r),
        None => {
            evaluate(
                evaluated,
                transformed_bytes,
                scans,
                literals,
                transforms,
                triggers,
                chain,
                value,
                slot,
                true,
            )
            .1
        }
    };
    if let Some(r) = r {
        or_groups(acc, scans.bits(r, literals.words()));
    }
}

/// `input` through `chain`: `None` when no transformation changed it.
fn transform_chain(chain: &[crate::ast::TransformName], input: &[u8]) -> Option<Arc<[u8]>> {
    let mut cur: Option<Vec<u8>> = None;
    let mut buf = Vec::new();
    for t in chain {
        if transform::apply(*t, cur.as_deref().unwrap_or(input), &mut buf) {
            let previous = cur.replace(std::mem::take(&mut buf));
            if let Some(p) = previous {
                buf = p;
                buf.clear();
            }
        }
    }
    cur.map(Arc::from)
}

/// `REQUEST_URI` strips `scheme://host` from an absolute-form target, as ModSecurity does.
fn absolute_uri_path(decoded: &[u8]) -> Vec<u8> {
    if decoded.first().is_none_or(|&c| c == b'/') {
        return decoded.to_vec();
    }
    let Some(colon) = find(decoded, b':') else {
        return decoded.to_vec();
    };
    let rest = &decoded[colon + 1..];
    if !rest.starts_with(b"//") {
        return decoded.to_vec();
    }
    match find(&rest[2..], b'/') {
        Some(p) => rest[2 + p..].to_vec(),
        None => decoded.to_vec(),
    }
}

/// Appends the record of matched `rule` to the first `len` entries of `matched`. The entries of
/// earlier transactions are reused (their strings' buffers kept): a benign request matches ~80
/// rules, most of them CRS's setup and paranoia skips.
fn record(
    matched: &mut Vec<MatchedRule>,
    len: &mut usize,
    rule: &CRule,
    msg: Option<&String>,
    logdata: Option<String>,
    (name, value): (&[u8], &[u8]),
) {
    if *len == matched.len() {
        matched.push(MatchedRule::default());
    }
    let Some(m) = matched.get_mut(*len) else {
        return;
    };
    *len += 1;
    m.id = rule.id;
    m.phase = rule.phase;
    m.msg = msg.cloned();
    m.logdata = logdata;
    m.severity = rule.severity;
    // The same rule in the same place as in the last transaction (CRS's setup rules match
    // first, in order, in every request): no reference count to touch.
    if !Arc::ptr_eq(&m.tags, &rule.tags) {
        m.tags = Arc::clone(&rule.tags);
    }
    m.var_name.clear();
    m.var_name.extend_from_slice(name);
    m.var_value.clear();
    m.var_value.extend_from_slice(value);
    m.logged = rule.log;
}

/// Where a `skipAfter` to marker `m` goes on from step `k` of a phase of `end` steps: to the
/// marker when it is ahead in this phase, else past the phase's end (the skip goes on into the
/// next phase, as it would step by step).
fn marker_step(markers: Option<&Vec<usize>>, m: usize, k: usize, end: usize) -> usize {
    markers
        .and_then(|at| at.get(m))
        .copied()
        .filter(|&at| at >= k)
        .unwrap_or(end)
}

/// TX as (key, number, value), in order.
fn tx_snapshot(data: &Data) -> Vec<(Vec<u8>, Option<u32>, Vec<u8>)> {
    data.tx
        .iter()
        .map(|(k, v)| (k.clone(), data.tx_keys.id(k), v.clone()))
        .collect()
}

/// Evaluates the rules [`super::fold`] can decide when the plan is built, on an empty
/// request: phase 1's prologue (from its start, pure rules evaluated in order with their
/// skips, transparent ones passed over, up to anything else), then the pure rules outside it
/// that read only TX keys nothing else writes.
pub(crate) fn fold_run(plan: &Arc<Plan>, classes: &[Class]) -> Folding {
    let mut t = Transaction::new(Arc::clone(plan), Arc::default(), Request::default());
    let mut rules: Vec<Option<Folded>> = plan.rules.iter().map(|_| None).collect();
    let mut in_prologue = vec![false; plan.rules.len()];
    let mut prologue = 0;
    let mut tx = None;
    let steps = plan.phases.first().map(Vec::as_slice).unwrap_or_default();
    let markers = plan.marker_steps.first();
    let mut k = 0;
    while let Some(step) = steps.get(k) {
        k += 1;
        let ri = match *step {
            Step::Marker(m) => {
                if t.skip_marker == Some(m) {
                    t.skip_marker = None;
                }
                continue;
            }
            Step::Rule(ri) => ri,
        };
        if let Some(m) = t.skip_marker {
            let to = marker_step(markers, m, k, steps.len());
            // The rules jumped over never run: their `setvar`s do not count as writers.
            for s in steps.get(k - 1..to).unwrap_or_default() {
                if let (Step::Rule(r), false) = (*s, to == steps.len()) {
                    if let Some(p) = in_prologue.get_mut(r) {
                        *p = true;
                    }
                }
            }
            k = to;
            continue;
        }
        if t.skip_next > 0 {
            t.skip_next -= 1;
            if let Some(p) = in_prologue.get_mut(ri) {
                *p = true;
            }
            continue;
        }
        let Some(rule) = plan.rules.get(ri) else {
            break;
        };
        if t.rule_removed(rule) {
            continue;
        }
        match classes.get(ri) {
            Some(Class::Transparent) => continue,
            Some(Class::Pure) => {}
            _ => break,
        }
        let before = rule.disruptive.is_some().then(|| tx_snapshot(&t.data));
        match t.fold_eval(plan, ri, 1) {
            Some(f) => {
                if let Some(r) = rules.get_mut(ri) {
                    *r = Some(f);
                }
                if let Some(p) = in_prologue.get_mut(ri) {
                    *p = true;
                }
                prologue += 1;
            }
            None => {
                // It would disrupt: the prologue ends before it, with TX as it found it.
                tx = before;
                break;
            }
        }
    }
    let tx = tx.unwrap_or_else(|| tx_snapshot(&t.data));
    let others = super::fold::other_writes(plan, &in_prologue);
    for ri in super::fold::frozen_candidates(plan, &in_prologue, &others) {
        let Some(rule) = plan.rules.get(ri) else {
            continue;
        };
        t.skip_next = 0;
        t.skip_marker = None;
        if let Some(f) = t.fold_eval(plan, ri, rule.phase) {
            if let Some(r) = rules.get_mut(ri) {
                *r = Some(f);
            }
        }
    }
    let mut ops = Vec::new();
    for (ri, li) in super::fold::frozen_operators(plan, &others) {
        let Some(link) = plan.rules.get(ri).and_then(|r| r.links.get(li)) else {
            continue;
        };
        if let Op::Macro(m) = &link.op {
            // One that does not compile stays: it reports its error per request.
            if let Ok(op) =
                super::compile::compile_runtime_operator(link.op_name, &t.expand_string(m))
            {
                ops.push((ri, li, op));
            }
        }
    }
    Folding {
        tx,
        rules,
        prologue,
        ops,
    }
}

impl Transaction {
    /// Evaluates rule `ri` for folding: its outcome, `None` when it would disrupt (then it
    /// is left to run per request).
    fn fold_eval(&mut self, plan: &Plan, ri: usize, phase: u8) -> Option<Folded> {
        let (vars_before, matched_before) = (self.data.matched_vars_len, self.matched_len);
        self.eval_rule(plan, ri, phase);
        if self.intervention.is_some() || self.detected.is_some() || self.allow.is_some() {
            self.intervention = None;
            self.detected = None;
            self.allow = None;
            return None;
        }
        if self.matched_len <= matched_before {
            return Some(Folded::NoMatch);
        }
        let record = self.matched.get(self.matched_len - 1)?;
        Some(Folded::Match(Box::new(FoldedMatch {
            pushes: self
                .data
                .matched_vars()
                .get(vars_before..)
                .unwrap_or_default()
                .to_vec(),
            msg: record.msg.clone(),
            logdata: record.logdata.clone(),
            skip_next: self.skip_next,
            skip_marker: self.skip_marker,
            ctls: plan.rules.get(ri).is_some_and(|r| {
                r.links
                    .iter()
                    .any(|l| l.after.iter().any(|a| matches!(a, After::Ctl(_))))
            }),
        })))
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn uri_decode_is_modsecuritys() {
        assert_eq!(uri_decode(b"/a%20b+c%zz%4"), b"/a b+c%zz%4".to_vec());
        assert_eq!(uri_decode(b"%41%4a"), b"AJ".to_vec());
        assert_eq!(uri_decode(b""), b"".to_vec());
        assert_eq!(uri_decode(b"%"), b"%".to_vec());
    }

    #[test]
    fn format_i64_is_to_string() {
        for n in [0, 5, -5, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(format_i64(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn atoi_is_stoi_or_zero() {
        assert_eq!(atoi(b" 42abc"), 42);
        assert_eq!(atoi(b"-7"), -7);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b""), 0);
    }

    #[test]
    fn absolute_form_targets_keep_the_path() {
        assert_eq!(absolute_uri_path(b"http://h.example/a?b"), b"/a?b".to_vec());
        assert_eq!(absolute_uri_path(b"/x"), b"/x".to_vec());
        assert_eq!(absolute_uri_path(b"h:80"), b"h:80".to_vec());
    }
}
