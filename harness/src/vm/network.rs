//! The TCP (network filter) driver: [`TcpConnection`] feeds one context as Envoy's network
//! filter chain does: `proxy_on_new_connection`, downstream and upstream data, the closes.

use crate::context::{GrpcCallRecord, HttpCallRecord, LogEntry, Paused, StreamState};
use crate::error::Error;
use crate::properties::StreamProps;
use crate::types::Action;

use super::{FailStrategy, Vm};

/// Peer types of the close callbacks (proxy-wasm `PeerType`; Envoy's `CloseType`).
const PEER_UNKNOWN: i32 = 0;
const PEER_LOCAL: i32 = 1;
const PEER_REMOTE: i32 = 2;

/// Who closed a connection before its peers did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The filter (`proxy_close_stream`).
    Filter,
    /// The host, failing closed on a failed VM (Envoy's `failStream` closes the
    /// connection).
    FailClose,
}

/// What happened on one TCP connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpRecord {
    /// The connection's context id.
    pub context_id: u32,
    /// Downstream bytes the filter let through to the upstream, in order.
    pub to_upstream: Vec<u8>,
    /// Upstream bytes the filter let through to the client, in order.
    pub to_downstream: Vec<u8>,
    /// Downstream bytes still held (the filter stopped iteration and never continued).
    pub held_downstream: Vec<u8>,
    /// Upstream bytes still held.
    pub held_upstream: Vec<u8>,
    /// Set when the filter or the fail strategy closed the connection.
    pub closed_by: Option<ClosedBy>,
    /// The VM had failed and fail-open let the data through.
    pub failed_open: bool,
    /// Log lines of the connection's context.
    pub logs: Vec<LogEntry>,
    /// `http_call`s it made.
    pub http_calls: Vec<HttpCallRecord>,
    /// gRPC calls it made.
    pub grpc_calls: Vec<GrpcCallRecord>,
}

impl TcpRecord {
    /// True if any log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|l| l.message.contains(needle))
    }
}

/// One TCP connection through the filter (a network filter's `StreamContext`). Data moves
/// as in Envoy: data the filter stops (`StopIteration`) stays buffered and is handed to it
/// again, with what arrives next, on the next read; `proxy_continue_stream(Downstream)`
/// lets the held downstream data go on (Envoy's `continueReading`).
///
/// Closes as Envoy 1.40 reports them (checked against it by
/// tests/tests/envoy_network_filter.rs):
/// - a FIN from the upstream is data with `end` (`proxy_on_upstream_data(.., end=1)`)
///   followed at once by `proxy_on_upstream_connection_close` with peer type UNKNOWN (0):
///   Envoy learns of the upstream's close only from that end of stream;
/// - the client's FIN is `proxy_on_downstream_data(.., end=1)`;
/// - once both FINs went through, Envoy closes the connection: the downstream close with
///   peer LOCAL (1) when the upstream's FIN came last, REMOTE (2) when the client's did;
/// - the client's reset (or any close from its side) is the downstream close with REMOTE;
/// - the filter's `proxy_close_stream` closes it with LOCAL;
/// - each downstream close ends the context there and then: `proxy_on_done`,
///   `proxy_on_log`, `proxy_on_delete` (Envoy's `onCloseTCP`); later input is ignored
///   (`Reset`). None of these callbacks reach a failed VM.
pub struct TcpConnection<'a> {
    vm: &'a mut Vm,
    id: u32,
    opened: bool,
    finished: bool,
    /// The client's FIN went through the filter.
    client_fin: bool,
    /// The upstream's FIN went through the filter.
    upstream_fin: bool,
    /// The downstream connection is closed and the context ended (`onCloseTCP` ran).
    closed: bool,
}

impl Vm {
    /// Opens a TCP connection: a new context (`proxy_on_context_create(id, root)`); call
    /// [`TcpConnection::new_connection`] next, as Envoy does once the client connected.
    ///
    /// ```
    /// # use portcullis_harness::{Host, StreamProps, Action};
    /// # let wat = r#"(module (memory (export "memory") 1)
    /// #   (func (export "malloc") (param i32) (result i32) i32.const 1024)
    /// #   (func (export "proxy_abi_version_0_2_1")))"#;
    /// # let mut vm = Host::new(wat.as_bytes()).unwrap().start_vm(Default::default()).unwrap();
    /// let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
    /// assert_eq!(c.new_connection().unwrap(), Action::Continue);
    /// assert_eq!(c.downstream_data(b"ping", false).unwrap(), Action::Continue);
    /// let rec = c.finish().unwrap();
    /// assert_eq!(rec.to_upstream, b"ping");
    /// ```
    pub fn tcp_connection(&mut self, props: StreamProps) -> Result<TcpConnection<'_>, Error> {
        let (id, _) = self.open_context(props, true)?;
        Ok(TcpConnection {
            vm: self,
            id,
            opened: false,
            finished: false,
            client_fin: false,
            upstream_fin: false,
            closed: false,
        })
    }
}

impl TcpConnection<'_> {
    /// The connection's context id.
    pub fn context_id(&self) -> u32 {
        self.id
    }

    fn state(&mut self) -> Option<&mut StreamState> {
        self.vm.store.data_mut().streams.get_mut(&self.id)
    }

    /// Envoy's `CHECK_FAIL_NET` (proxy-wasm-cpp-host src/context.cc), before and after
    /// each call: on a failed VM fail-open lets data through, fail-close closes the
    /// connection (`failStream`) and stops.
    fn failed(&mut self) -> Option<Action> {
        self.vm.failed.as_ref()?;
        let strategy = self.vm.fail_strategy;
        let s = self.state()?;
        Some(match strategy {
            FailStrategy::FailOpen => {
                s.record.failed_open = true;
                Action::Continue
            }
            FailStrategy::FailClose => {
                if !s.ended {
                    s.ended = true;
                    s.record.reset = true;
                    s.local_reply_new = false;
                }
                Action::Reset
            }
        })
    }

    /// Lets the held data of `dir` go on.
    fn pass_held(&mut self, dir: usize) {
        if let Some(s) = self.state() {
            let data = std::mem::take(&mut s.dirs[dir].buffer);
            s.dirs[dir].paused = None;
            if dir == 0 {
                s.record.request_body.extend(data);
            } else {
                s.record.response_body.extend(data);
            }
        }
    }

    fn status(&mut self, dir: usize) -> Action {
        match self.state() {
            Some(s) if s.record.reset => Action::Reset,
            Some(s) if s.dirs[dir].paused.is_some() => Action::Pause,
            _ => Action::Continue,
        }
    }

    /// `proxy_on_new_connection`: `Continue`, or `Pause` when the filter stops iteration
    /// (Envoy then waits for `proxy_continue_stream`), `Reset` when it closed.
    pub fn new_connection(&mut self) -> Result<Action, Error> {
        self.opened = true;
        if let Some(a) = self.failed() {
            return Ok(a);
        }
        let id = self.id;
        let r = self.vm.call(
            "proxy_on_new_connection",
            |c| &c.on_new_connection,
            id as i32,
            id,
        );
        self.after(r.map(|r| r.unwrap_or(0)), None)
    }

    fn after(&mut self, r: Result<i32, Error>, dir: Option<usize>) -> Result<Action, Error> {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                // The trap's error is the caller's; the connection follows the strategy
                // (fail-open: the data of the failed call goes on, as `CHECK_FAIL_NET`
                // returns Continue after the call).
                if self.failed() == Some(Action::Continue) {
                    if let Some(dir) = dir {
                        self.pass_held(dir);
                    }
                }
                return Err(e);
            }
        };
        if let Some(dir) = dir {
            if let Some(s) = self.state() {
                if r != 0 {
                    s.dirs[dir].paused = Some(Paused::Body);
                }
            }
            if r == 0 {
                self.pass_held(dir);
            }
        }
        self.vm.settle()?;
        if let Some(a) = self.failed() {
            return Ok(a);
        }
        if self.state().is_some_and(|s| s.record.reset) {
            // `proxy_close_stream`: Envoy closes the connection (`close(FlushWrite)`), a
            // local close.
            self.close_connection(PEER_LOCAL)?;
            return Ok(Action::Reset);
        }
        Ok(match dir {
            Some(dir) => self.status(dir),
            None if r != 0 => Action::Pause,
            None => self.status(0),
        })
    }

    fn data(&mut self, dir: usize, data: &[u8], end: bool) -> Result<Action, Error> {
        if !self.opened {
            let a = self.new_connection()?;
            if a == Action::Reset {
                return Ok(a);
            }
        }
        if self.closed {
            return Ok(Action::Reset);
        }
        if let Some(a) = self.failed() {
            if a == Action::Continue {
                if let Some(s) = self.state() {
                    s.dirs[dir].buffer.extend_from_slice(data);
                }
                self.pass_held(dir);
            }
            return Ok(a);
        }
        let n = match self.state() {
            Some(s) if s.ended => return Ok(Action::Reset),
            Some(s) => {
                s.dirs[dir].buffer.extend_from_slice(data);
                s.dirs[dir].end_seen = end;
                s.dirs[dir].buffer.len()
            }
            None => return Ok(Action::Continue),
        };
        let id = self.id;
        let r = if dir == 0 {
            self.vm.call(
                "proxy_on_downstream_data",
                |c| &c.on_downstream_data,
                (id as i32, n as i32, end as i32),
                id,
            )
        } else {
            self.vm.call(
                "proxy_on_upstream_data",
                |c| &c.on_upstream_data,
                (id as i32, n as i32, end as i32),
                id,
            )
        };
        let action = self.after(r.map(|r| r.unwrap_or(0)), Some(dir))?;
        if !end || self.closed {
            return Ok(action);
        }
        if dir == 1 && self.vm.failed.is_none() {
            // Envoy's `onWrite` on end of stream, whatever the filter answered.
            self.vm.call(
                "proxy_on_upstream_connection_close",
                |c| &c.on_upstream_connection_close,
                (id as i32, PEER_UNKNOWN),
                id,
            )?;
            self.vm.settle()?;
        }
        if action == Action::Continue {
            if dir == 0 {
                self.client_fin = true;
            } else {
                self.upstream_fin = true;
            }
            if self.client_fin && self.upstream_fin {
                // Both halves closed: Envoy closes the connection; whose FIN came last
                // decides the peer type.
                self.close_connection(if dir == 0 { PEER_REMOTE } else { PEER_LOCAL })?;
            }
        }
        Ok(action)
    }

    /// Bytes from the client (`proxy_on_downstream_data`); `end`: the client half-closed.
    /// `Continue` passes what is buffered upstream, `Pause` holds it.
    pub fn downstream_data(&mut self, data: &[u8], end: bool) -> Result<Action, Error> {
        self.data(0, data, end)
    }

    /// Bytes from the upstream (`proxy_on_upstream_data`); `end`: the upstream half-closed.
    pub fn upstream_data(&mut self, data: &[u8], end: bool) -> Result<Action, Error> {
        self.data(1, data, end)
    }

    /// The client closed (or reset) the connection: `proxy_on_downstream_connection_close`
    /// with peer type REMOTE (2), as Envoy reports a `RemoteClose` event, then the
    /// context ends (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`). A client that
    /// only half-closes sends `downstream_data(b"", true)` instead.
    pub fn downstream_closed(&mut self) -> Result<(), Error> {
        if !self.opened {
            self.new_connection()?;
        }
        self.close_connection(PEER_REMOTE)
    }

    /// The upstream closed: Envoy sees that only as the upstream's FIN, so this is
    /// `upstream_data(b"", true)`: `proxy_on_upstream_data` with end of stream, then
    /// `proxy_on_upstream_connection_close` with peer type UNKNOWN (0).
    pub fn upstream_closed(&mut self) -> Result<(), Error> {
        self.upstream_data(b"", true).map(drop)
    }

    /// The downstream connection closes with `peer`: its close callback, then the
    /// context ends (Envoy's `onEvent` → `onDownstreamConnectionClose` → `onCloseTCP`).
    /// A failed VM gets neither (proxy-wasm-cpp-host checks `isFailed()` in each).
    fn close_connection(&mut self, peer: i32) -> Result<(), Error> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        if let Some(s) = self.state() {
            s.ended = true;
        }
        if self.vm.failed.is_some() {
            return Ok(());
        }
        let id = self.id;
        self.vm.call(
            "proxy_on_downstream_connection_close",
            |c| &c.on_downstream_connection_close,
            (id as i32, peer),
            id,
        )?;
        self.vm.settle()?;
        self.end_context()
    }

    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, unless the VM failed.
    fn end_context(&mut self) -> Result<(), Error> {
        if self.vm.failed.is_some() {
            return Ok(());
        }
        let id = self.id;
        self.vm
            .call("proxy_on_done", |c| &c.on_done, id as i32, id)
            .and_then(|_| self.vm.call("proxy_on_log", |c| &c.on_log, id as i32, id))
            .and_then(|_| {
                self.vm
                    .call("proxy_on_delete", |c| &c.on_delete, id as i32, id)
            })
            .map(|_| ())
    }

    /// Returns what happened, first ending the connection's context if no close did:
    /// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete` (as Envoy's `onCloseTCP`),
    /// without a close callback.
    pub fn finish(mut self) -> Result<TcpRecord, Error> {
        self.finished = true;
        self.end()
    }

    fn end(&mut self) -> Result<TcpRecord, Error> {
        let id = self.id;
        let result = if self.closed {
            Ok(())
        } else {
            self.closed = true;
            self.end_context()
        };
        let failed_close =
            self.vm.failed.is_some() && self.vm.fail_strategy == FailStrategy::FailClose;
        let s = self.vm.store.data_mut().streams.remove(&id);
        result?;
        let Some(s) = s else {
            return Ok(TcpRecord {
                context_id: id,
                ..TcpRecord::default()
            });
        };
        let [down, up] = s.dirs;
        let rec = s.record;
        Ok(TcpRecord {
            context_id: id,
            to_upstream: rec.request_body,
            to_downstream: rec.response_body,
            held_downstream: down.buffer,
            held_upstream: up.buffer,
            closed_by: if failed_close && rec.reset {
                Some(ClosedBy::FailClose)
            } else if rec.reset {
                Some(ClosedBy::Filter)
            } else {
                None
            },
            failed_open: rec.failed_open,
            logs: rec.logs,
            http_calls: rec.http_calls,
            grpc_calls: rec.grpc_calls,
        })
    }
}

impl Drop for TcpConnection<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.end();
        }
    }
}
