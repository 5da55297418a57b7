//! The WAF per request, with the CRS embedded at build time (PL1, anomaly mode), against
//! ModSecurity 3.0.9 with the same CRS: our engine natively (the filter's `Plan`), our filter
//! through the harness (the release .wasm on wasmtime), and libmodsecurity natively, on the
//! same requests. Also `on_configure` time (parse + compile of the whole CRS).
//!
//! `cargo bench -p portcullis-benches --bench waf`
//!
//! Before measuring, every request is run once through all three and the outcome checked:
//! benign requests pass, each attack is blocked (949110) after its detecting rule fired, in
//! our engine and in ModSecurity alike. A benchmark whose rules silently stopped firing fails
//! here instead of getting faster.

use std::path::PathBuf;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis_filter::request::{Headers, StaticRequest};
use portcullis_harness::{Host, StreamProps, Vm, VmConfig};
use portcullis_modsec::{debian_crs_rules, ModSecurity};

const CONFIG: &str = r#"{"waf": {}, "metrics": {"flush_interval_ms": 0}}"#;

/// One benchmark request: method, path, content type, body, and the rule that must detect it
/// (`None` = benign, must pass).
struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    detector: Option<u64>,
}

fn json_4k() -> Vec<u8> {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        let item = format!(
            r#"{{"id":{i},"name":"Item number {i}","price":{}.99,"tags":["blue","large"],"in_stock":true}}"#,
            i * 3
        );
        items.push(item);
        let len: usize = items.iter().map(|s| s.len() + 1).sum();
        if len > 4000 {
            break;
        }
        i += 1;
    }
    format!(
        r#"{{"order":{{"customer":"Jane Doe","items":[{}]}}}}"#,
        items.join(",")
    )
    .into_bytes()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "benign_get",
            method: "GET",
            path: "/products?page=2&sort=price",
            content_type: None,
            body: Vec::new(),
            detector: None,
        },
        Case {
            name: "form_post",
            method: "POST",
            path: "/contact",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"name=Jane+Doe&email=jane%40example.com&comment=Great+service".to_vec(),
            detector: None,
        },
        Case {
            name: "json_post_4k",
            method: "POST",
            path: "/api/orders",
            content_type: Some("application/json"),
            body: json_4k(),
            detector: None,
        },
        Case {
            name: "sqli_get",
            method: "GET",
            path: "/search?q=1%27%20OR%20%271%27%3D%271",
            content_type: None,
            body: Vec::new(),
            detector: Some(942100),
        },
        Case {
            name: "xss_post",
            method: "POST",
            path: "/comment",
            content_type: Some("application/x-www-form-urlencoded"),
            body: b"text=%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_vec(),
            detector: Some(941100),
        },
        Case {
            name: "rce_get",
            method: "GET",
            path: "/run?cmd=%3Bcat%20%2Fetc%2Fpasswd",
            content_type: None,
            body: Vec::new(),
            detector: Some(932160),
        },
    ]
}

fn header_pairs(c: &Case) -> Vec<(String, String)> {
    let mut h = vec![
        (":method".to_string(), c.method.to_string()),
        (":scheme".to_string(), "https".to_string()),
        (":authority".to_string(), "shop.example.com".to_string()),
        (":path".to_string(), c.path.to_string()),
        (
            "user-agent".to_string(),
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_string(),
        ),
        (
            "accept".to_string(),
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".to_string(),
        ),
        ("accept-language".to_string(), "en-US,en;q=0.5".to_string()),
        (
            "x-request-id".to_string(),
            "0f5b7c9e-1d2a-4c3b-8e6f-7a8b9c0d1e2f".to_string(),
        ),
    ];
    if let Some(ct) = c.content_type {
        h.push(("content-type".into(), ct.into()));
        h.push(("content-length".into(), c.body.len().to_string()));
    }
    h
}

fn static_request(c: &Case) -> StaticRequest {
    StaticRequest {
        headers: Headers::new(header_pairs(c)),
        source_address: Some("203.0.113.9:40000".into()),
        ..Default::default()
    }
}

fn modsec_request(c: &Case) -> portcullis_modsec::Request {
    let mut r = portcullis_modsec::Request::new(c.method, c.path);
    for (k, v) in header_pairs(c) {
        if k == ":authority" {
            r = r.header("Host", &v);
        } else if !k.starts_with(':') {
            r = r.header(&k, &v);
        }
    }
    r.body(&c.body)
}

fn release_filter() -> PathBuf {
    portcullis_harness::release::release_filter().to_path_buf()
}

/// One stream through the filter; the local reply's status, or 200 when it continued.
fn stream(vm: &mut Vm, c: &Case) -> u32 {
    let props = StreamProps::default().source("203.0.113.9:40000".parse().unwrap());
    let mut s = vm.http_stream(props).unwrap();
    let headers = header_pairs(c);
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.request_headers(pairs, c.body.is_empty()).unwrap();
    if !c.body.is_empty() {
        s.request_body(&c.body, true).unwrap();
    }
    let rec = s.finish().unwrap();
    rec.local_reply.map_or(200, |r| r.status)
}

fn waf(c: &mut Criterion) {
    let plan = portcullis_filter::engine::Plan::parse(CONFIG.as_bytes()).expect("WAF config");
    let waf = plan.waf().expect("waf configured");
    let ms = ModSecurity::new(&debian_crs_rules("")).expect("ModSecurity with CRS");
    let host = Host::from_file(release_filter()).unwrap();
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: CONFIG.as_bytes().to_vec(),
            ..Default::default()
        })
        .unwrap();
    let cases = cases();

    // The work must happen: same verdicts, detectors fired, in all three.
    for c in &cases {
        let ours = waf.evaluate(
            &static_request(c),
            None,
            (!c.body.is_empty()).then_some(&c.body[..]),
        );
        let theirs = ms.evaluate(&modsec_request(c));
        let status = stream(&mut vm, c);
        match c.detector {
            None => {
                assert!(
                    ours.intervention.is_none(),
                    "{}: ours blocked: {:?}",
                    c.name,
                    ours
                );
                assert_eq!(
                    theirs.status, None,
                    "{}: ModSecurity blocked: {:?}",
                    c.name, theirs.rule_ids
                );
                assert_eq!(status, 200, "{}: the filter blocked", c.name);
            }
            Some(id) => {
                let i = ours
                    .intervention
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: ours passed", c.name));
                assert_eq!(i.rule_id, 949110, "{}", c.name);
                assert!(
                    ours.matched.contains(&id),
                    "{}: {id} not in {:?}",
                    c.name,
                    ours.matched
                );
                assert_eq!(theirs.status, Some(403), "{}: ModSecurity passed", c.name);
                assert!(
                    theirs.rule_ids.contains(&id),
                    "{}: {id} not in ModSecurity's {:?}",
                    c.name,
                    theirs.rule_ids
                );
                assert_eq!(status, 403, "{}: the filter passed", c.name);
            }
        }
    }

    let mut g = c.benchmark_group("waf");
    for case in &cases {
        let req = static_request(case);
        let body = (!case.body.is_empty()).then_some(&case.body[..]);
        g.bench_function(format!("engine/{}", case.name), |b| {
            b.iter(|| black_box(waf.evaluate(black_box(&req), None, body)))
        });
        g.bench_function(format!("harness/{}", case.name), |b| {
            b.iter(|| black_box(stream(&mut vm, case)))
        });
        let mreq = modsec_request(case);
        g.bench_function(format!("modsecurity/{}", case.name), |b| {
            b.iter(|| black_box(ms.evaluate(black_box(&mreq))))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("waf/configure");
    g.sample_size(10);
    g.bench_function("crs", |b| {
        b.iter(|| black_box(portcullis_filter::engine::Plan::parse(CONFIG.as_bytes()).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, waf);
criterion_main!(benches);
