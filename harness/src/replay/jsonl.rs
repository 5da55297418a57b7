//! JSONL traffic: one JSON object per line. Field list in `policies/TRAFFIC.md`.

use std::net::IpAddr;

use base64::Engine as _;
use serde::Deserialize;

use super::de::{json_message, Headers, OneOrMany, RuleId};
use super::error::{json_pointer, TrafficError};
use super::model::{
    Expectation, Locator, PeerCert, ReplayRequest, SourceLoc, DEFAULT_CLIENT_IP,
    DEFAULT_CLIENT_PORT,
};
use super::script::{
    CallAnswer, CallReply, GrpcAnswer, GrpcCallReply, Script, TcpStep, UpstreamResponse,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: Option<String>,
    client_ip: Option<IpAddr>,
    client_port: Option<u16>,
    server_addr: Option<String>,
    server_port: Option<u16>,
    tls: Option<Tls>,
    scheme: Option<String>,
    method: Option<String>,
    protocol: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    body_base64: Option<String>,
    #[serde(default)]
    expect: Expect,
    /// The upstream's response (default: 200, no body).
    response: Option<Response>,
    /// Answers to the filter's `http_call`s during this request.
    #[serde(default)]
    http_calls: Vec<Call>,
    /// Answers to the filter's `grpc_call`s during this request.
    #[serde(default)]
    grpc_calls: Vec<GrpcCall>,
    /// A TCP connection (network filter) instead of an HTTP request: its steps.
    tcp: Option<Vec<Tcp>>,
    /// Virtual time moved before the request (ticks fire), in ms.
    #[serde(default)]
    advance_ms: u64,
    /// Virtual time moved while the request is open, before the upstream answers, in ms.
    #[serde(default)]
    wait_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Response {
    status: Option<u16>,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    body_base64: Option<String>,
    body_chunks: Option<Vec<String>>,
    #[serde(default)]
    trailers: Headers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Call {
    cluster: String,
    path: Option<String>,
    status: Option<u16>,
    #[serde(default)]
    headers: Headers,
    body: Option<String>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    timeout: bool,
    #[serde(default)]
    reset: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tcp {
    /// Bytes from the client (text).
    downstream: Option<String>,
    /// Bytes from the upstream (text).
    upstream: Option<String>,
    /// With data: the sender half-closes after it.
    #[serde(default)]
    end: bool,
    /// `"downstream"`: the client closed (reset) the connection; `"upstream"`: the
    /// upstream closed, which Envoy sees as its FIN (upstream data with `end`).
    close: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcCall {
    cluster: String,
    service: Option<String>,
    method: Option<String>,
    /// gRPC status; 0 (the default) answers with `message`.
    #[serde(default)]
    status: u32,
    /// The response message (status 0), as text.
    message: Option<String>,
    message_base64: Option<String>,
    /// `grpc-message` of a failed call.
    grpc_message: Option<String>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    timeout: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Tls {
    #[serde(default = "yes")]
    mtls: bool,
    #[serde(default)]
    uri_sans: Vec<String>,
    #[serde(default)]
    dns_sans: Vec<String>,
    subject: Option<String>,
    sha256: Option<String>,
    pem: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: Option<OneOrMany<u16>>,
    reason: Option<String>,
    #[serde(default)]
    rule_ids: Vec<RuleId>,
    #[serde(default)]
    no_rule_ids: Vec<RuleId>,
    #[serde(default)]
    error: bool,
    /// Response headers that must reach the client, with these values.
    #[serde(default)]
    response_headers: Headers,
    #[serde(default)]
    no_response_headers: Vec<String>,
    /// Request headers that must go upstream, with these values.
    #[serde(default)]
    upstream_headers: Headers,
    #[serde(default)]
    no_upstream_headers: Vec<String>,
    /// The exact response body that reached the client.
    body: Option<String>,
    body_base64: Option<String>,
    body_contains: Option<OneOrMany<String>>,
    local_reply: Option<bool>,
    /// Regexes over the request's log lines.
    log_contains: Option<OneOrMany<String>>,
    no_log_contains: Option<OneOrMany<String>>,
    /// TCP: the bytes let through to the upstream / the client, and whether the
    /// connection was closed by the filter.
    to_upstream: Option<String>,
    to_downstream: Option<String>,
    closed: Option<bool>,
}

/// Parses a whole JSONL document. Blank lines are skipped.
pub fn parse(file: &str, text: &str) -> Result<Vec<ReplayRequest>, TrafficError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed: Line = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let ptr = json_pointer(e.path());
            let inner = e.inner();
            let col = inner.column();
            let ptr = if ptr.is_empty() || ptr == "/?" {
                String::new()
            } else {
                format!("{ptr}: ")
            };
            TrafficError::line(
                file,
                n,
                format!("{ptr}{} (column {col})", json_message(inner)),
            )
        })?;
        de.end().map_err(|e| {
            TrafficError::line(
                file,
                n,
                format!("{} (one JSON object per line)", json_message(&e)),
            )
        })?;
        out.push(convert(file, n, parsed)?);
    }
    Ok(out)
}

fn convert(file: &str, n: usize, l: Line) -> Result<ReplayRequest, TrafficError> {
    let err = |m: String| TrafficError::line(file, n, m);
    let source = SourceLoc {
        file: file.to_string(),
        at: Locator::Line(n),
    };
    // What a TCP connection line must not carry.
    let http_only = [
        ("method", l.method.is_some()),
        ("path", l.path.is_some()),
        ("authority", l.authority.is_some()),
        ("headers", !l.headers.0.is_empty()),
        ("body", l.body.is_some() || l.body_base64.is_some()),
        ("response", l.response.is_some()),
        ("expect/status", l.expect.status.is_some()),
    ];
    let body = match (l.body, l.body_base64) {
        (Some(_), Some(_)) => {
            return Err(err("/body, /body_base64: give one of them, not both".into()))
        }
        (Some(t), None) => t.into_bytes(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| err(format!("/body_base64: not valid base64: {e}")))?,
        (None, None) => Vec::new(),
    };
    let headers = l.headers.0;
    for (name, _) in &headers {
        if name.starts_with(':') {
            return Err(err(format!(
                "/headers: pseudo-header {name:?} is not a header; use the fields method, scheme, authority, path"
            )));
        }
    }
    let host = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    let method = l.method.unwrap_or_else(|| "GET".into());
    if method.is_empty() || method.contains(char::is_whitespace) {
        return Err(err(format!("/method: {method:?} is not an HTTP method")));
    }
    let path = l.path.unwrap_or_else(|| "/".into());
    if path.is_empty() {
        return Err(err("/path: must not be empty".into()));
    }
    // Every field must reach the filter as Envoy would hand it over, or be an error.
    if let Some(a) = &l.server_addr {
        if a.parse::<IpAddr>().is_err() {
            return Err(err(format!(
                "/server_addr: {a:?} is not an IP address (it is the filter's destination.address)"
            )));
        }
    }
    if let (Some(a), Some(h)) = (&l.authority, &host) {
        if a != h {
            return Err(err(format!(
                "/authority {a:?} and the Host header {h:?} differ: Envoy hands the filter one :authority"
            )));
        }
    }
    if let Some(t) = &l.tls {
        if t.pem.is_none() {
            for (field, sans) in [("uri_sans", &t.uri_sans), ("dns_sans", &t.dns_sans)] {
                if sans.len() > 1 {
                    return Err(err(format!(
                        "/tls/{field}: Envoy shows a filter only the first SAN; give the certificate as /tls/pem for the others"
                    )));
                }
            }
        }
        let facts = !t.uri_sans.is_empty()
            || !t.dns_sans.is_empty()
            || t.subject.is_some()
            || t.sha256.is_some()
            || t.pem.is_some();
        if !t.mtls && facts {
            return Err(err(
                "/tls: certificate facts with \"mtls\": false (Envoy shows none without a validated client certificate)".into(),
            ));
        }
    }
    let tls = l.tls.map(|t| PeerCert {
        mtls: t.mtls,
        uri_sans: t.uri_sans,
        dns_sans: t.dns_sans,
        subject: t.subject,
        sha256: t.sha256.map(|s| s.to_ascii_lowercase()),
        pem: t.pem,
    });
    let scheme = l
        .scheme
        .unwrap_or_else(|| if tls.is_some() { "https" } else { "http" }.into());
    if scheme != "http" && scheme != "https" {
        return Err(err(format!(
            "/scheme: {scheme:?} is neither \"http\" nor \"https\""
        )));
    }
    let mut script = script(&l.response, &l.http_calls, l.advance_ms, l.wait_ms).map_err(err)?;
    script.grpc_calls = grpc_calls(&l.grpc_calls).map_err(err)?;
    if let Some(steps) = &l.tcp {
        if let Some((field, _)) = http_only.iter().find(|(_, given)| *given) {
            return Err(err(format!(
                "/{field}: a TCP connection (/tcp) has no HTTP fields"
            )));
        }
        script.tcp = Some(tcp_steps(steps).map_err(err)?);
    } else if l.expect.to_upstream.is_some()
        || l.expect.to_downstream.is_some()
        || l.expect.closed.is_some()
    {
        return Err(err(
            "/expect: to_upstream, to_downstream and closed are for TCP connections (/tcp)".into(),
        ));
    }
    let e = l.expect;
    let expect_body = match (e.body, e.body_base64) {
        (Some(_), Some(_)) => {
            return Err(err(
                "/expect/body, /expect/body_base64: give one of them, not both".into(),
            ))
        }
        (Some(t), None) => Some(t.into_bytes()),
        (None, Some(b)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| err(format!("/expect/body_base64: not valid base64: {e}")))?,
        ),
        (None, None) => None,
    };
    let log_matches = e.log_contains.map(|p| p.0).unwrap_or_default();
    let no_log_matches = e.no_log_contains.map(|p| p.0).unwrap_or_default();
    for (field, patterns) in [
        ("log_contains", &log_matches),
        ("no_log_contains", &no_log_matches),
    ] {
        for p in patterns {
            if let Err(e) = regex::Regex::new(p) {
                return Err(err(format!("/expect/{field}: {p:?} is not a regex: {e}")));
            }
        }
    }
    let expect = Expectation {
        status: e.status.map(|s| s.0).unwrap_or_default(),
        reason: e.reason,
        rule_ids: e.rule_ids.into_iter().map(|r| r.0).collect(),
        no_rule_ids: e.no_rule_ids.into_iter().map(|r| r.0).collect(),
        error: e.error,
        unchecked: Vec::new(),
        response_headers: e.response_headers.0,
        no_response_headers: e.no_response_headers,
        upstream_headers: e.upstream_headers.0,
        no_upstream_headers: e.no_upstream_headers,
        body: expect_body,
        body_contains: e.body_contains.map(|b| b.0).unwrap_or_default(),
        response_contains: Vec::new(),
        local_reply: e.local_reply,
        log_matches,
        no_log_matches,
        to_upstream: e.to_upstream.map(String::into_bytes),
        to_downstream: e.to_downstream.map(String::into_bytes),
        closed: e.closed,
    };
    if let Some(s) = expect.status.iter().find(|s| !(100..=599).contains(*s)) {
        return Err(err(format!(
            "/expect/status: {s} is not an HTTP status (100-599)"
        )));
    }
    Ok(ReplayRequest {
        id: l.id.unwrap_or_else(|| format!("{file}:{n}")),
        source,
        client_ip: l.client_ip.unwrap_or(DEFAULT_CLIENT_IP),
        client_port: l.client_port.unwrap_or(DEFAULT_CLIENT_PORT),
        server_addr: l.server_addr,
        server_port: l.server_port,
        tls,
        scheme,
        method,
        protocol: l.protocol.unwrap_or_else(|| "HTTP/1.1".into()),
        authority: l.authority.or(host).unwrap_or_else(|| "localhost".into()),
        path,
        headers,
        body,
        expect,
        script,
    })
}

fn script(
    response: &Option<Response>,
    calls: &[Call],
    advance_ms: u64,
    wait_ms: u64,
) -> Result<Script, String> {
    let upstream = match response {
        None => UpstreamResponse::default(),
        Some(r) => {
            let status = r.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(format!(
                    "/response/status: {status} is not an HTTP status (100-599)"
                ));
            }
            let given = [
                r.body.is_some(),
                r.body_base64.is_some(),
                r.body_chunks.is_some(),
            ];
            if given.iter().filter(|g| **g).count() > 1 {
                return Err("/response: give one of body, body_base64, body_chunks".into());
            }
            let body_chunks = if let Some(t) = &r.body {
                vec![t.clone().into_bytes()]
            } else if let Some(b) = &r.body_base64 {
                vec![base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| format!("/response/body_base64: not valid base64: {e}"))?]
            } else {
                r.body_chunks
                    .iter()
                    .flatten()
                    .map(|c| c.clone().into_bytes())
                    .collect()
            };
            let body_chunks = body_chunks.into_iter().filter(|c| !c.is_empty()).collect();
            for (k, _) in r.headers.0.iter().chain(&r.trailers.0) {
                if k.starts_with(':') {
                    return Err(format!(
                        "/response: {k:?} is not a header; the status is /response/status"
                    ));
                }
            }
            UpstreamResponse {
                status,
                headers: r.headers.0.clone(),
                body_chunks,
                trailers: r.trailers.0.clone(),
            }
        }
    };
    let mut http_calls = Vec::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        let at = format!("/http_calls/{i}");
        if c.cluster.is_empty() {
            return Err(format!("{at}/cluster: must not be empty"));
        }
        let answer = match (c.timeout, c.reset) {
            (true, true) => return Err(format!("{at}: timeout and reset both set")),
            (true, false) => CallAnswer::Timeout,
            (false, true) => CallAnswer::Reset,
            (false, false) => {
                let status = c.status.unwrap_or(200);
                if !(100..=599).contains(&status) {
                    return Err(format!(
                        "{at}/status: {status} is not an HTTP status (100-599)"
                    ));
                }
                CallAnswer::Response {
                    status,
                    headers: c.headers.0.clone(),
                    body: c.body.clone().unwrap_or_default().into_bytes(),
                    delay: std::time::Duration::from_millis(c.delay_ms),
                }
            }
        };
        if (c.timeout || c.reset) && (c.status.is_some() || c.body.is_some() || c.delay_ms > 0) {
            return Err(format!(
                "{at}: a timeout or reset has no status, body or delay_ms"
            ));
        }
        http_calls.push(CallReply {
            cluster: c.cluster.clone(),
            path: c.path.clone(),
            answer,
        });
    }
    Ok(Script {
        advance_before: std::time::Duration::from_millis(advance_ms),
        wait: std::time::Duration::from_millis(wait_ms),
        http_calls,
        grpc_calls: Vec::new(),
        upstream,
        tcp: None,
    })
}

fn tcp_steps(steps: &[Tcp]) -> Result<Vec<TcpStep>, String> {
    let mut out = Vec::with_capacity(steps.len());
    for (i, t) in steps.iter().enumerate() {
        let at = format!("/tcp/{i}");
        let step = match (&t.downstream, &t.upstream, t.close.as_deref()) {
            (Some(d), None, None) => TcpStep::Downstream {
                data: d.clone().into_bytes(),
                end: t.end,
            },
            (None, Some(u), None) => TcpStep::Upstream {
                data: u.clone().into_bytes(),
                end: t.end,
            },
            (None, None, Some("downstream")) if !t.end => TcpStep::DownstreamClose,
            (None, None, Some("upstream")) if !t.end => TcpStep::UpstreamClose,
            (None, None, Some(other)) if other != "downstream" && other != "upstream" => {
                return Err(format!(
                    "{at}/close: {other:?} is neither \"downstream\" nor \"upstream\""
                ))
            }
            _ => {
                return Err(format!(
                    "{at}: give one of downstream, upstream (with end), close"
                ))
            }
        };
        out.push(step);
    }
    Ok(out)
}

fn grpc_calls(calls: &[GrpcCall]) -> Result<Vec<GrpcCallReply>, String> {
    let mut out = Vec::with_capacity(calls.len());
    for (i, c) in calls.iter().enumerate() {
        let at = format!("/grpc_calls/{i}");
        if c.cluster.is_empty() {
            return Err(format!("{at}/cluster: must not be empty"));
        }
        let has_message = c.message.is_some() || c.message_base64.is_some();
        if c.message.is_some() && c.message_base64.is_some() {
            return Err(format!("{at}: give one of message, message_base64"));
        }
        if c.status > 16 {
            return Err(format!(
                "{at}/status: {} is not a gRPC status (0-16)",
                c.status
            ));
        }
        let delay = std::time::Duration::from_millis(c.delay_ms);
        let answer = if c.timeout {
            if c.status != 0 || has_message || c.grpc_message.is_some() || c.delay_ms > 0 {
                return Err(format!(
                    "{at}: a timeout has no status, message, grpc_message or delay_ms"
                ));
            }
            GrpcAnswer::Timeout
        } else if c.status == 0 {
            if c.grpc_message.is_some() {
                return Err(format!(
                    "{at}/grpc_message: only a failed call (status 1-16) has one"
                ));
            }
            let message = match (&c.message, &c.message_base64) {
                (Some(t), _) => t.clone().into_bytes(),
                (None, Some(b)) => base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .map_err(|e| format!("{at}/message_base64: not valid base64: {e}"))?,
                (None, None) => Vec::new(),
            };
            GrpcAnswer::Message { message, delay }
        } else {
            if has_message {
                return Err(format!(
                    "{at}: a failed call (status {}) has no message; its text is grpc_message",
                    c.status
                ));
            }
            GrpcAnswer::Status {
                code: c.status,
                message: c.grpc_message.clone().unwrap_or_default(),
                delay,
            }
        };
        out.push(GrpcCallReply {
            cluster: c.cluster.clone(),
            service: c.service.clone(),
            method: c.method.clone(),
            answer,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_line() {
        let text = r#"
{"id":"partner-a","client_ip":"203.0.113.7","client_port":443,"tls":{"uri_sans":["spiffe://cluster.local/ns/a/sa/b"],"dns_sans":["a.example"],"subject":"CN=a","sha256":"AB12"},"method":"POST","authority":"api.example.com","path":"/v1/x?y=1","headers":{"content-type":"application/json","x-multi":["1","2"]},"body":"{}","expect":{"status":403,"reason":"ip-not-allowed","rule_ids":["r1",942100],"no_rule_ids":["r2"]}}
"#;
        let reqs = parse("t.jsonl", text).unwrap();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.id, "partner-a");
        assert_eq!(r.source.to_string(), "t.jsonl:2");
        assert_eq!(r.client_ip.to_string(), "203.0.113.7");
        assert_eq!(r.client_port, 443);
        assert_eq!(r.scheme, "https");
        let tls = r.tls.as_ref().unwrap();
        assert!(tls.mtls);
        assert_eq!(tls.sha256.as_deref(), Some("ab12"));
        assert_eq!(tls.uri_sans, vec!["spiffe://cluster.local/ns/a/sa/b"]);
        assert_eq!(
            r.headers,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("x-multi".to_string(), "1".to_string()),
                ("x-multi".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(r.body, b"{}");
        assert_eq!(r.expect.status, vec![403]);
        assert_eq!(r.expect.reason.as_deref(), Some("ip-not-allowed"));
        assert_eq!(r.expect.rule_ids, vec!["r1", "942100"]);
        assert_eq!(r.expect.no_rule_ids, vec!["r2"]);
    }

    #[test]
    fn defaults_and_pair_headers_and_base64() {
        let text = "{\"headers\":[[\"Host\",\"h.example\"],[\"b\",\"2\"],[\"a\",\"1\"]],\"body_base64\":\"AAEC\"}\n";
        let r = &parse("x.jsonl", text).unwrap()[0];
        assert_eq!(r.id, "x.jsonl:1");
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/");
        assert_eq!(r.scheme, "http");
        assert_eq!(r.authority, "h.example");
        assert_eq!(r.headers[1].0, "b");
        assert_eq!(r.headers[2].0, "a");
        assert_eq!(r.body, vec![0, 1, 2]);
        assert!(r.tls.is_none());
        assert!(r.expect.is_empty());
    }

    #[test]
    fn object_headers_keep_document_order() {
        let r = &parse("x", r#"{"headers":{"zz":"1","aa":"2","mm":"3"}}"#).unwrap()[0];
        let names: Vec<_> = r.headers.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["zz", "aa", "mm"]);
    }

    #[test]
    fn status_list() {
        let r = &parse("x", r#"{"expect":{"status":[403,400]}}"#).unwrap()[0];
        assert_eq!(r.expect.status, vec![403, 400]);
    }

    fn err(text: &str) -> String {
        parse("bad.jsonl", text).unwrap_err().to_string()
    }

    #[test]
    fn unknown_field_is_an_error_with_line() {
        let e = err("{}\n\n{\"pth\":\"/\"}\n");
        assert!(e.starts_with("bad.jsonl:3: "), "{e}");
        assert!(e.contains("unknown field `pth`"), "{e}");
    }

    #[test]
    fn unknown_nested_field_names_its_pointer() {
        let e = err(r#"{"expect":{"status":200,"rule":"x"}}"#);
        assert!(e.starts_with("bad.jsonl:1: /expect"), "{e}");
        assert!(e.contains("unknown field `rule`"), "{e}");
    }

    #[test]
    fn wrong_type_names_its_pointer() {
        let e = err(r#"{"client_port":"eighty"}"#);
        assert!(
            e.starts_with("bad.jsonl:1: /client_port: invalid type"),
            "{e}"
        );
        let e = err(r#"{"client_ip":"300.1.1.1"}"#);
        assert!(e.contains("/client_ip: invalid IP address"), "{e}");
    }

    #[test]
    fn malformed_json() {
        let e = err("{\"path\": \"/\"\n");
        assert!(e.starts_with("bad.jsonl:1: "), "{e}");
        assert!(e.contains("EOF"), "{e}");
        let e = err("{} {}\n");
        assert!(e.contains("one JSON object per line"), "{e}");
    }

    #[test]
    fn semantic_errors() {
        assert!(err(r#"{"body":"a","body_base64":"YQ=="}"#).contains("not both"));
        assert!(err(r#"{"body_base64":"!!"}"#).contains("/body_base64: not valid base64"));
        assert!(err(r#"{"headers":{":path":"/"}}"#).contains("pseudo-header"));
        assert!(err(r#"{"expect":{"status":42}}"#).contains("42 is not an HTTP status"));
        assert!(err(r#"{"scheme":"ftp"}"#).contains("/scheme"));
        assert!(err(r#"{"method":"GE T"}"#).contains("/method"));
    }
}

#[cfg(test)]
mod doc_tests {
    /// The example in policies/TRAFFIC.md parses, line for line.
    #[test]
    fn traffic_md_example_parses() {
        let doc = include_str!("../../../policies/TRAFFIC.md");
        let marker = "Example:\n\n```jsonl\n";
        let start = doc.find(marker).expect("TRAFFIC.md has a jsonl example") + marker.len();
        let len = doc[start..].find("```").unwrap();
        let reqs = super::parse("TRAFFIC.md", &doc[start..start + len]).unwrap();
        assert_eq!(reqs.len(), 5);
        assert_eq!(reqs[1].expect.reason.as_deref(), Some("ip-not-allowed"));
        assert_eq!(reqs[2].tls.as_ref().unwrap().uri_sans.len(), 1);
        assert_eq!(reqs[4].body, [0xac, 0xed, 0x00, 0x05]);
    }

    /// The scripted exchange in policies/TRAFFIC.md parses into its script.
    #[test]
    fn traffic_md_scripted_example_parses() {
        use crate::replay::script::CallAnswer;
        use std::time::Duration;
        let doc = include_str!("../../../policies/TRAFFIC.md");
        let marker = "two chunks):\n\n```jsonl\n";
        let start = doc.find(marker).expect("the scripted example") + marker.len();
        let len = doc[start..].find("```").unwrap();
        let reqs = super::parse("TRAFFIC.md", &doc[start..start + len]).unwrap();
        let s = &reqs[0].script;
        assert_eq!(s.wait, Duration::from_millis(30));
        assert_eq!(s.upstream.status, 201);
        assert_eq!(s.upstream.body_chunks, [b"he".to_vec(), b"llo".to_vec()]);
        assert_eq!(s.http_calls[0].cluster, "authz");
        assert_eq!(s.http_calls[0].path.as_deref(), Some("/check"));
        assert!(matches!(
            &s.http_calls[0].answer,
            CallAnswer::Response { status: 200, delay, .. } if *delay == Duration::from_millis(30)
        ));
    }

    /// Script fields that cannot be played are errors naming their pointer.
    #[test]
    fn script_errors() {
        let err = |line: &str| super::parse("s.jsonl", line).unwrap_err().to_string();
        let e = err(r#"{"http_calls":[{"cluster":"a","timeout":true,"reset":true}]}"#);
        assert!(
            e.contains("/http_calls/0: timeout and reset both set"),
            "{e}"
        );
        let e = err(r#"{"http_calls":[{"cluster":"a","timeout":true,"delay_ms":5}]}"#);
        assert!(
            e.contains("/http_calls/0: a timeout or reset has no"),
            "{e}"
        );
        let e = err(r#"{"response":{"status":99}}"#);
        assert!(e.contains("/response/status: 99"), "{e}");
        let e = err(r#"{"response":{"body":"a","body_chunks":["b"]}}"#);
        assert!(e.contains("give one of body"), "{e}");
        let e = err(r#"{"response":{"headers":{":status":"200"}}}"#);
        assert!(e.contains("is not a header"), "{e}");
        let e = err(r#"{"http_calls":[{"cluster":""}]}"#);
        assert!(
            e.contains("/http_calls/0/cluster: must not be empty"),
            "{e}"
        );
        let e = err(r#"{"grpc_calls":[{"cluster":"g","status":17}]}"#);
        assert!(
            e.contains("/grpc_calls/0/status: 17 is not a gRPC status"),
            "{e}"
        );
        let e = err(r#"{"grpc_calls":[{"cluster":"g","status":7,"message":"x"}]}"#);
        assert!(
            e.contains("/grpc_calls/0: a failed call (status 7) has no message"),
            "{e}"
        );
        let e = err(r#"{"grpc_calls":[{"cluster":"g","timeout":true,"delay_ms":3}]}"#);
        assert!(e.contains("/grpc_calls/0: a timeout has no"), "{e}");
        let e = err(r#"{"expect":{"log_contains":"("}}"#);
        assert!(
            e.starts_with("s.jsonl:1: /expect/log_contains: \"(\" is not a regex"),
            "{e}"
        );
        let r = super::parse(
            "s.jsonl",
            r#"{"grpc_calls":[{"cluster":"g","service":"s.S","method":"M","message_base64":"CAE=","delay_ms":7},{"cluster":"g","status":14,"grpc_message":"down"}]}"#,
        )
        .unwrap();
        use crate::replay::script::GrpcAnswer;
        let g = &r[0].script.grpc_calls;
        assert_eq!(g[0].method.as_deref(), Some("M"));
        assert_eq!(
            g[0].answer,
            GrpcAnswer::Message {
                message: vec![8, 1],
                delay: std::time::Duration::from_millis(7)
            }
        );
        assert!(
            matches!(&g[1].answer, GrpcAnswer::Status { code: 14, message, .. } if message == "down")
        );
        let r = super::parse(
            "s.jsonl",
            r#"{"advance_ms":5000,"response":{"body":"x","trailers":{"grpc-status":"0"}}}"#,
        )
        .unwrap();
        assert_eq!(
            r[0].script.advance_before,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(r[0].script.upstream.body(), b"x");
        assert_eq!(
            r[0].script.upstream.trailers,
            [("grpc-status".to_string(), "0".to_string())]
        );
    }
}
