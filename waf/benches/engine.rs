//! Engine cost per request: Debian's CRS v3.3.4 at paranoia level 1 in blocking mode (as the
//! filter runs it), a benign GET, a benign form POST, a benign 4 KiB JSON POST and a SQL
//! injection, an XSS and a command injection, each through the request phases; and the
//! compile time of the whole ruleset. Before timing, each request is checked: benign ones pass
//! with no rule logged, attacks are denied by 949110 with exactly the rules expected (a
//! benchmark whose rules silently stopped firing must fail, not get faster).
//!
//! `cargo bench -p portcullis-waf --bench engine` (needs Debian's modsecurity-crs, installed by
//! scripts/setup).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis_waf::engine::{Request, Ruleset};
use portcullis_waf::seclang::{self, FsSource};

const MAIN: &str = "/etc/modsecurity/crs/portcullis-bench-main.conf";

fn conf() -> String {
    format!(
        "SecRuleEngine On\n{}\nInclude /etc/modsecurity/crs/crs-setup.conf\n\
         Include /usr/share/modsecurity-crs/rules/*.conf\n",
        portcullis_waf::crs::RECOMMENDED
    )
}

fn ruleset() -> Ruleset {
    let directives = seclang::parse(&conf(), MAIN, &FsSource).unwrap_or_else(|e| panic!("{e}"));
    Ruleset::compile(directives, &FsSource).unwrap_or_else(|e| panic!("{e}"))
}

fn request(method: &str, uri: &str, extra: &[(&str, &str)]) -> Request {
    let mut headers: Vec<(Vec<u8>, Vec<u8>)> = [
        ("Host", "shop.example.com"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ),
        (
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Cookie", "session=3f9a1c2b7d; theme=dark"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    headers.shrink_to_fit();
    Request {
        method: method.into(),
        uri: uri.as_bytes().to_vec(),
        protocol: "HTTP/1.1".into(),
        headers,
        remote_addr: "10.1.2.3".into(),
        remote_port: 40000,
        server_addr: "10.0.0.2".into(),
        server_port: 80,
        unique_id: "bench".into(),
    }
}

fn evaluate(rs: &Ruleset, req: &Request, body: &[u8]) -> i64 {
    let mut tx = rs.transaction(req.clone());
    if tx.process_request_headers().is_none() {
        tx.append_request_body(body);
        tx.process_request_body();
    }
    tx.process_logging();
    tx.inbound_anomaly_score()
}

/// Checks the decision before timing: the denying rule (none for benign requests) and the
/// logged rule ids, in order.
fn check(
    rs: &Ruleset,
    what: &str,
    req: &Request,
    body: &[u8],
    denied_by: Option<u64>,
    logged: &[u64],
) {
    let mut tx = rs.transaction(req.clone());
    if tx.process_request_headers().is_none() {
        tx.append_request_body(body);
        tx.process_request_body();
    }
    tx.process_logging();
    let ids: Vec<u64> = tx
        .matched_rules()
        .iter()
        .filter(|m| m.logged)
        .map(|m| m.id)
        .collect();
    assert_eq!(
        tx.intervention().map(|i| i.rule_id),
        denied_by,
        "{what}: the decision"
    );
    assert_eq!(ids, logged, "{what}: the rules logged");
    if denied_by.is_none() {
        assert_eq!(tx.inbound_anomaly_score(), 0, "{what}: the anomaly score");
    }
}

/// A shopping-cart JSON document of about `size` bytes (items with ids, names, quantities and
/// notes in plain words), as an API client would send it.
fn json_body(size: usize) -> Vec<u8> {
    let mut items = Vec::new();
    let mut len = 20;
    let mut i = 0;
    while len < size.saturating_sub(120) {
        let item = format!(
            "{{\"id\":{i},\"name\":\"Walking shoes model {i}\",\"qty\":{},\"note\":\"gift wrap please, thanks\"}}",
            i % 5 + 1
        );
        len += item.len() + 1;
        items.push(item);
        i += 1;
    }
    format!("{{\"cart\":[{}],\"currency\":\"EUR\"}}", items.join(",")).into_bytes()
}

fn bench(c: &mut Criterion) {
    if !std::path::Path::new("/usr/share/modsecurity-crs/rules").is_dir() {
        eprintln!("*** NOT RUN: Debian's modsecurity-crs is not installed (scripts/setup) ***");
        return;
    }
    c.bench_function("compile crs-3.3.4 pl1", |b| b.iter(|| black_box(ruleset())));
    let rs = ruleset();
    let get = request("GET", "/products/42?ref=home&q=red%20shoes", &[]);
    let form = b"name=Jane+Doe&email=jane%40example.com&comment=Great+shoes%2C+thanks%21";
    let post = request(
        "POST",
        "/checkout",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", "72"),
        ],
    );
    let sqli = request(
        "GET",
        "/products?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
        &[],
    );
    let json = json_body(4096);
    let api = request(
        "POST",
        "/api/cart",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", "4096"),
        ],
    );
    let xss = request(
        "GET",
        "/search?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E",
        &[],
    );
    let rce = request("GET", "/ping?host=127.0.0.1%3Bcat%20/etc/passwd", &[]);
    check(&rs, "benign GET", &get, b"", None, &[]);
    check(&rs, "benign POST", &post, form, None, &[]);
    check(&rs, "benign JSON", &api, &json, None, &[]);
    check(
        &rs,
        "SQLi",
        &sqli,
        b"",
        Some(949110),
        &[942100, 942190, 942270, 942360, 949110],
    );
    check(
        &rs,
        "XSS",
        &xss,
        b"",
        Some(949110),
        &[941100, 941110, 941160, 941180, 949110],
    );
    check(
        &rs,
        "RCE",
        &rce,
        b"",
        Some(949110),
        &[930120, 932100, 932160, 949110],
    );
    c.bench_function("crs-3.3.4 pl1 benign GET", |b| {
        b.iter(|| black_box(evaluate(&rs, &get, b"")))
    });
    c.bench_function("crs-3.3.4 pl1 benign form POST", |b| {
        b.iter(|| black_box(evaluate(&rs, &post, form)))
    });
    c.bench_function("crs-3.3.4 pl1 benign 4 KiB JSON POST", |b| {
        b.iter(|| black_box(evaluate(&rs, &api, &json)))
    });
    c.bench_function("crs-3.3.4 pl1 SQLi GET (denied)", |b| {
        b.iter(|| black_box(evaluate(&rs, &sqli, b"")))
    });
    c.bench_function("crs-3.3.4 pl1 XSS GET (denied)", |b| {
        b.iter(|| black_box(evaluate(&rs, &xss, b"")))
    });
    c.bench_function("crs-3.3.4 pl1 RCE GET (denied)", |b| {
        b.iter(|| black_box(evaluate(&rs, &rce, b"")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
