//! The filter's configuration as Istio hands it over (a `WasmPlugin`'s `pluginConfig`, as
//! JSON): spec types only, parsed with serde (unknown fields are errors: a typo must never
//! switch protection off). [`crate::engine::Plan::compile`] turns them into the plan.
//!
//! Every error names the JSON pointer of the offending value and why, e.g.
//! `/partners/2/cidrs/17: "10.0.0.0/33" is not a CIDR (prefix length 33 > 32)`.

pub mod authorization;

pub use crate::check::Mode;
pub use crate::error::ConfigError;
pub use crate::uri::{HostPattern, PathPrefix};
use ipnet::IpNet;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Parses the JSON into the configuration's typed form without compiling it.
pub fn parse_spec(json: &[u8]) -> Result<ConfigSpec, ConfigError> {
    let trimmed = json.iter().position(|b| !b.is_ascii_whitespace());
    if trimmed.is_none() {
        // Istio passes no configuration for an empty pluginConfig.
        return Err(ConfigError::new(
            "",
            "the configuration is empty: set the WasmPlugin's pluginConfig",
        ));
    }
    if trimmed.and_then(|k| json.get(k)) == Some(&b'[') {
        // serde reads a struct from an array too (fields by position): `[]` would be an
        // empty, valid configuration.
        return Err(ConfigError::new(
            "",
            "the configuration is a JSON array: it must be an object (the WasmPlugin's pluginConfig)",
        ));
    }
    parse_json(json)
}

/// Deserializes JSON; an error names the JSON pointer of the offending value.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(json: &[u8]) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let pointer = to_pointer(e.path());
        let inner = e.into_inner();
        let mut msg = inner.to_string();
        // serde_json appends " at line L column C"; keep it, but in parentheses.
        if inner.line() > 0 {
            let suffix = format!(" at line {} column {}", inner.line(), inner.column());
            if let Some(stripped) = msg.strip_suffix(&suffix) {
                msg = format!(
                    "{stripped} (line {}, column {})",
                    inner.line(),
                    inner.column()
                );
            }
        }
        ConfigError::new(pointer, msg)
    })?;
    // Anything after the object is an error, not ignored: `{...} {...}` must not drop the
    // second half (found by the `config_parse` fuzz target: `{}` and NUL bytes parsed).
    de.end().map_err(|e| {
        ConfigError::new(
            "",
            format!(
                "unexpected text after the configuration object (line {}, column {}): \
                 one JSON object expected",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(value)
}

fn to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        if matches!(seg, Segment::Unknown) {
            // serde_json names no key or index here (e.g. after a trailing comma): the
            // pointer stops at the last known value rather than showing `?`.
            break;
        }
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The whole configuration (the `pluginConfig` object).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Partners: their networks and what they may reach.
    #[serde(default)]
    pub partners: Vec<PartnerSpec>,
    /// The partner IP allow-list check; absent = no IP check.
    #[serde(default)]
    pub ip_allowlist: Option<IpAllowlistSpec>,
    /// The response sent when a request is denied.
    #[serde(default)]
    pub denial: DenialSpec,
    /// On an internal error (a host call failing), allow the request instead of denying it.
    #[serde(default)]
    pub fail_open: bool,
    /// Principal / path authorization policies (Istio AuthorizationPolicy specs); absent =
    /// no authorization check. See [`authorization::AuthorizationSpec`].
    #[serde(default)]
    pub authorization: Option<authorization::AuthorizationSpec>,
    /// How the counters reach Envoy.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// The WAF (SecLang rules, the OWASP CRS embedded at build time); absent = no WAF. See
    /// [`crate::waf::WafSpec`].
    #[serde(default)]
    pub waf: Option<crate::waf::WafSpec>,
    /// Partner CIDR lists fetched at run time from a cluster; absent = only `cidrs`. See
    /// [`PartnerListsSpec`].
    #[serde(default)]
    pub partner_lists: Option<PartnerListsSpec>,
}

/// Counter delivery. Each `proxy_increment_metric` is a host call (3–6 µs under V8), so by
/// default a worker's counts are summed in the filter and handed to Envoy once per
/// `flush_interval_ms` (on a timer tick): no metric host call on the request path, and
/// counters at most that much behind. `0` increments on every request.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSpec {
    /// Milliseconds between flushes; default 1000, 0 = every request.
    #[serde(default = "default_flush_interval_ms")]
    pub flush_interval_ms: u32,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        MetricsSpec {
            flush_interval_ms: default_flush_interval_ms(),
        }
    }
}

fn default_flush_interval_ms() -> u32 {
    1000
}

/// One partner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSpec {
    /// Unique name, used in logs, metrics and the upstream partner header.
    pub name: PartnerName,
    /// Networks: CIDRs (IPv4, IPv6) or bare addresses.
    #[serde(default)]
    pub cidrs: Vec<Cidr>,
    /// Hosts (authorities) the partner may reach; empty = any.
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Path prefixes the partner may reach; empty = any.
    #[serde(default)]
    pub path_prefixes: Vec<PathPrefix>,
}

/// Which traffic the allow-list guards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every request must come from a partner network.
    #[default]
    All,
    /// Only requests to `protected_routes`; everything else is public.
    Routes,
}

/// The IP allow-list check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpAllowlistSpec {
    /// `enforce` (default) or `dry_run`.
    #[serde(default)]
    pub mode: Mode,
    /// Where the client IP comes from.
    pub client_ip: ClientIpSpec,
    /// `all` (default) or `routes`.
    #[serde(default)]
    pub scope: Scope,
    /// With `scope: routes`: the routes the allow-list guards.
    #[serde(default)]
    pub protected_routes: Option<Vec<RouteSpec>>,
    /// Request header carrying the matched partner upstream; removed from incoming requests.
    #[serde(default = "default_partner_header")]
    pub partner_header: HeaderName,
}

fn default_partner_header() -> HeaderName {
    HeaderName("x-portcullis-partner".into())
}

/// Where the client IP comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIpSpec {
    /// `peer` (Envoy's `source.address`) or `x_forwarded_for`.
    pub source: ClientIpSource,
    /// With `x_forwarded_for`: how many entries at the right end were written by proxies we
    /// trust (Envoy's `xff_num_trusted_hops`, counting Envoy's own append).
    #[serde(default)]
    pub trusted_hops: Option<u32>,
}

/// Client IP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientIpSource {
    /// Envoy's `source.address` (XFF-derived already at a gateway with `numTrustedProxies`).
    Peer,
    /// The `x-forwarded-for` header with `trusted_hops`.
    XForwardedFor,
}

/// Hosts and path prefixes; both empty = everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Hosts; empty = any.
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Path prefixes; empty = any.
    #[serde(default)]
    pub path_prefixes: Vec<PathPrefix>,
}

/// The denial response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenialSpec {
    /// HTTP status, default 403.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Fixed body; default a JSON object `{"reason": ..., "request_id": ...}`.
    #[serde(default)]
    pub body: Option<String>,
    /// When set, a response header with this name carries the reason (and policy/rule).
    #[serde(default)]
    pub reason_header: Option<HeaderName>,
}

impl Default for DenialSpec {
    fn default() -> Self {
        DenialSpec {
            status: default_status(),
            body: None,
            reason_header: None,
        }
    }
}

fn default_status() -> u16 {
    403
}

/// A CIDR or a bare address (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl std::str::FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<IpNet>() {
            return Ok(Cidr(n));
        }
        if let Ok(a) = t.parse::<IpAddr>() {
            return Ok(Cidr(IpNet::from(a)));
        }
        let why = match t.split_once('/') {
            Some((addr, len)) => match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
                (Err(_), _) => format!("{addr:?} is not an IP address"),
                (Ok(IpAddr::V4(_)), Ok(l)) => format!("prefix length {l} > 32"),
                (Ok(IpAddr::V6(_)), Ok(l)) => format!("prefix length {l} > 128"),
                (Ok(_), Err(_)) => format!("prefix length {len:?} is not a number"),
            },
            None => "not an IP address".to_string(),
        };
        Err(format!("{s:?} is not a CIDR ({why})"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A partner name: non-empty, `[A-Za-z0-9._-]` (it appears in metric names and headers).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartnerName(pub String);

impl<'de> Deserialize<'de> for PartnerName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty()
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(de::Error::custom(format!(
                "{s:?} is not a valid partner name (use letters, digits, '.', '_', '-')"
            )));
        }
        Ok(PartnerName(s))
    }
}

/// An HTTP header name (lower-cased; RFC 9110 token characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(pub String);

impl<'de> Deserialize<'de> for HeaderName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if s.is_empty() || !s.bytes().all(token) {
            return Err(de::Error::custom(format!(
                "{s:?} is not a valid header name"
            )));
        }
        Ok(HeaderName(s.to_ascii_lowercase()))
    }
}

/// `partner_lists` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerListsSpec {
    /// The Envoy cluster serving the lists (Istio: `outbound|<port>||<host>`).
    pub cluster: String,
    /// The `:authority` of the fetches.
    pub authority: String,
    /// Path of one JSON bundle with every partner's list (`{"partners": {"<name>": [CIDR,
    /// ...]}}`).
    #[serde(default)]
    pub bundle_path: Option<String>,
    /// Path of each partner's list (text: one CIDR or address per line, `#` comments).
    #[serde(default)]
    pub paths: BTreeMap<String, String>,
    /// Milliseconds between fetches (default 60000).
    #[serde(default = "default_refresh")]
    pub refresh_interval_ms: u32,
    /// Timeout of one fetch in milliseconds (default 5000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Largest body accepted, in bytes (default 16 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u32,
    /// Milliseconds between each worker's checks for a newer table and for the lease
    /// (default 1000): how long a worker may decide on the previous version.
    #[serde(default = "default_poll")]
    pub poll_interval_ms: u32,
    /// Until the first lists are loaded: `deny` (default) requests that depend on them, or
    /// `allow` them.
    #[serde(default)]
    pub until_loaded: UntilLoaded,
    /// When set, each response must carry this header with the hex SHA-256 of its body.
    #[serde(default)]
    pub checksum_header: Option<HeaderName>,
}

fn default_refresh() -> u32 {
    60_000
}
fn default_timeout() -> u32 {
    5_000
}
fn default_max_bytes() -> u32 {
    16 << 20
}
fn default_poll() -> u32 {
    1_000
}

/// What happens to requests that depend on the lists before the first ones are loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UntilLoaded {
    /// Deny them (`partner_lists_not_loaded`): fail closed.
    #[default]
    Deny,
    /// Let them through (counted and logged as a dry-run denial).
    Allow,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        parse_spec(json.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn bad_cidr_names_its_pointer() {
        let e = err(
            r#"{"partners":[{"name":"a","cidrs":["10.0.0.0/8"]},{"name":"b","cidrs":["1.2.3.4","10.0.0.0/33"]}]}"#,
        );
        assert!(
            e.starts_with(
                r#"/partners/1/cidrs/1: "10.0.0.0/33" is not a CIDR (prefix length 33 > 32)"#
            ),
            "{e}"
        );
        let e = err(r#"{"partners":[{"name":"a","cidrs":["10.0.0/8"]}]}"#);
        assert!(
            e.starts_with(
                r#"/partners/0/cidrs/0: "10.0.0/8" is not a CIDR ("10.0.0" is not an IP address)"#
            ),
            "{e}"
        );
    }

    #[test]
    fn text_after_the_object_is_an_error() {
        // Found by the `config_parse` fuzz target: `{}` then NUL bytes was a valid config.
        assert_eq!(
            err("{}\0\0\0"),
            "/: unexpected text after the configuration object (line 1, column 3): one JSON object expected"
        );
        // Two objects: the second (the allow-list here) must not be dropped silently.
        let e = err(r#"{"partners": []} {"ip_allowlist": {"client_ip": {"source": "peer"}}}"#);
        assert!(
            e.starts_with("/: unexpected text after the configuration object (line 1, column 18)"),
            "{e}"
        );
        assert!(
            parse_spec(b"{}\n\t ").is_ok(),
            "trailing whitespace is fine"
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        let e = err(r#"{"partners":[],"ip_alowlist":{}}"#);
        assert!(e.contains("unknown field `ip_alowlist`"), "{e}");
        let e = err(r#"{"partners":[{"name":"a","cidr":["1.2.3.4"]}]}"#);
        assert!(e.starts_with("/partners/0"), "{e}");
        assert!(e.contains("unknown field `cidr`"), "{e}");
    }

    #[test]
    fn empty_and_malformed_documents() {
        assert!(err("   ").contains("the configuration is empty"));
        assert!(err("{").contains("EOF"));
        assert!(err("5").contains("expected struct ConfigSpec"));
    }

    #[test]
    fn bad_names_headers_hosts_paths() {
        assert!(err(r#"{"partners":[{"name":"a b"}]}"#).starts_with("/partners/0/name: "));
        assert!(
            err(r#"{"ip_allowlist":{"client_ip":{"source":"peer"},"partner_header":"x y"}}"#)
                .starts_with("/ip_allowlist/partner_header: \"x y\" is not a valid header name")
        );
        assert!(err(r#"{"partners":[{"name":"a","hosts":["a*.com"]}]}"#)
            .starts_with("/partners/0/hosts/0: "));
        assert!(
            err(r#"{"partners":[{"name":"a","path_prefixes":["api"]}]}"#)
                .starts_with("/partners/0/path_prefixes/0: \"api\" is not a path prefix")
        );
        assert!(err(r#"{"ip_allowlist":{"client_ip":{"source":"header"}}}"#)
            .starts_with("/ip_allowlist/client_ip/source: unknown variant `header`"));
    }
}
