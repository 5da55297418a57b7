//! The request's variables (ARGS, REQUEST_HEADERS, TX, ...) as a transaction holds them, and
//! how a target (`ARGS:foo`, `&TX:x`, `REQUEST_COOKIES:/^__utm/`) selects values from them.
//!
//! Names are ModSecurity's; keys compare case-insensitively as its collections do.

use crate::ast::Collection;
use crate::body::{Multipart, Pair, XmlDocument};
use regex::bytes::Regex;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// FNV-1a as a `Hasher`: the per-request maps (TX keys, transformation cache) hash short
/// keys hundreds of times per request, where SipHash's cost showed in profiles; their keys
/// are not attacker-chosen in bulk beyond the bounded argument count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        // A word at a time (TX keys such as `executing_paranoia_level` are looked up in most
        // rules); the tail byte by byte.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            self.write_u64(u64::from_le_bytes(a));
        }
        for &b in words.remainder() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    // Integer keys (the evaluation cache's (chain, slot) pairs, looked up once per rule and
    // value) mix a word at a time instead of byte by byte.
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed with [`Fnv`].
pub(crate) type FnvMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// Receives each member of a collection: its key (none for single values), value and slot.
pub(crate) type Visit<'a> = &'a mut dyn FnMut(Option<&[u8]>, &[u8], Option<Slot>);

/// Where a value lives in the request data, stable within a phase (`ARGS:a` and `ARGS_GET:a`
/// are the same slot): the per-request evaluation cache is keyed by it instead of by hashing
/// the bytes. Values computed on the fly or changing during a phase (TX, MATCHED_VAR*,
/// counts) have none.
pub(crate) type Slot = u64;

/// Sources of slots (the high 32 bits; the low 32 bits are the index in the source).
mod src {
    pub(crate) const ARG_GET: u64 = 1;
    pub(crate) const ARG_POST: u64 = 2;
    pub(crate) const ARG_GET_NAME: u64 = 3;
    pub(crate) const ARG_POST_NAME: u64 = 4;
    pub(crate) const HEADER: u64 = 5;
    pub(crate) const HEADER_NAME: u64 = 6;
    pub(crate) const COOKIE: u64 = 7;
    pub(crate) const COOKIE_NAME: u64 = 8;
    pub(crate) const FILENAME: u64 = 9;
    pub(crate) const BASENAME: u64 = 10;
    pub(crate) const URI: u64 = 11;
    pub(crate) const URI_RAW: u64 = 12;
    pub(crate) const LINE: u64 = 13;
    pub(crate) const METHOD: u64 = 14;
    pub(crate) const PROTOCOL: u64 = 15;
    pub(crate) const QUERY: u64 = 16;
    pub(crate) const BODY: u64 = 17;
    pub(crate) const FULL_REQUEST: u64 = 18;
    pub(crate) const FILE: u64 = 19;
    pub(crate) const FILE_NAME: u64 = 20;
    pub(crate) const PART_HEADER: u64 = 21;
    pub(crate) const RESPONSE_HEADER: u64 = 22;
    pub(crate) const RESPONSE_HEADER_NAME: u64 = 23;
    pub(crate) const RESPONSE_BODY: u64 = 24;
    pub(crate) const XML_TEXT: u64 = 25;
    pub(crate) const XML_ATTRIBUTE: u64 = 26;
}

/// One more than the highest slot source.
pub(crate) const SLOT_SOURCES: usize = 27;

fn slot(source: u64, index: usize) -> Option<Slot> {
    u32::try_from(index)
        .ok()
        .map(|i| source << 32 | u64::from(i))
}

/// SecLang's name for every collection the engine knows.
const NAMES: &[(Collection, &str)] = &[
    (Collection::Args, "ARGS"),
    (Collection::ArgsGet, "ARGS_GET"),
    (Collection::ArgsPost, "ARGS_POST"),
    (Collection::ArgsNames, "ARGS_NAMES"),
    (Collection::ArgsGetNames, "ARGS_GET_NAMES"),
    (Collection::ArgsPostNames, "ARGS_POST_NAMES"),
    (Collection::ArgsCombinedSize, "ARGS_COMBINED_SIZE"),
    (Collection::RequestHeaders, "REQUEST_HEADERS"),
    (Collection::RequestHeadersNames, "REQUEST_HEADERS_NAMES"),
    (Collection::RequestCookies, "REQUEST_COOKIES"),
    (Collection::RequestCookiesNames, "REQUEST_COOKIES_NAMES"),
    (Collection::RequestFilename, "REQUEST_FILENAME"),
    (Collection::RequestBasename, "REQUEST_BASENAME"),
    (Collection::RequestUri, "REQUEST_URI"),
    (Collection::RequestUriRaw, "REQUEST_URI_RAW"),
    (Collection::RequestLine, "REQUEST_LINE"),
    (Collection::RequestMethod, "REQUEST_METHOD"),
    (Collection::RequestProtocol, "REQUEST_PROTOCOL"),
    (Collection::QueryString, "QUERY_STRING"),
    (Collection::RequestBody, "REQUEST_BODY"),
    (Collection::RequestBodyLength, "REQUEST_BODY_LENGTH"),
    (Collection::ReqbodyError, "REQBODY_ERROR"),
    (Collection::ReqbodyErrorMsg, "REQBODY_ERROR_MSG"),
    (Collection::ReqbodyProcessor, "REQBODY_PROCESSOR"),
    (Collection::ReqbodyProcessorError, "REQBODY_PROCESSOR_ERROR"),
    (
        Collection::ReqbodyProcessorErrorMsg,
        "REQBODY_PROCESSOR_ERROR_MSG",
    ),
    (Collection::InboundDataError, "INBOUND_DATA_ERROR"),
    (Collection::UrlencodedError, "URLENCODED_ERROR"),
    (Collection::FullRequest, "FULL_REQUEST"),
    (Collection::FullRequestLength, "FULL_REQUEST_LENGTH"),
    (Collection::Files, "FILES"),
    (Collection::FilesNames, "FILES_NAMES"),
    (Collection::FilesSizes, "FILES_SIZES"),
    (Collection::FilesCombinedSize, "FILES_COMBINED_SIZE"),
    (Collection::FilesTmpnames, "FILES_TMPNAMES"),
    (Collection::FilesTmpContent, "FILES_TMP_CONTENT"),
    (Collection::MultipartStrictError, "MULTIPART_STRICT_ERROR"),
    (
        Collection::MultipartUnmatchedBoundary,
        "MULTIPART_UNMATCHED_BOUNDARY",
    ),
    (
        Collection::MultipartBoundaryQuoted,
        "MULTIPART_BOUNDARY_QUOTED",
    ),
    (
        Collection::MultipartBoundaryWhitespace,
        "MULTIPART_BOUNDARY_WHITESPACE",
    ),
    (Collection::MultipartDataAfter, "MULTIPART_DATA_AFTER"),
    (Collection::MultipartDataBefore, "MULTIPART_DATA_BEFORE"),
    (
        Collection::MultipartFileLimitExceeded,
        "MULTIPART_FILE_LIMIT_EXCEEDED",
    ),
    (
        Collection::MultipartHeaderFolding,
        "MULTIPART_HEADER_FOLDING",
    ),
    (
        Collection::MultipartInvalidHeaderFolding,
        "MULTIPART_INVALID_HEADER_FOLDING",
    ),
    (Collection::MultipartInvalidPart, "MULTIPART_INVALID_PART"),
    (
        Collection::MultipartInvalidQuoting,
        "MULTIPART_INVALID_QUOTING",
    ),
    (Collection::MultipartLfLine, "MULTIPART_LF_LINE"),
    (Collection::MultipartCrlfLfLines, "MULTIPART_CRLF_LF_LINES"),
    (
        Collection::MultipartMissingSemicolon,
        "MULTIPART_MISSING_SEMICOLON",
    ),
    (Collection::MultipartPartHeaders, "MULTIPART_PART_HEADERS"),
    (Collection::MultipartFilename, "MULTIPART_FILENAME"),
    (Collection::MultipartName, "MULTIPART_NAME"),
    (Collection::Xml, "XML"),
    (Collection::Tx, "TX"),
    (Collection::MatchedVar, "MATCHED_VAR"),
    (Collection::MatchedVarName, "MATCHED_VAR_NAME"),
    (Collection::MatchedVars, "MATCHED_VARS"),
    (Collection::MatchedVarsNames, "MATCHED_VARS_NAMES"),
    (Collection::RemoteAddr, "REMOTE_ADDR"),
    (Collection::RemoteHost, "REMOTE_HOST"),
    (Collection::RemotePort, "REMOTE_PORT"),
    (Collection::RemoteUser, "REMOTE_USER"),
    (Collection::ServerAddr, "SERVER_ADDR"),
    (Collection::ServerName, "SERVER_NAME"),
    (Collection::ServerPort, "SERVER_PORT"),
    (Collection::UniqueId, "UNIQUE_ID"),
    (Collection::Duration, "DURATION"),
    (Collection::HighestSeverity, "HIGHEST_SEVERITY"),
    (Collection::Env, "ENV"),
    (Collection::Time, "TIME"),
    (Collection::TimeDay, "TIME_DAY"),
    (Collection::TimeEpoch, "TIME_EPOCH"),
    (Collection::TimeHour, "TIME_HOUR"),
    (Collection::TimeMin, "TIME_MIN"),
    (Collection::TimeMon, "TIME_MON"),
    (Collection::TimeSec, "TIME_SEC"),
    (Collection::TimeWday, "TIME_WDAY"),
    (Collection::TimeYear, "TIME_YEAR"),
    (Collection::AuthType, "AUTH_TYPE"),
    (Collection::Rule, "RULE"),
    (Collection::StatusLine, "STATUS_LINE"),
    (Collection::ResponseHeaders, "RESPONSE_HEADERS"),
    (Collection::ResponseHeadersNames, "RESPONSE_HEADERS_NAMES"),
    (Collection::ResponseBody, "RESPONSE_BODY"),
    (Collection::ResponseStatus, "RESPONSE_STATUS"),
    (Collection::ResponseProtocol, "RESPONSE_PROTOCOL"),
    (Collection::ResponseContentType, "RESPONSE_CONTENT_TYPE"),
    (Collection::ResponseContentLength, "RESPONSE_CONTENT_LENGTH"),
    (Collection::OutboundDataError, "OUTBOUND_DATA_ERROR"),
    (Collection::Webserver, "WEBSERVER_ERROR_LOG"),
    (Collection::Ip, "IP"),
    (Collection::Session, "SESSION"),
    (Collection::User, "USER"),
    (Collection::Global, "GLOBAL"),
    (Collection::Resource, "RESOURCE"),
    (Collection::Geo, "GEO"),
];

/// SecLang's name of `c` (`REQUEST_HEADERS`).
pub(crate) fn collection_name(c: Collection) -> &'static str {
    // Indexed by discriminant, built once: MATCHED_VAR_NAME is written on every match.
    static BY_INDEX: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let table = BY_INDEX.get_or_init(|| {
        let len = NAMES
            .iter()
            .map(|(k, _)| *k as usize + 1)
            .max()
            .unwrap_or(0);
        let mut t = vec!["UNKNOWN"; len];
        for (k, n) in NAMES {
            if let Some(slot) = t.get_mut(*k as usize) {
                *slot = n;
            }
        }
        t
    });
    table.get(c as usize).copied().unwrap_or("UNKNOWN")
}

/// The collection named `name` (case-insensitive).
pub(crate) fn collection_from_name(name: &str) -> Option<Collection> {
    NAMES
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(c, _)| *c)
}

/// Which members of a collection a compiled target takes.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    All,
    /// Lower-cased key, compared case-insensitively.
    Key(Vec<u8>),
    /// Case-insensitive regex over keys, with its literal form when it has one.
    Regex(Regex, Option<KeyLiteral>),
    /// `XML:` expression: `//@*` selects attribute values, anything else element texts.
    XPath(String),
}

impl Selector {
    pub(crate) fn selects(&self, key: Option<&[u8]>) -> bool {
        match (self, key) {
            (Selector::All | Selector::XPath(_), _) => true,
            (Selector::Key(k), Some(key)) => key.eq_ignore_ascii_case(k),
            (Selector::Regex(_, Some(lit)), Some(key)) => lit.matches(key),
            (Selector::Regex(r, None), Some(key)) => r.is_match(key),
            (Selector::Key(_) | Selector::Regex(..), None) => false,
        }
    }
}

/// A key regex that is a plain word anchored at the start or the end (`/^header_name_/`),
/// compared without the regex engine: TX selectors are tried against every TX key of the
/// request. (An unanchored word, `/__utm/`, stays with the regex: its memchr-driven search
/// measured faster than a byte-by-byte window compare.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLiteral {
    /// Lower-cased.
    word: Vec<u8>,
    start: bool,
    end: bool,
}

impl KeyLiteral {
    /// The literal form of a case-insensitive key regex anchored at one end at least:
    /// `^word`, `word$`, `^word$` (a trailing `.*` dropped when not anchored at the end), the
    /// word made of letters, digits, `_` and `-`.
    pub(crate) fn parse(pattern: &str) -> Option<KeyLiteral> {
        let (start, rest) = match pattern.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, pattern),
        };
        let (end, word) = match rest.strip_suffix('$') {
            Some(w) => (true, w),
            None => (false, rest.strip_suffix(".*").unwrap_or(rest)),
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        ((start || end) && !word.is_empty() && word.chars().all(plain)).then(|| KeyLiteral {
            word: word.to_ascii_lowercase().into_bytes(),
            start,
            end,
        })
    }

    fn matches(&self, key: &[u8]) -> bool {
        let n = self.word.len();
        match (self.start, self.end) {
            (true, true) => key.eq_ignore_ascii_case(&self.word),
            (true, false) => key
                .get(..n)
                .is_some_and(|k| k.eq_ignore_ascii_case(&self.word)),
            (false, true) => key
                .len()
                .checked_sub(n)
                .and_then(|i| key.get(i..))
                .is_some_and(|k| k.eq_ignore_ascii_case(&self.word)),
            (false, false) => false,
        }
    }
}

/// A compiled target or exclusion.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) collection: Collection,
    pub(crate) selector: Selector,
    /// `&`: the number of selected members.
    pub(crate) count: bool,
    /// `TX:key`: the key's number in the plan's [`TxKeys`] (set when the plan is built).
    pub(crate) tx_key: Option<u32>,
    /// For a target answered by its whole collection's literal union (not a single key,
    /// not a count): where the transaction keeps that union for the link's transformation
    /// chain, and the collection's own (untransformed) union. Numbered when the plan is
    /// built; `u32::MAX` otherwise.
    pub(crate) union_id: u32,
    pub(crate) raw_union_id: u32,
    /// `TX:/regex/`: the numbered TX keys (see [`TxKeys`]) the selector picks, found when the
    /// plan is built; at run time only the TX variables with other keys (named by macros,
    /// `header_name_%{tx.0}`) are matched against the selector.
    pub(crate) tx_ids: Option<Arc<[u32]>>,
}

/// The TX keys the rules name literally (setvar names, `TX:key` targets, `%{tx.key}` in setvar
/// values), lower-cased and numbered when the plan is built. A transaction keeps where each of
/// them sits in its TX list in a plain array ([`Data::tx_slots`]), so the bookkeeping CRS does
/// on every request (~76 setup and paranoia-level rules reading and setting TX) hashes no key:
/// `tx_get` and `run_setvars` were 4.4% and 5.2% of a benign GET's instructions.
#[derive(Debug, Default)]
pub(crate) struct TxKeys(FnvMap<Vec<u8>, u32>);

impl TxKeys {
    /// The number of `key` (lower-case), given one if it has none yet.
    pub(crate) fn intern(&mut self, key: &[u8]) -> u32 {
        let next = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        *self.0.entry(key.to_vec()).or_insert(next)
    }

    /// The number of `key` (lower-case), if the rules name it.
    pub(crate) fn id(&self, key: &[u8]) -> Option<u32> {
        if self.0.is_empty() {
            return None;
        }
        self.0.get(key).copied()
    }

    /// How many keys are numbered.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The numbers of the keys `selector` picks.
    pub(crate) fn selected(&self, selector: &Selector) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .0
            .iter()
            .filter(|(k, _)| selector.selects(Some(k)))
            .map(|(_, &id)| id)
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl Target {
    /// The collection as a union key: XML's attribute values and element texts apart.
    pub(crate) fn union_code(&self) -> u32 {
        let attributes = matches!(&self.selector, Selector::XPath(x) if x.contains('@'));
        (self.collection as u32) << 1 | u32::from(attributes)
    }

    /// Does this (exclusion) target name the value `v`?
    pub(crate) fn names(&self, v: &Val) -> bool {
        self.collection == v.collection && self.selector.selects(v.key)
    }
}

/// Whether `c`'s members stay the same while a phase runs (TX, MATCHED_VAR*, RULE, ... change
/// from rule to rule; `ctl:requestBodyProcessor` changes REQBODY_PROCESSOR): only such
/// collections may have their literal groups computed once per phase.
pub(crate) fn stable_in_phase(c: Collection) -> bool {
    use Collection as C;
    matches!(
        c,
        C::Args
            | C::ArgsGet
            | C::ArgsPost
            | C::ArgsNames
            | C::ArgsGetNames
            | C::ArgsPostNames
            | C::RequestHeaders
            | C::RequestHeadersNames
            | C::RequestCookies
            | C::RequestCookiesNames
            | C::RequestFilename
            | C::RequestBasename
            | C::RequestUri
            | C::RequestUriRaw
            | C::RequestLine
            | C::RequestMethod
            | C::RequestProtocol
            | C::QueryString
            | C::RequestBody
            | C::FullRequest
            | C::Files
            | C::FilesNames
            | C::MultipartFilename
            | C::MultipartName
            | C::MultipartPartHeaders
            | C::ResponseHeaders
            | C::ResponseHeadersNames
            | C::ResponseBody
            | C::Xml
    )
}

/// One value a target produced: where it came from and what it is (borrowed from a
/// [`Values`] buffer, so evaluating a rule allocates nothing per value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Val<'a> {
    pub(crate) collection: Collection,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: &'a [u8],
    /// Where the value lives (the evaluation cache's key), when it is stable in the phase.
    pub(crate) slot: Option<Slot>,
}

impl Val<'_> {
    /// `ARGS:foo`, `REQUEST_URI`: the name ModSecurity prints in MATCHED_VAR_NAME, written
    /// into `out` (cleared first).
    pub(crate) fn write_full_name(&self, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(collection_name(self.collection).as_bytes());
        if let Some(k) = self.key {
            out.push(b':');
            out.extend_from_slice(k);
        }
    }
}

/// A byte range in [`Values`]' buffer.
type Span = (usize, usize);

/// The values a rule link's targets selected, copied into one reusable byte buffer: a
/// snapshot (setvars during the link must not change what it iterates) without an
/// allocation per value — the engine's loop, not the regexes, dominated the cost per request.
#[derive(Debug, Default)]
pub(crate) struct Values {
    bytes: Vec<u8>,
    /// (collection, key range, value range) into `bytes`, and the value's slot.
    items: Vec<(Collection, Option<Span>, Span, Option<Slot>)>,
}

impl Values {
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Bytes and items the buffers can hold without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity().max(self.items.capacity())
    }

    fn push(
        &mut self,
        collection: Collection,
        key: Option<&[u8]>,
        value: &[u8],
        slot: Option<Slot>,
    ) {
        let key = key.map(|k| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(k);
            (start, self.bytes.len())
        });
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.items
            .push((collection, key, (start, self.bytes.len()), slot));
    }

    pub(crate) fn get(&self, i: usize) -> Option<Val<'_>> {
        let &(collection, key, (vs, ve), slot) = self.items.get(i)?;
        Some(Val {
            collection,
            slot,
            key: key.and_then(|(ks, ke)| self.bytes.get(ks..ke)),
            value: self.bytes.get(vs..ve).unwrap_or_default(),
        })
    }
}

/// The request (and response) as variables: filled by the transaction as phases go.
#[derive(Debug, Default)]
pub(crate) struct Data {
    pub(crate) method: Vec<u8>,
    pub(crate) uri_raw: Vec<u8>,
    pub(crate) uri: Vec<u8>,
    pub(crate) filename: Vec<u8>,
    pub(crate) basename: Option<Vec<u8>>,
    pub(crate) query_string: Vec<u8>,
    pub(crate) request_line: Vec<u8>,
    pub(crate) protocol: Vec<u8>,
    pub(crate) headers: Vec<Pair>,
    pub(crate) cookies: Vec<Pair>,
    pub(crate) args_get: Vec<Pair>,
    pub(crate) args_post: Vec<Pair>,
    pub(crate) body: Vec<u8>,
    /// REQUEST_BODY holds the body (set by phase 2 when the body is non-empty and the XML
    /// processor did not take it).
    pub(crate) body_visible: bool,
    /// REQUEST_BODY_LENGTH is set (phase 2, a non-empty body).
    pub(crate) body_length_visible: bool,
    pub(crate) reqbody_error: Option<bool>,
    pub(crate) reqbody_error_msg: Option<Vec<u8>>,
    pub(crate) reqbody_processor: Option<Vec<u8>>,
    pub(crate) urlencoded_error: bool,
    pub(crate) inbound_data_error: Option<bool>,
    pub(crate) full_request: Option<Vec<u8>>,
    pub(crate) multipart: Option<Multipart>,
    pub(crate) xml: Option<XmlDocument>,
    /// TX: lower-cased keys in insertion order, and where each key is.
    pub(crate) tx: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) tx_index: FnvMap<Vec<u8>, usize>,
    /// The plan's numbered TX keys; those keys are found through `tx_slots`, never
    /// `tx_index`.
    pub(crate) tx_keys: std::sync::Arc<TxKeys>,
    /// Per numbered TX key: its position in `tx` plus one, 0 when unset.
    pub(crate) tx_slots: Vec<u32>,
    /// Emptied TX entries whose buffers new variables reuse.
    pub(crate) tx_spare: Vec<(Vec<u8>, Vec<u8>)>,
    /// MATCHED_VAR (name, value): meaningful only while `matched_var_set`; the buffers are
    /// kept when a link that matches nothing clears it (no allocation per match).
    pub(crate) matched_var: (Vec<u8>, Vec<u8>),
    pub(crate) matched_var_set: bool,
    /// MATCHED_VARS: the first `matched_vars_len` pairs; the buffers after them are kept
    /// for reuse (most matching rules add one and the next unmatched link clears them).
    pub(crate) matched_vars: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) matched_vars_len: usize,
    pub(crate) remote_addr: Vec<u8>,
    pub(crate) remote_port: Vec<u8>,
    pub(crate) server_addr: Vec<u8>,
    pub(crate) server_port: Vec<u8>,
    pub(crate) server_name: Option<Vec<u8>>,
    pub(crate) unique_id: Vec<u8>,
    pub(crate) auth_type: Option<Vec<u8>>,
    pub(crate) highest_severity: Option<u8>,
    pub(crate) response_status: Option<Vec<u8>>,
    pub(crate) response_protocol: Option<Vec<u8>>,
    pub(crate) response_headers: Vec<Pair>,
    pub(crate) response_body: Option<Vec<u8>>,
    /// The rule being evaluated, for `%{rule.*}` and the `RULE` collection.
    pub(crate) rule: RuleContext,
    /// Every rule's unexpanded `msg`, by rule index (the plan's).
    pub(crate) rule_msgs: Arc<[Option<Arc<str>>]>,
}

/// What `RULE:id`, `RULE:msg`, ... read.
#[derive(Debug, Default, Clone)]
pub(crate) struct RuleContext {
    pub(crate) id: u64,
    pub(crate) phase: u8,
    pub(crate) severity: Option<u8>,
    /// The rule's `msg` (unexpanded), an index into [`Data::rule_msgs`]: set for every rule
    /// evaluated, where cloning the text's `Arc` cost two atomic operations each.
    pub(crate) index: usize,
}

fn flag(b: bool) -> &'static [u8] {
    if b {
        b"1"
    } else {
        b"0"
    }
}

impl Data {
    /// How many slots each source has now (`[source]`): the members a phase's evaluation
    /// cache can index directly.
    pub(crate) fn slot_counts(&self) -> [usize; SLOT_SOURCES] {
        let mut n = [0usize; SLOT_SOURCES];
        let mut set = |source: u64, len: usize| {
            if let Some(x) = n.get_mut(source as usize) {
                *x = len;
            }
        };
        set(src::ARG_GET, self.args_get.len());
        set(src::ARG_POST, self.args_post.len());
        set(src::ARG_GET_NAME, self.args_get.len());
        set(src::ARG_POST_NAME, self.args_post.len());
        set(src::HEADER, self.headers.len());
        set(src::HEADER_NAME, self.headers.len());
        set(src::COOKIE, self.cookies.len());
        set(src::COOKIE_NAME, self.cookies.len());
        for one in [
            src::FILENAME,
            src::BASENAME,
            src::URI,
            src::URI_RAW,
            src::LINE,
            src::METHOD,
            src::PROTOCOL,
            src::QUERY,
            src::BODY,
            src::FULL_REQUEST,
            src::RESPONSE_BODY,
        ] {
            set(one, 1);
        }
        if let Some(m) = &self.multipart {
            set(src::FILE, m.files.len());
            set(src::FILE_NAME, m.files.len());
            set(src::PART_HEADER, m.part_headers.len());
        }
        set(src::RESPONSE_HEADER, self.response_headers.len());
        set(src::RESPONSE_HEADER_NAME, self.response_headers.len());
        if let Some(x) = &self.xml {
            set(src::XML_TEXT, x.texts.len());
            set(src::XML_ATTRIBUTE, x.attribute_values.len());
        }
        n
    }

    /// MATCHED_VARS' pairs.
    pub(crate) fn matched_vars(&self) -> &[(Vec<u8>, Vec<u8>)] {
        self.matched_vars
            .get(..self.matched_vars_len)
            .unwrap_or_default()
    }

    /// MATCHED_VAR's name and value, when a value matched.
    pub(crate) fn matched_var(&self) -> Option<(&[u8], &[u8])> {
        self.matched_var_set
            .then_some((self.matched_var.0.as_slice(), self.matched_var.1.as_slice()))
    }

    pub(crate) fn clear_matched_vars(&mut self) {
        self.matched_vars_len = 0;
    }

    /// Appends MATCHED_VAR (name and value) to MATCHED_VARS, into a kept buffer when there is
    /// one.
    pub(crate) fn push_matched_var(&mut self) {
        let (name, value) = if self.matched_var_set {
            (self.matched_var.0.as_slice(), self.matched_var.1.as_slice())
        } else {
            (&[][..], &[][..])
        };
        match self.matched_vars.get_mut(self.matched_vars_len) {
            Some((n, v)) => {
                n.clear();
                n.extend_from_slice(name);
                v.clear();
                v.extend_from_slice(value);
            }
            None => self.matched_vars.push((name.to_vec(), value.to_vec())),
        }
        self.matched_vars_len += 1;
    }

    /// Where the numbered TX key `id` sits in `tx`.
    fn tx_position(&self, id: u32) -> Option<usize> {
        match self.tx_slots.get(id as usize) {
            Some(&p) if p > 0 => Some(p as usize - 1),
            _ => None,
        }
    }

    /// TX lookup of a numbered key.
    pub(crate) fn tx_get_id(&self, id: u32) -> Option<&[u8]> {
        let i = self.tx_position(id)?;
        self.tx.get(i).map(|(_, v)| v.as_slice())
    }

    /// TX lookup (key lower-cased by the caller or not: compared case-insensitively).
    pub(crate) fn tx_get(&self, key: &[u8]) -> Option<&[u8]> {
        let key = lower(key);
        if let Some(id) = self.tx_keys.id(&key) {
            return self.tx_get_id(id);
        }
        let i = *self.tx_index.get(key.as_ref())?;
        self.tx.get(i).map(|(_, v)| v.as_slice())
    }

    /// Runs `f` on the value of TX `key` (lower-case; `id` its number when the caller knows
    /// it), created empty at the end of the list when it is not set: an existing variable's
    /// buffer is reused.
    fn tx_update(&mut self, key: &[u8], id: Option<u32>, f: impl FnOnce(&mut Vec<u8>)) {
        let id = id.or_else(|| self.tx_keys.id(key));
        let at = match id {
            Some(id) => self.tx_position(id),
            None => self.tx_index.get(key).copied(),
        };
        if let Some((_, value)) = at.and_then(|i| self.tx.get_mut(i)) {
            f(value);
            return;
        }
        let (mut k, mut value) = self.tx_spare.pop().unwrap_or_default();
        k.clear();
        k.extend_from_slice(key);
        value.clear();
        f(&mut value);
        let i = self.tx.len();
        self.tx.push((k, value));
        match id {
            Some(id) => {
                let id = id as usize;
                if self.tx_slots.len() <= id {
                    self.tx_slots.resize(id + 1, 0);
                }
                if let Some(p) = self.tx_slots.get_mut(id) {
                    *p = u32::try_from(i + 1).unwrap_or(0);
                }
            }
            None => {
                self.tx_index.insert(key.to_vec(), i);
            }
        }
    }

    /// TX set from borrowed bytes: an existing variable's buffer is reused.
    pub(crate) fn tx_set_bytes(&mut self, key: &[u8], value: &[u8]) {
        let key = lower(key);
        self.tx_set_bytes_id(&key, None, value);
    }

    /// TX set of `key` (lower-case) with its number when known.
    pub(crate) fn tx_set_bytes_id(&mut self, key: &[u8], id: Option<u32>, value: &[u8]) {
        self.tx_update(key, id, |v| {
            v.clear();
            v.extend_from_slice(value);
        });
    }

    pub(crate) fn tx_delete(&mut self, key: &[u8]) {
        let key = lower(key);
        let before = self.tx.len();
        self.tx.retain(|(k, _)| k.as_slice() != key.as_ref());
        if self.tx.len() == before {
            return;
        }
        // Positions after the deleted one moved: index them again (rare: CRS deletes none).
        self.tx_index.clear();
        self.tx_slots.iter_mut().for_each(|p| *p = 0);
        for (i, (k, _)) in self.tx.iter().enumerate() {
            match self.tx_keys.id(k) {
                Some(id) => {
                    if let Some(p) = self.tx_slots.get_mut(id as usize) {
                        *p = u32::try_from(i + 1).unwrap_or(0);
                    }
                }
                None => {
                    self.tx_index.insert(k.clone(), i);
                }
            }
        }
    }

    /// Calls `f(key, value)` for every member of `c` in ModSecurity's order.
    pub(crate) fn for_each(&self, c: Collection, f: Visit<'_>) {
        use Collection as C;
        let pairs = |ps: &[Pair], source: Option<u64>, f: Visit<'_>| {
            for (i, (k, v)) in ps.iter().enumerate() {
                f(Some(k), v, source.and_then(|s| slot(s, i)));
            }
        };
        let names = |ps: &[Pair], source: Option<u64>, f: Visit<'_>| {
            for (i, (k, _)) in ps.iter().enumerate() {
                f(Some(k), k, source.and_then(|s| slot(s, i)));
            }
        };
        let one = |v: &[u8], f: Visit<'_>| f(None, v, None);
        let fixed = |v: &[u8], source: u64, f: Visit<'_>| f(None, v, slot(source, 0));
        // ModSecurity's single-valued (anchored) variables exist even when unset, with an
        // empty value (`AnchoredVariable::evaluate`): `!@endsWith .pdf` on an absent
        // REQUEST_BASENAME matches.
        let opt = |v: &Option<Vec<u8>>, f: Visit<'_>| {
            f(None, v.as_deref().unwrap_or(b""), None);
        };
        let mp = self.multipart.as_ref();
        let mflag = |get: fn(&crate::body::MultipartFlags) -> bool, f: Visit<'_>| {
            f(None, mp.map(|m| flag(get(&m.flags))).unwrap_or(b""), None);
        };
        match c {
            C::Args => {
                pairs(&self.args_get, Some(src::ARG_GET), f);
                pairs(&self.args_post, Some(src::ARG_POST), f);
            }
            C::ArgsGet => pairs(&self.args_get, Some(src::ARG_GET), f),
            C::ArgsPost => pairs(&self.args_post, Some(src::ARG_POST), f),
            C::ArgsNames => {
                names(&self.args_get, Some(src::ARG_GET_NAME), f);
                names(&self.args_post, Some(src::ARG_POST_NAME), f);
            }
            C::ArgsGetNames => names(&self.args_get, Some(src::ARG_GET_NAME), f),
            C::ArgsPostNames => names(&self.args_post, Some(src::ARG_POST_NAME), f),
            C::ArgsCombinedSize => {
                let n: usize = self
                    .args_get
                    .iter()
                    .chain(&self.args_post)
                    .map(|(k, v)| k.len() + v.len())
                    .sum();
                one(n.to_string().as_bytes(), f);
            }
            C::RequestHeaders => pairs(&self.headers, Some(src::HEADER), f),
            C::RequestHeadersNames => names(&self.headers, Some(src::HEADER_NAME), f),
            C::RequestCookies => pairs(&self.cookies, Some(src::COOKIE), f),
            C::RequestCookiesNames => names(&self.cookies, Some(src::COOKIE_NAME), f),
            C::RequestFilename => fixed(&self.filename, src::FILENAME, f),
            C::RequestBasename => fixed(self.basename.as_deref().unwrap_or(b""), src::BASENAME, f),
            C::RequestUri => fixed(&self.uri, src::URI, f),
            C::RequestUriRaw => fixed(&self.uri_raw, src::URI_RAW, f),
            C::RequestLine => fixed(&self.request_line, src::LINE, f),
            C::RequestMethod => fixed(&self.method, src::METHOD, f),
            C::RequestProtocol => fixed(&self.protocol, src::PROTOCOL, f),
            C::QueryString => fixed(&self.query_string, src::QUERY, f),
            C::RequestBody => fixed(
                if self.body_visible { &self.body } else { b"" },
                src::BODY,
                f,
            ),
            C::RequestBodyLength => {
                if self.body_length_visible {
                    one(self.body.len().to_string().as_bytes(), f);
                } else {
                    one(b"", f);
                }
            }
            C::ReqbodyError | C::ReqbodyProcessorError => {
                one(self.reqbody_error.map(flag).unwrap_or(b""), f);
            }
            C::ReqbodyErrorMsg | C::ReqbodyProcessorErrorMsg => opt(&self.reqbody_error_msg, f),
            C::ReqbodyProcessor => opt(&self.reqbody_processor, f),
            C::InboundDataError => one(self.inbound_data_error.map(flag).unwrap_or(b""), f),
            C::UrlencodedError => one(if self.urlencoded_error { b"1" } else { b"" }, f),
            C::FullRequest => fixed(
                self.full_request.as_deref().unwrap_or(b""),
                src::FULL_REQUEST,
                f,
            ),
            C::FullRequestLength => match &self.full_request {
                Some(r) => one(r.len().to_string().as_bytes(), f),
                None => one(b"", f),
            },
            C::Files | C::MultipartFilename => {
                if let Some(m) = mp {
                    for (i, p) in m.files.iter().enumerate() {
                        f(Some(&p.name), &p.filename, slot(src::FILE, i));
                    }
                }
            }
            C::FilesNames => {
                if let Some(m) = mp {
                    for (i, p) in m.files.iter().enumerate() {
                        f(Some(&p.name), &p.name, slot(src::FILE_NAME, i));
                    }
                }
            }
            C::MultipartName => {
                if let Some(m) = mp {
                    for (k, _) in &m.args {
                        f(Some(k), k, None);
                    }
                    for (i, p) in m.files.iter().enumerate() {
                        f(Some(&p.name), &p.name, slot(src::FILE_NAME, i));
                    }
                }
            }
            C::FilesSizes => {
                if let Some(m) = mp {
                    for p in &m.files {
                        f(Some(&p.name), p.size.to_string().as_bytes(), None);
                    }
                }
            }
            C::FilesCombinedSize => {
                let n: u64 = mp
                    .map(|m| m.files.iter().map(|p| p.size).sum())
                    .unwrap_or(0);
                one(n.to_string().as_bytes(), f);
            }
            C::FilesTmpnames | C::FilesTmpContent => {}
            C::MultipartStrictError => {
                f(
                    None,
                    mp.map(|m| flag(m.flags.strict_error())).unwrap_or(b""),
                    None,
                );
            }
            C::MultipartUnmatchedBoundary => mflag(|x| x.unmatched_boundary, f),
            C::MultipartBoundaryQuoted => mflag(|x| x.boundary_quoted, f),
            C::MultipartBoundaryWhitespace => mflag(|x| x.boundary_whitespace, f),
            C::MultipartDataAfter => mflag(|x| x.data_after, f),
            C::MultipartDataBefore => mflag(|x| x.data_before, f),
            C::MultipartFileLimitExceeded => mflag(|x| x.file_limit_exceeded, f),
            C::MultipartHeaderFolding => mflag(|x| x.header_folding, f),
            C::MultipartInvalidHeaderFolding => mflag(|x| x.invalid_header_folding, f),
            C::MultipartInvalidPart => mflag(|x| x.invalid_part, f),
            C::MultipartInvalidQuoting => mflag(|x| x.invalid_quoting, f),
            C::MultipartLfLine => mflag(|x| x.lf_line, f),
            C::MultipartCrlfLfLines => mflag(|x| x.crlf_lf_lines, f),
            C::MultipartMissingSemicolon => mflag(|x| x.missing_semicolon, f),
            C::MultipartPartHeaders => {
                if let Some(m) = mp {
                    pairs(&m.part_headers, Some(src::PART_HEADER), f);
                }
            }
            // XML is selected by `collect` (it needs the expression).
            C::Xml => {}
            C::Tx => pairs(&self.tx, None, f),
            C::MatchedVar => one(self.matched_var().map_or(b"", |(_, v)| v), f),
            C::MatchedVarName => one(self.matched_var().map_or(b"", |(n, _)| n), f),
            C::MatchedVars => pairs(self.matched_vars(), None, f),
            C::MatchedVarsNames => names(self.matched_vars(), None, f),
            C::RemoteAddr | C::RemoteHost => one(&self.remote_addr, f),
            C::RemotePort => one(&self.remote_port, f),
            C::ServerAddr => one(&self.server_addr, f),
            C::ServerName => opt(&self.server_name, f),
            C::ServerPort => one(&self.server_port, f),
            C::UniqueId => one(&self.unique_id, f),
            // No clock inside a proxy-wasm VM worth reading per rule: DURATION is 0.
            C::Duration => one(b"0", f),
            C::HighestSeverity => {
                let s = self.highest_severity.unwrap_or(255);
                one(s.to_string().as_bytes(), f);
            }
            C::AuthType => opt(&self.auth_type, f),
            C::Rule => {
                let r = &self.rule;
                f(Some(b"id"), r.id.to_string().as_bytes(), None);
                f(Some(b"phase"), r.phase.to_string().as_bytes(), None);
                if let Some(s) = r.severity {
                    f(Some(b"severity"), s.to_string().as_bytes(), None);
                }
                if let Some(m) = self.rule_msgs.get(r.index).and_then(Option::as_deref) {
                    f(Some(b"msg"), m.as_bytes(), None);
                }
            }
            C::ResponseHeaders => pairs(&self.response_headers, Some(src::RESPONSE_HEADER), f),
            C::ResponseHeadersNames => {
                names(&self.response_headers, Some(src::RESPONSE_HEADER_NAME), f)
            }
            C::ResponseBody => fixed(
                self.response_body.as_deref().unwrap_or(b""),
                src::RESPONSE_BODY,
                f,
            ),
            C::ResponseStatus => opt(&self.response_status, f),
            C::ResponseProtocol => opt(&self.response_protocol, f),
            C::ResponseContentType => {
                if let Some((_, v)) = self
                    .response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
                {
                    one(v, f);
                }
            }
            C::ResponseContentLength => {
                if let Some((_, v)) = self
                    .response_headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"content-length"))
                {
                    one(v, f);
                }
            }
            C::StatusLine => {}
            // Persistent collections, environment, time, GEO: nothing to read in a proxy
            // filter (documented no-ops).
            C::RemoteUser
            | C::Env
            | C::Time
            | C::TimeDay
            | C::TimeEpoch
            | C::TimeHour
            | C::TimeMin
            | C::TimeMon
            | C::TimeSec
            | C::TimeWday
            | C::TimeYear
            | C::OutboundDataError
            | C::Webserver
            | C::Ip
            | C::Session
            | C::User
            | C::Global
            | C::Resource
            | C::Geo => {}
        }
    }

    /// Appends the values `t` selects to `out` (`&` targets append one count).
    pub(crate) fn collect(&self, t: &Target, out: &mut Values) {
        if t.collection == Collection::Xml {
            let Some(doc) = &self.xml else {
                if t.count {
                    count_val(t, 0, out);
                }
                return;
            };
            let key = match &t.selector {
                Selector::XPath(x) => x.as_str(),
                _ => "/*",
            };
            let values = if key.contains('@') {
                &doc.attribute_values
            } else {
                &doc.texts
            };
            if t.count {
                count_val(t, values.len(), out);
                return;
            }
            let source = if key.contains('@') {
                src::XML_ATTRIBUTE
            } else {
                src::XML_TEXT
            };
            for (i, v) in values.iter().enumerate() {
                out.push(Collection::Xml, Some(key.as_bytes()), v, slot(source, i));
            }
            return;
        }
        // TX by key: a direct lookup (CRS reads TX:paranoia_level and friends in most rules).
        if let (Collection::Tx, Selector::Key(k)) = (t.collection, &t.selector) {
            let v = match t.tx_key {
                Some(id) => self.tx_get_id(id),
                None => self.tx_get(k),
            };
            if t.count {
                count_val(t, usize::from(v.is_some()), out);
            } else if let Some(v) = v {
                out.push(Collection::Tx, Some(k), v, None);
            }
            return;
        }
        if let (Collection::Tx, Some(ids)) = (t.collection, &t.tx_ids) {
            if self.collect_tx(t, ids, out) {
                return;
            }
        }
        let mut n = 0usize;
        let count = t.count;
        self.for_each(t.collection, &mut |key, value, slot| {
            if !t.selector.selects(key) {
                return;
            }
            n += 1;
            if !count {
                out.push(t.collection, key, value, slot);
            }
        });
        if count {
            count_val(t, n, out);
        }
    }

    /// [`Data::collect`] for a `TX:/regex/` target whose numbered keys were selected when the
    /// plan was built ([`Target::tx_ids`]): those set, and the others whose key the selector
    /// picks, in TX order. `false` (nothing pushed) when TX is too long for the bitset kept
    /// on the stack: the caller then goes through every variable.
    fn collect_tx(&self, t: &Target, ids: &[u32], out: &mut Values) -> bool {
        const WORDS: usize = 16;
        if self.tx.len() > WORDS * 64 {
            return false;
        }
        let mut picked = [0u64; WORDS];
        let mut mark = |i: usize| {
            if let Some(w) = picked.get_mut(i / 64) {
                *w |= 1 << (i % 64);
            }
        };
        for &id in ids {
            if let Some(i) = self.tx_position(id) {
                mark(i);
            }
        }
        for (k, &i) in &self.tx_index {
            if t.selector.selects(Some(k)) {
                mark(i);
            }
        }
        let mut n = 0usize;
        for (w, &bits) in picked.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                n += 1;
                if let (false, Some((k, v))) = (t.count, self.tx.get(i)) {
                    out.push(Collection::Tx, Some(k), v, None);
                }
            }
        }
        if t.count {
            count_val(t, n, out);
        }
        true
    }

    /// Calls `f(value, slot)` for the members of `t`'s collection: those its selector picks
    /// (`whole` false), or every member (`whole` true; an `XML:` target keeps its choice of
    /// texts or attribute values). Counts (`&`) are not members.
    pub(crate) fn for_each_member(
        &self,
        t: &Target,
        whole: bool,
        f: &mut dyn FnMut(&[u8], Option<Slot>),
    ) {
        if t.collection == Collection::Xml {
            let Some(doc) = &self.xml else {
                return;
            };
            let attributes = matches!(&t.selector, Selector::XPath(x) if x.contains('@'));
            let (values, source) = if attributes {
                (&doc.attribute_values, src::XML_ATTRIBUTE)
            } else {
                (&doc.texts, src::XML_TEXT)
            };
            for (i, v) in values.iter().enumerate() {
                f(v, slot(source, i));
            }
            return;
        }
        self.for_each(t.collection, &mut |key, value, slot| {
            if whole || t.selector.selects(key) {
                f(value, slot);
            }
        });
    }

    /// Appends the first value of `collection[:key]` to `out` (nothing when there is none),
    /// for macro expansion: written in place, not copied out first.
    pub(crate) fn append_first(
        &self,
        collection: Collection,
        key: Option<&[u8]>,
        out: &mut Vec<u8>,
    ) {
        if let (Collection::Tx, Some(k)) = (collection, key) {
            if let Some(v) = self.tx_get(k) {
                out.extend_from_slice(v);
            }
            return;
        }
        if collection == Collection::Xml {
            if let Some(t) = self.xml.as_ref().and_then(|d| d.texts.first()) {
                out.extend_from_slice(t);
            }
            return;
        }
        let mut found = false;
        self.for_each(collection, &mut |k, v, _| {
            if found {
                return;
            }
            let ok = match (key, k) {
                (None, _) => true,
                (Some(want), Some(k)) => k.eq_ignore_ascii_case(want),
                (Some(_), None) => false,
            };
            if ok {
                found = true;
                out.extend_from_slice(v);
            }
        });
    }
}

/// `key` lower-cased, borrowed when it already is.
fn lower(key: &[u8]) -> Cow<'_, [u8]> {
    if key.iter().any(u8::is_ascii_uppercase) {
        Cow::Owned(key.to_ascii_lowercase())
    } else {
        Cow::Borrowed(key)
    }
}

fn count_val(t: &Target, n: usize, out: &mut Values) {
    let key = match &t.selector {
        Selector::Key(k) => Some(k.as_slice()),
        _ => None,
    };
    // In decimal without a `String` (CRS counts `&TX:...` and `&REQUEST_HEADERS:...` in
    // dozens of rules per request).
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (m % 10) as u8;
        }
        m /= 10;
        if m == 0 || i == 0 {
            break;
        }
    }
    out.push(t.collection, key, digits.get(i..).unwrap_or_default(), None);
}
