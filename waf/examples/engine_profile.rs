//! A loop for a sampling profiler (`perf record`): CRS v3.3.4 at paranoia level 1 evaluates one
//! of the engine bench's requests many times.
//!
//! `cargo build --release -p portcullis-waf --example engine_profile && perf record -g
//! target/release/examples/engine_profile json 2000`

use portcullis_waf::engine::{Request, Ruleset};
use portcullis_waf::seclang::{self, FsSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live heap bytes, to report what the compiled plan keeps.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most live heap bytes seen (a request's peak sets a wasm VM's linear memory).
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let which = args.get(1).map_or("get", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let conf = format!(
        "SecRuleEngine On\n{}\nInclude /etc/modsecurity/crs/crs-setup.conf\n\
         Include /usr/share/modsecurity-crs/rules/*.conf\n",
        portcullis_waf::crs::RECOMMENDED
    );
    let start = cpu_ns();
    let directives = seclang::parse(&conf, "/etc/modsecurity/crs/main.conf", &FsSource)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = LIVE.load(Ordering::Relaxed);
    let rs = Ruleset::compile(directives, &FsSource).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "compiled plan: {:.1} MiB live heap",
        LIVE.load(Ordering::Relaxed).saturating_sub(before) as f64 / (1 << 20) as f64
    );
    eprintln!("compile: {:.1} ms CPU", (cpu_ns() - start) as f64 / 1e6);
    eprintln!(
        "peak heap during parse + compile: {:.1} MiB",
        PEAK.load(Ordering::Relaxed) as f64 / (1 << 20) as f64
    );
    if which == "compile" {
        for _ in 0..n {
            let d = seclang::parse(&conf, "/etc/modsecurity/crs/main.conf", &FsSource)
                .unwrap_or_else(|e| panic!("{e}"));
            std::hint::black_box(Ruleset::compile(d, &FsSource).unwrap_or_else(|e| panic!("{e}")));
        }
        return;
    }
    let mut items = Vec::new();
    let mut i = 0;
    while items.len() < 40 {
        items.push(format!(
            "{{\"id\":{i},\"name\":\"Walking shoes model {i}\",\"qty\":{},\"note\":\"gift wrap please, thanks\"}}",
            i % 5 + 1
        ));
        i += 1;
    }
    let json = format!("{{\"cart\":[{}],\"currency\":\"EUR\"}}", items.join(","));
    let (method, uri, ct, body): (&str, &str, Option<&str>, Vec<u8>) = match which {
        "json4k" => (
            "POST",
            "/api/orders",
            Some("application/json"),
            bench_json_4k(),
        ),
        "json" => (
            "POST",
            "/api/cart",
            Some("application/json"),
            json.into_bytes(),
        ),
        "form" => (
            "POST",
            "/checkout",
            Some("application/x-www-form-urlencoded"),
            b"name=Jane+Doe&email=jane%40example.com&comment=Great+shoes%2C+thanks%21".to_vec(),
        ),
        "xss" => (
            "GET",
            "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
            None,
            Vec::new(),
        ),
        "rce" => (
            "GET",
            "/ping?host=127.0.0.1%3Bcat%20/etc/passwd",
            None,
            Vec::new(),
        ),
        "sqli" => (
            "GET",
            "/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
            None,
            Vec::new(),
        ),
        // The WAF bench's benign GET and form POST (`benches/benches/waf.rs`), with its
        // headers below.
        "bench-get" => ("GET", "/products?page=2&sort=price", None, Vec::new()),
        "bench-form" => (
            "POST",
            "/contact",
            Some("application/x-www-form-urlencoded"),
            b"name=Jane+Doe&email=jane%40example.com&comment=Great+service".to_vec(),
        ),
        _ => (
            "GET",
            "/products/42?ref=home&q=red%20shoes",
            None,
            Vec::new(),
        ),
    };
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"Host".to_vec(), b"shop.example.com".to_vec()),
        (
            b"User-Agent".to_vec(),
            b"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0".to_vec(),
        ),
        (
            b"Accept".to_vec(),
            b"text/html,application/xhtml+xml".to_vec(),
        ),
        (
            b"Cookie".to_vec(),
            b"session=3f9a1c2b7d; theme=dark".to_vec(),
        ),
    ];
    if which.starts_with("bench-") {
        headers = vec![
            (b"Host".to_vec(), b"shop.example.com".to_vec()),
            (
                b"user-agent".to_vec(),
                b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_vec(),
            ),
            (
                b"accept".to_vec(),
                b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".to_vec(),
            ),
            (b"accept-language".to_vec(), b"en-US,en;q=0.5".to_vec()),
            (
                b"x-request-id".to_vec(),
                b"0f5b7c9e-1d2a-4c3b-8e6f-7a8b9c0d1e2f".to_vec(),
            ),
        ];
    }
    if let Some(ct) = ct {
        headers.push((b"Content-Type".to_vec(), ct.as_bytes().to_vec()));
        headers.push((
            b"Content-Length".to_vec(),
            body.len().to_string().into_bytes(),
        ));
    }
    let req = Request {
        method: method.into(),
        uri: uri.as_bytes().to_vec(),
        protocol: "HTTP/1.1".into(),
        headers,
        remote_addr: "10.1.2.3".into(),
        ..Request::default()
    };
    let start = cpu_ns();
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let (score, matched) = run_requests(&rs, &req, &body, n);
    eprintln!(
        "after {n} requests: {:.2} MiB live heap; peak {:.0} KiB above the plan",
        LIVE.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        PEAK.load(Ordering::Relaxed).saturating_sub(base) as f64 / 1024.0
    );
    let per = (cpu_ns() - start) / n as u64;
    eprintln!(
        "{which}: score {score}, {matched} rules matched, {:.1} µs CPU per request",
        per as f64 / 1000.0
    );
}

/// The WAF bench's 4 KiB JSON body (`benches/benches/waf.rs` `json_4k`).
fn bench_json_4k() -> Vec<u8> {
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

/// The measured loop (its own function, so `valgrind --tool=callgrind
/// --toggle-collect=*run_requests*` counts only the requests).
#[inline(never)]
fn run_requests(rs: &Ruleset, req: &Request, body: &[u8], n: usize) -> (i64, usize) {
    let mut score = 0;
    let mut matched = 0;
    for _ in 0..n {
        let mut tx = rs.transaction(req.clone());
        if tx.process_request_headers().is_none() {
            tx.append_request_body(body);
            tx.process_request_body();
        }
        tx.process_logging();
        score = tx.inbound_anomaly_score();
        matched = tx.matched_rules().len();
        if n == 1 {
            let ids: Vec<u64> = tx
                .matched_rules()
                .iter()
                .filter(|m| m.logged)
                .map(|m| m.id)
                .collect();
            eprintln!(
                "logged rules: {ids:?}, intervention {:?}",
                tx.intervention().map(|i| i.rule_id)
            );
        }
    }
    (score, matched)
}

/// On-CPU time of this thread in ns (`/proc/self/schedstat`): the machine is shared, so wall
/// time says little.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}
