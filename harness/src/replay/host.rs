//! The [`Target`] that replays requests through a filter `.wasm` in this
//! crate's proxy-wasm host, the way Envoy would run it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Instant;

use crate::{Action, FailStrategy, GrpcReply, Host, HttpReply, StreamProps, TlsInfo, Vm, VmConfig};

use super::effects::{Effects, Sent};
use super::script::{CallReply, GrpcCallReply, TcpStep};

use super::model::{PeerCert, ReplayRequest};
use super::runner::{Target, TargetError};
use super::verdict::{Observed, Verdict};

/// Replays through one VM of the filter. When a request makes the filter
/// fail (a trap, a deadline), that request is reported as an error and a
/// fresh VM is started, so one failure does not decide every later request
/// (Envoy would keep the failed VM until it is reloaded).
pub struct HostTarget {
    host: Host,
    config: VmConfig,
    vm: Vm,
}

impl HostTarget {
    /// Loads `wasm` and starts a VM with `config` as its plugin configuration.
    pub fn new(wasm: &Path, config: &Path, fail_open: bool) -> Result<HostTarget, TargetError> {
        let plugin_configuration = std::fs::read(config)
            .map_err(|e| TargetError(format!("{}: cannot read: {e}", config.display())))?;
        let host =
            Host::from_file(wasm).map_err(|e| TargetError(format!("{}: {e}", wasm.display())))?;
        Self::with_host(host, plugin_configuration, fail_open)
    }

    /// As [`HostTarget::new`], from a loaded host and configuration bytes.
    pub fn with_host(
        host: Host,
        plugin_configuration: Vec<u8>,
        fail_open: bool,
    ) -> Result<HostTarget, TargetError> {
        let config = VmConfig {
            plugin_configuration,
            fail_strategy: if fail_open {
                FailStrategy::FailOpen
            } else {
                FailStrategy::FailClose
            },
            ..VmConfig::default()
        };
        Self::with_config(host, config)
    }

    /// A VM of `host` started with `config` (plugin and VM configuration, root id,
    /// properties, fail strategy).
    pub fn with_config(host: Host, config: VmConfig) -> Result<HostTarget, TargetError> {
        let vm = host
            .start_vm(config.clone())
            .map_err(|e| TargetError(format!("the filter did not start: {e}")))?;
        Ok(HostTarget { host, config, vm })
    }

    /// The VM requests are replayed through (its logs, calls, clock).
    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    fn restart(&mut self) -> Result<(), TargetError> {
        self.vm = self
            .host
            .start_vm(self.config.clone())
            .map_err(|e| TargetError(format!("the filter did not restart: {e}")))?;
        Ok(())
    }

    /// Answers the filter's `http_call`s and `grpc_call`s during `req` as its script says.
    fn script_calls(&mut self, req: &ReplayRequest) {
        self.vm.clear_call_responders();
        let mut clusters: Vec<&str> = Vec::new();
        for c in &req.script.http_calls {
            if !clusters.contains(&c.cluster.as_str()) {
                clusters.push(&c.cluster);
            }
        }
        for cluster in clusters {
            let replies: Vec<CallReply> = req
                .script
                .http_calls
                .iter()
                .filter(|c| c.cluster == cluster)
                .cloned()
                .collect();
            self.vm.on_http_call(cluster, move |call| {
                replies
                    .iter()
                    .find(|r| r.matches(call.header(":path")))
                    .map_or(HttpReply::Reset, CallReply::to_http_reply)
            });
        }
        let mut clusters: Vec<&str> = Vec::new();
        for c in &req.script.grpc_calls {
            if !clusters.contains(&c.cluster.as_str()) {
                clusters.push(&c.cluster);
            }
        }
        for cluster in clusters {
            let replies: Vec<GrpcCallReply> = req
                .script
                .grpc_calls
                .iter()
                .filter(|c| c.cluster == cluster)
                .cloned()
                .collect();
            self.vm.on_grpc_call(cluster, move |call| {
                replies.iter().find(|r| r.matches(call)).map_or_else(
                    || {
                        GrpcReply::status(
                            12,
                            &format!("no scripted answer for {}/{}", call.service, call.method),
                        )
                    },
                    GrpcCallReply::to_grpc_reply,
                )
            });
        }
    }

    /// A TCP connection: its steps through the network filter. The verdict's status is
    /// 0 (no HTTP status); a trap is answered by the fail strategy, as Envoy's
    /// `CHECK_FAIL_NET` does (fail-close closes the connection).
    fn replay_tcp(
        &mut self,
        req: &ReplayRequest,
        steps: &[TcpStep],
    ) -> Result<Verdict, TargetError> {
        let err = |e: crate::Error| TargetError(e.to_string());
        let mut trapped: Option<String> = None;
        let mut note = |r: Result<(), crate::Error>| -> Result<(), TargetError> {
            match r {
                Ok(()) => Ok(()),
                Err(e @ (crate::Error::Trap { .. } | crate::Error::Deadline { .. })) => {
                    trapped.get_or_insert(e.to_string());
                    Ok(())
                }
                Err(e) => Err(err(e)),
            }
        };
        self.script_calls(req);
        let vm_logs_before = self.vm.logs().len();
        let t0 = Instant::now();
        let mut c = self.vm.tcp_connection(stream_props(req)).map_err(err)?;
        note(c.new_connection().map(drop))?;
        for step in steps {
            let r = match step {
                TcpStep::Downstream { data, end } => c.downstream_data(data, *end).map(drop),
                TcpStep::Upstream { data, end } => c.upstream_data(data, *end).map(drop),
                TcpStep::DownstreamClose => c.downstream_closed(),
                TcpStep::UpstreamClose => c.upstream_closed(),
            };
            note(r)?;
        }
        let rec = c.finish().map_err(err)?;
        let latency = t0.elapsed();
        let mut logs: Vec<String> = rec.logs.iter().map(|l| l.message.clone()).collect();
        logs.extend(
            self.vm.logs()[vm_logs_before.min(self.vm.logs().len())..]
                .iter()
                .map(|l| l.message.clone()),
        );
        let mut v = Verdict::pass(&[], latency);
        v.status = 0;
        v.effects.logs = rec
            .logs
            .iter()
            .map(|l| format!("{}: {}", format!("{:?}", l.level).to_lowercase(), l.message))
            .collect();
        v.effects.reset = rec.closed_by.is_some();
        v.observed = Observed {
            logs,
            to_upstream: rec.to_upstream,
            to_downstream: rec.to_downstream,
            closed: rec.closed_by.is_some(),
            ..Observed::default()
        };
        if rec.failed_open {
            v.failed_open = Some("the VM failed; fail-open let the data through".into());
        }
        v.vm_trapped = trapped;
        Ok(v)
    }

    fn replay(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError> {
        if let Some(steps) = &req.script.tcp {
            return self.replay_tcp(req, steps);
        }
        let err = |e: crate::Error| TargetError(e.to_string());
        let fail_open = self.config.fail_strategy == FailStrategy::FailOpen;
        // A trap (or a deadline) inside a callback fails the VM; Envoy then answers the
        // stream by its fail strategy instead of erroring (proxy-wasm-cpp-host
        // src/context.cc, `CHECK_FAIL_HTTP` after each call: fail-open continues, else
        // `failStream` sends the 503 `wasm_fail_stream` reply). The stream driver does the
        // same for every later phase; this turns the trapping call's error into that.
        let mut trapped: Option<String> = None;
        let mut step = |r: Result<Action, crate::Error>| -> Result<Action, TargetError> {
            match r {
                Ok(a) => Ok(a),
                Err(e @ (crate::Error::Trap { .. } | crate::Error::Deadline { .. })) => {
                    trapped = Some(e.to_string());
                    Ok(if fail_open {
                        Action::Continue
                    } else {
                        Action::LocalReply
                    })
                }
                Err(e) => Err(err(e)),
            }
        };
        let script = &req.script;
        if !script.advance_before.is_zero() {
            self.vm.advance_time(script.advance_before).map_err(err)?;
        }
        self.script_calls(req);
        let vm_logs_before = self.vm.logs().len();
        let props = stream_props(req);
        let headers = req.envoy_headers();
        let upstream = &script.upstream;
        let upstream_headers = upstream.envoy_headers();
        let t0 = Instant::now();
        let mut s = self.vm.http_stream(props).map_err(err)?;
        let end = req.body.is_empty();
        let mut action =
            step(s.request_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), end))?;
        if !end && matches!(action, Action::Continue | Action::Pause) {
            action = step(s.request_body(&req.body, true))?;
        }
        if !script.wait.is_zero() && matches!(action, Action::Continue | Action::Pause) {
            action = step(s.advance_time(script.wait))?;
        }
        let mut responded = false;
        if action == Action::Continue {
            // The request went upstream; the script answers for the upstream.
            responded = true;
            let (chunks, trailers) = (&upstream.body_chunks, &upstream.trailers);
            let headers_end = chunks.is_empty() && trailers.is_empty();
            action = step(
                s.response_headers(
                    upstream_headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    headers_end,
                ),
            )?;
            for (i, chunk) in chunks.iter().enumerate() {
                if matches!(action, Action::LocalReply | Action::Reset) {
                    break;
                }
                let last = i + 1 == chunks.len() && trailers.is_empty();
                action = step(s.response_body(chunk, last))?;
            }
            if !trailers.is_empty() && !matches!(action, Action::LocalReply | Action::Reset) {
                action = step(
                    s.response_trailers(trailers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                )?;
            }
        }
        let rec = match s.finish() {
            Ok(rec) => rec,
            Err(e) => return Err(err(e)),
        };
        let latency = t0.elapsed();
        let fuel = self.vm.fuel_used().map(|_| rec.fuel_used());
        let upstream_body = upstream.body();
        let effects = Effects::of(
            Sent {
                request_headers: &headers,
                request_body: &req.body,
                response_headers: responded.then_some(upstream_headers.as_slice()),
                response_body: &upstream_body,
            },
            &rec,
        );
        let mut logs: Vec<String> = rec.logs.iter().map(|l| l.message.clone()).collect();
        logs.extend(
            self.vm.logs()[vm_logs_before.min(self.vm.logs().len())..]
                .iter()
                .map(|l| l.message.clone()),
        );
        let mut observed = Observed {
            response_headers: rec.response_headers.clone(),
            response_body: rec.response_body.clone(),
            upstream_headers: if rec.local_reply.is_none() {
                rec.request_headers.clone()
            } else {
                Vec::new()
            },
            logs,
            ..Observed::default()
        };
        if let Some(reply) = &rec.local_reply {
            let status = u16::try_from(reply.status)
                .map_err(|_| TargetError(format!("local reply with status {}", reply.status)))?;
            observed.response_body = reply.body.clone();
            let mut v = Verdict::from_local_reply(status, &reply.headers, &reply.body, latency);
            v.effects = effects;
            v.observed = observed;
            v.vm_trapped = trapped;
            v.fuel = fuel;
            return Ok(v);
        }
        if action == Action::Reset || rec.reset {
            return Err(TargetError(
                "the filter reset the stream (proxy_close_stream)".into(),
            ));
        }
        let mut seen = rec.response_headers.clone();
        seen.extend(rec.request_headers.iter().cloned());
        let mut v = Verdict::pass(&seen, latency);
        if responded {
            // The status that reached the client: the upstream's, unless the filter changed it.
            v.status = rec
                .response_header(":status")
                .and_then(|s| s.parse().ok())
                .unwrap_or(upstream.status);
        } else {
            // No upstream answered: the client saw the pass status and nothing else.
            observed.response_headers = vec![(":status".into(), v.status.to_string())];
        }
        v.effects = effects;
        v.observed = observed;
        v.fuel = fuel;
        if rec.failed_open {
            v.failed_open = Some(match &trapped {
                Some(why) => format!("the VM trapped; fail-open let the stream through: {why}"),
                None => "the VM had failed; fail-open let the stream through".into(),
            });
        }
        v.vm_trapped = trapped;
        Ok(v)
    }
}

impl Target for HostTarget {
    fn send(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError> {
        let r = self.replay(req);
        if let Some(why) = self.vm.failure().map(str::to_string) {
            self.restart()?;
            // A trap during the request itself is answered as Envoy answers it (the
            // verdict says so); a failure elsewhere (a tick, `proxy_on_log`) is an error.
            if matches!(&r, Ok(v) if v.vm_trapped.is_none()) {
                return Err(TargetError(why));
            }
        }
        r
    }
}

/// The stream's connection facts, as Envoy derives them.
pub fn stream_props(req: &ReplayRequest) -> StreamProps {
    let mut p = StreamProps {
        protocol: req.protocol.clone(),
        ..StreamProps::default()
    }
    .source(SocketAddr::new(req.client_ip, req.client_port));
    match req
        .server_addr
        .as_deref()
        .and_then(|a| a.parse::<IpAddr>().ok())
    {
        Some(ip) => {
            p = p.destination(SocketAddr::new(
                ip,
                req.server_port
                    .unwrap_or(if req.scheme == "https" { 443 } else { 80 }),
            ));
        }
        // A port without an IP address (JSONL `server_port` alone, go-ftw `port` with a
        // host name): still `destination.port`, or `ports` rules would never match.
        None => {
            if let Some(port) = req.server_port {
                p = p.destination_port(port);
            }
        }
    }
    if let Some(cert) = &req.tls {
        p = p.tls(tls_info(cert));
    } else if req.scheme == "https" {
        p = p.tls(TlsInfo::default());
    }
    p
}

fn tls_info(c: &PeerCert) -> TlsInfo {
    TlsInfo {
        mtls: c.mtls,
        uri_san_peer: c.uri_sans.first().cloned(),
        dns_san_peer: c.dns_sans.first().cloned(),
        subject_peer: c.subject.clone(),
        sha256_peer_digest: c.sha256.clone(),
        // Plain PEM: what Envoy 1.40 hands a filter (see policies/README.md).
        peer_certificate: c.pem.clone(),
        ..TlsInfo::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::model::{Locator, SourceLoc};

    fn req() -> ReplayRequest {
        ReplayRequest::new(
            "r",
            SourceLoc {
                file: "f".into(),
                at: Locator::Line(1),
            },
        )
    }

    /// A tiny proxy-wasm filter in WAT that decides by the number of request
    /// headers it is handed (4 pseudo-headers + N): N=0 lets the request go
    /// on, N=1 replies 403 with a JSON body, N=2 adds a rule-ids response
    /// header and replies 429, N=3 traps.
    const FILTER: &str = include_str!("../../tests/data/replay-filter.wat");

    fn target(fail_open: bool) -> HostTarget {
        let host = Host::new(FILTER.as_bytes()).expect("the test filter loads");
        HostTarget::with_host(host, b"{}".to_vec(), fail_open).expect("starts")
    }

    fn with_headers(n: usize) -> ReplayRequest {
        let mut r = req();
        r.headers = (0..n)
            .map(|i| (format!("x-h{i}"), "v".to_string()))
            .collect();
        r
    }

    #[test]
    fn verdicts_through_the_host() {
        let mut t = target(false);
        let v = t.send(&with_headers(0)).unwrap();
        assert_eq!(
            (v.status, v.local_reply, v.reason.clone()),
            (200, false, None)
        );

        let v = t.send(&with_headers(1)).unwrap();
        assert_eq!((v.status, v.local_reply), (403, true));
        assert_eq!(v.reason.as_deref(), Some("denied_by_test"));
        assert_eq!(v.rule_ids, vec!["t1", "7"]);
        assert!(v.latency > std::time::Duration::ZERO);

        let v = t.send(&with_headers(2)).unwrap();
        assert_eq!(v.status, 429);
        assert_eq!(v.rule_ids, vec!["a", "b"], "rule ids from the reply header");
    }

    /// Envoy answers the request whose callback traps by the fail strategy: under
    /// fail-close `failStream`, a 503 with no body and details `wasm_fail_stream`
    /// (proxy-wasm-cpp-host src/context.cc: `CHECK_FAIL_HTTP` after the call; Envoy's
    /// source/extensions/common/wasm/context.cc `failStream`; the reply's form is pinned
    /// in tests/envoy_behaviour.rs and, against Envoy 1.40, tests/tests/envoy_local_reply.rs).
    /// The replay reports that reply and that the VM trapped, then restarts the VM.
    #[test]
    fn a_trap_fails_closed_and_the_vm_restarts() {
        let mut t = target(false);
        let v = t.send(&with_headers(3)).unwrap();
        assert_eq!((v.status, v.local_reply), (503, true));
        let why = v.vm_trapped.as_deref().unwrap();
        assert!(why.contains("unreachable") || why.contains("trap"), "{why}");
        let reply = v.effects.local_reply.as_ref().unwrap();
        assert_eq!(reply.details, "wasm_fail_stream");
        assert_eq!(
            v.observed.response_headers[0],
            (":status".into(), "503".into())
        );
        // The next request is decided by a fresh VM, not failed closed.
        let v = t.send(&with_headers(1)).unwrap();
        assert_eq!(v.status, 403);
        assert_eq!(v.reason.as_deref(), Some("denied_by_test"));
        assert!(v.vm_trapped.is_none());
    }

    /// Under fail-open Envoy lets the trapping request through (`CHECK_FAIL_HTTP`
    /// returns the open status): the upstream answers, the verdict says it failed open.
    #[test]
    fn a_trap_fails_open_under_fail_open() {
        let mut t = target(true);
        let v = t.send(&with_headers(3)).unwrap();
        assert_eq!((v.status, v.local_reply), (200, false));
        assert!(v.vm_trapped.is_some());
        assert!(v.failed_open.as_deref().unwrap().contains("trapped"));
    }

    #[test]
    fn props_from_request() {
        let mut r = req();
        r.client_ip = "203.0.113.7".parse().unwrap();
        r.client_port = 4242;
        r.server_addr = Some("10.0.0.2".into());
        r.protocol = "HTTP/1.0".into();
        let p = stream_props(&r);
        assert_eq!(p.source, Some("203.0.113.7:4242".parse().unwrap()));
        assert_eq!(p.destination, Some("10.0.0.2:80".parse().unwrap()));
        assert_eq!(p.protocol, "HTTP/1.0");
        assert!(p.tls.is_none());

        r.server_addr = Some("localhost".into());
        r.server_port = Some(8443);
        r.scheme = "https".into();
        r.tls = Some(PeerCert {
            mtls: true,
            uri_sans: vec!["spiffe://a".into(), "spiffe://b".into()],
            subject: Some("CN=a".into()),
            pem: Some("-----BEGIN CERTIFICATE-----\nAB+/\n".into()),
            ..PeerCert::default()
        });
        let p = stream_props(&r);
        assert_eq!(p.destination, None, "a host name is no address");
        assert_eq!(
            p.destination_port,
            Some(8443),
            "but the port still reaches the filter"
        );
        r.server_addr = None;
        assert_eq!(stream_props(&r).destination_port, Some(8443));
        let t = p.tls.unwrap();
        assert!(t.mtls);
        assert_eq!(t.uri_san_peer.as_deref(), Some("spiffe://a"));
        assert_eq!(t.subject_peer.as_deref(), Some("CN=a"));
        assert_eq!(
            t.peer_certificate.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nAB+/\n")
        );
    }
}
