//! IP allow-list lookup and compile benchmarks (issue: lookup ≤100 ns at 100k CIDRs,
//! flat from 10 to 1M).
//!
//! `cargo bench -p portcullis-benches --bench iplist`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use portcullis_filter::iplist::{IpTable, IpTableBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Deterministic xorshift so every run measures the same tables.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn random_nets(n: usize, v6: bool, rng: &mut Rng) -> Vec<IpNet> {
    (0..n)
        .map(|_| {
            if v6 {
                // Global unicast 2000::/3, /32../64 as assigned to organisations.
                let a =
                    (u128::from(rng.next()) << 64 | u128::from(rng.next())) >> 3 | (1u128 << 125);
                let len = 32 + (rng.next() % 33) as u8;
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap().trunc())
            } else {
                let len = 16 + (rng.next() % 17) as u8;
                IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), len)
                        .unwrap()
                        .trunc(),
                )
            }
        })
        .collect()
}

fn build(nets: &[IpNet]) -> IpTable {
    let mut b = IpTableBuilder::default();
    for (i, n) in nets.iter().enumerate() {
        b.insert(*n, (i % 50) as u32);
    }
    b.build()
}

/// Half the probes fall inside configured networks, half are random.
fn probes(nets: &[IpNet], v6: bool, rng: &mut Rng) -> Vec<IpAddr> {
    (0..4096)
        .map(|i| {
            if i % 2 == 0 {
                let n = nets[(rng.next() as usize) % nets.len()];
                n.network()
            } else if v6 {
                IpAddr::V6(Ipv6Addr::from(
                    u128::from(rng.next()) << 64 | u128::from(rng.next()),
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(rng.next() as u32))
            }
        })
        .collect()
}

fn lookup(c: &mut Criterion) {
    for (family, v6) in [("v4", false), ("v6", true)] {
        let mut g = c.benchmark_group(format!("iplist_lookup_{family}"));
        g.throughput(Throughput::Elements(1));
        for n in [10usize, 1_000, 100_000, 1_000_000] {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
            let nets = random_nets(n, v6, &mut rng);
            let table = build(&nets);
            let probes = probes(&nets, v6, &mut rng);
            let mut i = 0usize;
            g.bench_with_input(BenchmarkId::from_parameter(n), &table, |b, t| {
                b.iter(|| {
                    i = (i + 1) & 4095;
                    black_box(t.lookup(black_box(probes[i])))
                })
            });
        }
        g.finish();
    }
}

fn compile(c: &mut Criterion) {
    let mut rng = Rng(42);
    let nets = random_nets(100_000, false, &mut rng);
    // The whole pluginConfig path: JSON parse, validation and table build.
    let partners: Vec<String> = nets
        .chunks(2_000)
        .enumerate()
        .map(|(i, chunk)| {
            let cidrs: Vec<String> = chunk.iter().map(|n| format!("\"{n}\"")).collect();
            format!(r#"{{"name":"p{i}","cidrs":[{}]}}"#, cidrs.join(","))
        })
        .collect();
    let json = format!(
        r#"{{"partners":[{}],"ip_allowlist":{{"client_ip":{{"source":"peer"}}}}}}"#,
        partners.join(",")
    );
    let mut g = c.benchmark_group("iplist_compile");
    g.sample_size(10);
    g.bench_function("config_100k_cidrs", |b| {
        b.iter(|| black_box(portcullis_filter::engine::Plan::parse(json.as_bytes()).unwrap()))
    });
    g.bench_function("table_100k_cidrs", |b| b.iter(|| black_box(build(&nets))));
    g.finish();
}

criterion_group!(benches, lookup, compile);
criterion_main!(benches);
