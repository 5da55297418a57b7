//! The HTTP stream driver: [`HttpStream`] feeds one context phase by phase (headers,
//! body chunks, trailers in each direction) with Envoy's pause/resume/buffering rules,
//! then ends it (`proxy_on_log`, `proxy_on_done`, `proxy_on_delete`).

use crate::context::{LocalReply, Paused, StreamRecord, StreamState};
use crate::error::Error;
use crate::properties::StreamProps;
use crate::types::{Action, HeaderPair, Headers};

use super::local_reply::envoy_reply;
use super::{BodyPick, FailStrategy, HeadersPick, TrailersPick, Vm};

impl Vm {
    /// Opens an HTTP stream: a new context (`proxy_on_context_create(id, root)`).
    /// On a failed VM the stream follows the fail strategy without calling the filter.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.request_headers(&[(":method", "GET")], true).unwrap(), Action::Continue);
    /// ```
    pub fn http_stream(&mut self, props: StreamProps) -> Result<HttpStream<'_>, Error> {
        let (id, bypass) = self.open_context(props, false)?;
        Ok(HttpStream {
            vm: self,
            id,
            bypass,
            finished: false,
        })
    }

    /// `proxy_continue_stream` for one direction: release what was held.
    pub(super) fn resume(&mut self, id: u32, dir: usize) -> Result<(), Error> {
        let Some(s) = self.stream(id) else {
            return Ok(());
        };
        let d = &mut s.dirs[dir];
        d.resume = false;
        let Some(at) = d.paused.take() else {
            return Ok(());
        };
        match at {
            Paused::Headers => {
                d.headers_avail = false;
                if d.body_pending {
                    d.body_pending = false;
                    let (n, eos) = (d.buffer.len(), d.end_seen);
                    let r = self.call(
                        body_name(dir),
                        Vm::body_cb(dir),
                        (id as i32, n as i32, eos as i32),
                        id,
                    )?;
                    self.after_body(id, dir, r.unwrap_or(0));
                }
            }
            Paused::Body => self.forward_body(id, dir),
            Paused::Trailers => {
                d.trailers_avail = false;
                self.forward_body(id, dir);
            }
        }
        let pending = self
            .stream(id)
            .filter(|s| s.dirs[dir].paused.is_none())
            .and_then(|s| s.dirs[dir].pending_trailers.take());
        if let Some(t) = pending {
            self.trailers_now(id, dir, t)?;
        }
        Ok(())
    }

    fn body_cb(dir: usize) -> BodyPick {
        if dir == 0 {
            |c| &c.on_request_body
        } else {
            |c| &c.on_response_body
        }
    }

    fn forward_body(&mut self, id: u32, dir: usize) {
        if let Some(s) = self.stream(id) {
            let b = std::mem::take(&mut s.dirs[dir].buffer);
            if dir == 0 {
                s.record.request_body.extend(b);
            } else {
                s.record.response_body.extend(b);
            }
        }
    }

    fn after_body(&mut self, id: u32, dir: usize, r: i32) {
        if r == 0 {
            self.forward_body(id, dir);
        } else if let Some(s) = self.stream(id) {
            s.dirs[dir].paused = Some(Paused::Body);
        }
    }

    fn trailers_now(&mut self, id: u32, dir: usize, t: Headers) -> Result<(), Error> {
        let n = t.len();
        if let Some(s) = self.stream(id) {
            s.dirs[dir].trailers_avail = true;
            s.dirs[dir].end_seen = true;
            if dir == 0 {
                s.record.request_trailers = t;
            } else {
                s.record.response_trailers = t;
            }
        }
        let (name, f): (&str, TrailersPick) = if dir == 0 {
            ("proxy_on_request_trailers", |c| &c.on_request_trailers)
        } else {
            ("proxy_on_response_trailers", |c| &c.on_response_trailers)
        };
        let r = self.call(name, f, (id as i32, n as i32), id)?.unwrap_or(0);
        if r == 0 {
            if let Some(s) = self.stream(id) {
                s.dirs[dir].trailers_avail = false;
            }
            self.forward_body(id, dir);
        } else if let Some(s) = self.stream(id) {
            s.dirs[dir].paused = Some(Paused::Trailers);
        }
        Ok(())
    }
}

fn body_name(dir: usize) -> &'static str {
    if dir == 0 {
        "proxy_on_request_body"
    } else {
        "proxy_on_response_body"
    }
}

fn lower(h: impl IntoIterator<Item = impl HeaderPair>) -> Headers {
    h.into_iter()
        .map(|p| (p.key().to_ascii_lowercase(), p.value().to_string()))
        .collect()
}

/// One HTTP stream (one filter context), driven phase by phase. Each phase returns the
/// [`Action`] after Envoy's rules and everything deferred (call replies due now, resumes,
/// local replies) has run. Dropping it without [`HttpStream::finish`] still ends the
/// context.
///
/// ```
/// # use portcullis_harness::{Host, StreamProps, Action};
/// # let wat = r#"(module (memory (export "memory") 1)
/// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
/// #   (func (export "proxy_abi_version_0_2_1")))"#;
/// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
/// let mut s = vm.http_stream(StreamProps::default()).unwrap();
/// s.request_headers(&[(":method", "POST"), (":path", "/x")], false).unwrap();
/// s.request_body(b"hello", true).unwrap();
/// s.response_headers(&[(":status", "200")], true).unwrap();
/// let rec = s.finish().unwrap();
/// assert_eq!(rec.request_body, b"hello");
/// ```
pub struct HttpStream<'vm> {
    vm: &'vm mut Vm,
    id: u32,
    bypass: bool,
    finished: bool,
}

impl HttpStream<'_> {
    /// The stream's context id.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.context_id(), 2);
    /// ```
    pub fn context_id(&self) -> u32 {
        self.id
    }

    /// The record so far (header maps as they stand now, local reply, logs, calls).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert!(s.record().local_reply.is_none());
    /// ```
    pub fn record(&self) -> &StreamRecord {
        static EMPTY: std::sync::OnceLock<StreamRecord> = std::sync::OnceLock::new();
        self.vm
            .store
            .data()
            .streams
            .get(&self.id)
            .map(|s| &s.record)
            .unwrap_or_else(|| EMPTY.get_or_init(StreamRecord::default))
    }

    fn state(&mut self) -> Option<&mut StreamState> {
        self.vm.store.data_mut().streams.get_mut(&self.id)
    }

    fn status(&mut self, dir: usize) -> Action {
        let Some(s) = self.state() else {
            return Action::Continue;
        };
        if s.record.local_reply.is_some() && s.ended {
            Action::LocalReply
        } else if s.record.reset {
            Action::Reset
        } else if s.dirs[dir].paused.is_some() {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    /// Applies the fail strategy (failed VM) or the stream's end; `Some` = do not call the filter.
    fn short_circuit(&mut self, dir: usize) -> Option<Action> {
        if self.bypass || self.vm.failed.is_some() {
            let strategy = self.vm.fail_strategy;
            let s = self.state()?;
            return Some(match strategy {
                FailStrategy::FailOpen => {
                    s.record.failed_open = true;
                    Action::Continue
                }
                FailStrategy::FailClose => {
                    if s.record.local_reply.is_none() {
                        // Envoy's `failStream`: 503 with no body, gRPC status UNAVAILABLE.
                        let reply = LocalReply {
                            status: 503,
                            body: Vec::new(),
                            headers: Vec::new(),
                            details: "wasm_fail_stream".to_string(),
                            grpc_status: Some(14),
                        };
                        let (headers, _) = envoy_reply(&reply, &s.record.request_headers);
                        s.record.response_headers = headers;
                        s.record.local_reply = Some(reply);
                    }
                    s.ended = true;
                    Action::LocalReply
                }
            });
        }
        if self.state()?.ended {
            return Some(self.status(dir));
        }
        None
    }

    fn headers(&mut self, dir: usize, h: Headers, eos: bool) -> Result<Action, Error> {
        let n = h.len();
        if let Some(s) = self.state() {
            let d = &mut s.dirs[dir];
            d.headers_seen = true;
            d.end_seen = eos;
            if dir == 0 {
                s.record.request_headers = h;
            } else {
                s.record.response_headers = h;
            }
        }
        if let Some(a) = self.short_circuit(dir) {
            return Ok(a);
        }
        if let Some(s) = self.state() {
            s.dirs[dir].headers_avail = true;
        }
        let (name, f): (&str, HeadersPick) = if dir == 0 {
            ("proxy_on_request_headers", |c| &c.on_request_headers)
        } else {
            ("proxy_on_response_headers", |c| &c.on_response_headers)
        };
        let id = self.id;
        let r = self
            .vm
            .call(name, f, (id as i32, n as i32, eos as i32), id)?;
        if let Some(s) = self.state() {
            let d = &mut s.dirs[dir];
            if r.unwrap_or(0) == 0 {
                d.headers_avail = false;
            } else {
                d.paused = Some(Paused::Headers);
            }
        }
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    fn body(&mut self, dir: usize, data: &[u8], eos: bool) -> Result<Action, Error> {
        if let Some(a) = self.short_circuit(dir) {
            if let (Action::Continue, Some(s)) = (a, self.state()) {
                if dir == 0 {
                    s.record.request_body.extend_from_slice(data);
                } else {
                    s.record.response_body.extend_from_slice(data);
                }
            }
            return Ok(a);
        }
        let id = self.id;
        let Some(s) = self.state() else {
            return Ok(Action::Continue);
        };
        let d = &mut s.dirs[dir];
        d.buffer.extend_from_slice(data);
        d.end_seen |= eos;
        if matches!(d.paused, Some(Paused::Headers) | Some(Paused::Trailers)) {
            d.body_pending = true;
            return Ok(Action::Pause);
        }
        let n = d.buffer.len();
        let r = self.vm.call(
            body_name(dir),
            Vm::body_cb(dir),
            (id as i32, n as i32, eos as i32),
            id,
        )?;
        if r.unwrap_or(0) == 0 {
            if let Some(s) = self.state() {
                s.dirs[dir].paused = None;
            }
        }
        self.vm.after_body(id, dir, r.unwrap_or(0));
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    fn trailers(&mut self, dir: usize, t: Headers) -> Result<Action, Error> {
        if let Some(a) = self.short_circuit(dir) {
            if let Some(s) = self.state() {
                if dir == 0 {
                    s.record.request_trailers = t;
                } else {
                    s.record.response_trailers = t;
                }
            }
            return Ok(a);
        }
        let id = self.id;
        let Some(s) = self.state() else {
            return Ok(Action::Continue);
        };
        if s.dirs[dir].paused == Some(Paused::Headers) {
            s.dirs[dir].pending_trailers = Some(t);
            return Ok(Action::Pause);
        }
        s.dirs[dir].paused = None;
        self.vm.trailers_now(id, dir, t)?;
        self.vm.settle()?;
        Ok(self.status(dir))
    }

    /// Request headers arrive (`proxy_on_request_headers`); keys are lower-cased.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.request_headers(&[(":path", "/")], true).unwrap(), Action::Continue);
    /// ```
    pub fn request_headers(
        &mut self,
        headers: impl IntoIterator<Item = impl HeaderPair>,
        end_of_stream: bool,
    ) -> Result<Action, Error> {
        self.headers(0, lower(headers), end_of_stream)
    }

    /// Request headers whose values are bytes, not necessarily UTF-8 (Envoy passes
    /// HTTP/1 `obs-text` bytes through): the filter reads the bytes as sent; the record
    /// holds them as lossy UTF-8. Keys are lower-cased.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// let h: [(&str, &[u8]); 2] = [(":path", b"/"), ("x-latin1", b"caf\xe9")];
    /// assert_eq!(s.request_headers_bytes(h, true).unwrap(), Action::Continue);
    /// assert_eq!(s.finish().unwrap().request_header("x-latin1"), Some("caf\u{fffd}"));
    /// ```
    pub fn request_headers_bytes<K: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        headers: impl IntoIterator<Item = (K, V)>,
        end_of_stream: bool,
    ) -> Result<Action, Error> {
        let mut lossy: Headers = Vec::new();
        let mut raw = Vec::new();
        for (k, v) in headers {
            let k = k.as_ref().to_ascii_lowercase();
            let v = v.as_ref();
            let text = String::from_utf8_lossy(v).into_owned();
            if std::str::from_utf8(v).is_err() {
                raw.push((k.clone(), text.clone(), v.to_vec()));
            }
            lossy.push((k, text));
        }
        if let Some(s) = self.state() {
            s.raw_request_values = raw;
        }
        self.headers(0, lossy, end_of_stream)
    }

    /// A request body chunk (`proxy_on_request_body` with the total buffered size).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], false).unwrap();
    /// s.request_body(b"x", true).unwrap();
    /// ```
    pub fn request_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action, Error> {
        self.body(0, data, end_of_stream)
    }

    /// Request trailers (`proxy_on_request_trailers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], false).unwrap();
    /// s.request_trailers(&[("grpc-status", "0")]).unwrap();
    /// ```
    pub fn request_trailers(
        &mut self,
        trailers: impl IntoIterator<Item = impl HeaderPair>,
    ) -> Result<Action, Error> {
        self.trailers(0, lower(trailers))
    }

    /// Response headers from upstream (`proxy_on_response_headers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], true).unwrap();
    /// s.response_headers(&[(":status", "200")], true).unwrap();
    /// ```
    pub fn response_headers(
        &mut self,
        headers: impl IntoIterator<Item = impl HeaderPair>,
        end_of_stream: bool,
    ) -> Result<Action, Error> {
        self.headers(1, lower(headers), end_of_stream)
    }

    /// A response body chunk (`proxy_on_response_body`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.response_headers(&[(":status", "200")], false).unwrap();
    /// s.response_body(b"ok", true).unwrap();
    /// ```
    pub fn response_body(&mut self, data: &[u8], end_of_stream: bool) -> Result<Action, Error> {
        self.body(1, data, end_of_stream)
    }

    /// Response trailers (`proxy_on_response_trailers`).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.response_headers(&[(":status", "200")], false).unwrap();
    /// s.response_trailers(&[("x", "y")]).unwrap();
    /// ```
    pub fn response_trailers(
        &mut self,
        trailers: impl IntoIterator<Item = impl HeaderPair>,
    ) -> Result<Action, Error> {
        self.trailers(1, lower(trailers))
    }

    /// Moves the virtual clock while this stream is open (see [`Vm::advance_time`]): ticks,
    /// delayed `http_call`/`grpc_call` replies and call timeouts reach the waiting stream, as
    /// in Envoy where a paused request waits for them. Returns the stream's state after:
    /// [`Action::Pause`] while it still waits, [`Action::Continue`] once resumed,
    /// [`Action::LocalReply`] if the filter replied.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # use std::time::Duration;
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut s = vm.http_stream(StreamProps::default()).unwrap();
    /// s.request_headers(&[(":path", "/")], true).unwrap();
    /// assert_eq!(s.advance_time(Duration::from_millis(30)).unwrap(), Action::Continue);
    /// ```
    pub fn advance_time(&mut self, by: std::time::Duration) -> Result<Action, Error> {
        self.vm.advance_time(by)?;
        let dir = match self.state() {
            Some(s) if s.dirs[1].headers_seen => 1,
            _ => 0,
        };
        Ok(self.status(dir))
    }

    /// The fuel of this stream's callbacks so far (see [`StreamRecord::fuel`]); 0 when
    /// the host does not meter fuel ([`crate::HostOptions::fuel`]).
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// assert_eq!(s.fuel_used(), 0);
    /// ```
    pub fn fuel_used(&self) -> u64 {
        self.record().fuel_used()
    }

    /// The VM this stream runs on (its logs, calls, clock).
    pub fn vm(&self) -> &Vm {
        self.vm
    }

    /// Ends the stream as Envoy does: `proxy_on_log` (all maps readable), `proxy_on_done`,
    /// `proxy_on_delete`; returns the record.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let s = vm.http_stream(StreamProps::default()).unwrap();
    /// let rec = s.finish().unwrap();
    /// assert_eq!(rec.context_id, 2);
    /// ```
    pub fn finish(mut self) -> Result<StreamRecord, Error> {
        self.finished = true;
        self.end()
    }

    fn end(&mut self) -> Result<StreamRecord, Error> {
        let id = self.id;
        let mut result = Ok(());
        if !self.bypass && self.vm.failed.is_none() {
            if let Some(s) = self.state() {
                s.in_log = true;
                for d in s.dirs.iter_mut() {
                    d.paused = None;
                    d.headers_avail = false;
                    d.trailers_avail = false;
                }
            }
            result = self
                .vm
                .call("proxy_on_log", |c| &c.on_log, id as i32, id)
                .and_then(|_| self.vm.call("proxy_on_done", |c| &c.on_done, id as i32, id))
                .and_then(|_| {
                    self.vm
                        .call("proxy_on_delete", |c| &c.on_delete, id as i32, id)
                })
                .map(|_| ());
        } else {
            // Fail-closed streams that never saw a phase still get their 503.
            let _ = self.short_circuit(0);
        }
        let s = self.vm.store.data_mut();
        let rec = s.streams.remove(&id).map(|s| s.record).unwrap_or_default();
        result.map(|_| rec)
    }
}

impl Drop for HttpStream<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.end();
        }
    }
}
