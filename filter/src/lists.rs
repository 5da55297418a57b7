//! Partner CIDR lists fetched at run time (`partner_lists`): lists past what a WasmPlugin
//! (~1.5 MiB) or xDS (4 MiB) can carry, changed without a gateway restart.
//!
//! One VM at a time holds a lease in shared data and fetches the lists (one per partner, or
//! one bundle) with `http_call` on a schedule; it validates them, compiles them with the
//! partners' static `cidrs` into one [`IpTable`] and publishes the table's compact form
//! ([`IpTable::to_bytes`] in a versioned, checksummed envelope) in shared data. Every VM
//! polls a small version key on its tick and loads a newer table without recompiling. A
//! failed or invalid fetch keeps the last good list. Plain Rust: the host is [`ListsHost`].

use crate::config::{parse_json, Cidr, HeaderName, PartnerSpec};
pub use crate::config::{PartnerListsSpec, UntilLoaded};
use crate::error::{ConfigError, HostError};
use crate::iplist::{IpTable, IpTableBuilder, PartnerId};
use crate::metrics::Counters;
use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// One list to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The partner's name, or `bundle`.
    pub name: String,
    /// Request path.
    pub path: String,
    /// `None`: a bundle; else the partner the list belongs to.
    pub partner: Option<PartnerId>,
}

/// The compiled `partner_lists`: what to fetch, and the static CIDRs compiled with it.
#[derive(Debug, Clone)]
pub struct ListPlan {
    spec: PartnerListsSpec,
    sources: Vec<Source>,
    partners: HashMap<String, PartnerId>,
    static_cidrs: Vec<(IpNet, PartnerId)>,
    /// Shared-data key prefix, distinct per configuration (partners and list settings):
    /// a table compiled for other partner ids is never loaded.
    key: String,
}

impl ListPlan {
    /// Checks `/partner_lists` against the partners.
    pub fn compile(
        spec: &PartnerListsSpec,
        partners: &[PartnerSpec],
    ) -> Result<ListPlan, ConfigError> {
        let at = |f: &str| format!("/partner_lists/{f}");
        let ids: HashMap<String, PartnerId> = partners
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.0.clone(), i as PartnerId))
            .collect();
        if spec.cluster.is_empty() {
            return Err(ConfigError::new(at("cluster"), "is empty"));
        }
        if spec.authority.is_empty() {
            return Err(ConfigError::new(at("authority"), "is empty"));
        }
        let mut sources = Vec::new();
        if let Some(path) = &spec.bundle_path {
            check_path(path, &at("bundle_path"))?;
            sources.push(Source {
                name: "bundle".into(),
                path: path.clone(),
                partner: None,
            });
        }
        for (name, path) in &spec.paths {
            let ptr = at(&format!(
                "paths/{}",
                name.replace('~', "~0").replace('/', "~1")
            ));
            check_path(path, &ptr)?;
            let Some(&id) = ids.get(name) else {
                return Err(ConfigError::new(
                    ptr,
                    format!("{name:?} is not the name of a partner in /partners"),
                ));
            };
            sources.push(Source {
                name: name.clone(),
                path: path.clone(),
                partner: Some(id),
            });
        }
        if sources.is_empty() {
            return Err(ConfigError::new(
                "/partner_lists",
                "nothing to fetch: set \"bundle_path\" or \"paths\"",
            ));
        }
        let positive = |v: u32, f: &str| {
            if v == 0 {
                Err(ConfigError::new(at(f), "must be greater than 0"))
            } else {
                Ok(())
            }
        };
        positive(spec.refresh_interval_ms, "refresh_interval_ms")?;
        positive(spec.timeout_ms, "timeout_ms")?;
        positive(spec.max_bytes, "max_bytes")?;
        positive(spec.poll_interval_ms, "poll_interval_ms")?;
        if spec.timeout_ms >= spec.refresh_interval_ms {
            return Err(ConfigError::new(
                at("timeout_ms"),
                format!(
                    "{} is not below \"refresh_interval_ms\" ({}): a fetch must end before the next",
                    spec.timeout_ms, spec.refresh_interval_ms
                ),
            ));
        }
        let static_cidrs = partners
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.cidrs.iter().map(move |c| (c.0, i as PartnerId)))
            .collect();
        let names: Vec<&str> = partners.iter().map(|p| p.name.0.as_str()).collect();
        let digest = Sha256::digest(format!("{spec:?}{names:?}").as_bytes());
        let key = format!("portcullis.partner_lists.{}", hex(&digest[..8]));
        Ok(ListPlan {
            spec: spec.clone(),
            sources,
            partners: ids,
            static_cidrs,
            key,
        })
    }

    /// True when a fetched list may hold networks of `partner` (a bundle may hold any).
    pub fn lists(&self, partner: PartnerId) -> bool {
        self.sources
            .iter()
            .any(|s| s.partner.is_none_or(|p| p == partner))
    }

    /// The settings as configured.
    pub fn spec(&self) -> &PartnerListsSpec {
        &self.spec
    }

    /// What is fetched, in order.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The shared-data key holding the published table (`<key>` + `.table`; `.version`,
    /// `.lease` and `.vms` beside it).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How often each worker checks for a newer table and for the lease.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.spec.poll_interval_ms.into())
    }

    /// Checks and parses one fetched body into (network, partner) pairs.
    pub fn parse_list(
        &self,
        source: &Source,
        body: &[u8],
    ) -> Result<Vec<(IpNet, PartnerId)>, FetchError> {
        match source.partner {
            Some(id) => parse_text_list(body, id),
            None => self.parse_bundle(body),
        }
    }

    fn parse_bundle(&self, body: &[u8]) -> Result<Vec<(IpNet, PartnerId)>, FetchError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Bundle {
            partners: BTreeMap<String, Vec<Cidr>>,
        }
        let bundle: Bundle = parse_json(body).map_err(|e| FetchError::Parse(e.to_string()))?;
        let mut out = Vec::new();
        for (name, cidrs) in bundle.partners {
            let Some(&id) = self.partners.get(&name) else {
                return Err(FetchError::UnknownPartner(name));
            };
            out.extend(cidrs.into_iter().map(|c| (c.0, id)));
        }
        Ok(out)
    }

    /// Compiles the static CIDRs and the fetched lists into one table.
    pub fn compile_table<'a>(
        &self,
        fetched: impl IntoIterator<Item = &'a [(IpNet, PartnerId)]>,
    ) -> IpTable {
        let mut b = IpTableBuilder::default();
        for &(net, id) in &self.static_cidrs {
            b.insert(net, id);
        }
        for list in fetched {
            for &(net, id) in list {
                b.insert(net, id);
            }
        }
        b.build()
    }
}

fn check_path(path: &str, ptr: &str) -> Result<(), ConfigError> {
    if !path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ConfigError::new(
            ptr,
            format!("{path:?} is not a request path (it must start with '/', no spaces)"),
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A text list: one CIDR or bare address per line; blank lines and `#` comments ignored.
/// An empty body is refused (a truncated response must not wipe a list); a list of only
/// comments is an explicit empty list.
///
/// ```
/// use portcullis_filter::lists::parse_text_list;
/// let l = parse_text_list(b"# acme\n203.0.113.0/24\r\n\n2001:db8::1 # one host\n", 7).unwrap();
/// assert_eq!(l.len(), 2);
/// let e = parse_text_list(b"10.0.0.0/8\n10.0.0.0/33\n", 7).unwrap_err();
/// assert_eq!(e.to_string(), r#"line 2: "10.0.0.0/33" is not a CIDR (prefix length 33 > 32)"#);
/// ```
pub fn parse_text_list(
    body: &[u8],
    partner: PartnerId,
) -> Result<Vec<(IpNet, PartnerId)>, FetchError> {
    if body.is_empty() {
        return Err(FetchError::Parse("the body is empty".into()));
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| FetchError::Parse(format!("not UTF-8 text (byte {})", e.valid_up_to())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let entry = line.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let cidr: Cidr = entry
            .parse()
            .map_err(|e| FetchError::Parse(format!("line {}: {e}", n + 1)))?;
        out.push((cidr.0, partner));
    }
    Ok(out)
}

/// Why a fetch was not used (the last good list stays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// `proxy_http_call` refused the call (e.g. an unknown cluster).
    Dispatch(HostError),
    /// No response: the timeout elapsed or the connection failed.
    NoResponse,
    /// A status other than 200.
    Status(u16),
    /// The body is larger than `max_bytes`.
    TooLarge(usize),
    /// The checksum header is missing or does not match the body.
    Checksum(String),
    /// The body is not a valid list.
    Parse(String),
    /// A bundle names a partner the configuration does not have.
    UnknownPartner(String),
    /// The response could not be read.
    Host(HostError),
}

impl FetchError {
    /// Stable snake_case reason (metrics).
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::Dispatch(_) => "dispatch_failed",
            FetchError::NoResponse => "no_response",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Checksum(_) => "checksum_mismatch",
            FetchError::Parse(_) => "parse_error",
            FetchError::UnknownPartner(_) => "unknown_partner",
            FetchError::Host(_) => "host_error",
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Dispatch(e) => write!(f, "cannot send the request: {e}"),
            FetchError::NoResponse => f.write_str("no response (timeout or connection failure)"),
            FetchError::Status(s) => write!(f, "status {s}, expected 200"),
            FetchError::TooLarge(n) => write!(f, "body of {n} bytes is over max_bytes"),
            FetchError::Checksum(why) => f.write_str(why),
            FetchError::Parse(why) => f.write_str(why),
            FetchError::UnknownPartner(p) => {
                write!(
                    f,
                    "/partners/{p}: {p:?} is not the name of a configured partner"
                )
            }
            FetchError::Host(e) => write!(f, "cannot read the response: {e}"),
        }
    }
}

/// A fetch's response as the glue read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// `:status`; `None` when the call failed without a response.
    pub status: Option<u16>,
    /// The `checksum_header` value, when configured and present.
    pub checksum: Option<String>,
    /// The body, unless it was over `max_bytes` (then its size, unread).
    pub body: Result<Vec<u8>, usize>,
}

/// A table loaded from shared data (or published by this VM).
#[derive(Debug)]
pub struct LoadedTable {
    /// The list version (1, 2, ... per Envoy process).
    pub version: u64,
    /// The compiled table: static CIDRs and fetched lists.
    pub table: IpTable,
}

/// Log severity for [`ListsHost::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Normal events (a version loaded).
    Info,
    /// A fetch failed; the last good list stays.
    Warn,
    /// The shared table is corrupt, or a host call failed.
    Error,
}

/// The host calls the list machinery needs (the glue's proxy-wasm calls; a fake in tests).
pub trait ListsHost {
    /// The wall clock, in milliseconds.
    fn now_ms(&self) -> u64;
    /// A shared-data value and its CAS token; `None` when the key is absent.
    fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError>;
    /// Sets a shared-data value if `cas` is still current (0: unconditionally); a CAS
    /// mismatch is the error with status [`CAS_MISMATCH`].
    fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError>;
    /// Starts a GET; the token its response will carry.
    fn http_get(
        &self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<u32, HostError>;
    /// A log line.
    fn log(&self, severity: Severity, message: &str);
    /// A table version was loaded (the glue records the version gauge).
    fn version_loaded(&self, version: u64);
}

/// The proxy-wasm status of a CAS mismatch.
pub const CAS_MISMATCH: u32 = 8;

/// The label of the counters that are not about one source.
const SHARED: &str = "shared_data";

/// Envelope of a published table: magic, version, sources digest, CRC-32 and length of
/// the payload ([`IpTable::to_bytes`]).
const MAGIC: &[u8; 4] = b"PCL1";
const HEADER: usize = 4 + 8 + 32 + 4 + 4;

/// Wraps a table's bytes for shared data.
///
/// ```
/// use portcullis_filter::lists::{open_envelope, seal};
/// let blob = seal(7, &[1; 32], b"table");
/// assert_eq!(open_envelope(&blob).unwrap(), (7, [1; 32], &b"table"[..]));
/// let mut bad = blob.clone();
/// *bad.last_mut().unwrap() ^= 1;
/// assert!(open_envelope(&bad).unwrap_err().contains("checksum"));
/// ```
pub fn seal(version: u64, digest: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(digest);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The version, sources digest and payload of a sealed table; an error says what is wrong.
pub fn open_envelope(blob: &[u8]) -> Result<(u64, [u8; 32], &[u8]), String> {
    let (header, payload) = blob
        .split_at_checked(HEADER)
        .ok_or_else(|| format!("{} bytes: shorter than the header", blob.len()))?;
    let field = |from: usize, to: usize| header.get(from..to).unwrap_or(&[]);
    if field(0, 4) != MAGIC {
        return Err("not a portcullis table (bad magic)".into());
    }
    let version = u64::from_le_bytes(field(4, 12).try_into().unwrap_or_default());
    let digest: [u8; 32] = field(12, 44).try_into().unwrap_or([0; 32]);
    let crc = u32::from_le_bytes(field(44, 48).try_into().unwrap_or_default());
    let len = u32::from_le_bytes(field(48, 52).try_into().unwrap_or_default()) as usize;
    if len != payload.len() {
        return Err(format!(
            "length {} but {} payload bytes",
            len,
            payload.len()
        ));
    }
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".into());
    }
    Ok((version, digest, payload))
}

/// The last good fetch of one source.
#[derive(Debug)]
struct Fetched {
    digest: [u8; 32],
    cidrs: Vec<(IpNet, PartnerId)>,
}

/// One VM's side of the lists: the table in force, and (while holding the lease) the
/// fetches.
#[derive(Debug)]
pub struct ListState {
    plan: Arc<ListPlan>,
    current: Option<Rc<LoadedTable>>,
    /// This VM's number among the VMs sharing the data (claimed once).
    vm: Option<u64>,
    /// A published version that failed to load (not retried until it changes).
    rejected: Option<u64>,
    next_fetch_ms: u64,
    /// Outstanding calls: token → source index.
    in_flight: Vec<(u32, usize)>,
    fetched: Vec<Option<Fetched>>,
    /// A source changed since the last publication.
    changed: bool,
}

impl ListState {
    /// A VM's state before anything is loaded.
    pub fn new(plan: Arc<ListPlan>) -> ListState {
        let n = plan.sources.len();
        ListState {
            plan,
            current: None,
            vm: None,
            rejected: None,
            next_fetch_ms: 0,
            in_flight: Vec::new(),
            fetched: (0..n).map(|_| None).collect(),
            changed: false,
        }
    }

    /// What this state fetches and compiles.
    pub fn plan(&self) -> &ListPlan {
        &self.plan
    }

    /// The table in force; `None` until the first one is loaded.
    pub fn current(&self) -> Option<Rc<LoadedTable>> {
        self.current.clone()
    }

    /// True while fetches of this VM are outstanding.
    pub fn fetching(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The table for a request: the one in force; before the first one, a look at shared
    /// data first (one small read per request, only until a table is loaded).
    pub fn for_request(
        &mut self,
        host: &impl ListsHost,
        counters: &mut Counters,
    ) -> Option<Rc<LoadedTable>> {
        if self.current.is_none() {
            self.poll(host, counters);
        }
        self.current.clone()
    }

    /// The timer tick: load a newer published table, then fetch if due and the lease is ours.
    pub fn on_tick(&mut self, host: &impl ListsHost, counters: &mut Counters) {
        self.poll(host, counters);
        self.fetch_if_due(host, counters);
    }

    /// Loads the published table if its version is newer than the one in force.
    pub fn poll(&mut self, host: &impl ListsHost, counters: &mut Counters) {
        let version = match host.shared_get(&self.key("version")) {
            Ok(Some((v, _))) => v.try_into().map(u64::from_le_bytes).unwrap_or(0),
            Ok(None) => return,
            Err(e) => {
                counters.increment(
                    "partner_lists",
                    "load_failed",
                    "host_error",
                    "source",
                    SHARED,
                );
                host.log(
                    Severity::Error,
                    &format!("partner lists: cannot read the version: {e}"),
                );
                return;
            }
        };
        if self.current.as_ref().is_some_and(|c| c.version >= version)
            || self.rejected == Some(version)
        {
            return;
        }
        let loaded = match host.shared_get(&self.key("table")) {
            Ok(Some((blob, _))) => open_envelope(&blob).and_then(|(v, _, payload)| {
                IpTable::from_bytes(payload).map(|table| LoadedTable { version: v, table })
            }),
            Ok(None) => Err("the version is set but the table is absent".into()),
            Err(e) => Err(format!("cannot read the table: {e}")),
        };
        match loaded {
            Ok(t)
                if self
                    .current
                    .as_ref()
                    .is_some_and(|c| c.version >= t.version) => {}
            Ok(t) => {
                counters.increment("partner_lists", "loaded", "new_version", "source", SHARED);
                host.log(
                    Severity::Info,
                    &format!(
                        "partner lists: version {} loaded ({} intervals)",
                        t.version,
                        t.table.intervals()
                    ),
                );
                host.version_loaded(t.version);
                self.current = Some(Rc::new(t));
            }
            Err(why) => {
                self.rejected = Some(version);
                counters.increment("partner_lists", "load_failed", "corrupt", "source", SHARED);
                let keep = match &self.current {
                    Some(c) => format!("keeping version {}", c.version),
                    None => "no list in force".into(),
                };
                host.log(
                    Severity::Error,
                    &format!("partner lists: published version {version} refused: {why}; {keep}"),
                );
            }
        }
    }

    fn key(&self, what: &str) -> String {
        format!("{}.{what}", self.plan.key)
    }

    fn fetch_if_due(&mut self, host: &impl ListsHost, counters: &mut Counters) {
        let now = host.now_ms();
        if !self.in_flight.is_empty() || now < self.next_fetch_ms {
            return;
        }
        let plan = self.plan.clone();
        let spec = &plan.spec;
        let poll = u64::from(spec.poll_interval_ms);
        match self.take_lease(host, now) {
            Ok(true) => {}
            Ok(false) => {
                // Another VM fetches; ask again when its lease may have lapsed.
                self.next_fetch_ms = now + poll;
                return;
            }
            Err(e) => {
                host.log(Severity::Error, &format!("partner lists: lease: {e}"));
                self.next_fetch_ms = now + poll;
                return;
            }
        }
        self.next_fetch_ms = now + u64::from(spec.refresh_interval_ms);
        let timeout = Duration::from_millis(spec.timeout_ms.into());
        for (i, source) in plan.sources.iter().enumerate() {
            match host.http_get(&spec.cluster, &spec.authority, &source.path, timeout) {
                Ok(token) => self.in_flight.push((token, i)),
                Err(e) => self.failed(host, counters, i, &FetchError::Dispatch(e)),
            }
        }
        if self.in_flight.is_empty() {
            self.round_done(host, counters);
        }
    }

    /// Takes or renews the lease: held until `now + refresh + timeout + 2 polls`, so it
    /// lapses only when its holder stopped fetching.
    fn take_lease(&mut self, host: &impl ListsHost, now: u64) -> Result<bool, HostError> {
        let me = match self.vm {
            Some(id) => id,
            None => {
                let id = self.claim_vm_number(host)?;
                *self.vm.insert(id)
            }
        };
        let spec = &self.plan.spec;
        let until = now
            + u64::from(spec.refresh_interval_ms)
            + u64::from(spec.timeout_ms)
            + 2 * u64::from(spec.poll_interval_ms);
        let (value, cas) = get_or_create(host, &self.key("lease"))?;
        if let (Some(holder), Some(expires)) = (le_u64(&value, 0), le_u64(&value, 8)) {
            if holder != me && now < expires {
                return Ok(false);
            }
        }
        let mut lease = me.to_le_bytes().to_vec();
        lease.extend_from_slice(&until.to_le_bytes());
        match host.shared_set(&self.key("lease"), &lease, cas) {
            Ok(()) => Ok(true),
            Err(e) if e.status == CAS_MISMATCH => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A number no other VM sharing the data has (a CAS-incremented counter).
    fn claim_vm_number(&self, host: &impl ListsHost) -> Result<u64, HostError> {
        let key = self.key("vms");
        loop {
            let (value, cas) = get_or_create(host, &key)?;
            let next = le_u64(&value, 0).unwrap_or(0) + 1;
            match host.shared_set(&key, &next.to_le_bytes(), cas) {
                Ok(()) => return Ok(next),
                Err(e) if e.status == CAS_MISMATCH => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// A fetch's response (`token` from [`ListsHost::http_get`]); publishes once the
    /// round's last response is in.
    pub fn on_response(
        &mut self,
        host: &impl ListsHost,
        counters: &mut Counters,
        token: u32,
        response: Result<FetchResponse, HostError>,
    ) {
        let Some(at) = self.in_flight.iter().position(|&(t, _)| t == token) else {
            return;
        };
        let (_, i) = self.in_flight.swap_remove(at);
        let checked = response
            .map_err(FetchError::Host)
            .and_then(|r| self.check(i, r));
        match checked {
            Err(e) => self.failed(host, counters, i, &e),
            Ok(Fetched { digest, .. })
                if self
                    .fetched
                    .get(i)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| f.digest == digest) =>
            {
                let name = self.source_name(i);
                counters.increment("partner_lists", "fetched", "unchanged", "source", &name);
            }
            Ok(fetched) => {
                let name = self.source_name(i);
                counters.increment("partner_lists", "fetched", "changed", "source", &name);
                if let Some(slot) = self.fetched.get_mut(i) {
                    *slot = Some(fetched);
                    self.changed = true;
                }
            }
        }
        if self.in_flight.is_empty() {
            self.round_done(host, counters);
        }
    }

    /// The round's last response is in (or no call could be sent): publish what changed.
    fn round_done(&mut self, host: &impl ListsHost, counters: &mut Counters) {
        self.publish(host, counters);
        if self.current.is_none() {
            // Nothing in force yet: requests are failing closed, so retry at the poll
            // interval rather than a whole refresh later.
            let retry = host.now_ms() + u64::from(self.plan.spec.poll_interval_ms);
            self.next_fetch_ms = self.next_fetch_ms.min(retry);
        }
    }

    fn source_name(&self, i: usize) -> String {
        self.plan
            .sources
            .get(i)
            .map_or_else(|| "unknown".into(), |s| s.name.clone())
    }

    /// Validates a response: its body's SHA-256 and its CIDRs.
    fn check(&self, i: usize, r: FetchResponse) -> Result<Fetched, FetchError> {
        let status = r.status.ok_or(FetchError::NoResponse)?;
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let body = r.body.map_err(FetchError::TooLarge)?;
        let max = self.plan.spec.max_bytes as usize;
        if body.len() > max {
            return Err(FetchError::TooLarge(body.len()));
        }
        let digest: [u8; 32] = Sha256::digest(&body).into();
        if let Some(HeaderName(h)) = &self.plan.spec.checksum_header {
            match r.checksum {
                None => return Err(FetchError::Checksum(format!("no {h} header"))),
                Some(sum) if !sum.trim().eq_ignore_ascii_case(&hex(&digest)) => {
                    return Err(FetchError::Checksum(format!(
                        "{h} {:?} is not the body's SHA-256 {}",
                        sum.trim(),
                        hex(&digest)
                    )))
                }
                Some(_) => {}
            }
        }
        let Some(source) = self.plan.sources.get(i) else {
            return Err(FetchError::Parse("unknown source".into()));
        };
        let cidrs = self.plan.parse_list(source, &body)?;
        Ok(Fetched { digest, cidrs })
    }

    fn failed(&self, host: &impl ListsHost, counters: &mut Counters, i: usize, e: &FetchError) {
        let name = self.source_name(i);
        counters.increment("partner_lists", "fetch_failed", e.reason(), "source", &name);
        let path = self.plan.sources.get(i).map_or("", |s| s.path.as_str());
        let keep = match (&self.current, self.fetched.get(i).and_then(Option::as_ref)) {
            (Some(c), Some(_)) => format!(
                "keeping its last good list (version {} in force)",
                c.version
            ),
            (Some(c), None) => format!("version {} stays in force", c.version),
            (None, _) => "no list in force yet".into(),
        };
        host.log(
            Severity::Warn,
            &format!(
                "partner lists: fetch of {name} ({}{path}) failed: {e}; {keep}",
                self.plan.spec.cluster
            ),
        );
    }

    /// Compiles and publishes a new version when a source changed and every source has
    /// a good list in this VM (a VM that just took the lease over publishes only once it
    /// fetched everything: it never publishes a table missing a list).
    fn publish(&mut self, host: &impl ListsHost, counters: &mut Counters) {
        if !self.changed {
            return;
        }
        let lists: Vec<&Fetched> = self.fetched.iter().flatten().collect();
        if lists.len() != self.fetched.len() {
            return;
        }
        let mut sum = Sha256::new();
        for f in &lists {
            sum.update(f.digest);
        }
        let digest: [u8; 32] = sum.finalize().into();
        let table_key = self.key("table");
        let (old, cas) = match host.shared_get(&table_key) {
            Ok(Some((blob, cas))) => (open_envelope(&blob).ok().map(|(v, d, _)| (v, d)), cas),
            Ok(None) => (None, 0),
            Err(e) => {
                host.log(
                    Severity::Error,
                    &format!("partner lists: cannot read the table: {e}"),
                );
                return;
            }
        };
        if let Some((v, d)) = old {
            if d == digest {
                // Another VM (or this one) already published exactly these lists.
                self.changed = false;
                if self.current.as_ref().is_none_or(|c| c.version < v) {
                    self.poll(host, counters);
                }
                return;
            }
        }
        let version = old
            .map(|(v, _)| v)
            .into_iter()
            .chain(self.current.as_ref().map(|c| c.version))
            .max()
            .unwrap_or(0)
            + 1;
        let table = self
            .plan
            .compile_table(lists.iter().map(|f| f.cidrs.as_slice()));
        let blob = seal(version, &digest, &table.to_bytes());
        let cidrs: usize = lists.iter().map(|f| f.cidrs.len()).sum();
        let set = host
            .shared_set(&table_key, &blob, cas)
            .and_then(|()| host.shared_set(&self.key("version"), &version.to_le_bytes(), 0));
        match set {
            Ok(()) => {
                self.changed = false;
                counters.increment(
                    "partner_lists",
                    "published",
                    "new_version",
                    "source",
                    SHARED,
                );
                host.log(
                    Severity::Info,
                    &format!(
                        "partner lists: version {version} published ({cidrs} fetched CIDRs, {} intervals, {} bytes)",
                        table.intervals(),
                        blob.len()
                    ),
                );
                host.version_loaded(version);
                self.current = Some(Rc::new(LoadedTable { version, table }));
            }
            Err(e) if e.status == CAS_MISMATCH => {
                // Another VM published meanwhile; ours goes out after the next round.
                host.log(Severity::Warn, "partner lists: another VM published first");
            }
            Err(e) => {
                counters.increment(
                    "partner_lists",
                    "publish_failed",
                    "host_error",
                    "source",
                    SHARED,
                );
                host.log(
                    Severity::Error,
                    &format!("partner lists: cannot publish version {version}: {e}"),
                );
            }
        }
    }
}

/// A key's value and CAS, creating it (empty) when absent so that the update that follows
/// is a compare-and-swap even for the first writer.
fn get_or_create(host: &impl ListsHost, key: &str) -> Result<(Vec<u8>, u32), HostError> {
    if let Some(v) = host.shared_get(key)? {
        return Ok(v);
    }
    host.shared_set(key, &[0], 0)?;
    Ok(host.shared_get(key)?.unwrap_or((Vec::new(), 0)))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Plan;
    use std::cell::{Cell, RefCell};

    /// One process's shared data, and one VM's clock, calls and logs.
    #[derive(Default)]
    struct Shared {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        cas: Cell<u32>,
    }

    struct FakeVm<'s> {
        shared: &'s Shared,
        now: Cell<u64>,
        calls: RefCell<Vec<(u32, String)>>,
        logs: RefCell<Vec<String>>,
        versions: RefCell<Vec<u64>>,
    }

    impl<'s> FakeVm<'s> {
        fn new(shared: &'s Shared) -> Self {
            FakeVm {
                shared,
                now: Cell::new(1_000_000),
                calls: RefCell::default(),
                logs: RefCell::default(),
                versions: RefCell::default(),
            }
        }
    }

    impl ListsHost for FakeVm<'_> {
        fn now_ms(&self) -> u64 {
            self.now.get()
        }
        fn shared_get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, HostError> {
            Ok(self.shared.data.borrow().get(key).cloned())
        }
        fn shared_set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
            let mut d = self.shared.data.borrow_mut();
            if let Some((_, c)) = d.get(key) {
                if cas != 0 && cas != *c {
                    return Err(HostError {
                        call: "proxy_set_shared_data",
                        status: CAS_MISMATCH,
                    });
                }
            }
            self.shared.cas.set(self.shared.cas.get() + 1);
            d.insert(key.into(), (value.to_vec(), self.shared.cas.get()));
            Ok(())
        }
        fn http_get(
            &self,
            cluster: &str,
            _: &str,
            path: &str,
            _: Duration,
        ) -> Result<u32, HostError> {
            if cluster != "lists" {
                return Err(HostError {
                    call: "proxy_http_call",
                    status: 2,
                });
            }
            let mut c = self.calls.borrow_mut();
            let token = c.len() as u32 + 1;
            c.push((token, path.to_owned()));
            Ok(token)
        }
        fn log(&self, _: Severity, message: &str) {
            self.logs.borrow_mut().push(message.to_owned());
        }
        fn version_loaded(&self, version: u64) {
            self.versions.borrow_mut().push(version);
        }
    }

    const CFG: &str = r#"{
      "partners": [{"name": "acme", "cidrs": ["192.0.2.0/24"]}, {"name": "globex"}],
      "ip_allowlist": {"client_ip": {"source": "peer"}},
      "partner_lists": {"cluster": "lists", "authority": "lists.internal",
        "paths": {"acme": "/acme.txt", "globex": "/globex.txt"},
        "refresh_interval_ms": 60000, "timeout_ms": 1000, "max_bytes": 64,
        "checksum_header": "x-sha256"}
    }"#;

    fn plan(cfg: &str) -> Plan {
        Plan::parse(cfg.as_bytes()).unwrap()
    }

    fn ok(body: &str) -> Result<FetchResponse, HostError> {
        Ok(FetchResponse {
            status: Some(200),
            checksum: Some(hex(&Sha256::digest(body.as_bytes()))),
            body: Ok(body.as_bytes().to_vec()),
        })
    }

    /// Answers this VM's outstanding calls by path.
    fn answer(
        s: &mut ListState,
        vm: &FakeVm,
        c: &mut Counters,
        by_path: impl Fn(&str) -> Result<FetchResponse, HostError>,
    ) {
        let calls: Vec<_> = vm.calls.borrow_mut().drain(..).collect();
        assert!(!calls.is_empty(), "no fetch was made");
        for (token, path) in calls {
            s.on_response(vm, c, token, by_path(&path));
        }
    }

    fn partners_of(s: &ListState, ip: &str) -> Vec<PartnerId> {
        s.current()
            .unwrap()
            .table
            .lookup(ip.parse().unwrap())
            .to_vec()
    }

    /// What a flush hands over, by name; `by_id` keeps the names of counters defined by
    /// earlier flushes.
    fn counts(c: &mut Counters, by_id: &mut Vec<String>) -> BTreeMap<String, u64> {
        let mut names = BTreeMap::new();
        let mut adds = Vec::new();
        c.flush(
            |name| {
                by_id.push(name.to_owned());
                Ok::<u32, ()>(by_id.len() as u32 - 1)
            },
            |id, n| adds.push((id, n)),
            |_, _| {},
        );
        for (id, n) in adds {
            *names.entry(by_id[id as usize].clone()).or_default() += n;
        }
        names
    }

    #[test]
    fn fetch_publish_share_refresh_and_keep_the_last_good_list() {
        let p = plan(CFG);
        let lists = p.partner_lists().unwrap().clone();
        let shared = Shared::default();
        let (a, b) = (FakeVm::new(&shared), FakeVm::new(&shared));
        let (mut sa, mut sb) = (ListState::new(lists.clone()), ListState::new(lists));
        let (mut ca, mut cb) = (Counters::default(), Counters::default());
        let mut ids = Vec::new();

        // First round: VM a takes the lease and fetches both lists; b finds the lease held.
        sa.on_tick(&a, &mut ca);
        sb.on_tick(&b, &mut cb);
        assert!(b.calls.borrow().is_empty(), "a second VM fetched");
        assert!(sb.current().is_none());
        answer(&mut sa, &a, &mut ca, |path| match path {
            "/acme.txt" => ok("203.0.113.0/24\n"),
            _ => ok("# globex\n198.51.100.7\n"),
        });
        assert_eq!(sa.current().unwrap().version, 1);
        assert_eq!(partners_of(&sa, "203.0.113.9"), [0]);
        assert_eq!(partners_of(&sa, "192.0.2.1"), [0], "static cidrs stay");
        assert_eq!(partners_of(&sa, "198.51.100.7"), [1]);
        // b loads it on its next look, without fetching.
        assert_eq!(sb.for_request(&b, &mut cb).unwrap().version, 1);
        assert_eq!(partners_of(&sb, "198.51.100.7"), [1]);
        assert!(b.calls.borrow().is_empty());
        assert_eq!(*b.versions.borrow(), [1]);

        // Not due yet: nothing fetched.
        a.now.set(a.now.get() + 30_000);
        sa.on_tick(&a, &mut ca);
        assert!(a.calls.borrow().is_empty());

        // Refresh with a changed list: version 2, everywhere.
        a.now.set(a.now.get() + 30_000);
        sa.on_tick(&a, &mut ca);
        answer(&mut sa, &a, &mut ca, |path| match path {
            "/acme.txt" => ok("203.0.113.0/24\n"),
            _ => ok("198.51.100.0/24\n"),
        });
        assert_eq!(sa.current().unwrap().version, 2);
        sb.on_tick(&b, &mut cb);
        assert_eq!(sb.current().unwrap().version, 2);
        assert_eq!(partners_of(&sb, "198.51.100.200"), [1]);

        // Every kind of bad fetch keeps version 2.
        let bad: Vec<(&str, Result<FetchResponse, HostError>)> = vec![
            (
                "http_status",
                Ok(FetchResponse {
                    status: Some(503),
                    ..ok("x").unwrap()
                }),
            ),
            (
                "no_response",
                Ok(FetchResponse {
                    status: None,
                    checksum: None,
                    body: Ok(vec![]),
                }),
            ),
            (
                "too_large",
                Ok(FetchResponse {
                    body: Err(1 << 20),
                    ..ok("x").unwrap()
                }),
            ),
            (
                "checksum_mismatch",
                Ok(FetchResponse {
                    checksum: Some("00".into()),
                    ..ok("10.0.0.0/8\n").unwrap()
                }),
            ),
            (
                "checksum_mismatch",
                Ok(FetchResponse {
                    checksum: None,
                    ..ok("10.0.0.0/8\n").unwrap()
                }),
            ),
            ("parse_error", ok("10.0.0.0/8\nnot-an-ip\n")),
            ("parse_error", ok("")),
            (
                "host_error",
                Err(HostError {
                    call: "proxy_get_buffer_bytes",
                    status: 10,
                }),
            ),
        ];
        for (reason, response) in bad {
            a.now.set(a.now.get() + 60_000);
            sa.on_tick(&a, &mut ca);
            let r = RefCell::new(Some(response));
            answer(&mut sa, &a, &mut ca, |path| match path {
                "/acme.txt" => ok("203.0.113.0/24\n"),
                _ => r.borrow_mut().take().unwrap(),
            });
            assert_eq!(sa.current().unwrap().version, 2, "{reason}");
            assert_eq!(partners_of(&sa, "198.51.100.200"), [1], "{reason}");
            let last = a.logs.borrow().last().cloned().unwrap();
            assert!(
                last.contains("fetch of globex (lists/globex.txt) failed"),
                "{last}"
            );
            assert!(
                last.contains("keeping its last good list (version 2 in force)"),
                "{last}"
            );
            let n = counts(&mut ca, &mut ids);
            let name = format!("portcullis.check.partner_lists.decision.fetch_failed.reason.{reason}.source.globex");
            assert_eq!(n.get(&name), Some(&1), "{reason}: {n:?}");
        }
        // A body over max_bytes that the glue did read is refused too.
        a.now.set(a.now.get() + 60_000);
        sa.on_tick(&a, &mut ca);
        answer(&mut sa, &a, &mut ca, |path| match path {
            "/acme.txt" => ok(&"203.0.113.0/24\n".repeat(5)),
            _ => ok("198.51.100.0/24\n"),
        });
        assert_eq!(sa.current().unwrap().version, 2);

        let n = counts(&mut ca, &mut ids);
        let m = |d: &str, r: &str, s: &str| {
            n.get(&format!(
                "portcullis.check.partner_lists.decision.{d}.reason.{r}.source.{s}"
            ))
            .copied()
        };
        assert_eq!(
            m("published", "new_version", "shared_data"),
            None,
            "flushed before"
        );
        assert_eq!(m("fetch_failed", "too_large", "acme"), Some(1));
        assert_eq!(m("fetched", "unchanged", "globex"), Some(1));
    }

    #[test]
    fn unchanged_lists_publish_no_new_version_and_counts_add_up() {
        let p = plan(CFG);
        let shared = Shared::default();
        let a = FakeVm::new(&shared);
        let mut s = ListState::new(p.partner_lists().unwrap().clone());
        let mut c = Counters::default();
        let mut ids = Vec::new();
        for _ in 0..3 {
            s.on_tick(&a, &mut c);
            answer(&mut s, &a, &mut c, |path| {
                ok(if path == "/acme.txt" {
                    "10.0.0.0/8"
                } else {
                    "11.0.0.0/8"
                })
            });
            a.now.set(a.now.get() + 60_000);
        }
        assert_eq!(s.current().unwrap().version, 1);
        let n = counts(&mut c, &mut ids);
        let m = |d: &str, r: &str, s: &str| {
            n.get(&format!(
                "portcullis.check.partner_lists.decision.{d}.reason.{r}.source.{s}"
            ))
            .copied()
        };
        assert_eq!(m("fetched", "changed", "acme"), Some(1));
        assert_eq!(m("fetched", "unchanged", "acme"), Some(2));
        assert_eq!(m("fetched", "unchanged", "globex"), Some(2));
        assert_eq!(m("published", "new_version", "shared_data"), Some(1));
    }

    #[test]
    fn a_list_that_never_arrived_blocks_publication() {
        let p = plan(CFG);
        let shared = Shared::default();
        let a = FakeVm::new(&shared);
        let mut s = ListState::new(p.partner_lists().unwrap().clone());
        let mut c = Counters::default();
        s.on_tick(&a, &mut c);
        answer(&mut s, &a, &mut c, |path| {
            if path == "/acme.txt" {
                ok("10.0.0.0/8")
            } else {
                Ok(FetchResponse {
                    status: Some(404),
                    checksum: None,
                    body: Ok(vec![]),
                })
            }
        });
        assert!(s.current().is_none(), "published without globex's list");
        assert!(a
            .logs
            .borrow()
            .last()
            .unwrap()
            .contains("no list in force yet"));
        // With nothing in force, the retry comes after a poll interval, not a refresh.
        a.now.set(a.now.get() + 999);
        s.on_tick(&a, &mut c);
        assert!(a.calls.borrow().is_empty());
        a.now.set(a.now.get() + 1);
        s.on_tick(&a, &mut c);
        answer(&mut s, &a, &mut c, |_| ok("10.0.0.0/8"));
        assert_eq!(s.current().unwrap().version, 1);
    }

    #[test]
    fn the_lease_moves_when_its_holder_stops_and_a_corrupt_table_is_refused() {
        let p = plan(CFG);
        let lists = p.partner_lists().unwrap().clone();
        let shared = Shared::default();
        let (a, b) = (FakeVm::new(&shared), FakeVm::new(&shared));
        let (mut sa, mut sb) = (ListState::new(lists.clone()), ListState::new(lists));
        let mut c = Counters::default();
        sa.on_tick(&a, &mut c);
        answer(&mut sa, &a, &mut c, |_| ok("10.0.0.0/8"));
        sb.on_tick(&b, &mut c);
        assert_eq!(sb.current().unwrap().version, 1);
        // a stops; b takes over once the lease lapsed (refresh + timeout + 2 polls).
        b.now.set(b.now.get() + 60_000 + 1_000 + 1_000);
        sb.on_tick(&b, &mut c);
        assert!(b.calls.borrow().is_empty(), "lease taken before it lapsed");
        b.now.set(b.now.get() + 1_000);
        sb.on_tick(&b, &mut c);
        // The same lists: no new version.
        answer(&mut sb, &b, &mut c, |_| ok("10.0.0.0/8"));
        assert_eq!(sb.current().unwrap().version, 1);

        // A corrupted table under a new version is refused; version 1 stays in force.
        let key = format!("{}.table", p.partner_lists().unwrap().key());
        let mut blob = shared.data.borrow()[&key].0.clone();
        let last = blob.len() - 1;
        blob[last] ^= 0xff;
        blob[4] = 9; // version 9
        shared.data.borrow_mut().insert(key, (blob, 999));
        shared.data.borrow_mut().insert(
            format!("{}.version", p.partner_lists().unwrap().key()),
            (9u64.to_le_bytes().to_vec(), 1000),
        );
        sa.on_tick(&a, &mut c);
        assert_eq!(sa.current().unwrap().version, 1);
        let log = a.logs.borrow().last().cloned().unwrap();
        assert!(
            log.contains("published version 9 refused: checksum mismatch; keeping version 1"),
            "{log}"
        );
    }

    #[test]
    fn bundle_lists_and_their_errors() {
        let cfg = r#"{"partners": [{"name": "acme"}, {"name": "globex"}],
          "ip_allowlist": {"client_ip": {"source": "peer"}},
          "partner_lists": {"cluster": "lists", "authority": "l", "bundle_path": "/bundle.json"}}"#;
        let p = plan(cfg);
        let l = p.partner_lists().unwrap();
        let src = &l.sources()[0];
        let got = l
            .parse_list(
                src,
                br#"{"partners":{"globex":["198.51.100.0/24"],"acme":["::1"]}}"#,
            )
            .unwrap();
        assert_eq!(got.len(), 2);
        let e = l
            .parse_list(src, br#"{"partners":{"acme":["1.2.3.4","1.2.3.4/40"]}}"#)
            .unwrap_err();
        assert!(e.to_string().starts_with(
            r#"/partners/acme/1: "1.2.3.4/40" is not a CIDR (prefix length 40 > 32)"#
        ));
        let e = l
            .parse_list(src, br#"{"partners":{"initech":[]}}"#)
            .unwrap_err();
        assert_eq!(e.reason(), "unknown_partner");
        let e = l.parse_list(src, br#"{"partner":{}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `partner`"), "{e}");
    }

    /// A table holding `cidr` for partner 0.
    fn fetched(cidr: &str) -> IpTable {
        let mut b = IpTableBuilder::default();
        b.insert(cidr.parse().unwrap(), 0);
        b.build()
    }

    #[test]
    fn before_the_first_lists_static_cidrs_decide_and_the_rest_fails_closed() {
        use crate::engine::{IpDenyReason, IpOutcome};
        use crate::request::StaticRequest;
        let cfg = |until: &str| {
            format!(
                r#"{{"partners": [{{"name": "acme", "cidrs": ["192.0.2.0/24"]}}],
                  "ip_allowlist": {{"client_ip": {{"source": "peer"}}}},
                  "partner_lists": {{"cluster": "lists", "authority": "l",
                    "paths": {{"acme": "/acme.txt"}}, "until_loaded": "{until}"}}}}"#
            )
        };
        let listed = StaticRequest::new("GET", "h", "/", "203.0.113.9:1");
        let static_ = StaticRequest::new("GET", "h", "/", "192.0.2.1:1");
        let p = plan(&cfg("deny"));
        let d = p.evaluate_with_lists(&listed, None);
        assert_eq!(d.ip, IpOutcome::Denied(IpDenyReason::ListsNotLoaded));
        assert_eq!(d.denial.unwrap().reason, "partner_lists_not_loaded");
        let r = p.denial_reply(&d.denial.unwrap(), None);
        assert_eq!(
            r.body,
            br#"{"check":"ip_allowlist","reason":"partner_lists_not_loaded"}"#
        );
        assert!(p.evaluate_with_lists(&static_, None).allowed());
        let t = fetched("203.0.113.0/24");
        let d = p.evaluate_with_lists(&listed, Some(&t));
        assert_eq!((d.allowed(), d.partner), (true, Some("acme")));
        // The fetched table replaces the static one (which it includes when compiled).
        assert!(!p.evaluate_with_lists(&static_, Some(&t)).allowed());
        // An address in no list, once loaded: the usual reason.
        let d = p.evaluate_with_lists(&StaticRequest::new("GET", "h", "/", "10.0.0.1:1"), Some(&t));
        assert_eq!(d.denial.unwrap().reason, "ip_not_allowed");

        let p = plan(&cfg("allow"));
        let d = p.evaluate_with_lists(&listed, None);
        assert!(d.allowed());
        assert!(d.ip_dry_run);
        assert_eq!(d.ip, IpOutcome::Denied(IpDenyReason::ListsNotLoaded));
    }

    #[test]
    fn authorization_on_partners_fails_closed_before_the_first_lists() {
        use crate::request::StaticRequest;
        let cfg = r#"{"partners": [{"name": "acme"}],
          "authorization": {"policies": [
            {"name": "deny-acme", "spec": {"action": "DENY", "rules": [{"from": [{"source": {"partners": ["acme"]}}]}]}}]},
          "partner_lists": {"cluster": "lists", "authority": "l", "paths": {"acme": "/acme.txt"}}}"#;
        let p = plan(cfg);
        let r = StaticRequest::new("GET", "h", "/", "203.0.113.9:1");
        let d = p.evaluate_with_lists(&r, None);
        let den = d.denial.unwrap();
        assert_eq!(
            (den.check.as_str(), den.reason),
            ("authorization", "partner_lists_not_loaded")
        );
        let t = fetched("203.0.113.0/24");
        assert_eq!(
            p.evaluate_with_lists(&r, Some(&t)).denial.unwrap().reason,
            "denied_by_policy"
        );
        let other = StaticRequest::new("GET", "h", "/", "10.0.0.1:1");
        assert!(p.evaluate_with_lists(&other, Some(&t)).allowed());
    }

    #[test]
    fn bad_settings_name_their_pointer() {
        let e = |lists: &str| {
            Plan::parse(
                format!(
                    r#"{{"partners":[{{"name":"acme"}}],"ip_allowlist":{{"client_ip":{{"source":"peer"}}}},"partner_lists":{lists}}}"#
                )
                .as_bytes(),
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            e(r#"{"cluster":"c","authority":"a"}"#),
            r#"/partner_lists: nothing to fetch: set "bundle_path" or "paths""#
        );
        assert_eq!(
            e(r#"{"cluster":"c","authority":"a","paths":{"initech":"/x"}}"#),
            r#"/partner_lists/paths/initech: "initech" is not the name of a partner in /partners"#
        );
        assert!(e(r#"{"cluster":"c","authority":"a","bundle_path":"x"}"#)
            .starts_with(r#"/partner_lists/bundle_path: "x" is not a request path"#));
        assert!(
            e(r#"{"cluster":"c","authority":"a","bundle_path":"/x","timeout_ms":60000}"#)
                .starts_with("/partner_lists/timeout_ms: 60000 is not below")
        );
        assert!(e(r#"{"cluster":"","authority":"a","bundle_path":"/x"}"#)
            .starts_with("/partner_lists/cluster: is empty"));
        assert!(
            e(r#"{"cluster":"c","authority":"a","bundle_path":"/x","until_loaded":"maybe"}"#)
                .starts_with("/partner_lists/until_loaded: unknown variant `maybe`")
        );
        assert!(
            e(r#"{"cluster":"c","authority":"a","bundle_path":"/x","max_bytes":0}"#)
                .starts_with("/partner_lists/max_bytes: must be greater than 0")
        );
        // With lists, partners need no static cidrs.
        assert!(Plan::parse(
            br#"{"partners":[{"name":"acme"}],"ip_allowlist":{"client_ip":{"source":"peer"}},
              "partner_lists":{"cluster":"c","authority":"a","bundle_path":"/b"}}"#
        )
        .is_ok());
    }
}
