//! Request-path normalization before matching, in the manner of Envoy's `normalize_path`
//! (RFC 3986 §6.2.2 and §5.2.4), with the knobs Istio exposes and a few stricter ones.
//!
//! The filter never rewrites the forwarded path: this is the path the *matchers* see. Envoy
//! normally normalizes `:path` before any filter runs, so on an Istio gateway this is
//! idempotent; it is what keeps the checks safe when Envoy's normalization is off or
//! weaker (e.g. `%2F` kept, slashes not merged). Already-normal paths are borrowed, not
//! copied: the common case allocates nothing.
//!
//! Steps, in order: drop `?query` and `#fragment`; percent-decode unreserved characters
//! (`%61` → `a`, `%2E` → `.`) and keep other escapes as written (hex case too, as Envoy); apply the escaped-slash policy
//! to `%2F`/`%5C`; turn `\` into `/`; reject `%00`; optionally reject percent-encoded
//! bytes that are not UTF-8 (overlong `%C0%AF`); optionally strip `;params` from each
//! segment; optionally merge `//`; remove `.`/`..` segments.

pub use crate::error::PathError;
use crate::uri::{percent_escape, strip_query};
use std::borrow::Cow;

/// What to do with `%2F` and `%5C` (encoded `/` and `\`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Leave them encoded (Envoy's and Istio's default `KEEP_UNCHANGED`). Then
    /// `/x%2F../admin` is *not* `/admin` to the matchers, yet an upstream that decodes
    /// `%2F` serves `/admin` (authz.md §8).
    Keep,
    /// Deny the request (Envoy's `REJECT_REQUEST`).
    Reject,
    /// Decode them to `/` before dot-segment removal (Istio's `DECODE_AND_MERGE_SLASHES`
    /// without the merge). The default here: stricter than Istio, closes the §8 gap.
    #[default]
    Decode,
}

/// Normalization settings (`authorization.path_normalization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathNormalization {
    /// Merge repeated slashes (`//admin` → `/admin`). Default true (Istio's default is
    /// false; an upstream that merges would otherwise see a path the rules did not).
    pub merge_slashes: bool,
    /// `%2F`/`%5C` handling; default `decode`.
    pub escaped_slashes: EscapedSlashes,
    /// Drop `;params` from every segment (`/admin;x` → `/admin`, `/..;/` → `/../`), as
    /// Java servlet containers do. Default false (Envoy keeps them).
    pub strip_path_parameters: bool,
    /// Deny paths whose percent-encoded bytes are not UTF-8 (overlong `%C0%AF` for `/`).
    /// Default true (Envoy keeps them encoded; an ancient upstream might decode them).
    pub reject_invalid_utf8: bool,
    /// Deny paths in which percent-decoding forms a new escape (`/%6%63` → `/%6c`,
    /// `/%%32%46` → `/%2F`): the matchers would see one path and an upstream that decodes
    /// once more another (found by the `path_normalize` fuzz target: without this the
    /// normalization is not idempotent). Default true; Envoy decodes once and keeps them.
    pub reject_double_encoding: bool,
}

impl Default for PathNormalization {
    fn default() -> Self {
        PathNormalization {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Decode,
            strip_path_parameters: false,
            reject_invalid_utf8: true,
            reject_double_encoding: true,
        }
    }
}

impl PathNormalization {
    /// What Envoy does on a default Istio gateway (`normalize_path`, no merge, `%2F` kept),
    /// never rejecting: used for the IP allow-list's routes when no `authorization` block
    /// sets the policy (so an IP-only config denies nothing new).
    pub const ENVOY: PathNormalization = PathNormalization {
        merge_slashes: false,
        escaped_slashes: EscapedSlashes::Keep,
        strip_path_parameters: false,
        reject_invalid_utf8: false,
        reject_double_encoding: false,
    };
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalizes `raw` (a `:path`, query allowed) for matching.
///
/// ```
/// use portcullis_filter::path::{normalize, PathNormalization};
/// let n = PathNormalization::default();
/// assert_eq!(normalize("/a/./b/../%63?q=1", &n).unwrap(), "/a/c");
/// assert_eq!(normalize("//admin", &n).unwrap(), "/admin");
/// ```
pub fn normalize<'a>(raw: &'a str, opts: &PathNormalization) -> Result<Cow<'a, str>, PathError> {
    let path = strip_query(raw);
    if !needs_work(path, opts) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path, opts)?;
    let mut s = decoded.as_str();
    let stripped;
    if opts.strip_path_parameters {
        stripped = strip_params(s);
        s = &stripped;
    }
    let merged;
    if opts.merge_slashes {
        merged = merge(s);
        s = &merged;
    }
    Ok(Cow::Owned(remove_dot_segments(s)))
}

/// True unless the path is certainly already normal (the borrow fast path).
fn needs_work(path: &str, opts: &PathNormalization) -> bool {
    let b = path.as_bytes();
    if b.iter().any(|&c| c == b'%' || c == b'\\') {
        return true;
    }
    if opts.strip_path_parameters && b.contains(&b';') {
        return true;
    }
    if opts.merge_slashes && path.contains("//") {
        return true;
    }
    path.split('/').any(|seg| seg == "." || seg == "..")
}

fn decode(path: &str, opts: &PathNormalization) -> Result<String, PathError> {
    let b = path.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    // A run of percent-encoded bytes >= 0x80 (decoded, and as written), checked for UTF-8
    // when it ends. Escapes that stay encoded keep their hex case, as Envoy's
    // normalize_path does (found by tests/tests/differential_authz.rs).
    let mut high: Vec<u8> = Vec::new();
    let mut high_raw: Vec<u8> = Vec::new();
    // Where a lone `%` (no escape follows it in the input) landed in `out`: decoding what
    // follows may turn it into an escape (`%6%63` → `%6c`).
    let mut lone_percents: Vec<usize> = Vec::new();
    let flush =
        |high: &mut Vec<u8>, high_raw: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), PathError> {
            if !high.is_empty() {
                if opts.reject_invalid_utf8 && std::str::from_utf8(high).is_err() {
                    return Err(PathError::InvalidUtf8);
                }
                out.extend_from_slice(high_raw);
                high.clear();
                high_raw.clear();
            }
            Ok(())
        };
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let Some(v) = percent_escape(b, i) {
                let raw = b.get(i..i + 3).unwrap_or_default();
                i += 3;
                if v >= 0x80 {
                    high.push(v);
                    high_raw.extend_from_slice(raw);
                    continue;
                }
                flush(&mut high, &mut high_raw, &mut out)?;
                match v {
                    0 => return Err(PathError::NulByte),
                    b'/' | b'\\' => match opts.escaped_slashes {
                        EscapedSlashes::Keep => out.extend_from_slice(raw),
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Decode => out.push(b'/'),
                    },
                    v if unreserved(v) => out.push(v),
                    _ => out.extend_from_slice(raw),
                }
                continue;
            }
            // A lone '%' stays as it is (Envoy keeps malformed escapes).
            flush(&mut high, &mut high_raw, &mut out)?;
            lone_percents.push(out.len());
        }
        flush(&mut high, &mut high_raw, &mut out)?;
        out.push(if c == b'\\' { b'/' } else { c });
        i += 1;
    }
    flush(&mut high, &mut high_raw, &mut out)?;
    if opts.reject_double_encoding
        && lone_percents
            .iter()
            .any(|&at| percent_escape(&out, at).is_some())
    {
        return Err(PathError::DoubleEncoding);
    }
    // Only ASCII was decoded and multi-byte sequences were copied whole or re-escaped.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn strip_params(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, seg) in s.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(seg.split(';').next().unwrap_or(""));
    }
    out
}

fn merge(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_slash = false;
    for c in s.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out
}

/// RFC 3986 §5.2.4 on an absolute path; anything not starting with `/` (`*`) is kept.
fn remove_dot_segments(s: &str) -> String {
    let Some(rest) = s.strip_prefix('/') else {
        return s.to_owned();
    };
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in rest.split('/') {
        trailing = false;
        match seg {
            "." => trailing = true,
            ".." => {
                stack.pop();
                trailing = true;
            }
            s => stack.push(s),
        }
    }
    let mut out = String::with_capacity(s.len());
    out.push('/');
    out.push_str(&stack.join("/"));
    if trailing && !stack.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p, &PathNormalization::default()).map(Cow::into_owned)
    }
    fn envoy(p: &str) -> Result<String, PathError> {
        normalize(p, &PathNormalization::ENVOY).map(Cow::into_owned)
    }

    #[test]
    fn rfc3986_dot_segments_are_removed() {
        assert_eq!(n("/admin/../admin").unwrap(), "/admin");
        assert_eq!(n("/a/b/c/./../../g").unwrap(), "/a/g");
        assert_eq!(n("/admin/.").unwrap(), "/admin/");
        assert_eq!(n("/admin/..").unwrap(), "/");
        assert_eq!(n("/../../admin").unwrap(), "/admin");
        assert_eq!(n("/a/..b/.c").unwrap(), "/a/..b/.c");
    }

    #[test]
    fn unreserved_escapes_are_decoded_once_only() {
        assert_eq!(n("/%61dmin").unwrap(), "/admin");
        assert_eq!(n("/%2e%2E/admin").unwrap(), "/admin");
        // %25 is '%': decoding it is not a license to decode again.
        assert_eq!(n("/%2561dmin").unwrap(), "/%2561dmin");
        // Reserved characters stay encoded exactly as written (hex case kept, as Envoy).
        assert_eq!(n("/a%3fb%20").unwrap(), "/a%3fb%20");
        assert_eq!(n("/a%3Fb").unwrap(), "/a%3Fb");
        assert_eq!(n("/100%").unwrap(), "/100%");
    }

    #[test]
    fn query_and_fragment_are_removed() {
        assert_eq!(n("/admin?x=/../y").unwrap(), "/admin");
        assert_eq!(n("/admin#frag").unwrap(), "/admin");
        assert!(matches!(
            normalize("/a/b?q", &PathNormalization::default()),
            Ok(Cow::Borrowed("/a/b"))
        ));
    }

    #[test]
    fn merge_slashes_is_configurable() {
        assert_eq!(n("//admin///x").unwrap(), "/admin/x");
        assert_eq!(envoy("//admin").unwrap(), "//admin");
    }

    #[test]
    fn escaped_slashes_keep_reject_decode() {
        // authz.md §8: kept, `x%2F..` is one segment and is not dot-removed.
        assert_eq!(envoy("/x%2F../admin").unwrap(), "/x%2F../admin");
        assert_eq!(envoy("/x%2f../admin").unwrap(), "/x%2f../admin");
        assert_eq!(n("/x%2F../admin").unwrap(), "/admin");
        assert_eq!(n("/x%5C../admin").unwrap(), "/admin");
        let reject = PathNormalization {
            escaped_slashes: EscapedSlashes::Reject,
            ..Default::default()
        };
        assert_eq!(
            normalize("/x%2F../admin", &reject),
            Err(PathError::EscapedSlash)
        );
        assert_eq!(normalize("/a%5cb", &reject), Err(PathError::EscapedSlash));
    }

    #[test]
    fn an_escape_formed_by_decoding_is_rejected() {
        // Found by the `path_normalize` fuzz target: `/../%6%63?3?3?q=1` normalized to
        // `/%6c`, which normalizes to `/l`.
        assert_eq!(n("/../%6%63?3?3?q=1"), Err(PathError::DoubleEncoding));
        assert_eq!(n("/%%32%46admin"), Err(PathError::DoubleEncoding));
        assert_eq!(n("/%6%31dmin"), Err(PathError::DoubleEncoding));
        assert_eq!(
            n("/public/%2%65%2%65/admin"),
            Err(PathError::DoubleEncoding)
        );
        // Envoy decodes once and keeps what that forms.
        assert_eq!(envoy("/../%6%63").unwrap(), "/%6c");
        // So does `Decode` without the rejection: the pass that decodes `%2F` runs once, and
        // a `%2f` formed by it stays (the fuzz target's escaped-slash property once missed
        // this). With the default the request is refused.
        let single_pass = PathNormalization {
            reject_double_encoding: false,
            ..Default::default()
        };
        assert_eq!(
            normalize("/.%%32f%3.%2f/q", &single_pass).unwrap(),
            "/.%2f%3./q"
        );
        assert_eq!(n("/.%%32f%3.%2f/q"), Err(PathError::DoubleEncoding));
        // A lone `%` that stays lone is fine, and so is an escape as written.
        assert_eq!(n("/100%/%25").unwrap(), "/100%/%25");
        assert_eq!(n("/%%25").unwrap(), "/%%25");
    }

    #[test]
    fn backslash_is_a_slash() {
        assert_eq!(n("/x\\..\\admin").unwrap(), "/admin");
    }

    #[test]
    fn nul_is_rejected_even_by_envoy_settings() {
        assert_eq!(envoy("/a%00b"), Err(PathError::NulByte));
    }

    #[test]
    fn overlong_utf8_is_never_decoded() {
        assert_eq!(n("/x%c0%af../admin"), Err(PathError::InvalidUtf8));
        assert_eq!(n("/%c0%ae%c0%ae/admin"), Err(PathError::InvalidUtf8));
        assert_eq!(envoy("/x%c0%af../admin").unwrap(), "/x%c0%af../admin");
        // Real UTF-8 stays encoded and is accepted.
        assert_eq!(n("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        assert_eq!(n("/café/./x").unwrap(), "/café/x");
    }

    #[test]
    fn path_parameters_optionally_stripped() {
        assert_eq!(n("/admin;x").unwrap(), "/admin;x");
        let strip = PathNormalization {
            strip_path_parameters: true,
            ..Default::default()
        };
        assert_eq!(normalize("/admin;x", &strip).unwrap(), "/admin");
        assert_eq!(normalize("/public/..;/admin", &strip).unwrap(), "/admin");
    }

    #[test]
    fn case_is_preserved() {
        assert_eq!(n("/ADMIN").unwrap(), "/ADMIN");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for p in ["/a/../b//c/./d", "/%61%2F..%2Fb", "/x/%2e%2E/y/", "/a%20b"] {
            let once = n(p).unwrap();
            assert_eq!(n(&once).unwrap(), once, "{p}");
        }
    }
}
