//! Harness overhead benchmarks: what one HTTP stream costs the host (no-op filter), what
//! it costs with the release portcullis filter (allowed / denied), and replay throughput
//! on one core (streams/s). Goals: ≤ 2 µs per no-op stream, ≥ 200k streams/s.
//!
//! `cargo bench -p portcullis-benches --bench harness`
//!
//! The release filter is `$PORTCULLIS_WASM` when set, else built by `scripts/build-filter`.

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use portcullis_harness::{Action, Host, StreamProps, Vm, VmConfig};

const NOOP_WAT: &str = include_str!("noop.wat");

const CONFIG: &str = r#"{
  "partners": [
    {"name": "acme", "cidrs": ["203.0.113.0/24", "2001:db8:ac::/48"]},
    {"name": "globex", "cidrs": ["198.51.100.0/24"], "path_prefixes": ["/globex/"]}
  ],
  "ip_allowlist": {"client_ip": {"source": "peer"}}
}"#;

const REQUEST: [(&str, &str); 6] = [
    (":method", "GET"),
    (":scheme", "https"),
    (":authority", "api.example.com"),
    (":path", "/orders/42?expand=items"),
    ("user-agent", "bench/1.0"),
    ("x-request-id", "0f5b7c9e-1d2a-4c3b-8e6f-7a8b9c0d1e2f"),
];
const RESPONSE: [(&str, &str); 2] = [(":status", "200"), ("content-type", "application/json")];

fn release_filter() -> PathBuf {
    portcullis_harness::release::release_filter().to_path_buf()
}

/// One full stream: request headers (end of stream), response headers if it continued,
/// then `proxy_on_log`/`on_done`/`on_delete`.
fn stream(vm: &mut Vm, props: &StreamProps) -> Action {
    let mut s = vm.http_stream(props.clone()).unwrap();
    let a = s.request_headers(REQUEST, true).unwrap();
    if a == Action::Continue {
        s.response_headers(RESPONSE, true).unwrap();
    }
    s.finish().unwrap();
    a
}

fn from(addr: &str) -> StreamProps {
    StreamProps::default().source(addr.parse().unwrap())
}

fn per_stream(c: &mut Criterion) {
    let noop = Host::new(NOOP_WAT.as_bytes()).unwrap();
    let mut vm = noop.start_vm(VmConfig::default()).unwrap();
    let props = from("203.0.113.9:40000");
    let mut g = c.benchmark_group("harness/per_stream");
    g.throughput(Throughput::Elements(1));
    g.bench_function("noop", |b| {
        b.iter(|| assert_eq!(stream(&mut vm, black_box(&props)), Action::Continue))
    });

    let filter = Host::from_file(release_filter()).unwrap();
    let mut vm = filter
        .start_vm(VmConfig {
            plugin_configuration: CONFIG.as_bytes().to_vec(),
            ..Default::default()
        })
        .unwrap();
    let allowed = from("203.0.113.9:40000");
    let denied = from("192.0.2.1:40000");
    g.bench_function("portcullis_allowed", |b| {
        b.iter(|| assert_eq!(stream(&mut vm, black_box(&allowed)), Action::Continue))
    });
    g.bench_function("portcullis_denied", |b| {
        b.iter(|| assert_eq!(stream(&mut vm, black_box(&denied)), Action::LocalReply))
    });
    g.finish();

    // Replay on one core: a batch of mixed traffic through one VM, streams/s.
    const BATCH: usize = 1000;
    let traffic: Vec<StreamProps> = (0..BATCH)
        .map(|i| match i % 4 {
            0 => from("192.0.2.1:40000"),
            1 => from("198.51.100.7:40000"),
            2 => from("[2001:db8:ac::9]:40000"),
            _ => from("203.0.113.200:40000"),
        })
        .collect();
    let mut g = c.benchmark_group("harness/replay");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("noop_1000_streams", |b| {
        let mut vm = noop.start_vm(VmConfig::default()).unwrap();
        b.iter(|| {
            for p in &traffic {
                black_box(stream(&mut vm, p));
            }
        })
    });
    g.bench_function("portcullis_1000_streams", |b| {
        b.iter(|| {
            for p in &traffic {
                black_box(stream(&mut vm, p));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, per_stream);
criterion_main!(benches);
