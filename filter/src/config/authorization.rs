//! The `authorization` configuration block, as parsed. Policies are Istio
//! `AuthorizationPolicy` specs pasted as JSON (camelCase, unknown fields rejected), plus a
//! few clearly named non-Istio fields. [`crate::authz::Authz`] compiles them into matchers.
//!
//! ```json
//! "authorization": {
//!   "trust_domain": "cluster.local",
//!   "trust_domain_aliases": ["east.example.com"],
//!   "identity": {"source": "connection"},
//!   "direct_peer": "source_address",
//!   "host_match": "authority",
//!   "path_normalization": {"merge_slashes": true, "escaped_slashes": "decode"},
//!   "policies": [
//!     {"name": "sleep", "namespace": "istio-system", "dry_run": false,
//!      "spec": {"action": "ALLOW", "rules": [{
//!         "from": [{"source": {"principals": ["cluster.local/ns/default/sa/sleep"]}}],
//!         "to": [{"operation": {"methods": ["GET"], "paths": ["/status*"]}}]}]}}
//!   ]
//! }
//! ```

use crate::path::PathNormalization;
use serde::Deserialize;

/// `authorization`: client-certificate principal and path authorization.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationSpec {
    /// The policies; evaluated DENY → ALLOW → AUDIT as Istio does.
    pub policies: Vec<PolicySpec>,
    /// The mesh trust domain (Istio `meshConfig.trustDomain`); default `cluster.local`.
    #[serde(default)]
    pub trust_domain: Option<String>,
    /// Other trust domains accepted as this one (Istio `trustDomainAliases`): a principal
    /// `<td>/ns/<ns>/sa/<sa>` naming `cluster.local`, the trust domain or an alias
    /// matches all of them.
    #[serde(default)]
    pub trust_domain_aliases: Vec<String>,
    /// Where the client identity comes from; default the connection.
    #[serde(default)]
    pub identity: IdentitySpec,
    /// What `ipBlocks` / `source.ip` test; default `source_address`.
    #[serde(default)]
    pub direct_peer: DirectPeer,
    /// With `direct_peer: last_forwarded_for`: the gateway's own addresses (IPs or CIDRs,
    /// e.g. the pod network), i.e. what Envoy may append to `x-forwarded-for` in place of a
    /// TCP peer of exactly `127.0.0.1` or `::1` (its node address). A last entry in these
    /// may stand for a loopback peer; a last entry outside them is the peer. Unset: every
    /// last entry may stand for a loopback peer (see [`DirectPeer`]).
    #[serde(default)]
    pub envoy_local_addresses: Option<Vec<String>>,
    /// How `hosts` compare with `:authority`; default `authority` (Istio: exactly as received).
    #[serde(default)]
    pub host_match: HostMatch,
    /// Path normalization before matching (also used by the IP allow-list's routes).
    #[serde(default)]
    pub path_normalization: PathNormalization,
}

/// Where the client identity (certificate facts) comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySpec {
    /// `connection` (the gateway terminates mTLS) or `xfcc` (TLS ends at a trusted hop
    /// in front of the gateway, which sends `x-forwarded-client-cert`).
    #[serde(default)]
    pub source: IdentitySource,
    /// With `connection`: keep an incoming `x-forwarded-client-cert` instead of asking
    /// the glue to strip it (set when the gateway's own `SANITIZE_SET` writes it and
    /// upstreams need it). Default false: the header is stripped, as it is untrusted.
    #[serde(default)]
    pub keep_xfcc: bool,
    /// With `xfcc`: the `By` URI SANs of the hops whose element is trusted. When set, the
    /// last element must carry one of them, else the request has no identity.
    #[serde(default)]
    pub xfcc_trusted_by: Vec<String>,
    /// With `xfcc`: accept several elements (a chain of `APPEND_FORWARD` hops) and trust
    /// the last. Default false: exactly one element, as the gateway's own `SANITIZE_SET`
    /// or a single trusted hop writes; anything else denies (`xfcc_multiple_elements`).
    /// Envoy does not escape `URI=` values, so in a chain a client certificate whose SAN
    /// holds `,URI=spiffe://…` can pose as another identity: enable only with
    /// `xfcc_trusted_by` and a front proxy that escapes SANs.
    #[serde(default)]
    pub xfcc_chain: bool,
}

/// Identity source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// `RequestView::peer_certificate` (Envoy's connection properties).
    #[default]
    Connection,
    /// The last element of `x-forwarded-client-cert`.
    Xfcc,
}

/// What `ipBlocks` / `source.ip` see. A wasm filter cannot read Envoy's
/// `directRemoteAddress` (authz.md §3.4), so it is derived, the same way in both modes
/// where Envoy makes that possible, and failing closed where it does not:
///
/// * `source.address` with a non-zero port is the TCP peer itself (Envoy took no client
///   address from `x-forwarded-for`; such addresses get port 0): used as is, loopback
///   peers included. Not so behind PROXY protocol, which replaces the peer address.
/// * `source.address` with port 0 came from `x-forwarded-for` (`numTrustedProxies` ≥ 1).
///   `source_address` then does not know the peer; `last_forwarded_for` takes the last
///   `x-forwarded-for` entry, which Envoy appends with the TCP peer, except for a peer of
///   exactly `127.0.0.1` or `::1`, for which it appends its own node address. So a last
///   entry that may be that address (see `envoy_local_addresses`) leaves the peer one of
///   {entry, `127.0.0.1`, `::1`}: the request is decided with each, and denied
///   (`direct_peer_uncertain`) when they disagree.
/// * A peer the filter does not know: the `ipBlocks`/`source.ip` tests are unknown; a
///   DENY rule that could match denies, an ALLOW rule that needs them does not allow
///   (`direct_peer_unknown`; `client_ip_unknown` with its detail when `source.address` or
///   the last `x-forwarded-for` entry is missing or not an address). Never more permissive
///   than Envoy RBAC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectPeer {
    /// `source.address` only: exact when the gateway has neither PROXY protocol nor
    /// `numTrustedProxies` (the default topology). Never spoofable by the client.
    #[default]
    SourceAddress,
    /// Also the last `x-forwarded-for` entry, which Envoy appends with the TCP peer when
    /// `use_remote_address` is on and `skip_xff_append` off (Istio's gateway default).
    /// Opt-in: with `skip_xff_append` the last entry is client-controlled.
    LastForwardedFor,
}

/// How `hosts` compare with `:authority`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMatch {
    /// The whole `:authority`, port included (Istio): `example.com` does not match
    /// `example.com:443`.
    #[default]
    Authority,
    /// The host without its port: `example.com` matches `example.com:8443` too.
    IgnorePort,
}

/// One policy: metadata plus the AuthorizationPolicy `spec`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`; default `istio-system`. Used in rule names and to complete
    /// short `serviceAccounts` entries.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Istio's `istio.io/dry-run` annotation: evaluated, recorded, never enforced.
    #[serde(default)]
    pub dry_run: bool,
    /// The AuthorizationPolicy spec as-is.
    pub spec: AuthorizationPolicy,
}

/// `AuthorizationPolicy.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    /// Accepted and ignored: the filter applies to the gateway it is installed on.
    #[serde(default)]
    pub selector: Option<serde_json::Value>,
    /// Accepted and ignored, like `selector` (which it excludes).
    #[serde(default)]
    pub target_refs: Option<Vec<serde_json::Value>>,
    /// Deprecated singular form of `targetRefs`.
    #[serde(default)]
    pub target_ref: Option<serde_json::Value>,
    /// `ALLOW` (default), `DENY`, `AUDIT`. `CUSTOM` is rejected (no ext_authz here).
    #[serde(default)]
    pub action: Action,
    /// Only with `CUSTOM`.
    #[serde(default)]
    pub provider: Option<serde_json::Value>,
    /// Rules; absent = matches nothing (`spec: {}` is "allow nothing").
    #[serde(default)]
    pub rules: Option<Vec<RuleSpec>>,
}

/// Policy action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    /// Allow matching requests; deny the rest when any ALLOW policy exists.
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Record matching requests.
    Audit,
    /// ext_authz: not supported.
    Custom,
}

/// A rule: any `from` AND any `to` AND every `when`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Sources; absent = any.
    #[serde(default)]
    pub from: Option<Vec<FromSpec>>,
    /// Operations; absent = any.
    #[serde(default)]
    pub to: Option<Vec<ToSpec>>,
    /// Conditions; all must hold.
    #[serde(default)]
    pub when: Option<Vec<ConditionSpec>>,
}

/// `from[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FromSpec {
    /// The source.
    pub source: SourceSpec,
}

/// `to[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToSpec {
    /// The operation.
    pub operation: OperationSpec,
}

/// `from[].source`: Istio fields, then portcullis extensions. All fields AND; values OR.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSpec {
    /// `<trust-domain>/ns/<ns>/sa/<sa>` patterns, `spiffe://` implied.
    pub principals: Option<Vec<String>>,
    /// Negation of `principals` (true on plaintext).
    pub not_principals: Option<Vec<String>>,
    /// JWT principals: rejected (no `jwt_authn` metadata is visible to a wasm filter).
    pub request_principals: Option<Vec<String>>,
    /// Rejected like `requestPrincipals`.
    pub not_request_principals: Option<Vec<String>>,
    /// Namespaces of the peer's SPIFFE identity.
    pub namespaces: Option<Vec<String>>,
    /// Negation of `namespaces`.
    pub not_namespaces: Option<Vec<String>>,
    /// `ns/sa` or `sa` (the policy's namespace).
    pub service_accounts: Option<Vec<String>>,
    /// Negation of `serviceAccounts`.
    pub not_service_accounts: Option<Vec<String>>,
    /// SPIFFE trust domains.
    pub trust_domains: Option<Vec<String>>,
    /// Negation of `trustDomains`.
    pub not_trust_domains: Option<Vec<String>>,
    /// CIDRs of the direct peer (see `direct_peer`).
    pub ip_blocks: Option<Vec<String>>,
    /// Negation of `ipBlocks`.
    pub not_ip_blocks: Option<Vec<String>>,
    /// CIDRs of the client (`source.address`).
    pub remote_ip_blocks: Option<Vec<String>>,
    /// Negation of `remoteIpBlocks`.
    pub not_remote_ip_blocks: Option<Vec<String>>,
    /// Extension: DNS SANs of the client certificate (Istio patterns, case-insensitive).
    pub dns_sans: Option<Vec<String>>,
    /// Extension: negation of `dnsSans`.
    pub not_dns_sans: Option<Vec<String>>,
    /// Extension: subject DN fields; an entry matches when all its fields do.
    pub subjects: Option<Vec<SubjectSpec>>,
    /// Extension: negation of `subjects`.
    pub not_subjects: Option<Vec<SubjectSpec>>,
    /// Extension: SHA-256 of the client certificate (hex, colons allowed).
    pub cert_sha256: Option<Vec<String>>,
    /// Extension: negation of `certSha256`.
    pub not_cert_sha256: Option<Vec<String>>,
    /// Extension: names of `partners[]`; the client IP (the IP allow-list's, else
    /// `source.address`) must be in one of their `cidrs`.
    pub partners: Option<Vec<String>>,
    /// Extension: negation of `partners`.
    pub not_partners: Option<Vec<String>>,
}

/// A subject DN pattern (extension); each field uses Istio's pattern language, case-sensitive.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectSpec {
    /// Common name.
    pub cn: Option<String>,
    /// Organization (any `O` value).
    pub o: Option<String>,
    /// Organizational unit (any `OU` value).
    pub ou: Option<String>,
}

/// `to[].operation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OperationSpec {
    /// `:authority` patterns, case-insensitive.
    pub hosts: Option<Vec<String>>,
    /// Negation of `hosts`.
    pub not_hosts: Option<Vec<String>>,
    /// Local ports.
    pub ports: Option<Vec<String>>,
    /// Negation of `ports`.
    pub not_ports: Option<Vec<String>>,
    /// `:method` patterns.
    pub methods: Option<Vec<String>>,
    /// Negation of `methods`.
    pub not_methods: Option<Vec<String>>,
    /// Normalized-path patterns or `{*}`/`{**}` templates.
    pub paths: Option<Vec<String>>,
    /// Negation of `paths`.
    pub not_paths: Option<Vec<String>>,
    /// Extension: RE2 regexes, matched against the whole normalized path.
    pub path_regex: Option<Vec<String>>,
    /// Extension: negation of `pathRegex`.
    pub not_path_regex: Option<Vec<String>>,
}

/// `when[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConditionSpec {
    /// The attribute.
    pub key: String,
    /// Values (OR).
    pub values: Option<Vec<String>>,
    /// Negated values.
    pub not_values: Option<Vec<String>>,
}
