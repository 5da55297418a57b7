//! A strict parser for `x-forwarded-client-cert` (Envoy's XFCC, authz.md §3.2).
//!
//! `elem ("," elem)*`, `elem = pair (";" pair)*`, `pair = key "=" value`, where a value is
//! either `"…"` (with `\"` and `\\` escapes; `,` `;` `=` allowed inside) or a run without
//! `,` `;` `"`. Keys (case-insensitive): `By`, `Hash`, `Cert`, `Chain`, `Subject`, `URI`,
//! `DNS`. Anything else (unknown key, unterminated quote, stray characters after a quote,
//! a bad `Hash`) is an error: a header we cannot read exactly is not an identity.
//!
//! Which element: every hop appends one, so the LAST element is the one written by the
//! hop nearest to the gateway, i.e. the trusted one; earlier elements may come from the
//! client. Parsing validates once and keeps slices; values are unescaped only if they
//! hold an escape.

pub use crate::error::XfccError;
use std::borrow::Cow;

/// The most pairs one element may hold (By, Hash, Subject, and a SAN per `URI=`/`DNS=`).
/// More is refused: it bounds the work per request (each principal probe is one lookup
/// per SAN) and no real certificate gets near it.
pub const MAX_PAIRS: usize = 256;

const KEYS: [&str; 7] = ["by", "hash", "cert", "chain", "subject", "uri", "dns"];

/// One validated XFCC element (one hop's view of its client certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XfccElement<'a> {
    raw: &'a str,
}

/// Scans one pair starting at `s`; returns (key, raw value incl. quotes, rest after the
/// separator, separator) where separator is `;`, `,` or end (`\0`).
fn scan_pair(s: &str) -> Result<(&str, &str, &str, u8), XfccError> {
    let eq = s.find('=').ok_or(XfccError::MalformedPair)?;
    let key = s.get(..eq).ok_or(XfccError::MalformedPair)?;
    if key.is_empty() || key.contains([',', ';', '"']) {
        return Err(XfccError::MalformedPair);
    }
    if !KEYS.iter().any(|k| k.eq_ignore_ascii_case(key)) {
        return Err(XfccError::UnknownKey);
    }
    let rest = s.get(eq + 1..).ok_or(XfccError::MalformedPair)?;
    let bytes = rest.as_bytes();
    let end_of_value = if bytes.first() == Some(&b'"') {
        let mut i = 1;
        loop {
            match bytes.get(i) {
                None => return Err(XfccError::UnterminatedQuote),
                // Any escaped character is skipped (a quoted RFC 2253 subject keeps its
                // own `\,` escapes); only `\"` is undone by `unquote`.
                Some(b'\\') if bytes.get(i + 1).is_some() => i += 2,
                Some(b'"') => break i + 1,
                Some(_) => i += 1,
            }
        }
    } else {
        let n = bytes
            .iter()
            .position(|&b| b == b';' || b == b',')
            .unwrap_or(bytes.len());
        if bytes
            .get(..n)
            .is_some_and(|v| v.contains(&b'"') || v.contains(&b'='))
        {
            // `=` unquoted would make `a=b=c` ambiguous; Envoy quotes such values.
            return Err(XfccError::MalformedPair);
        }
        n
    };
    let value = rest.get(..end_of_value).ok_or(XfccError::MalformedPair)?;
    match bytes.get(end_of_value) {
        None => Ok((key, value, "", 0)),
        Some(&sep @ (b';' | b',')) => {
            Ok((key, value, rest.get(end_of_value + 1..).unwrap_or(""), sep))
        }
        Some(_) => Err(XfccError::TrailingGarbage),
    }
}

fn unquote(v: &str) -> Cow<'_, str> {
    let Some(inner) = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) else {
        return Cow::Borrowed(v);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    if !inner.contains("\\\"") {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('"') => out.push('"'),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Validates every element of every `x-forwarded-client-cert` value and returns the last
/// element, or `None` when there is no header.
pub fn last_element<'a, I>(values: I) -> Result<Option<XfccElement<'a>>, XfccError>
where
    I: IntoIterator<Item = &'a str>,
{
    Ok(elements(values)?.0)
}

/// Like [`last_element`], but refuses a header with more than one element.
pub fn single_element<'a, I>(values: I) -> Result<Option<XfccElement<'a>>, XfccError>
where
    I: IntoIterator<Item = &'a str>,
{
    match elements(values)? {
        (_, n) if n > 1 => Err(XfccError::MultipleElements),
        (e, _) => Ok(e),
    }
}

/// The last element and the number of elements.
fn elements<'a, I>(values: I) -> Result<(Option<XfccElement<'a>>, usize), XfccError>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut count = 0usize;
    let mut last = None;
    for v in values {
        let mut s = v.trim_matches(' ');
        let mut start = s;
        let mut pairs = 0usize;
        count += 1;
        loop {
            if s.is_empty() || s.starts_with([',', ';']) {
                return Err(XfccError::EmptyElement);
            }
            pairs += 1;
            if pairs > MAX_PAIRS {
                return Err(XfccError::TooManyPairs);
            }
            let (key, value, rest, sep) = scan_pair(s)?;
            if key.eq_ignore_ascii_case("hash") {
                let h = unquote(value);
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(XfccError::BadHash);
                }
            }
            match sep {
                b';' => s = rest,
                b',' => {
                    // Only the last element is kept; earlier ones are only validated.
                    count += 1;
                    pairs = 0;
                    s = rest;
                    start = rest;
                    if s.is_empty() {
                        return Err(XfccError::EmptyElement);
                    }
                }
                _ => {
                    last = Some(XfccElement { raw: start });
                    break;
                }
            }
        }
    }
    Ok((last, count))
}

impl<'a> XfccElement<'a> {
    /// The element's pairs (key as written, value unquoted/unescaped).
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, Cow<'a, str>)> + 'a {
        let mut s = self.raw;
        std::iter::from_fn(move || {
            if s.is_empty() {
                return None;
            }
            // Validated already; a failure here only ends the iteration.
            let (k, v, rest, _) = scan_pair(s).ok()?;
            s = rest;
            Some((k, unquote(v)))
        })
    }

    /// Values of `key` (case-insensitive), skipping empty ones (`URI=` means "none").
    pub fn values(&self, key: &'static str) -> impl Iterator<Item = Cow<'a, str>> + 'a {
        self.pairs()
            .filter(move |(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty())
            .map(|(_, v)| v)
    }

    /// The element as received.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Reads the element once (at most [`MAX_PAIRS`] pairs, checked when it was found):
    /// later questions are answered from the parsed pairs, not by scanning again.
    pub fn parse(&self) -> XfccIdentity<'a> {
        let mut pairs = Vec::with_capacity(self.raw.bytes().filter(|&b| b == b';').count() + 1);
        for (k, v) in self.pairs().take(MAX_PAIRS) {
            if let Some(key) = Key::of(k) {
                pairs.push((key, v));
            }
        }
        XfccIdentity { pairs }
    }
}

/// An XFCC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `By`
    By,
    /// `Hash`
    Hash,
    /// `Cert`
    Cert,
    /// `Chain`
    Chain,
    /// `Subject`
    Subject,
    /// `URI`
    Uri,
    /// `DNS`
    Dns,
}

impl Key {
    fn of(k: &str) -> Option<Key> {
        const ALL: [(&str, Key); 7] = [
            ("by", Key::By),
            ("hash", Key::Hash),
            ("cert", Key::Cert),
            ("chain", Key::Chain),
            ("subject", Key::Subject),
            ("uri", Key::Uri),
            ("dns", Key::Dns),
        ];
        ALL.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|&(_, key)| key)
    }
}

/// A parsed element: its pairs in order, values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XfccIdentity<'a> {
    pairs: Vec<(Key, Cow<'a, str>)>,
}

impl XfccIdentity<'_> {
    /// Non-empty values of `key`, in order (`URI=` means "none").
    pub fn values(&self, key: Key) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(k, v)| *k == key && !v.is_empty())
            .map(|(_, v)| &**v)
    }

    /// The first `Subject` value (possibly empty).
    pub fn subject(&self) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| *k == Key::Subject)
            .map(|(_, v)| &**v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "3e6c8e1f0c5b2b8a2f3d7c9a1b0e4d6f8a2c4e6b8d0f1a3c5e7b9d1f3a5c7e9b";

    fn last(v: &str) -> Result<Option<String>, XfccError> {
        last_element([v]).map(|e| e.map(|e| e.as_str().to_owned()))
    }

    #[test]
    fn envoy_sanitize_set_element_parses() {
        let v = format!(
            r#"By=spiffe://cluster.local/ns/istio-system/sa/gw;Hash={H};Subject="CN=sleep,O=Acme\, Inc.";URI=spiffe://cluster.local/ns/default/sa/sleep;URI=spiffe://b/ns/x/sa/y;DNS=sleep.example.com"#
        );
        let e = last_element([v.as_str()]).unwrap().unwrap();
        let uris: Vec<_> = e.values("uri").collect();
        assert_eq!(
            uris,
            [
                "spiffe://cluster.local/ns/default/sa/sleep",
                "spiffe://b/ns/x/sa/y"
            ]
        );
        assert_eq!(
            e.values("subject").next().unwrap(),
            r"CN=sleep,O=Acme\, Inc."
        );
        assert_eq!(e.values("DNS").collect::<Vec<_>>(), ["sleep.example.com"]);
        assert_eq!(e.values("hash").next().unwrap(), H);
    }

    #[test]
    fn the_last_element_is_the_trusted_one() {
        let v = format!("URI=spiffe://evil/ns/a/sa/b;Hash={H},By=spiffe://lb;Hash={H};URI=spiffe://good/ns/a/sa/b");
        let e = last_element([v.as_str()]).unwrap().unwrap();
        assert_eq!(
            e.values("uri").collect::<Vec<_>>(),
            ["spiffe://good/ns/a/sa/b"]
        );
        // Across header lines too.
        let e = last_element(["URI=spiffe://first", "URI=spiffe://second"])
            .unwrap()
            .unwrap();
        assert_eq!(e.values("uri").collect::<Vec<_>>(), ["spiffe://second"]);
    }

    #[test]
    fn a_comma_in_an_unescaped_uri_san_is_a_second_element() {
        // What Envoy 1.40 writes for a client SAN `https://p.example/x,URI=spiffe://…/root`
        // (found by tests/tests/differential_authz.rs): with `single_element` it is refused.
        let v = format!("Hash={H};Subject=\"CN=x\";URI=https://p.example/x,URI=spiffe://cluster.local/ns/admin/sa/root");
        assert_eq!(
            single_element([v.as_str()]),
            Err(XfccError::MultipleElements)
        );
        assert_eq!(
            single_element(["URI=a", "URI=b"]),
            Err(XfccError::MultipleElements)
        );
        let one = format!("Hash={H};URI=spiffe://a/ns/b/sa/c");
        assert!(single_element([one.as_str()]).unwrap().is_some());
        assert_eq!(single_element(std::iter::empty::<&str>()), Ok(None));
    }

    #[test]
    fn quotes_and_escapes() {
        let e = last_element([r#"Subject="CN=a \"quoted\" name,O=x;y=z";URI="""#])
            .unwrap()
            .unwrap();
        assert_eq!(
            e.values("subject").next().unwrap(),
            r#"CN=a "quoted" name,O=x;y=z"#
        );
        assert_eq!(e.values("uri").count(), 0, "URI=\"\" means no URI SAN");
        // RFC 2253 escapes inside the quoted subject pass through untouched.
        let e = last_element([r#"Subject="CN=a\,b\\";URI=x"#])
            .unwrap()
            .unwrap();
        assert_eq!(e.values("subject").next().unwrap(), r"CN=a\,b\\");
        assert_eq!(e.values("uri").collect::<Vec<_>>(), ["x"]);
        // A quoted value may hold the element separator.
        let e = last_element([r#"Subject="CN=a,O=b",URI=spiffe://x"#])
            .unwrap()
            .unwrap();
        assert_eq!(e.as_str(), "URI=spiffe://x");
    }

    #[test]
    fn strict_errors() {
        assert_eq!(last(r#"Subject="CN=a"#), Err(XfccError::UnterminatedQuote));
        assert_eq!(
            last(r#"Subject="CN=a"x;URI=y"#),
            Err(XfccError::TrailingGarbage)
        );
        assert_eq!(last("Foo=bar"), Err(XfccError::UnknownKey));
        assert_eq!(last("URI"), Err(XfccError::MalformedPair));
        assert_eq!(last("=x"), Err(XfccError::MalformedPair));
        assert_eq!(last("URI=a,"), Err(XfccError::EmptyElement));
        assert_eq!(last("URI=a,,URI=b"), Err(XfccError::EmptyElement));
        assert_eq!(last(""), Err(XfccError::EmptyElement));
        assert_eq!(last("Hash=abc"), Err(XfccError::BadHash));
        assert_eq!(last("URI=a=b"), Err(XfccError::MalformedPair));
        assert_eq!(last(r#"Subject="a\""#), Err(XfccError::UnterminatedQuote));
        assert_eq!(last_element(std::iter::empty()), Ok(None));
    }

    #[test]
    fn a_bad_earlier_element_spoils_the_header() {
        // The client wrote the first element; we refuse to guess where it ends.
        assert_eq!(
            last(r#"URI="x,URI=spiffe://good"#),
            Err(XfccError::UnterminatedQuote)
        );
    }

    #[test]
    fn pairs_are_capped_per_element() {
        let element = |n: usize| -> String {
            let uris: Vec<String> = (0..n).map(|i| format!("URI=spiffe://x/sa/{i}")).collect();
            uris.join(";")
        };
        let at_cap = element(MAX_PAIRS);
        let e = last_element([at_cap.as_str()]).unwrap().unwrap();
        let id = e.parse();
        assert_eq!(id.values(Key::Uri).count(), MAX_PAIRS);
        assert_eq!(id.values(Key::Uri).last(), Some("spiffe://x/sa/255"));
        let over = element(MAX_PAIRS + 1);
        assert_eq!(last_element([over.as_str()]), Err(XfccError::TooManyPairs));
        // Earlier elements are capped too (they are validated, and cost the same).
        let chain = format!("{over},By=spiffe://gw");
        assert_eq!(last_element([chain.as_str()]), Err(XfccError::TooManyPairs));
        // The count restarts per element.
        let chain = format!("{at_cap},{at_cap}");
        assert!(last_element([chain.as_str()]).is_ok());
    }

    #[test]
    fn the_parsed_element_answers_like_the_raw_one() {
        let v = format!(
            r#"By=spiffe://gw;Hash={H};Subject="CN=a,O=b";URI=;URI=spiffe://a;DNS=x.example;uri=spiffe://b"#
        );
        let e = last_element([v.as_str()]).unwrap().unwrap();
        let id = e.parse();
        for (key, name) in [
            (Key::Uri, "uri"),
            (Key::Dns, "dns"),
            (Key::By, "by"),
            (Key::Hash, "hash"),
        ] {
            let raw: Vec<String> = e.values(name).map(|c| c.into_owned()).collect();
            let parsed: Vec<&str> = id.values(key).collect();
            assert_eq!(parsed, raw, "{name}");
        }
        assert_eq!(id.subject(), Some("CN=a,O=b"));
    }
}
