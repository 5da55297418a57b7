//! The [`Target`] that replays requests through a filter `.wasm` in this
//! crate's proxy-wasm host, the way Envoy would run it.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Instant;

use crate::{Action, FailStrategy, Host, HttpReply, StreamProps, TlsInfo, Vm, VmConfig};

use super::effects::{Effects, Sent};
use super::script::CallReply;

use super::model::{PeerCert, ReplayRequest};
use super::runner::{Target, TargetError};
use super::verdict::Verdict;

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

    /// Answers the filter's `http_call`s during `req` as its script says.
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
    }

    fn replay(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError> {
        let err = |e: crate::Error| TargetError(e.to_string());
        let script = &req.script;
        if !script.advance_before.is_zero() {
            self.vm.advance_time(script.advance_before).map_err(err)?;
        }
        self.script_calls(req);
        let props = stream_props(req);
        let headers = req.envoy_headers();
        let upstream = &script.upstream;
        let upstream_headers = upstream.envoy_headers();
        let t0 = Instant::now();
        let mut s = self.vm.http_stream(props).map_err(err)?;
        let end = req.body.is_empty();
        let mut action = s
            .request_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_str())), end)
            .map_err(err)?;
        if !end && matches!(action, Action::Continue | Action::Pause) {
            action = s.request_body(&req.body, true).map_err(err)?;
        }
        if !script.wait.is_zero() && matches!(action, Action::Continue | Action::Pause) {
            action = s.advance_time(script.wait).map_err(err)?;
        }
        let mut responded = false;
        if action == Action::Continue {
            // The request went upstream; the script answers for the upstream.
            responded = true;
            let (chunks, trailers) = (&upstream.body_chunks, &upstream.trailers);
            let headers_end = chunks.is_empty() && trailers.is_empty();
            action = s
                .response_headers(
                    upstream_headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    headers_end,
                )
                .map_err(err)?;
            for (i, chunk) in chunks.iter().enumerate() {
                if matches!(action, Action::LocalReply | Action::Reset) {
                    break;
                }
                let last = i + 1 == chunks.len() && trailers.is_empty();
                action = s.response_body(chunk, last).map_err(err)?;
            }
            if !trailers.is_empty() && !matches!(action, Action::LocalReply | Action::Reset) {
                action = s
                    .response_trailers(trailers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                    .map_err(err)?;
            }
        }
        let rec = s.finish().map_err(err)?;
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
        if let Some(reply) = &rec.local_reply {
            let status = u16::try_from(reply.status)
                .map_err(|_| TargetError(format!("local reply with status {}", reply.status)))?;
            let mut v = Verdict::from_local_reply(status, &reply.headers, &reply.body, latency);
            v.effects = effects;
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
        }
        v.effects = effects;
        v.fuel = fuel;
        if rec.failed_open {
            v.failed_open = Some("the VM had failed; fail-open let the stream through".into());
        }
        Ok(v)
    }
}

impl Target for HostTarget {
    fn send(&mut self, req: &ReplayRequest) -> Result<Verdict, TargetError> {
        let r = self.replay(req);
        if let Some(why) = self.vm.failure().map(str::to_string) {
            self.restart()?;
            if r.is_ok() {
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

    #[test]
    fn a_trap_is_an_error_and_the_vm_restarts() {
        let mut t = target(false);
        let e = t.send(&with_headers(3)).unwrap_err();
        assert!(e.0.contains("unreachable") || e.0.contains("trap"), "{e}");
        // The next request is decided by a fresh VM, not failed closed.
        let v = t.send(&with_headers(1)).unwrap();
        assert_eq!(v.status, 403);
        assert_eq!(v.reason.as_deref(), Some("denied_by_test"));
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
