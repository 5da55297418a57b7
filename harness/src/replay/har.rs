//! HAR 1.2 (browser exports): `log.entries[].request`.
//!
//! Unknown fields are ignored (browsers add many `_private` ones). The response
//! status becomes the expected status only when asked (`expect_status`).

use base64::Engine as _;
use serde::Deserialize;

use super::de::json_message;
use super::error::{json_pointer, TrafficError};
use super::model::{Expectation, Locator, ReplayRequest, SourceLoc};

#[derive(Debug, Deserialize)]
struct Har {
    log: Log,
}

#[derive(Debug, Deserialize)]
struct Log {
    entries: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    request: Request,
    #[serde(default)]
    response: Option<Response>,
    #[serde(default, rename = "serverIPAddress")]
    server_ip_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    method: String,
    url: String,
    #[serde(default)]
    http_version: Option<String>,
    #[serde(default)]
    headers: Vec<NameValue>,
    #[serde(default)]
    post_data: Option<PostData>,
}

#[derive(Debug, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostData {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Response {
    status: i64,
}

/// Options for reading HAR.
#[derive(Debug, Clone, Copy, Default)]
pub struct HarOptions {
    /// Use each entry's `response.status` as the expected status.
    pub expect_status: bool,
}

/// Parses a HAR 1.2 document.
pub fn parse(file: &str, text: &str, opts: HarOptions) -> Result<Vec<ReplayRequest>, TrafficError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let har: Har = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        TrafficError::pointer(
            file,
            &json_pointer(e.path()),
            format!(
                "{} (line {} column {})",
                json_message(inner),
                inner.line(),
                inner.column()
            ),
        )
    })?;
    har.log
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| convert(file, i, e, opts))
        .collect()
}

/// Splits an absolute URL into (scheme, authority, path-and-query), keeping
/// the path bytes exactly as written (no normalisation: payloads matter).
fn split_url(url: &str) -> Result<(String, String, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL (no scheme://)"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme {scheme:?} is neither http nor https"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let mut path = &rest[end..];
    if let Some(h) = path.find('#') {
        path = &path[..h];
    }
    let path = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    // Drop userinfo, never sent in Host.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    Ok((scheme, authority.to_string(), path))
}

fn convert(
    file: &str,
    i: usize,
    e: Entry,
    opts: HarOptions,
) -> Result<ReplayRequest, TrafficError> {
    let base = format!("/log/entries/{i}");
    let err = |field: &str, m: String| TrafficError::pointer(file, &format!("{base}{field}"), m);
    let (scheme, url_authority, url_path) =
        split_url(&e.request.url).map_err(|m| err("/request/url", m))?;
    let mut req = ReplayRequest::new(
        format!("{file}#{base}"),
        SourceLoc {
            file: file.to_string(),
            at: Locator::Pointer(base.clone()),
        },
    );
    req.scheme = scheme;
    req.method = e.request.method;
    if req.method.is_empty() {
        return Err(err("/request/method", "must not be empty".into()));
    }
    req.path = url_path;
    if let Some(v) = e.request.http_version.filter(|v| !v.is_empty()) {
        req.protocol = v.to_ascii_uppercase();
    }
    let mut authority = None;
    let mut host = None;
    for (j, h) in e.request.headers.into_iter().enumerate() {
        if h.name.is_empty() {
            return Err(err(
                &format!("/request/headers/{j}/name"),
                "must not be empty".into(),
            ));
        }
        // HTTP/2 exports list pseudo-headers; they restate the URL.
        match h.name.to_ascii_lowercase().as_str() {
            ":authority" => authority = Some(h.value),
            ":path" => req.path = h.value,
            n if n.starts_with(':') => {}
            "host" => {
                host = Some(h.value.clone());
                req.headers.push((h.name, h.value));
            }
            _ => req.headers.push((h.name, h.value)),
        }
    }
    req.authority = authority.or(host).unwrap_or(url_authority);
    if let Some(pd) = e.request.post_data {
        let text = pd.text.unwrap_or_default();
        req.body = match pd.encoding.as_deref() {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|x| err("/request/postData/text", format!("not valid base64: {x}")))?,
            None | Some("") => text.into_bytes(),
            Some(other) => {
                return Err(err(
                    "/request/postData/encoding",
                    format!("unsupported encoding {other:?} (only \"base64\")"),
                ))
            }
        };
    }
    if let Some(ip) = e.server_ip_address.filter(|s| !s.is_empty()) {
        req.server_addr = Some(ip.trim_start_matches('[').trim_end_matches(']').to_string());
    }
    if opts.expect_status {
        match e.response.map(|r| r.status) {
            // 0: the browser got no response (blocked, aborted): nothing to expect.
            Some(0) | None => {}
            Some(s @ 100..=599) => {
                req.expect = Expectation {
                    status: vec![s as u16],
                    ..Expectation::default()
                }
            }
            Some(s) => {
                return Err(err(
                    "/response/status",
                    format!("{s} is not an HTTP status"),
                ))
            }
        }
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAR: &str = r#"{"log":{"version":"1.2","creator":{"name":"Firefox","version":"1"},"entries":[
 {"startedDateTime":"2026-01-01T00:00:00Z","serverIPAddress":"[2001:db8::1]","_priority":"High",
  "request":{"method":"GET","url":"https://shop.example:8443/a/../b?q=%27or%201#frag","httpVersion":"HTTP/2",
    "headers":[{"name":":authority","value":"shop.example:8443"},{"name":":path","value":"/a/../b?q=%27or%201"},{"name":"user-agent","value":"ff"},{"name":"accept","value":"*/*"},{"name":"accept","value":"text/html"}],
    "queryString":[],"cookies":[],"headersSize":-1,"bodySize":0},
  "response":{"status":403,"statusText":"Forbidden"}},
 {"serverIPAddress":"192.0.2.1","request":{"method":"POST","url":"http://api.example/v1","headers":[{"name":"Host","value":"api.example"}],
    "postData":{"mimeType":"application/octet-stream","text":"AAEC","encoding":"base64"}},
  "response":{"status":0}},
 {"request":{"method":"POST","url":"http://api.example","headers":[],"postData":{"mimeType":"text/plain","text":"a=1"}}}
]}}"#;

    #[test]
    fn parses_entries() {
        let reqs = parse("x.har", HAR, HarOptions::default()).unwrap();
        assert_eq!(reqs.len(), 3);
        let a = &reqs[0];
        assert_eq!(a.scheme, "https");
        assert_eq!(a.authority, "shop.example:8443");
        assert_eq!(a.path, "/a/../b?q=%27or%201");
        assert_eq!(a.server_addr.as_deref(), Some("2001:db8::1"));
        assert_eq!(
            a.headers.len(),
            3,
            "pseudo-headers dropped, duplicates kept"
        );
        assert_eq!(a.source.to_string(), "x.har#/log/entries/0");
        assert!(a.expect.is_empty(), "no expectation unless asked");
        let b = &reqs[1];
        assert_eq!(b.body, vec![0, 1, 2]);
        assert_eq!(b.authority, "api.example");
        assert_eq!(b.path, "/v1");
        let c = &reqs[2];
        assert_eq!(c.path, "/");
        assert_eq!(c.body, b"a=1");
    }

    #[test]
    fn response_status_only_when_asked() {
        let reqs = parse(
            "x.har",
            HAR,
            HarOptions {
                expect_status: true,
            },
        )
        .unwrap();
        assert_eq!(reqs[0].expect.status, vec![403]);
        assert!(
            reqs[1].expect.status.is_empty(),
            "status 0 means no response"
        );
        assert!(reqs[2].expect.status.is_empty());
    }

    #[test]
    fn split_url_cases() {
        assert_eq!(
            split_url("http://u:p@h.example?x=1").unwrap(),
            ("http".into(), "h.example".into(), "/?x=1".into())
        );
        assert!(split_url("/relative")
            .unwrap_err()
            .contains("not an absolute URL"));
        assert!(split_url("ftp://h/").unwrap_err().contains("ftp"));
        assert!(split_url("http:///x").unwrap_err().contains("no host"));
    }

    #[test]
    fn errors_carry_json_pointers() {
        let e = parse("b.har", r#"{"log":{"entries":[{"request":{"method":"GET","url":"http://h/","headers":[{"name":"a"}]}}]}}"#, HarOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("b.har#/log/entries/0/request/headers/0: missing field `value`"),
            "{e}"
        );
        let e = parse(
            "b.har",
            r#"{"log":{"entries":[{"request":{"method":"GET","url":"h/"}}]}}"#,
            HarOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("b.har#/log/entries/0/request/url: "), "{e}");
        let e = parse("b.har", r#"{"log":{}}"#, HarOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `entries`"), "{e}");
        assert!(e.starts_with("b.har#/log: "), "{e}");
        let e = parse("b.har", "{\"log\":", HarOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("EOF"), "{e}");
        let e = parse("b.har", r#"{"log":{"entries":[{"request":{"method":"POST","url":"http://h/","postData":{"text":"x","encoding":"gzip"}}}]}}"#, HarOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("b.har#/log/entries/0/request/postData/encoding: "),
            "{e}"
        );
    }
}
