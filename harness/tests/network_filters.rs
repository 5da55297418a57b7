//! Network (TCP) filters driven as Envoy drives them: the conformance filter built with the
//! proxy-wasm Rust SDK's `StreamContext` (plugin configuration `tcp`, a line protocol).
//!
//! Envoy's behaviour pinned here, from its source (no TCP listener in the e2e Envoy yet):
//! - proxy-wasm-cpp-host src/context.cc `onDownstreamData` / `onUpstreamData`: the filter
//!   gets the length of the connection's buffer; `0` continues, anything else is
//!   `StopIteration`. Envoy's network filter manager leaves stopped data in the read
//!   buffer, so the next read hands the filter the held bytes followed by the new ones;
//!   `proxy_continue_stream(Downstream)` is `continueReading()`, `Upstream` is
//!   UNIMPLEMENTED (Envoy context.cc `continueStream`).
//! - `proxy_close_stream` closes the connection (`closeStream`: `close(FlushWrite)`).
//! - `CHECK_FAIL_NET` before and after each call: on a failed VM fail-open continues,
//!   fail-close closes the connection (`failStream` for both directions); the close
//!   callbacks are not called on a failed VM (`if (!isFailed() && …)`).
//! - Closes (checked against Envoy 1.40 by tests/tests/envoy_network_filter.rs): the
//!   upstream's FIN is upstream data with end of stream followed by the upstream close with
//!   peer type UNKNOWN (0) (Envoy context.cc `onWrite`); the client's reset is the
//!   downstream close with REMOTE (2); the filter's close and the last of two FINs close
//!   the connection; each downstream close ends the context (`onCloseTCP`: on_done,
//!   on_log, on_delete) and later input is ignored.

use portcullis_harness::{Action, ClosedBy, Error, FailStrategy, StreamProps, VmConfig};

mod conformance_filter;
use conformance_filter::host;

fn tcp_vm(fail_strategy: FailStrategy) -> portcullis_harness::Vm {
    host()
        .start_vm(VmConfig {
            plugin_configuration: b"tcp".to_vec(),
            fail_strategy,
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn held_data_comes_back_with_the_next_read_and_flows_both_ways() {
    let mut vm = tcp_vm(FailStrategy::FailClose);
    let props = StreamProps::default().source("203.0.113.9:4242".parse().unwrap());
    let mut c = vm.tcp_connection(props).unwrap();
    assert_eq!(c.new_connection().unwrap(), Action::Continue);
    // Half a line: held.
    assert_eq!(c.downstream_data(b"hel", false).unwrap(), Action::Pause);
    // The rest: the filter sees all six bytes and lets the line go, rewritten.
    assert_eq!(c.downstream_data(b"lo\n", false).unwrap(), Action::Continue);
    assert_eq!(c.upstream_data(b"hi", false).unwrap(), Action::Continue);
    c.upstream_closed().unwrap();
    c.downstream_closed().unwrap();
    // The connection is gone: later data is not seen.
    assert_eq!(c.downstream_data(b"late\n", false).unwrap(), Action::Reset);
    let rec = c.finish().unwrap();
    assert_eq!(rec.to_upstream, b"HELLO\n");
    assert_eq!(
        rec.to_downstream, b"<hi<",
        "the FIN's empty data gets its `<` too"
    );
    assert!(rec.held_downstream.is_empty());
    assert_eq!(rec.closed_by, None);
    let logs: Vec<&str> = rec.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(
        logs,
        [
            &format!(
                "#{} tcp new connection from Some(\"203.0.113.9:4242\")",
                rec.context_id
            ),
            "downstream size=3 end=false data=\"hel\"",
            "downstream size=6 end=false data=\"hello\\n\"",
            "upstream size=2 end=false",
            "upstream size=0 end=true",
            "upstream close peer=0",
            "downstream close peer=2",
            &format!("tcp log #{}", rec.context_id),
        ]
    );
}

#[test]
fn two_fins_close_the_connection_with_the_peer_of_the_last() {
    for (client_first, peer) in [(true, 1), (false, 2)] {
        let mut vm = tcp_vm(FailStrategy::FailClose);
        let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
        c.new_connection().unwrap();
        if client_first {
            c.downstream_data(b"", true).unwrap();
            c.upstream_data(b"", true).unwrap();
        } else {
            c.upstream_data(b"", true).unwrap();
            c.downstream_data(b"", true).unwrap();
        }
        let rec = c.finish().unwrap();
        let tail: Vec<&str> = rec
            .logs
            .iter()
            .rev()
            .take(2)
            .map(|l| l.message.as_str())
            .collect();
        assert_eq!(
            tail,
            [
                &format!("tcp log #{}", rec.context_id),
                &format!("downstream close peer={peer}")
            ],
            "client first: {client_first}"
        );
        assert_eq!(rec.closed_by, None);
    }
}

#[test]
fn the_filter_closes_the_connection() {
    let mut vm = tcp_vm(FailStrategy::FailClose);
    let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
    c.new_connection().unwrap();
    assert_eq!(c.downstream_data(b"close\n", false).unwrap(), Action::Reset);
    assert_eq!(c.upstream_data(b"late", false).unwrap(), Action::Reset);
    let rec = c.finish().unwrap();
    assert_eq!(rec.closed_by, Some(ClosedBy::Filter));
    assert!(rec.to_downstream.is_empty());
    let tail: Vec<&str> = rec
        .logs
        .iter()
        .rev()
        .take(2)
        .map(|l| l.message.as_str())
        .collect();
    assert_eq!(
        tail,
        [
            &format!("tcp log #{}", rec.context_id),
            "downstream close peer=1"
        ],
        "a local close, then the context ends"
    );
    assert!(rec.to_upstream.is_empty());
    assert_eq!(rec.held_downstream, b"close\n");
}

#[test]
fn a_trap_closes_the_connection_under_fail_close_and_passes_under_fail_open() {
    let mut vm = tcp_vm(FailStrategy::FailClose);
    let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
    c.new_connection().unwrap();
    assert!(matches!(
        c.downstream_data(b"panic\n", false),
        Err(Error::Trap { .. })
    ));
    assert_eq!(c.downstream_data(b"more\n", false).unwrap(), Action::Reset);
    c.downstream_closed().unwrap();
    let rec = c.finish().unwrap();
    assert_eq!(rec.closed_by, Some(ClosedBy::FailClose));
    assert!(
        !rec.logged("downstream close"),
        "no close callback on a failed VM"
    );
    // A later connection on the failed VM is closed at once.
    let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
    assert_eq!(c.new_connection().unwrap(), Action::Reset);
    drop(c);

    let mut vm = tcp_vm(FailStrategy::FailOpen);
    let mut c = vm.tcp_connection(StreamProps::default()).unwrap();
    c.new_connection().unwrap();
    assert!(c.downstream_data(b"panic\n", false).is_err());
    assert_eq!(
        c.downstream_data(b"more\n", false).unwrap(),
        Action::Continue
    );
    let rec = c.finish().unwrap();
    assert!(rec.failed_open);
    assert_eq!(
        rec.to_upstream, b"panic\nmore\n",
        "the trapping read and the next pass unfiltered"
    );
    assert_eq!(rec.closed_by, None);
}
