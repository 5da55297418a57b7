//! What a traffic file scripts around a request besides the request itself: the upstream's
//! response, answers to the filter's `http_call`s, and steps of virtual time.

use std::time::Duration;

use serde::Serialize;

use crate::{GrpcCallRecord, GrpcReply, HttpReply};

/// The upstream's response, played back through the filter when it lets the request on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamResponse {
    /// `:status`.
    pub status: u16,
    /// Response headers, without `:status`, in order.
    pub headers: Vec<(String, String)>,
    /// Body chunks, each a `proxy_on_response_body` call (none: headers end the stream
    /// unless there are trailers).
    pub body_chunks: Vec<Vec<u8>>,
    /// Trailers (none: the last chunk or the headers end the stream).
    pub trailers: Vec<(String, String)>,
}

impl Default for UpstreamResponse {
    /// `200` with no headers and no body: what the replay sent before responses could be
    /// scripted.
    fn default() -> Self {
        UpstreamResponse {
            status: 200,
            headers: Vec::new(),
            body_chunks: Vec::new(),
            trailers: Vec::new(),
        }
    }
}

impl UpstreamResponse {
    /// Headers as Envoy hands them to the filter: `:status` first.
    pub fn envoy_headers(&self) -> Vec<(String, String)> {
        let mut h = Vec::with_capacity(self.headers.len() + 1);
        h.push((":status".to_string(), self.status.to_string()));
        h.extend(
            self.headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone())),
        );
        h
    }

    /// The whole body.
    pub fn body(&self) -> Vec<u8> {
        self.body_chunks.concat()
    }
}

/// How one scripted `http_call` is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallAnswer {
    /// A response, `delay` after the call on the virtual clock.
    Response {
        /// `:status`.
        status: u16,
        /// Headers without `:status`.
        headers: Vec<(String, String)>,
        /// Body.
        body: Vec<u8>,
        /// Virtual delay.
        #[serde(serialize_with = "millis")]
        delay: Duration,
    },
    /// No answer: the call fails when the timeout the filter gave elapses.
    Timeout,
    /// The connection fails at once.
    Reset,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// The answer to calls to `cluster` (and `path`, when given) during one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallReply {
    /// The cluster the filter calls.
    pub cluster: String,
    /// The `:path` it must call (exact, query included); `None` answers any path.
    pub path: Option<String>,
    /// The answer.
    pub answer: CallAnswer,
}

impl CallReply {
    /// Whether this entry answers a call to `path`.
    pub fn matches(&self, path: Option<&str>) -> bool {
        self.path.as_deref().is_none_or(|p| Some(p) == path)
    }

    /// The host's reply for this entry.
    pub fn to_http_reply(&self) -> HttpReply {
        match &self.answer {
            CallAnswer::Response {
                status,
                headers,
                body,
                delay,
            } => {
                let mut r = HttpReply::ok(*status, body.clone()).delayed(*delay);
                for (k, v) in headers {
                    r = r.header(&k.to_ascii_lowercase(), v);
                }
                r
            }
            CallAnswer::Timeout => HttpReply::Timeout,
            CallAnswer::Reset => HttpReply::Reset,
        }
    }
}

/// How one scripted `grpc_call` is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrpcAnswer {
    /// Success: the response message, `delay` after the call.
    Message {
        /// The message bytes (`proxy_on_grpc_receive`).
        message: Vec<u8>,
        /// Virtual delay.
        #[serde(serialize_with = "millis")]
        delay: Duration,
    },
    /// Failure: the call closes with this gRPC status, `delay` after the call.
    Status {
        /// gRPC status code (1-16).
        code: u32,
        /// `grpc-message`.
        message: String,
        /// Virtual delay.
        #[serde(serialize_with = "millis")]
        delay: Duration,
    },
    /// No answer: the call closes with DEADLINE_EXCEEDED when its timeout elapses.
    Timeout,
}

/// The answer to `grpc_call`s to `cluster` (and `service` / `method`, when given)
/// during one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GrpcCallReply {
    /// The cluster the filter calls.
    pub cluster: String,
    /// The service it must call (e.g. `envoy.service.auth.v3.Authorization`); `None`: any.
    pub service: Option<String>,
    /// The method it must call (e.g. `Check`); `None`: any.
    pub method: Option<String>,
    /// The answer.
    pub answer: GrpcAnswer,
}

impl GrpcCallReply {
    /// Whether this entry answers `call`.
    pub fn matches(&self, call: &GrpcCallRecord) -> bool {
        self.service.as_deref().is_none_or(|s| s == call.service)
            && self.method.as_deref().is_none_or(|m| m == call.method)
    }

    /// The host's reply for this entry.
    pub fn to_grpc_reply(&self) -> GrpcReply {
        match &self.answer {
            GrpcAnswer::Message { message, delay } => {
                GrpcReply::message(message.clone()).delayed(*delay)
            }
            GrpcAnswer::Status {
                code,
                message,
                delay,
            } => GrpcReply::status(*code, message).delayed(*delay),
            GrpcAnswer::Timeout => GrpcReply::Timeout,
        }
    }
}

/// Everything scripted around one request. The default is what the replay always did: no
/// time moves, no call is answered, the upstream answers `200` with no body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Script {
    /// Virtual time moved before the request starts (the filter's ticks fire).
    #[serde(serialize_with = "millis")]
    pub advance_before: Duration,
    /// Virtual time moved while the request is open, after it was sent and before the
    /// upstream answers (delayed call replies and call timeouts reach it).
    #[serde(serialize_with = "millis")]
    pub wait: Duration,
    /// Answers to the filter's `http_call`s, by cluster and path; first match wins. A
    /// call to a cluster not listed fails as a call to an unknown cluster in Envoy; a
    /// call to a listed cluster on a path not listed is reset.
    pub http_calls: Vec<CallReply>,
    /// Answers to the filter's `grpc_call`s, by cluster, service and method; first match
    /// wins. A call to a cluster not listed fails as a call to an unknown cluster in
    /// Envoy; a call to a listed cluster with no matching entry closes with UNIMPLEMENTED
    /// (12), as a server without that method answers.
    pub grpc_calls: Vec<GrpcCallReply>,
    /// The upstream's response.
    pub upstream: UpstreamResponse,
    /// Set for a TCP connection instead of an HTTP request: its steps, in order
    /// (`proxy_on_new_connection` first).
    pub tcp: Option<Vec<TcpStep>>,
}

/// One step on a scripted TCP connection (a network filter's traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TcpStep {
    /// Bytes from the client; `end`: it half-closed.
    Downstream {
        /// The bytes.
        data: Vec<u8>,
        /// End of the client's stream.
        end: bool,
    },
    /// Bytes from the upstream; `end`: it half-closed.
    Upstream {
        /// The bytes.
        data: Vec<u8>,
        /// End of the upstream's stream.
        end: bool,
    },
    /// The client closed (reset) the connection: the downstream close (REMOTE), then the
    /// context ends.
    DownstreamClose,
    /// The upstream closed the connection: Envoy sees its FIN (upstream data with `end`,
    /// then the upstream close with peer UNKNOWN).
    UpstreamClose,
}
