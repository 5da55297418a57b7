//! The CRS v3.3.4 regression corpus (go-ftw YAML in `shared/crs-regression/v3.3.4`, never
//! committed) as requests with expectations, and a scorer that runs them through any WAF that
//! reports the rule ids it logged: ModSecurity (the reference) or portcullis-waf.

use portcullis_harness::replay::{ftw, ReplayRequest};
use std::collections::BTreeMap;
use std::path::Path;

/// The CRS test setup of `tests/regression` (CRS v3.3): detection-only, paranoia 4, the arg
/// limits the tests exercise, and rule 999999 (logs `X-CRS-Test`, as go-ftw's marker).
pub const V3_TEST_SETUP: &str = r#"SecAction "id:900005,phase:1,nolog,pass,ctl:ruleEngine=DetectionOnly,ctl:ruleRemoveById=910000,setvar:tx.paranoia_level=4,setvar:tx.crs_validate_utf8_encoding=1,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=64000,setvar:tx.max_num_args=255,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535"
SecRule REQUEST_HEADERS:X-CRS-Test "@rx ^.*$" "id:999999,phase:1,pass,t:none,log,msg:'%{MATCHED_VAR}'""#;

/// Loads every request of the corpus, sorted by file.
pub fn load(dir: &Path) -> Result<Vec<ReplayRequest>, String> {
    let mut files = Vec::new();
    for group in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let group = group.map_err(|e| e.to_string())?.path();
        if group.is_dir() {
            for f in std::fs::read_dir(&group).map_err(|e| e.to_string())? {
                let f = f.map_err(|e| e.to_string())?.path();
                if f.extension().is_some_and(|e| e == "yaml") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        out.extend(ftw::parse(&f.display().to_string(), &text).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The headers a request is sent with, as go-ftw sends them (`autocomplete_headers`, on by
/// default): `Host` from the authority when the test gives none; with a body, `Content-Type:
/// application/x-www-form-urlencoded` and `Content-Length` when missing.
pub fn wire_headers(r: &ReplayRequest) -> Vec<(String, String)> {
    let mut h = r.headers.clone();
    let has =
        |h: &[(String, String)], name: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has(&h, "host") && !r.authority.is_empty() {
        h.insert(0, ("Host".into(), r.authority.clone()));
    }
    if !r.body.is_empty() {
        if !has(&h, "content-type") {
            h.push((
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ));
        }
        if !has(&h, "content-length") {
            h.push(("Content-Length".into(), r.body.len().to_string()));
        }
    }
    h
}

/// A request as ModSecurity's connector API takes it.
pub fn modsec_request(r: &ReplayRequest) -> portcullis_modsec::Request {
    portcullis_modsec::Request {
        method: r.method.clone(),
        uri: r.path.clone(),
        http_version: r
            .protocol
            .strip_prefix("HTTP/")
            .unwrap_or(&r.protocol)
            .to_string(),
        headers: wire_headers(r)
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect(),
        body: r.body.clone(),
        client: (r.client_ip.to_string(), r.client_port),
        server: (
            r.server_addr.clone().unwrap_or_else(|| "127.0.0.1".into()),
            r.server_port.unwrap_or(80),
        ),
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every rule-id expectation held.
    Pass,
    /// Why not: `missing 942100`, `unexpected 920100`.
    Fail(String),
    /// The test checks only what a WAF alone cannot show (status, error, response).
    Unchecked,
}

/// Scores `fired` (the logged rule ids) against `r`'s rule-id expectations.
pub fn score(r: &ReplayRequest, fired: &[u64]) -> Verdict {
    let has = |id: &String| id.parse::<u64>().is_ok_and(|id| fired.contains(&id));
    if r.expect.rule_ids.is_empty() && r.expect.no_rule_ids.is_empty() {
        return Verdict::Unchecked;
    }
    let mut why = Vec::new();
    for id in &r.expect.rule_ids {
        if !has(id) {
            why.push(format!("missing {id}"));
        }
    }
    for id in &r.expect.no_rule_ids {
        if has(id) {
            why.push(format!("unexpected {id}"));
        }
    }
    if why.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail(why.join(", "))
    }
}

/// Pass counts per rule family (`942`), and the failures.
#[derive(Debug, Default)]
pub struct Tally {
    /// family → (passed, checked).
    pub families: BTreeMap<String, (usize, usize)>,
    /// (test id, why).
    pub failures: Vec<(String, String)>,
    /// Tests with no rule-id expectation.
    pub unchecked: Vec<String>,
}

impl Tally {
    /// Records one test.
    pub fn add(&mut self, r: &ReplayRequest, v: Verdict) {
        let family: String = r.id.chars().take(3).collect();
        let e = self.families.entry(family).or_default();
        match v {
            Verdict::Pass => {
                e.0 += 1;
                e.1 += 1;
            }
            Verdict::Fail(why) => {
                e.1 += 1;
                self.failures.push((r.id.clone(), why));
            }
            Verdict::Unchecked => self.unchecked.push(r.id.clone()),
        }
    }

    /// (passed, checked) over all families.
    pub fn total(&self) -> (usize, usize) {
        self.families
            .values()
            .fold((0, 0), |(p, c), (fp, fc)| (p + fp, c + fc))
    }

    /// A Markdown table: family, passed, checked, rate; then the total.
    pub fn table(&self, title: &str) -> String {
        let mut s = format!("{title}\n| family | passed | checked | rate |\n|---|---|---|---|\n");
        for (f, (p, c)) in &self.families {
            s.push_str(&format!("| {f} | {p} | {c} | {:.1}% |\n", rate(*p, *c)));
        }
        let (p, c) = self.total();
        s.push_str(&format!("| all | {p} | {c} | {:.2}% |\n", rate(p, c)));
        s
    }
}

fn rate(p: usize, c: usize) -> f64 {
    if c == 0 {
        100.0
    } else {
        100.0 * p as f64 / c as f64
    }
}

/// The same request as portcullis-waf's engine takes it, with its body: what the
/// differential test hands our engine beside [`modsec_request`]'s ModSecurity request.
/// `unique_id` becomes `UNIQUE_ID` (ModSecurity makes its own; no CRS v3 rule reads it).
pub fn waf_request(
    r: &portcullis_modsec::Request,
    unique_id: &str,
) -> (portcullis_waf::engine::Request, Vec<u8>) {
    let request = portcullis_waf::engine::Request {
        method: r.method.clone(),
        // The ModSecurity wrapper passes the URI as a C string with NUL written `%00`: so
        // does this, for the same bytes in both engines.
        uri: r.uri.replace('\0', "%00").into_bytes(),
        protocol: format!("HTTP/{}", r.http_version),
        headers: r.headers.clone(),
        remote_addr: r.client.0.clone(),
        remote_port: r.client.1,
        server_addr: r.server.0.clone(),
        server_port: r.server.1,
        unique_id: unique_id.to_string(),
    };
    (request, r.body.clone())
}
