//! Shared by the HTTP/2 tests (envoy_http2.rs, envoy_example.rs): a request sent over both
//! protocols, the decision a client sees, and an HTTP/2 client on the h2 crate.
// Each test target uses a different part of this module.
#![allow(dead_code)]

use bytes::Bytes;
use portcullis_e2e::Response;

/// One request, sent both ways.
#[derive(Clone)]
pub struct Case {
    pub name: &'static str,
    pub source: [u8; 4],
    pub method: &'static str,
    pub authority: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Option<Vec<u8>>,
    /// HTTP/1.1: chunked with this chunk size; HTTP/2: DATA frames of this size.
    pub chunk: Option<usize>,
    /// HTTP/2 only: trailers after the body (Envoy passes none to an HTTP/1.1 upstream).
    pub trailers: Vec<(&'static str, &'static str)>,
    /// The expected status, so "identical" cannot mean "identically broken".
    pub expect: u16,
}

/// A GET of `path` at `authority` from `source`, expected to get `expect`.
pub fn case(
    name: &'static str,
    source: [u8; 4],
    authority: &'static str,
    path: &'static str,
    expect: u16,
) -> Case {
    Case {
        name,
        source,
        method: "GET",
        authority,
        path,
        headers: Vec::new(),
        body: None,
        chunk: None,
        trailers: Vec::new(),
        expect,
    }
}

/// `c` as a urlencoded POST of `body`, chunked / in frames of `chunk` bytes.
pub fn post(mut c: Case, body: Vec<u8>, chunk: Option<usize>) -> Case {
    c.method = "POST";
    c.headers
        .push(("content-type", "application/x-www-form-urlencoded"));
    c.body = Some(body);
    c.chunk = chunk;
    c
}

/// What a client can see of a decision: status, the denial's reason (and rule), and the
/// partner passed upstream.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    pub status: u16,
    pub reason: Option<String>,
    pub partner: Vec<String>,
}

pub fn decision(r: &Response) -> Decision {
    if r.status == 200 {
        return Decision {
            status: 200,
            reason: None,
            partner: r.upstream_header_values("x-portcullis-partner"),
        };
    }
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    Decision {
        status: r.status,
        reason: Some(format!("{} {} {}", v["check"], v["reason"], v["rule"])),
        partner: Vec::new(),
    }
}

/// Sends `c` over an HTTP/2 connection on `io` (`scheme` only names the URI's scheme).
pub async fn send_h2<T>(io: T, scheme: &str, c: &Case) -> Response
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut client = client.ready().await.expect("h2 ready");
    // The URI carries :scheme and :authority; no Host header is sent.
    let mut req = http::Request::builder()
        .method(c.method)
        .uri(format!("{scheme}://{}{}", c.authority, c.path));
    for (k, v) in &c.headers {
        req = req.header(*k, *v);
    }
    let req = req.body(()).expect("request");
    let body = c.body.clone().unwrap_or_default();
    let end_now = body.is_empty() && c.trailers.is_empty();
    let (response, mut stream) = client.send_request(req, end_now).expect("send request");
    if !end_now {
        let frame = c.chunk.unwrap_or(body.len().max(1));
        let chunks: Vec<&[u8]> = body.chunks(frame).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len() && c.trailers.is_empty();
            // A denial can reset the stream before the whole body is sent: the response
            // below tells what happened.
            if stream
                .send_data(Bytes::copy_from_slice(chunk), last)
                .is_err()
            {
                break;
            }
        }
        if !c.trailers.is_empty() {
            let mut t = http::HeaderMap::new();
            for (k, v) in &c.trailers {
                t.append(
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                );
            }
            let _ = stream.send_trailers(t);
        }
    }
    let response = response
        .await
        .unwrap_or_else(|e| panic!("{}: h2 response: {e}", c.name));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{}: h2 body: {e}", c.name));
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    Response {
        status,
        headers,
        body: bytes,
    }
}

/// `c` as raw HTTP/1.1 (keep-alive, `Host` = the authority; trailers are not sent).
pub fn http1_bytes(c: &Case) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        c.method, c.path, c.authority
    );
    for (k, v) in &c.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = c.body.clone().unwrap_or_default();
    match c.chunk {
        Some(_) => head.push_str("transfer-encoding: chunked\r\n"),
        None => head.push_str(&format!("content-length: {}\r\n", body.len())),
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    match c.chunk {
        Some(n) => {
            for chunk in body.chunks(n) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        None => out.extend_from_slice(&body),
    }
    out
}
