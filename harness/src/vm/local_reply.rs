//! A local reply (`proxy_send_local_response`, or fail-close): the response Envoy sends
//! instead of the upstream's, run through this filter's response callbacks as Envoy's
//! encoder chain does.

use crate::context::{header_value, LocalReply};
use crate::error::Error;
use crate::types::Headers;

use super::Vm;

impl Vm {
    /// Sends a local reply through the response path, as Envoy's encoder chain does.
    pub(super) fn run_local_reply(&mut self, id: u32) -> Result<(), Error> {
        let Some(s) = self.store.data_mut().streams.get_mut(&id) else {
            return Ok(());
        };
        s.local_reply_new = false;
        s.ended = true;
        s.dirs[0].paused = None;
        s.dirs[0].resume = false;
        s.dirs[0].headers_avail = false;
        s.dirs[0].trailers_avail = false;
        let Some(reply) = s.record.local_reply.clone() else {
            return Ok(());
        };
        let (headers, body) = envoy_reply(&reply, &s.record.request_headers);
        let reply = LocalReply { body, ..reply };
        let started = s.dirs[1].headers_seen;
        s.record.response_headers = headers;
        s.record.response_body.clear();
        s.dirs[1].buffer.clear();
        s.dirs[1].paused = None;
        s.dirs[1].resume = false;
        if started {
            // Headers already went through the filter: Envoy replaces the response
            // without running this filter's callbacks again.
            s.record.response_body = reply.body;
            s.dirs[1].headers_avail = false;
            return Ok(());
        }
        s.dirs[1].headers_seen = true;
        s.dirs[1].headers_avail = true;
        let n = s.record.response_headers.len();
        let eos = reply.body.is_empty();
        self.call(
            "proxy_on_response_headers",
            |c| &c.on_response_headers,
            (id as i32, n as i32, eos as i32),
            id,
        )?;
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            s.dirs[1].headers_avail = false;
            s.dirs[1].buffer = reply.body;
        }
        if !eos {
            let n = self.stream(id).map(|s| s.dirs[1].buffer.len()).unwrap_or(0);
            self.call(
                "proxy_on_response_body",
                |c| &c.on_response_body,
                (id as i32, n as i32, 1),
                id,
            )?;
        }
        if let Some(s) = self.store.data_mut().streams.get_mut(&id) {
            let b = std::mem::take(&mut s.dirs[1].buffer);
            s.record.response_body.extend(b);
            s.local_reply_new = false;
        }
        Ok(())
    }
}

/// Whether Envoy treats the request as gRPC (`Grpc::Common::isGrpcRequestHeaders`): a
/// `:path` and a `content-type` of `application/grpc` or `application/grpc+<codec>`
/// (not gRPC-Web).
pub(super) fn is_grpc_request(request: &Headers) -> bool {
    request.iter().any(|(k, _)| k == ":path")
        && header_value(request, "content-type").is_some_and(|ct| {
            ct.strip_prefix("application/grpc")
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('+'))
        })
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
fn http_to_grpc_status(status: u32) -> u32 {
    match status {
        400 => 13,             // Internal
        401 => 16,             // Unauthenticated
        403 => 7,              // PermissionDenied
        404 => 12,             // Unimplemented
        429 | 502..=504 => 14, // Unavailable
        _ => 2,                // Unknown
    }
}

/// Envoy's `PercentEncoding::encode` for `grpc-message`: bytes outside printable ASCII,
/// and `%`, as `%XX`.
fn percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Sets `name` in place (its first occurrence keeps its position, later ones go), or
/// appends it: Envoy's `setReference…` on an inline header.
fn set(headers: &mut Headers, name: &str, value: String) {
    match headers.iter().position(|(k, _)| k == name) {
        Some(i) => {
            headers[i].1 = value;
            let mut seen = 0;
            headers.retain(|(k, _)| {
                if k != name {
                    return true;
                }
                seen += 1;
                seen == 1
            });
        }
        None => headers.push((name.to_string(), value)),
    }
}

/// The response headers and body Envoy 1.40 sends for a local reply
/// (`Http::Utility::sendLocalReply`): `:status`, then the filter's headers (its
/// `modify_headers`), then for a gRPC request a trailers-only response (`:status` 200,
/// `content-type: application/grpc`, `grpc-status` — the filter's, else mapped from the
/// HTTP status — and `grpc-message`, the body percent-encoded; no body, no
/// `content-length`); otherwise with a body `content-length` and, unless the filter gave
/// one, `content-type: text/plain`, and without a body neither of them.
pub(super) fn envoy_reply(reply: &LocalReply, request: &Headers) -> (Headers, Vec<u8>) {
    let mut headers: Headers = vec![(":status".to_string(), reply.status.to_string())];
    headers.extend(reply.headers.iter().cloned());
    let head = header_value(request, ":method") == Some("HEAD");
    if is_grpc_request(request) {
        set(&mut headers, ":status", "200".to_string());
        set(&mut headers, "content-type", "application/grpc".to_string());
        if header_value(&headers, "grpc-status").is_none() {
            let code = reply
                .grpc_status
                .unwrap_or_else(|| http_to_grpc_status(reply.status));
            headers.push(("grpc-status".to_string(), code.to_string()));
        }
        if !reply.body.is_empty() && !head {
            // Envoy 1.40 keeps a trailing newline (`forbidden\n` → `forbidden%0A`; checked in
            // tests/tests/envoy_local_reply.rs): only its JSON-formatter path strips one.
            set(&mut headers, "grpc-message", percent_encode(&reply.body));
        }
        headers.retain(|(k, _)| k != "content-length");
        return (headers, Vec::new());
    }
    if reply.body.is_empty() {
        headers.retain(|(k, _)| k != "content-length" && k != "content-type");
    } else {
        set(&mut headers, "content-length", reply.body.len().to_string());
        if header_value(&headers, "content-type").is_none() {
            headers.push(("content-type".to_string(), "text/plain".to_string()));
        }
    }
    (headers, reply.body.clone())
}
