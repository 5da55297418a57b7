//! Authorization evaluation with 1, 100, 1,000 and 10,000 rules: the cost of walking the
//! compiled matcher tree per request (worst case: only the last rule matches; miss: none
//! does, so every rule is tried), plus the one-time compile.
//!
//! Group `authz_xfcc`: the identity from a hostile `x-forwarded-client-cert` at Envoy's
//! default header-size limit (60 KiB) against 1,000 principal rules — the most pairs an
//! element may hold (256, long values), and a header over the cap (refused) — next to a
//! normal one-SAN element: the cost is bounded by the header length.
//!
//! `cargo bench -p portcullis-benches --bench authz`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use portcullis_filter::engine::Plan;
use portcullis_filter::request::{PeerCertificate, StaticRequest};

/// One ALLOW policy per 10 rules; rule i lets `sa-i` GET `/svc-i/*` or POST `/svc-i/items`.
fn config_with(rules: usize) -> String {
    let mut policies = Vec::new();
    for p in 0..rules.div_ceil(10) {
        let mut rs = Vec::new();
        for i in p * 10..((p + 1) * 10).min(rules) {
            rs.push(format!(
                r#"{{"from":[{{"source":{{"principals":["cluster.local/ns/team-{t}/sa/sa-{i}"]}}}}],
                   "to":[{{"operation":{{"methods":["GET"],"paths":["/svc-{i}/*"]}}}},
                         {{"operation":{{"methods":["POST"],"paths":["/svc-{i}/items"]}}}}]}}"#,
                t = i % 7
            ));
        }
        policies.push(format!(
            r#"{{"name":"p{p}","spec":{{"rules":[{}]}}}}"#,
            rs.join(",")
        ));
    }
    format!(
        r#"{{"authorization":{{"trust_domain_aliases":["east.example.com"],"policies":[
            {{"name":"deny-admin","spec":{{"action":"DENY","rules":[{{"to":[{{"operation":{{"paths":["/admin*"]}}}}]}}]}}}},
            {}]}}}}"#,
        policies.join(",")
    )
}

fn request(rules: usize, hit: bool) -> StaticRequest {
    let i = rules - 1;
    let path = if hit {
        format!("/svc-{i}/x")
    } else {
        "/nowhere".to_string()
    };
    let mut r = StaticRequest::new("GET", "api.example.com", &path, "192.0.2.1:1234");
    r.peer_certificate = Some(PeerCertificate {
        uri_sans: vec![format!(
            "spiffe://east.example.com/ns/team-{}/sa/sa-{i}",
            i % 7
        )],
        dns_sans: vec![],
        subject: "CN=client,O=Example".into(),
        sha256: None,
    });
    r
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("authz_evaluate");
    for n in [1usize, 100, 1_000, 10_000] {
        let plan = Plan::parse(config_with(n).as_bytes()).expect("bench config compiles");
        let hit = request(n, true);
        let miss = request(n, false);
        assert!(plan.evaluate(&hit).allowed());
        assert!(!plan.evaluate(&miss).allowed());
        g.bench_with_input(BenchmarkId::new("last_rule_matches", n), &hit, |b, r| {
            b.iter(|| black_box(plan.evaluate(black_box(r)).allowed()))
        });
        g.bench_with_input(BenchmarkId::new("no_rule_matches", n), &miss, |b, r| {
            b.iter(|| black_box(plan.evaluate(black_box(r)).allowed()))
        });
    }
    g.finish();
    bench_xfcc(c);
    let mut g = c.benchmark_group("authz_compile");
    g.sample_size(10);
    for n in [100usize, 10_000] {
        let text = config_with(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, t| {
            b.iter(|| Plan::parse(black_box(t.as_bytes())).is_ok())
        });
    }
    g.finish();
}

/// Envoy's default `max_request_headers_kb`.
const ENVOY_HEADER_LIMIT: usize = 60 * 1024;

fn bench_xfcc(c: &mut Criterion) {
    let n = 1_000;
    let cfg = config_with(n).replace(
        r#"{"authorization":{"#,
        r#"{"authorization":{"identity":{"source":"xfcc"},"#,
    );
    let plan = Plan::parse(cfg.as_bytes()).expect("bench config compiles");
    let me = format!(
        "URI=spiffe://east.example.com/ns/team-{}/sa/sa-{}",
        (n - 1) % 7,
        n - 1
    );
    let with = |xfcc: &str| {
        StaticRequest::new(
            "GET",
            "api.example.com",
            &format!("/svc-{}/x", n - 1),
            "192.0.2.1:1",
        )
        .with_header("x-forwarded-client-cert", xfcc)
    };
    // 256 pairs filling the limit: 255 long URIs that match no rule, then ours.
    let filler = ENVOY_HEADER_LIMIT / 256 - 40;
    let mut at_cap: Vec<String> = (0..255)
        .map(|i| {
            format!(
                "URI=spiffe://east.example.com/ns/x/sa/{i:04}-{}",
                "a".repeat(filler)
            )
        })
        .collect();
    at_cap.push(me.clone());
    let at_cap = at_cap.join(";");
    // Short pairs up to the limit: far over the cap.
    let mut over = String::new();
    let mut i = 0;
    while over.len() + 40 < ENVOY_HEADER_LIMIT {
        over.push_str(&format!("URI=spiffe://e/ns/x/sa/{i};"));
        i += 1;
    }
    over.push_str(&me);
    eprintln!(
        "authz_xfcc: at_cap {} bytes, over_cap {} bytes ({} pairs)",
        at_cap.len(),
        over.len(),
        i + 1
    );
    let cases = [
        ("one_san", with(&me)),
        ("256_pairs_60k", with(&at_cap)),
        ("over_cap_60k", with(&over)),
    ];
    let mut g = c.benchmark_group("authz_xfcc");
    for (name, r) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| black_box(plan.evaluate(black_box(r)).allowed()))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
