//! Calls out of the filter: scripted answers to `proxy_http_call` ([`HttpReply`]),
//! `proxy_grpc_call` ([`GrpcReply`]) and foreign functions, their responders, and the
//! delivery of a reply to the filter when it comes due.

use std::time::Duration;

use crate::context::{CalloutData, GrpcCallRecord, HttpCallRecord, PendingReply};
use crate::error::Error;
use crate::types::{Headers, Status};

use super::Vm;

/// A scripted answer to a `proxy_http_call`.
///
/// ```
/// use portcullis_harness::HttpReply;
/// let r = HttpReply::ok(200, b"{}".to_vec()).header("content-type", "application/json");
/// assert!(matches!(r, HttpReply::Response { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpReply {
    /// A response, delivered `delay` after the call on the virtual clock (0 = right after
    /// the callback that made the call returns).
    Response {
        /// Response headers, incl. `:status`.
        headers: Headers,
        /// Body.
        body: Vec<u8>,
        /// Trailers.
        trailers: Headers,
        /// Virtual delay.
        delay: Duration,
    },
    /// No answer: the call fails (0 headers) when its timeout elapses on the virtual clock.
    Timeout,
    /// Connection failure: the call fails (0 headers) right away.
    Reset,
}

impl HttpReply {
    /// A response with `:status` and a body, no delay.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// let r = HttpReply::ok(204, vec![]);
    /// # let _ = r;
    /// ```
    pub fn ok(status: u16, body: Vec<u8>) -> Self {
        HttpReply::Response {
            headers: vec![(":status".to_string(), status.to_string())],
            body,
            trailers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// Adds a header to a `Response`.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// let r = HttpReply::ok(200, vec![]).header("x", "1");
    /// # let _ = r;
    /// ```
    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let HttpReply::Response { headers, .. } = &mut self {
            headers.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// Sets the virtual delay of a `Response`.
    ///
    /// ```
    /// # use portcullis_harness::HttpReply;
    /// # use std::time::Duration;
    /// let r = HttpReply::ok(200, vec![]).delayed(Duration::from_millis(30));
    /// # let _ = r;
    /// ```
    pub fn delayed(mut self, d: Duration) -> Self {
        if let HttpReply::Response { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

/// A scripted answer to a unary `proxy_grpc_call`.
///
/// ```
/// use portcullis_harness::GrpcReply;
/// let ok = GrpcReply::message(b"\x08\x01".to_vec());
/// let err = GrpcReply::status(7, "denied");
/// assert_ne!(ok, err);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcReply {
    /// Success: `proxy_on_grpc_receive` with the message.
    Message {
        /// Response message bytes.
        message: Vec<u8>,
        /// Virtual delay.
        delay: Duration,
    },
    /// Failure: `proxy_on_grpc_close` with the status (message via `proxy_get_status`).
    Status {
        /// gRPC status code.
        code: u32,
        /// Status message.
        message: String,
        /// Virtual delay.
        delay: Duration,
    },
    /// No answer: closes with DEADLINE_EXCEEDED (4) when the timeout elapses.
    Timeout,
}

impl GrpcReply {
    /// A successful reply, no delay.
    ///
    /// ```
    /// # use portcullis_harness::GrpcReply;
    /// let _ = GrpcReply::message(vec![1]);
    /// ```
    pub fn message(message: Vec<u8>) -> Self {
        GrpcReply::Message {
            message,
            delay: Duration::ZERO,
        }
    }

    /// A failed call, no delay.
    ///
    /// ```
    /// # use portcullis_harness::GrpcReply;
    /// let _ = GrpcReply::status(14, "unavailable");
    /// ```
    pub fn status(code: u32, message: &str) -> Self {
        GrpcReply::Status {
            code,
            message: message.to_string(),
            delay: Duration::ZERO,
        }
    }

    /// Sets the virtual delay of a message or a status (a timeout has none: it fires
    /// when the call's own timeout elapses).
    ///
    /// ```
    /// # use portcullis_harness::GrpcReply;
    /// # use std::time::Duration;
    /// let r = GrpcReply::status(14, "unavailable").delayed(Duration::from_millis(20));
    /// assert!(matches!(r, GrpcReply::Status { delay, .. } if delay == Duration::from_millis(20)));
    /// ```
    pub fn delayed(mut self, d: Duration) -> Self {
        if let GrpcReply::Message { delay, .. } | GrpcReply::Status { delay, .. } = &mut self {
            *delay = d;
        }
        self
    }
}

/// A host function answering `proxy_call_foreign_function` for one name.
pub type ForeignFunction = Box<dyn FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send>;

impl Vm {
    /// Registers the responder for `proxy_http_call`s to `cluster` (calls to clusters
    /// without one get BAD_ARGUMENT, as an unknown cluster in Envoy).
    ///
    /// ```
    /// # use portcullis_harness::{Host, HttpReply};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.on_http_call("authz", |call| if call.header(":path") == Some("/ok") {
    ///     HttpReply::ok(200, vec![])
    /// } else {
    ///     HttpReply::Timeout
    /// });
    /// ```
    pub fn on_http_call(
        &mut self,
        cluster: &str,
        responder: impl FnMut(&HttpCallRecord) -> HttpReply + Send + 'static,
    ) {
        self.store
            .data_mut()
            .http_responders
            .insert(cluster.to_string(), Box::new(responder));
    }

    /// Registers the responder for unary `proxy_grpc_call`s to `cluster` (and accepts
    /// `proxy_grpc_stream`s to it). Unknown clusters get PARSE_FAILURE.
    ///
    /// ```
    /// # use portcullis_harness::{Host, GrpcReply};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.on_grpc_call("grpcbin", |_call| GrpcReply::status(10, "aborted"));
    /// ```
    pub fn on_grpc_call(
        &mut self,
        cluster: &str,
        responder: impl FnMut(&GrpcCallRecord) -> GrpcReply + Send + 'static,
    ) {
        self.store
            .data_mut()
            .grpc_responders
            .insert(cluster.to_string(), Box::new(responder));
    }

    /// Removes every `http_call` and `grpc_call` responder: later calls fail as calls to
    /// unknown clusters until new ones are registered (a replay scripts them per request).
    pub fn clear_call_responders(&mut self) {
        let s = self.store.data_mut();
        s.http_responders.clear();
        s.grpc_responders.clear();
    }

    /// Answers `proxy_call_foreign_function(name, …)` (unregistered names: NOT_FOUND,
    /// except Envoy's no-op built-ins).
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// vm.register_foreign_function("echo", |args| Ok(args.to_vec()));
    /// ```
    pub fn register_foreign_function(
        &mut self,
        name: &str,
        f: impl FnMut(&[u8]) -> Result<Vec<u8>, Status> + Send + 'static,
    ) {
        self.store
            .data_mut()
            .foreign
            .insert(name.to_string(), Box::new(f));
    }

    /// Every `proxy_http_call` this VM made, in order.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.http_calls().is_empty());
    /// ```
    pub fn http_calls(&self) -> &[HttpCallRecord] {
        &self.store.data().all_http_calls
    }

    /// Every gRPC call/stream this VM opened, in order.
    ///
    /// ```
    /// # use portcullis_harness::Host;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// assert!(vm.grpc_calls().is_empty());
    /// ```
    pub fn grpc_calls(&self) -> &[GrpcCallRecord] {
        &self.store.data().all_grpc_calls
    }

    pub(super) fn deliver(&mut self, reply: PendingReply) -> Result<(), Error> {
        let root = self.store.data().root_id;
        match reply {
            PendingReply::Http(
                token,
                HttpReply::Response {
                    headers,
                    body,
                    trailers,
                    ..
                },
            ) => {
                let (nh, nb, nt) = (headers.len(), body.len(), trailers.len());
                self.store.data_mut().callout = CalloutData {
                    headers,
                    body,
                    trailers,
                };
                self.call(
                    "proxy_on_http_call_response",
                    |c| &c.on_http_call_response,
                    (root as i32, token as i32, nh as i32, nb as i32, nt as i32),
                    root,
                )?;
            }
            PendingReply::Http(token, _) | PendingReply::HttpTimeout(token) => {
                self.store.data_mut().callout = CalloutData::default();
                self.call(
                    "proxy_on_http_call_response",
                    |c| &c.on_http_call_response,
                    (root as i32, token as i32, 0, 0, 0),
                    root,
                )?;
            }
            PendingReply::Grpc(token, GrpcReply::Message { message, .. }) => {
                let n = message.len();
                let s = self.store.data_mut();
                s.callout = CalloutData {
                    body: message,
                    ..Default::default()
                };
                s.status = (0, String::new());
                self.call(
                    "proxy_on_grpc_receive",
                    |c| &c.on_grpc_receive,
                    (root as i32, token as i32, n as i32),
                    root,
                )?;
            }
            PendingReply::Grpc(token, other) => {
                let (code, msg) = match other {
                    GrpcReply::Status { code, message, .. } => (code, message),
                    _ => (4, "deadline exceeded".to_string()),
                };
                let s = self.store.data_mut();
                s.callout = CalloutData::default();
                s.status = (code, msg);
                self.call(
                    "proxy_on_grpc_close",
                    |c| &c.on_grpc_close,
                    (root as i32, token as i32, code as i32),
                    root,
                )?;
            }
        }
        self.store.data_mut().callout = CalloutData::default();
        Ok(())
    }
}
