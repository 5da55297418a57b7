//! AuthorizationPolicy specs → matcher trees, with Istio's validation and its
//! translation quirks (authz.md §1.3, §1.4, §8). Every error names a JSON pointer.

use super::matcher::{Matcher, StrMatch, StrMatcher, SubjectMatch};
use super::spec::{
    Action, AuthorizationPolicy, ConditionSpec, OperationSpec, RuleSpec, SourceSpec, SubjectSpec,
};
use crate::config::{Cidr, PartnerSpec};
use crate::error::ConfigError;
use crate::iplist::{IpTableBuilder, PartnerId};
use regex::Regex;

type R<T> = Result<T, ConfigError>;

fn err<T>(ptr: &str, msg: impl Into<String>) -> R<T> {
    Err(ConfigError::new(ptr, msg))
}

/// What the compiled rules will ask of a request (so the glue fetches only that).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Needs {
    pub(crate) identity: bool,
    pub(crate) source_address: bool,
    pub(crate) partners: bool,
    /// `ipBlocks` / `source.ip` occur (the direct peer is resolved before evaluation).
    pub(crate) direct_peer: bool,
}

/// Compiles one policy's rules; shared state across policies.
pub(crate) struct Compiler<'a> {
    pub(crate) partners: &'a [PartnerSpec],
    /// The partners whose networks also come from fetched lists (`partner_lists`).
    pub(crate) listed: Option<&'a crate::lists::ListPlan>,
    /// `[trust_domain] + aliases`, deduplicated.
    pub(crate) trust_domains: Vec<String>,
    /// The policy's namespace (short `serviceAccounts`).
    pub(crate) namespace: String,
    pub(crate) needs: Needs,
}

/// Istio's pattern language: `*` presence, `*x` suffix, `x*` prefix, else exact.
fn istio(v: &str, presence: StrMatch, ignore_case: bool) -> StrMatcher {
    let m = if v == "*" {
        presence
    } else if let Some(s) = v.strip_prefix('*') {
        StrMatch::Suffix(s.into())
    } else if let Some(p) = v.strip_suffix('*') {
        StrMatch::Prefix(p.into())
    } else {
        StrMatch::Exact(v.into())
    };
    StrMatcher { m, ignore_case }
}

fn full_regex(ptr: &str, re: &str) -> R<Regex> {
    match Regex::new(&format!("^(?:{re})$")) {
        Ok(r) => Ok(r),
        Err(e) => err(ptr, format!("{re:?} is not a valid RE2 regex: {e}")),
    }
}

/// True when `s` holds none of the regex syntax's operators but `.` (nor a newline): as a
/// regex it is literal text, `.` matching any character but a newline. Whitespace, `#`,
/// `&`, `-` and `~` are literal outside a class without the `x` flag, which needs `(`.
fn literal_but_dots(s: &str) -> bool {
    !s.contains(|c: char| "\\+*?()|[]{}^$\n".contains(c))
}

fn regex_matcher(ptr: &str, re: &str) -> R<StrMatcher> {
    Ok(StrMatcher {
        m: StrMatch::Regex(full_regex(ptr, re)?),
        ignore_case: false,
    })
}

/// Envoy's uri_template `*` and `**`: the pchar class. Envoy 1.40 matches `=` and `*` in a
/// `{*}` / `{**}` segment (`/t/a=b`, `/t/a*b` match `/t/{*}`), unlike the older source read
/// for authz.md §1.3 (found by tests/tests/differential_authz.rs).
const PCHAR: &str = r"[a-zA-Z0-9\-._~%!$&'()*+,;:@=]";

/// Istio's `IsValidLiteral` (pkg/config/security): one pchar or more, `*` excluded.
fn istio_literal(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c))
}

/// A `paths` / `notPaths` value with `{` or `}`: validated exactly as Istio's
/// `CheckValidPathTemplate` (same reasons: `{**}` followed by another operator, a brace
/// outside a whole `{*}`/`{**}` segment, an invalid literal segment, incl. an empty one
/// inside), then as Envoy 1.40's `uri_template` parser, which aborts on what Istio lets
/// through because it trims every leading and trailing `/` before checking (`files/{*}`,
/// `//a/{*}`, `/a/{*}//`): refused here, as Envoy cannot load it. The accepted template
/// becomes Envoy's full-match regex: `{*}` one pchar or more, `{**}` zero or more pchars
/// or `/` (so `/a/{**}` matches `/a/` but not `/a`, and literal segments may follow:
/// `/{**}/health` matches `//health` but not `/health`).
fn path_template(ptr: &str, field: &str, t: &str) -> R<StrMatcher> {
    let is_template = t.contains("{*}") || t.contains("{**}");
    let trimmed = t.trim_matches('/');
    let why = |reason: String| {
        err(
            ptr,
            format!("invalid or unsupported path {trimmed}, found in {field}. {reason}"),
        )
    };
    let mut any_seen = false;
    for glob in trimmed.split('/') {
        match glob {
            "{*}" | "{**}" if any_seen => return why("{**} is not the last operator".into()),
            "{*}" => continue,
            "{**}" => {
                any_seen = true;
                continue;
            }
            _ => {}
        }
        if glob.contains(['{', '}']) {
            return why("Contains '{' or '}' beyond a supported path template".into());
        }
        if is_template && !istio_literal(glob) {
            return why(format!(
                "Contains segment {glob} with invalid string literal"
            ));
        }
    }
    // Istio accepts it. Braces without a whole operator segment cannot get here (rejected
    // above), so `t` is a template; Envoy's parser wants one leading `/` and no empty
    // segment except a final one.
    let Some(body) = t.strip_prefix('/') else {
        return err(
            ptr,
            format!("{t:?}: Istio accepts this path template but Envoy 1.40 cannot load it (it must start with '/')"),
        );
    };
    let segs: Vec<&str> = body.split('/').collect();
    let mut re = String::new();
    for (i, seg) in segs.iter().enumerate() {
        re.push('/');
        match *seg {
            "{*}" => {
                re.push_str(PCHAR);
                re.push('+');
            }
            "{**}" => re.push_str(r"[a-zA-Z0-9\-._~%!$&'()*+,;:@=/]*"),
            "" if i + 1 == segs.len() => {}
            "" => {
                return err(
                    ptr,
                    format!("{t:?}: Istio accepts this path template but Envoy 1.40 cannot load it (empty segment)"),
                )
            }
            s => re.push_str(&regex::escape(s)),
        }
    }
    regex_matcher(ptr, &re)
}

fn check_values<'v>(ptr: &str, vals: &'v Option<Vec<String>>) -> R<Option<&'v [String]>> {
    match vals {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => {
            for (i, s) in v.iter().enumerate() {
                if s.is_empty() {
                    return err(&format!("{ptr}/{i}"), "empty value");
                }
            }
            Ok(Some(v))
        }
    }
}

fn cidrs(ptr: &str, vals: &[String]) -> R<crate::iplist::IpTable> {
    // Envoy's RBAC keeps IPv4 and IPv6 apart (`::ffff:a.b.c.d` is not in an IPv4 block):
    // folding them matched what RBAC does not (found by tests/tests/evasion_catalogue.rs).
    let mut b = IpTableBuilder::exact_family();
    for (i, v) in vals.iter().enumerate() {
        match v.parse::<Cidr>() {
            Ok(Cidr(n)) => b.insert(n, 0),
            Err(e) => return err(&format!("{ptr}/{i}"), e),
        }
    }
    Ok(b.build())
}

fn ports(ptr: &str, vals: &[String]) -> R<Matcher> {
    let mut out = Vec::with_capacity(vals.len());
    for (i, v) in vals.iter().enumerate() {
        match v.parse::<u16>() {
            Ok(p) => out.push(p),
            Err(_) => {
                return err(
                    &format!("{ptr}/{i}"),
                    format!("{v:?} is not a port (0-65535)"),
                )
            }
        }
    }
    Ok(Matcher::Port(out.into()))
}

fn or(ms: Vec<Matcher>) -> Matcher {
    if ms.len() == 1 {
        ms.into_iter().next().unwrap_or(Matcher::Any)
    } else {
        Matcher::Or(ms.into())
    }
}

fn and(mut ms: Vec<Matcher>) -> Matcher {
    match ms.len() {
        0 => Matcher::Any,
        1 => ms.into_iter().next().unwrap_or(Matcher::Any),
        _ => {
            // Matchers are pure, so the order is free: cheap tests first, so that a
            // failing method or path spares the certificate and regex work.
            ms.sort_by_key(cost);
            Matcher::And(ms.into())
        }
    }
}

/// A rough per-request cost of evaluating `m`, for ordering `And` children.
fn cost(m: &Matcher) -> u32 {
    let s = |m: &StrMatcher| match m.m {
        StrMatch::Regex(_) => 8,
        StrMatch::SpiffeTail(..) | StrMatch::LineContaining(_) => 1,
        _ => 0,
    };
    match m {
        Matcher::Any => 0,
        Matcher::Method(x) | Matcher::Path(x) | Matcher::Sni(x) => 1 + s(x),
        Matcher::Port(_) => 1,
        Matcher::Host(x) => 2 + s(x),
        Matcher::Header { m, .. } => 3 + s(m),
        Matcher::DirectIp(_) | Matcher::RemoteIp(_) | Matcher::Partners(_) => 4,
        Matcher::Principal(x) | Matcher::DnsSan(x) => 5 + s(x),
        Matcher::CertSha256(_) => 5,
        Matcher::Subject(_) => 10,
        Matcher::Not(m) => cost(m),
        Matcher::And(ms) | Matcher::Or(ms) => ms.iter().map(cost).fold(0, u32::saturating_add),
    }
}

/// What Istio refuses in a `source`, or the filter cannot see (JWT principals).
fn check_source(ptr: &str, s: &SourceSpec) -> R<()> {
    if s.request_principals.is_some() || s.not_request_principals.is_some() {
        let f = if s.request_principals.is_some() {
            "requestPrincipals"
        } else {
            "notRequestPrincipals"
        };
        return err(
            &format!("{ptr}/{f}"),
            "JWT principals are not supported: a wasm filter cannot see jwt_authn results (use an Istio AuthorizationPolicy)",
        );
    }
    let has = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if (has(&s.service_accounts) || has(&s.not_service_accounts))
        && (has(&s.principals)
            || has(&s.not_principals)
            || has(&s.namespaces)
            || has(&s.not_namespaces))
    {
        return err(
            &format!("{ptr}/serviceAccounts"),
            "cannot be combined with principals or namespaces (as in Istio)",
        );
    }
    Ok(())
}

impl Compiler<'_> {
    /// A values/notValues pair: `or(values)` and `not(or(notValues))`, pushed onto `out`.
    fn field<F>(
        &mut self,
        out: &mut Vec<Matcher>,
        base: &str,
        (name, vals): (&str, &Option<Vec<String>>),
        (not_name, not_vals): (&str, &Option<Vec<String>>),
        mut leaf: F,
    ) -> R<()>
    where
        F: FnMut(&mut Self, &str, &[String]) -> R<Matcher>,
    {
        let p = format!("{base}/{name}");
        if let Some(v) = check_values(&p, vals)? {
            out.push(leaf(self, &p, v)?);
        }
        let p = format!("{base}/{not_name}");
        if let Some(v) = check_values(&p, not_vals)? {
            out.push(Matcher::Not(Box::new(leaf(self, &p, v)?)));
        }
        Ok(())
    }

    /// Istio trust-domain aliasing (authz.md §1.4): `td/ns/x/sa/y` with `td` the local
    /// domain, `cluster.local` or an alias becomes one principal per domain.
    fn expand_trust_domains(&self, p: &str) -> Vec<String> {
        let parts: Vec<&str> = p.split('/').collect();
        let td = parts.first().copied().unwrap_or("");
        if parts.len() != 5 || td == "*" {
            return vec![p.to_owned()];
        }
        if td != "cluster.local" && !self.trust_domains.iter().any(|t| t == td) {
            return vec![p.to_owned()];
        }
        let rest = p.get(td.len()..).unwrap_or("");
        self.trust_domains
            .iter()
            .map(|t| format!("{t}{rest}"))
            .collect()
    }

    fn principals(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.identity = true;
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            // An inner `*` (`cluster.local/ns/*/sa/x`) is matched literally, as Istio does:
            // Istio accepts such a policy, so it must load here too (tests/differential_authz).
            for p in self.expand_trust_domains(v) {
                let m = if p == "*" {
                    StrMatcher {
                        m: StrMatch::NonEmpty,
                        ignore_case: false,
                    }
                } else if let Some(s) = p.strip_prefix('*') {
                    // §8: Istio emits `spiffe://.*<x>` without escaping <x>.
                    if literal_but_dots(s) {
                        StrMatcher {
                            m: StrMatch::SpiffeTail(s.into(), s.chars().count()),
                            ignore_case: false,
                        }
                    } else {
                        regex_matcher(&format!("{ptr}/{i}"), &format!("spiffe://.*{s}"))?
                    }
                } else if let Some(s) = p.strip_suffix('*') {
                    StrMatcher {
                        m: StrMatch::Prefix(format!("spiffe://{s}").into()),
                        ignore_case: false,
                    }
                } else {
                    StrMatcher {
                        m: StrMatch::Exact(format!("spiffe://{p}").into()),
                        ignore_case: false,
                    }
                };
                out.push(Matcher::Principal(m));
            }
        }
        Ok(or(out))
    }

    fn namespaces(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.identity = true;
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let literal = format!("/ns/{v}/");
            let m = if literal_but_dots(&literal) && !literal.contains('.') {
                StrMatcher {
                    m: StrMatch::LineContaining(literal.into()),
                    ignore_case: false,
                }
            } else {
                let re = format!(".*/ns/{}/.*", v.replace('*', ".*"));
                regex_matcher(&format!("{ptr}/{i}"), &re)?
            };
            out.push(Matcher::Principal(m));
        }
        Ok(or(out))
    }

    fn service_accounts(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.identity = true;
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let (ns, sa) = match v.split_once('/') {
                Some((ns, sa)) => (ns.to_owned(), sa),
                None => (self.namespace.clone(), v.as_str()),
            };
            if ns.is_empty()
                || sa.is_empty()
                || sa.contains('/')
                || v.contains('*')
                || v.len() > 320
            {
                return err(&p, format!("{v:?} is not \"<namespace>/<service account>\" or \"<service account>\" (no wildcards)"));
            }
            let re = format!(
                "spiffe://[^/]+/ns/{}/sa/{}",
                regex::escape(&ns),
                regex::escape(sa)
            );
            out.push(Matcher::Principal(regex_matcher(&p, &re)?));
        }
        Ok(or(out))
    }

    fn trust_domains_field(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.identity = true;
        let mut out = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            if v.contains(['*', '/']) {
                return err(
                    &format!("{ptr}/{i}"),
                    format!("{v:?}: trust domains take no wildcards or '/'"),
                );
            }
            out.push(Matcher::Principal(StrMatcher {
                m: StrMatch::Prefix(format!("spiffe://{v}/").into()),
                ignore_case: false,
            }));
        }
        Ok(or(out))
    }

    fn direct_ip(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.source_address = true;
        self.needs.direct_peer = true;
        Ok(Matcher::DirectIp(cidrs(ptr, vals)?))
    }

    fn remote_ip(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.source_address = true;
        Ok(Matcher::RemoteIp(cidrs(ptr, vals)?))
    }

    fn partner_ids(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.partners = true;
        self.needs.source_address = true;
        let mut ids: Vec<PartnerId> = Vec::new();
        for (i, v) in vals.iter().enumerate() {
            let Some(id) = self.partners.iter().position(|p| p.name.0 == *v) else {
                return err(
                    &format!("{ptr}/{i}"),
                    format!("{v:?} is not the name of a partner in /partners"),
                );
            };
            let listed = self.listed.is_some_and(|l| l.lists(id as PartnerId));
            if !listed && self.partners.get(id).is_some_and(|p| p.cidrs.is_empty()) {
                return err(
                    &format!("{ptr}/{i}"),
                    format!("partner {v:?} has no \"cidrs\" and no list in /partner_lists: it would never match"),
                );
            }
            ids.push(id as PartnerId);
        }
        Ok(Matcher::Partners(ids.into()))
    }

    fn subjects(&mut self, ptr: &str, vals: &[SubjectSpec]) -> R<Matcher> {
        self.needs.identity = true;
        let mut out = Vec::new();
        for (i, s) in vals.iter().enumerate() {
            let p = format!("{ptr}/{i}");
            let f = |name: &str, v: &Option<String>| -> R<Option<StrMatcher>> {
                match v {
                    None => Ok(None),
                    Some(v) if v.is_empty() => err(&format!("{p}/{name}"), "empty value"),
                    Some(v) => Ok(Some(istio(v, StrMatch::NonEmpty, false))),
                }
            };
            let m = SubjectMatch {
                cn: f("cn", &s.cn)?,
                o: f("o", &s.o)?,
                ou: f("ou", &s.ou)?,
            };
            if m.cn.is_none() && m.o.is_none() && m.ou.is_none() {
                return err(&p, "a subject needs at least one of \"cn\", \"o\", \"ou\"");
            }
            out.push(Matcher::Subject(m));
        }
        Ok(or(out))
    }

    /// A `source`: its fields ANDed. Steps: the combinations Istio refuses, then the
    /// principal fields, the address fields, the certificate fields and `partners`.
    fn source(&mut self, ptr: &str, s: &SourceSpec) -> R<Matcher> {
        check_source(ptr, s)?;
        let mut out = Vec::new();
        self.principal_fields(&mut out, ptr, s)?;
        self.address_fields(&mut out, ptr, s)?;
        self.certificate_fields(&mut out, ptr, s)?;
        self.field(
            &mut out,
            ptr,
            ("partners", &s.partners),
            ("notPartners", &s.not_partners),
            Self::partner_ids,
        )?;
        if out.is_empty() {
            return err(
                ptr,
                "source is empty: set at least one field (omit \"from\" to match any source)",
            );
        }
        Ok(and(out))
    }

    /// `principals`, `namespaces`, `serviceAccounts`, `trustDomains` and their negations.
    fn principal_fields(&mut self, out: &mut Vec<Matcher>, ptr: &str, s: &SourceSpec) -> R<()> {
        self.field(
            out,
            ptr,
            ("principals", &s.principals),
            ("notPrincipals", &s.not_principals),
            Self::principals,
        )?;
        self.field(
            out,
            ptr,
            ("namespaces", &s.namespaces),
            ("notNamespaces", &s.not_namespaces),
            Self::namespaces,
        )?;
        self.field(
            out,
            ptr,
            ("serviceAccounts", &s.service_accounts),
            ("notServiceAccounts", &s.not_service_accounts),
            Self::service_accounts,
        )?;
        self.field(
            out,
            ptr,
            ("trustDomains", &s.trust_domains),
            ("notTrustDomains", &s.not_trust_domains),
            Self::trust_domains_field,
        )
    }

    /// `ipBlocks` (the direct peer) and `remoteIpBlocks` (the client) and their negations.
    fn address_fields(&mut self, out: &mut Vec<Matcher>, ptr: &str, s: &SourceSpec) -> R<()> {
        self.field(
            out,
            ptr,
            ("ipBlocks", &s.ip_blocks),
            ("notIpBlocks", &s.not_ip_blocks),
            Self::direct_ip,
        )?;
        self.field(
            out,
            ptr,
            ("remoteIpBlocks", &s.remote_ip_blocks),
            ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
            Self::remote_ip,
        )
    }

    /// The client certificate's other facts: `dnsSans`, `subjects`, `certSha256`.
    fn certificate_fields(&mut self, out: &mut Vec<Matcher>, ptr: &str, s: &SourceSpec) -> R<()> {
        self.field(
            out,
            ptr,
            ("dnsSans", &s.dns_sans),
            ("notDnsSans", &s.not_dns_sans),
            |c, _, v| {
                c.needs.identity = true;
                Ok(or(v
                    .iter()
                    .map(|x| Matcher::DnsSan(istio(x, StrMatch::NonEmpty, true)))
                    .collect()))
            },
        )?;
        for (name, v, neg) in [
            ("subjects", &s.subjects, false),
            ("notSubjects", &s.not_subjects, true),
        ] {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                let m = self.subjects(&format!("{ptr}/{name}"), v)?;
                out.push(if neg { Matcher::Not(Box::new(m)) } else { m });
            }
        }
        self.field(
            out,
            ptr,
            ("certSha256", &s.cert_sha256),
            ("notCertSha256", &s.not_cert_sha256),
            Self::cert_sha256,
        )
    }

    fn cert_sha256(&mut self, ptr: &str, vals: &[String]) -> R<Matcher> {
        self.needs.identity = true;
        let mut hs = Vec::new();
        for (i, h) in vals.iter().enumerate() {
            let clean: String = h
                .chars()
                .filter(|&c| c != ':')
                .collect::<String>()
                .to_ascii_lowercase();
            if clean.len() != 64 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
                return err(
                    &format!("{ptr}/{i}"),
                    format!("{h:?} is not a SHA-256 fingerprint (64 hex digits)"),
                );
            }
            hs.push(clean.into_boxed_str());
        }
        Ok(Matcher::CertSha256(hs.into()))
    }

    fn operation(&mut self, ptr: &str, o: &OperationSpec) -> R<Matcher> {
        let mut out = Vec::new();
        self.field(
            &mut out,
            ptr,
            ("hosts", &o.hosts),
            ("notHosts", &o.not_hosts),
            |_, _, v| {
                Ok(or(v
                    .iter()
                    .map(|x| Matcher::Host(istio(x, StrMatch::Present, true)))
                    .collect()))
            },
        )?;
        self.field(
            &mut out,
            ptr,
            ("ports", &o.ports),
            ("notPorts", &o.not_ports),
            |_, p, v| ports(p, v),
        )?;
        self.field(
            &mut out,
            ptr,
            ("methods", &o.methods),
            ("notMethods", &o.not_methods),
            |_, _, v| {
                Ok(or(v
                    .iter()
                    .map(|x| Matcher::Method(istio(x, StrMatch::Present, false)))
                    .collect()))
            },
        )?;
        self.field(
            &mut out,
            ptr,
            ("paths", &o.paths),
            ("notPaths", &o.not_paths),
            |_, p, v| {
                let mut ms = Vec::new();
                for (i, x) in v.iter().enumerate() {
                    if x.contains(['{', '}']) {
                        let field = if p.ends_with("/notPaths") {
                            "NotPaths"
                        } else {
                            "Paths"
                        };
                        ms.push(Matcher::Path(path_template(&format!("{p}/{i}"), field, x)?));
                    } else if !x.starts_with(['/', '*']) {
                        // Normalized request paths start with `/`: an Istio exact or prefix
                        // match on anything else never matches (a DENY that never denies).
                        return err(
                            &format!("{p}/{i}"),
                            format!(
                                "{x:?} can never match: request paths start with '/' \
                                 (write \"/{x}\", or \"*{x}\" for a suffix match)"
                            ),
                        );
                    } else {
                        ms.push(Matcher::Path(istio(x, StrMatch::NonEmpty, false)));
                    }
                }
                Ok(or(ms))
            },
        )?;
        self.field(
            &mut out,
            ptr,
            ("pathRegex", &o.path_regex),
            ("notPathRegex", &o.not_path_regex),
            |_, p, v| {
                let mut ms = Vec::new();
                for (i, x) in v.iter().enumerate() {
                    ms.push(Matcher::Path(regex_matcher(&format!("{p}/{i}"), x)?));
                }
                Ok(or(ms))
            },
        )?;
        if out.is_empty() {
            return err(
                ptr,
                "operation is empty: set at least one field (omit \"to\" to match any operation)",
            );
        }
        Ok(and(out))
    }

    fn condition(&mut self, ptr: &str, c: &ConditionSpec) -> R<Matcher> {
        let key = c.key.as_str();
        let kp = format!("{ptr}/key");
        if check_values(&format!("{ptr}/values"), &c.values)?.is_none()
            && check_values(&format!("{ptr}/notValues"), &c.not_values)?.is_none()
        {
            return err(
                ptr,
                format!("condition {key:?} needs \"values\" or \"notValues\""),
            );
        }
        let mut out = Vec::new();
        let vals = ("values", &c.values);
        let nots = ("notValues", &c.not_values);
        if let Some(h) = key
            .strip_prefix("request.headers[")
            .and_then(|r| r.strip_suffix(']'))
        {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:".contains(&b);
            if h.is_empty() || !h.bytes().all(token) {
                return err(&kp, format!("{key:?}: {h:?} is not a header name"));
            }
            let name: Box<str> = h.to_ascii_lowercase().into();
            self.field(&mut out, ptr, vals, nots, |_, _, v| {
                Ok(or(v
                    .iter()
                    .map(|x| Matcher::Header {
                        name: name.clone(),
                        m: istio(x, StrMatch::Present, false),
                    })
                    .collect()))
            })?;
        } else {
            match key {
                "source.ip" => self.field(&mut out, ptr, vals, nots, Self::direct_ip)?,
                "remote.ip" => self.field(&mut out, ptr, vals, nots, Self::remote_ip)?,
                "source.principal" => self.field(&mut out, ptr, vals, nots, Self::principals)?,
                "source.namespace" => self.field(&mut out, ptr, vals, nots, Self::namespaces)?,
                "destination.port" => self.field(&mut out, ptr, vals, nots, |_, p, v| ports(p, v))?,
                "connection.sni" => self.field(&mut out, ptr, vals, nots, |_, _, v| {
                    Ok(or(v.iter().map(|x| Matcher::Sni(istio(x, StrMatch::NonEmpty, false))).collect()))
                })?,
                k if k.starts_with("request.auth.") => {
                    return err(&kp, format!("{k:?} is not supported: a wasm filter cannot see jwt_authn results"))
                }
                k @ ("source.serviceAccount" | "source.trustDomain" | "destination.ip") => {
                    return err(&kp, format!("{k:?} is not supported by portcullis (supported: request.headers[<name>], source.ip, remote.ip, source.principal, source.namespace, destination.port, connection.sni)"))
                }
                k if k.starts_with("experimental.") => {
                    return err(&kp, format!("{k:?} is not supported by portcullis (no filter metadata is visible)"))
                }
                k => {
                    return err(&kp, format!("unknown attribute {k:?} (supported: request.headers[<name>], source.ip, remote.ip, source.principal, source.namespace, destination.port, connection.sni)"))
                }
            }
        }
        Ok(and(out))
    }

    /// One rule → its matcher.
    pub(crate) fn rule(&mut self, ptr: &str, r: &RuleSpec) -> R<Matcher> {
        let mut parts = Vec::new();
        if let Some(from) = &r.from {
            if from.is_empty() {
                return err(
                    &format!("{ptr}/from"),
                    "is empty: omit \"from\" to match any source",
                );
            }
            let mut srcs = Vec::new();
            for (i, f) in from.iter().enumerate() {
                srcs.push(self.source(&format!("{ptr}/from/{i}/source"), &f.source)?);
            }
            parts.push(or(srcs));
        }
        if let Some(to) = &r.to {
            if to.is_empty() {
                return err(
                    &format!("{ptr}/to"),
                    "is empty: omit \"to\" to match any operation",
                );
            }
            let mut ops = Vec::new();
            for (i, t) in to.iter().enumerate() {
                ops.push(self.operation(&format!("{ptr}/to/{i}/operation"), &t.operation)?);
            }
            parts.push(or(ops));
        }
        if let Some(when) = &r.when {
            for (i, c) in when.iter().enumerate() {
                parts.push(self.condition(&format!("{ptr}/when/{i}"), c)?);
            }
        }
        Ok(and(parts))
    }
}

/// Policy-level validation (Istio's `ValidateAuthorizationPolicy`, the parts that apply).
pub(crate) fn check_policy(ptr: &str, spec: &AuthorizationPolicy) -> R<()> {
    if spec.selector.is_some() && (spec.target_refs.is_some() || spec.target_ref.is_some()) {
        return err(
            &format!("{ptr}/selector"),
            "conflicts with \"targetRefs\"/\"targetRef\": set one",
        );
    }
    match spec.action {
        Action::Custom => {
            return err(
                &format!("{ptr}/action"),
                "CUSTOM (ext_authz) is not supported by portcullis",
            )
        }
        _ if spec.provider.is_some() => {
            return err(
                &format!("{ptr}/provider"),
                "is only allowed with \"action\": \"CUSTOM\"",
            )
        }
        Action::Deny if spec.rules.as_ref().is_none_or(|r| r.is_empty()) => return err(
            &format!("{ptr}/rules"),
            "a DENY policy without rules is meaningless (use \"rules\": [{}] to deny everything)",
        ),
        _ => {}
    }
    Ok(())
}
