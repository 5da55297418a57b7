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

/// `partner_lists`: what the fetching VM pays per new version (parse a 100k-line list,
/// compile, serialize and seal) and what every other VM pays to load it (open the envelope,
/// check the CRC, read the table back and rebuild its index). Sizes are printed.
fn shared_table(c: &mut Criterion) {
    use portcullis_filter::lists::{open_envelope, parse_text_list, seal};
    let mut g = c.benchmark_group("partner_lists_100k");
    g.sample_size(10);
    for (family, v6) in [("v4", false), ("v6", true)] {
        let mut rng = Rng(7);
        let nets = random_nets(100_000, v6, &mut rng);
        let text: String = nets.iter().map(|n| format!("{n}\n")).collect();
        let table = build(&nets);
        let blob = seal(1, &[0; 32], &table.to_bytes());
        eprintln!(
            "partner_lists_100k {family}: list {} bytes, {} intervals, shared table {} bytes",
            text.len(),
            table.intervals(),
            blob.len()
        );
        g.bench_function(format!("{family}_parse_list"), |b| {
            b.iter(|| black_box(parse_text_list(text.as_bytes(), 0).unwrap()))
        });
        g.bench_function(format!("{family}_serialize"), |b| {
            b.iter(|| black_box(seal(1, &[0; 32], &black_box(&table).to_bytes())))
        });
        g.bench_function(format!("{family}_deserialize"), |b| {
            b.iter(|| {
                let (_, _, payload) = open_envelope(black_box(&blob)).unwrap();
                black_box(IpTable::from_bytes(payload).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookup, compile, shared_table);
criterion_main!(benches);
