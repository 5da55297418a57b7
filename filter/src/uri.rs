//! URI pieces every check reads the same way: `host[:port]` authorities, the path without
//! its query, host and path-prefix patterns, and percent-escapes. A leaf: it imports
//! nothing from the crate, so config, path normalization and the checks can all use it.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::borrow::Cow;

/// The path without query and fragment.
///
/// ```
/// assert_eq!(portcullis_filter::uri::strip_query("/a/b?x=1#f"), "/a/b");
/// ```
pub fn strip_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// Splits `host[:port]` / `[v6]:port`. A port that is not a number leaves it in the host.
///
/// ```
/// use portcullis_filter::uri::split_authority;
/// assert_eq!(split_authority("api.example.com:8443"), ("api.example.com", Some(8443)));
/// assert_eq!(split_authority("[2001:db8::1]:443"), ("2001:db8::1", Some(443)));
/// assert_eq!(split_authority("a:http"), ("a:http", None));
/// ```
pub fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((h, tail)) = rest.split_once(']') {
            let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
            return (h, port);
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h, Some(port)),
            Err(_) => (authority, None),
        },
        _ => (authority, None),
    }
}

/// The value of one hex digit.
fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%XY` escape starting at `at` stands for; `None` when `b[at..]` does not
/// start with `%` and two hex digits (a lone or malformed `%`).
///
/// ```
/// use portcullis_filter::uri::percent_escape;
/// assert_eq!(percent_escape(b"a%2Fb", 1), Some(b'/'));
/// assert_eq!(percent_escape(b"a%2", 1), None);
/// assert_eq!(percent_escape(b"a%zz", 1), None);
/// ```
pub fn percent_escape(b: &[u8], at: usize) -> Option<u8> {
    if b.get(at) != Some(&b'%') {
        return None;
    }
    let h = b.get(at + 1).copied().and_then(hex_digit)?;
    let l = b.get(at + 2).copied().and_then(hex_digit)?;
    Some(h << 4 | l)
}

/// Decodes every `%XY` escape; a malformed `%` stays as written. Borrows when there is
/// no `%` at all.
///
/// ```
/// use portcullis_filter::uri::percent_decode;
/// assert_eq!(&*percent_decode(b"a%20b%zz%"), b"a b%zz%");
/// ```
pub fn percent_decode(b: &[u8]) -> Cow<'_, [u8]> {
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match percent_escape(b, i) {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(c);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// A host pattern: `api.example.com` (any port), `api.example.com:8443` (that port),
/// `*.example.com` (any subdomain), `*` (any). Case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host without the leading `*` when `suffix`.
    host: String,
    /// Required port, if the pattern names one.
    port: Option<u16>,
    /// `*.example.com`: `host` holds `.example.com`.
    suffix: bool,
    /// `*`.
    any: bool,
}

impl HostPattern {
    /// Does `authority` (`host[:port]`, as in `:authority`) match?
    ///
    /// ```
    /// use portcullis_filter::uri::HostPattern;
    /// let p: HostPattern = "API.example.com".parse().unwrap();
    /// assert!(p.matches("api.example.com:443"));
    /// assert!(p.matches("api.EXAMPLE.com"));
    /// assert!(!p.matches("evil.com"));
    /// ```
    pub fn matches(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let (host, port) = split_authority(authority);
        if let Some(want) = self.port {
            if port != Some(want) {
                return false;
            }
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if self.suffix {
            host.len() > self.host.len()
                && host.is_char_boundary(host.len() - self.host.len())
                && host[host.len() - self.host.len()..].eq_ignore_ascii_case(&self.host)
        } else {
            host.eq_ignore_ascii_case(&self.host)
        }
    }
}

impl std::str::FromStr for HostPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(HostPattern {
                host: String::new(),
                port: None,
                suffix: false,
                any: true,
            });
        }
        let (body, suffix) = match s.strip_prefix('*') {
            Some(rest) if rest.starts_with('.') => (rest, true),
            Some(_) => {
                return Err(format!(
                    "{s:?}: a wildcard must be a whole label (\"*.example.com\")"
                ))
            }
            None => (s, false),
        };
        let (host, port) = split_authority(body);
        if body.contains(':') && port.is_none() && !body.starts_with('[') {
            return Err(format!("{s:?} is not a host[:port] (bad port)"));
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        if host.is_empty() || host.contains('*') || host.contains('/') || host.contains(' ') {
            return Err(format!("{s:?} is not a host name"));
        }
        Ok(HostPattern {
            host: host.to_ascii_lowercase(),
            port,
            suffix,
            any: false,
        })
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A path prefix, compared case-sensitively with the request path (query removed).
/// Must start with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix(pub String);

impl PathPrefix {
    /// Does `path` (no query) start with this prefix?
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(&self.0)
    }
}

impl<'de> Deserialize<'de> for PathPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') {
            return Err(de::Error::custom(format!(
                "{s:?} is not a path prefix (it must start with '/')"
            )));
        }
        Ok(PathPrefix(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        let p = |s: &str| s.parse::<HostPattern>().unwrap();
        assert!(p("*.example.com").matches("a.b.example.com:443"));
        assert!(!p("*.example.com").matches("example.com"));
        assert!(!p("*.example.com").matches("evilexample.com"));
        assert!(p("example.com:8443").matches("EXAMPLE.com:8443"));
        assert!(!p("example.com:8443").matches("example.com"));
        assert!(!p("example.com:8443").matches("example.com:443"));
        assert!(p("example.com").matches("example.com."));
        assert!(p("[2001:db8::1]").matches("[2001:db8::1]:443"));
        assert!(p("*").matches(""));
        assert!("exa mple.com".parse::<HostPattern>().is_err());
        assert!("example.com:http".parse::<HostPattern>().is_err());
    }

    #[test]
    fn percent_escapes_every_digit_case() {
        for v in 0..=255u8 {
            for s in [format!("%{v:02x}"), format!("%{v:02X}")] {
                assert_eq!(percent_escape(s.as_bytes(), 0), Some(v), "{s}");
                assert_eq!(&*percent_decode(s.as_bytes()), [v], "{s}");
            }
        }
        for bad in ["%", "%4", "%g0", "%0g", "x%41"] {
            assert_eq!(percent_escape(bad.as_bytes(), 0), None, "{bad}");
        }
        assert_eq!(&*percent_decode(b"%4%41"), b"%4A");
    }

    #[test]
    fn query_and_fragment_are_dropped() {
        assert_eq!(strip_query("/a?b#c"), "/a");
        assert_eq!(strip_query("/a#b?c"), "/a");
        assert_eq!(strip_query("/a"), "/a");
        assert_eq!(strip_query("?"), "");
    }
}
