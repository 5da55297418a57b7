//! The TCP (network filter) driver: [`TcpConnection`] feeds one context as Envoy's network
//! filter chain does: `proxy_on_new_connection`, downstream and upstream data, the closes.

use crate::context::{GrpcCallRecord, HttpCallRecord, LogEntry, Paused, StreamState};
use crate::error::Error;
use crate::properties::StreamProps;
use crate::types::Action;

use super::{FailStrategy, Vm};

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
pub struct TcpConnection<'a> {
    vm: &'a mut Vm,
    id: u32,
    opened: bool,
    finished: bool,
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
        self.after(r.map(|r| r.unwrap_or(0)), Some(dir))
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

    /// The client closed the connection: `proxy_on_downstream_connection_close` with
    /// peer type REMOTE (2), as Envoy reports a `RemoteClose` event.
    pub fn downstream_closed(&mut self) -> Result<(), Error> {
        self.close(0)
    }

    /// The upstream closed: `proxy_on_upstream_connection_close` with peer type REMOTE (2).
    pub fn upstream_closed(&mut self) -> Result<(), Error> {
        self.close(1)
    }

    fn close(&mut self, dir: usize) -> Result<(), Error> {
        // Envoy calls neither close callback on a failed VM (context.cc `if (!isFailed()`).
        if self.vm.failed.is_some() {
            return Ok(());
        }
        let id = self.id;
        if dir == 0 {
            self.vm.call(
                "proxy_on_downstream_connection_close",
                |c| &c.on_downstream_connection_close,
                (id as i32, 2),
                id,
            )?;
        } else {
            self.vm.call(
                "proxy_on_upstream_connection_close",
                |c| &c.on_upstream_connection_close,
                (id as i32, 2),
                id,
            )?;
        }
        self.vm.settle()
    }

    /// Ends the connection's context as Envoy does when the connection is gone:
    /// `proxy_on_done` (Envoy's `onDestroy`), then `proxy_on_log` and `proxy_on_delete`
    /// (its access log), and returns what happened.
    pub fn finish(mut self) -> Result<TcpRecord, Error> {
        self.finished = true;
        self.end()
    }

    fn end(&mut self) -> Result<TcpRecord, Error> {
        let id = self.id;
        let mut result = Ok(());
        if self.vm.failed.is_none() {
            result = self
                .vm
                .call("proxy_on_done", |c| &c.on_done, id as i32, id)
                .and_then(|_| self.vm.call("proxy_on_log", |c| &c.on_log, id as i32, id))
                .and_then(|_| {
                    self.vm
                        .call("proxy_on_delete", |c| &c.on_delete, id as i32, id)
                })
                .map(|_| ());
        }
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
