//! OWASP CRS regression tests in go-ftw YAML, both forms:
//!
//! - v3 (CRS 3.x): `meta`, `tests[].test_title`, `stages[].stage.{input,output}`,
//!   `output.log_contains: id "942100"` / `no_log_contains` / `status` / `expect_error`;
//! - v4 (CRS 4.x): `rule_id`, `tests[].test_id`, `stages[].{input,output}`,
//!   `output.log.expect_ids` / `no_expect_ids`, `output.status`.
//!
//! Fields this runner has no use for (`stop_magic`, `autocomplete_headers`,
//! `save_cookie`, ...) are accepted and ignored, as go-ftw files carry many.
//! Each stage becomes one request; a test with several stages gets ids
//! `<test>/stage<n>`.

use base64::Engine as _;
use serde::Deserialize;

use super::de::{Headers, OneOrMany, RuleId, Scalar};
use super::error::TrafficError;
use super::model::{Expectation, Locator, ReplayRequest, SourceLoc};

#[derive(Debug, Deserialize)]
struct File {
    #[serde(default)]
    rule_id: Option<RuleId>,
    tests: Vec<Test>,
}

#[derive(Debug, Deserialize)]
struct Test {
    #[serde(default)]
    test_title: Option<Scalar>,
    #[serde(default)]
    test_id: Option<Scalar>,
    stages: Vec<Stage>,
}

#[derive(Debug, Deserialize)]
struct Stage {
    /// v3 wraps the stage in `stage:`.
    #[serde(default)]
    stage: Option<StageBody>,
    #[serde(default)]
    input: Option<Input>,
    #[serde(default)]
    output: Option<Output>,
}

#[derive(Debug, Deserialize)]
struct StageBody {
    input: Input,
    #[serde(default)]
    output: Option<Output>,
}

#[derive(Debug, Default, Deserialize)]
struct Input {
    dest_addr: Option<Scalar>,
    port: Option<u16>,
    protocol: Option<String>,
    method: Option<String>,
    uri: Option<String>,
    version: Option<String>,
    #[serde(default)]
    headers: Headers,
    #[serde(default)]
    ordered_headers: Option<Headers>,
    /// A string, or a list of lines joined with CRLF.
    data: Option<OneOrMany<String>>,
    encoded_request: Option<String>,
    raw_request: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Output {
    status: Option<OneOrMany<u16>>,
    log_contains: Option<String>,
    no_log_contains: Option<String>,
    response_contains: Option<String>,
    #[serde(default)]
    expect_error: bool,
    log: Option<LogOutput>,
}

#[derive(Debug, Default, Deserialize)]
struct LogOutput {
    #[serde(default)]
    expect_ids: Vec<RuleId>,
    #[serde(default)]
    no_expect_ids: Vec<RuleId>,
    match_regex: Option<String>,
    no_match_regex: Option<String>,
}

/// Counts from one parsed go-ftw file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FtwStats {
    /// Entries under `tests:`.
    pub tests: usize,
    /// Stages over all tests; each stage becomes one request.
    pub stages: usize,
}

/// Parses a go-ftw YAML file into one request per stage.
pub fn parse(file: &str, text: &str) -> Result<Vec<ReplayRequest>, TrafficError> {
    parse_with_stats(file, text).map(|(r, _)| r)
}

/// As [`parse`], also counting tests and stages.
pub fn parse_with_stats(
    file: &str,
    text: &str,
) -> Result<(Vec<ReplayRequest>, FtwStats), TrafficError> {
    // go-ftw (yaml.v3 Unmarshal) takes a file of comments only, or an empty document, as
    // no tests; serde would say "EOF while parsing a value".
    if matches!(
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text),
        Ok(serde_yaml_ng::Value::Null)
    ) {
        return Ok((Vec::new(), FtwStats::default()));
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let parsed: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let mut msg = inner.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        // serde_yaml_ng may already start its message with the path.
        if let Some(rest) = msg.strip_prefix(&format!("{path}: ")) {
            msg = rest.to_string();
        }
        let at = inner
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        let test = test_name_at(text, &path)
            .map(|t| format!(" (test {t})"))
            .unwrap_or_default();
        let path = if path == "." {
            String::new()
        } else {
            format!("{path}{test}: ")
        };
        TrafficError::new(file, at, format!("{path}{msg}"))
    })?;
    let mut out = Vec::new();
    let mut stats = FtwStats::default();
    for (ti, test) in parsed.tests.into_iter().enumerate() {
        stats.tests += 1;
        let name = match (&test.test_title, &test.test_id, &parsed.rule_id) {
            (Some(t), _, _) => t.0.clone(),
            (None, Some(id), Some(rule)) => format!("{}-{}", rule.0, id.0),
            (None, Some(id), None) => id.0.clone(),
            (None, None, _) => format!("tests[{ti}]"),
        };
        let n_stages = test.stages.len();
        if n_stages == 0 {
            return Err(TrafficError::new(
                file,
                format!(": tests[{ti}] (test {name})"),
                "a test needs at least one stage",
            ));
        }
        for (si, stage) in test.stages.into_iter().enumerate() {
            stats.stages += 1;
            let yaml_path = format!("tests[{ti}].stages[{si}]");
            let at = format!(": {yaml_path} (test {name})");
            let (input, output) = match stage {
                Stage {
                    stage: Some(b),
                    input: None,
                    output: None,
                } => (b.input, b.output),
                Stage {
                    stage: None,
                    input: Some(i),
                    output,
                } => (i, output),
                Stage {
                    stage: None,
                    input: None,
                    ..
                } => {
                    return Err(TrafficError::new(
                        file,
                        at,
                        "a stage needs `input` (v4) or `stage.input` (v3)",
                    ))
                }
                _ => {
                    return Err(TrafficError::new(
                        file,
                        at,
                        "a stage has either `stage:` (v3) or `input`/`output` (v4), not both",
                    ))
                }
            };
            let id = if n_stages > 1 {
                format!("{name}/stage{}", si + 1)
            } else {
                name.clone()
            };
            let source = SourceLoc {
                file: file.to_string(),
                at: Locator::YamlPath(format!("{yaml_path} (test {name})")),
            };
            let req = convert(id, source, input, output.unwrap_or_default())
                .map_err(|m| TrafficError::new(file, at.clone(), m))?;
            out.push(req);
        }
    }
    Ok((out, stats))
}

/// Finds the test title or id for an error at `path` (e.g. `tests[3].stages...`)
/// by a loose second parse, so errors name the test.
fn test_name_at(text: &str, path: &str) -> Option<String> {
    let rest = path.strip_prefix("tests[")?;
    let idx: usize = rest[..rest.find(']')?].parse().ok()?;
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let t = v.get("tests")?.get(idx)?;
    let s = |v: &serde_yaml_ng::Value| match v {
        serde_yaml_ng::Value::String(s) => Some(s.clone()),
        serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    t.get("test_title")
        .and_then(s)
        .or_else(|| t.get("test_id").and_then(s))
}

/// Reads rule ids out of a go-ftw `log_contains` pattern: `id "942100"`,
/// `id \"942100\"`, `id:942100`, or a bare `942100`. None when the pattern
/// names no rule id (it is then matched as a regex on the request's log lines).
pub fn rule_ids_in_pattern(pattern: &str) -> Option<Vec<String>> {
    let p = pattern.trim();
    let bare = p.trim_matches(|c| c == '"' || c == '\'');
    if !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit()) {
        return Some(vec![bare.to_string()]);
    }
    let mut ids = Vec::new();
    let bytes = p.as_bytes();
    let mut i = 0;
    while let Some(off) = p[i..].find("id") {
        let start = i + off;
        let before_ok = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        let mut j = start + 2;
        while j < bytes.len() && matches!(bytes[j], b' ' | b':' | b'"' | b'\\' | b'\'') {
            j += 1;
        }
        let k = j + p[j..].bytes().take_while(u8::is_ascii_digit).count();
        if before_ok && k > j && j > start + 2 {
            ids.push(p[j..k].to_string());
        }
        i = start + 2;
    }
    (!ids.is_empty()).then_some(ids)
}

/// go-ftw `raw_request` is a YAML string whose `\xNN` escapes mean bytes:
/// if every char fits a byte, take the chars as bytes (Latin-1), else UTF-8.
fn raw_bytes(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) < 256) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

/// A raw HTTP/1 request as go-ftw sends it: read leniently (these tests send
/// malformed requests on purpose).
struct RawRequest {
    method: String,
    uri: String,
    version: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_raw(raw: &[u8]) -> Result<RawRequest, String> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => (raw, &[][..]),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(uri)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "raw request line {request_line:?} is not `METHOD URI [VERSION]`"
        ));
    };
    let version = parts.next().map(str::to_string);
    let mut headers = Vec::new();
    for line in lines {
        match line.split_once(':') {
            Some((n, v)) => headers.push((n.trim().to_string(), v.trim().to_string())),
            None if line.trim().is_empty() => {}
            None => return Err(format!("raw request header line {line:?} has no `:`")),
        }
    }
    Ok(RawRequest {
        method: method.to_string(),
        uri: uri.to_string(),
        version,
        headers,
        body: body.to_vec(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn convert(
    id: String,
    source: SourceLoc,
    input: Input,
    output: Output,
) -> Result<ReplayRequest, String> {
    let mut req = ReplayRequest::new(id, source);
    req.server_addr = input.dest_addr.map(|s| s.0);
    req.server_port = input.port;
    req.scheme = match input.protocol.as_deref() {
        None | Some("http") => "http".into(),
        Some("https") => "https".into(),
        Some(p) => return Err(format!("input.protocol: {p:?} is neither http nor https")),
    };
    let raw = match (&input.encoded_request, &input.raw_request) {
        (Some(enc), _) => Some(
            // go-ftw's decoder (Go's base64.StdEncoding) skips line breaks: long requests
            // are written folded over several lines.
            base64::engine::general_purpose::STANDARD
                .decode(
                    enc.bytes()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect::<Vec<u8>>(),
                )
                .map_err(|e| format!("input.encoded_request: not valid base64: {e}"))?,
        ),
        (None, Some(raw)) => Some(raw_bytes(raw)),
        (None, None) => None,
    };
    if let Some(raw) = raw {
        let r = parse_raw(&raw).map_err(|m| format!("input: {m}"))?;
        req.method = r.method;
        req.path = r.uri;
        req.protocol = r.version.unwrap_or_else(|| "HTTP/1.1".into());
        req.headers = r.headers;
        req.body = r.body;
    } else {
        req.method = input.method.unwrap_or_else(|| "GET".into());
        req.path = input.uri.unwrap_or_else(|| "/".into());
        req.protocol = input.version.unwrap_or_else(|| "HTTP/1.1".into());
        req.headers = input.ordered_headers.unwrap_or(input.headers).0;
        req.body = input
            .data
            .map(|d| d.0.join("\r\n").into_bytes())
            .unwrap_or_default();
    }
    req.authority = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .or_else(|| req.server_addr.clone())
        .unwrap_or_else(|| "localhost".into());

    let mut ex = Expectation {
        status: output.status.map(|s| s.0).unwrap_or_default(),
        error: output.expect_error,
        ..Expectation::default()
    };
    // go-ftw reads `log_contains` / `no_log_contains` as `log.match_regex` /
    // `log.no_match_regex`: a Go regexp over the WAF's log lines of the test. A pattern
    // naming a rule (`id "942100"`) is checked on the rule ids the filter reports, as
    // this replay has no ModSecurity log; any other is matched on the request's log lines.
    let log_pattern = |p: String, must: bool, ex: &mut Expectation| -> Result<(), String> {
        match rule_ids_in_pattern(&p) {
            Some(ids) if must => ex.rule_ids.extend(ids),
            Some(ids) => ex.no_rule_ids.extend(ids),
            None => {
                regex::Regex::new(&p).map_err(|e| format!("{p:?} is not a regex: {e}"))?;
                if must {
                    ex.log_matches.push(p);
                } else {
                    ex.no_log_matches.push(p);
                }
            }
        }
        Ok(())
    };
    if let Some(p) = output.log_contains {
        log_pattern(p, true, &mut ex).map_err(|e| format!("output.log_contains: {e}"))?;
    }
    if let Some(p) = output.no_log_contains {
        log_pattern(p, false, &mut ex).map_err(|e| format!("output.no_log_contains: {e}"))?;
    }
    if let Some(log) = output.log {
        ex.rule_ids.extend(log.expect_ids.into_iter().map(|r| r.0));
        ex.no_rule_ids
            .extend(log.no_expect_ids.into_iter().map(|r| r.0));
        if let Some(p) = log.match_regex {
            log_pattern(p, true, &mut ex).map_err(|e| format!("output.log.match_regex: {e}"))?;
        }
        if let Some(p) = log.no_match_regex {
            log_pattern(p, false, &mut ex)
                .map_err(|e| format!("output.log.no_match_regex: {e}"))?;
        }
    }
    // go-ftw: a plain substring of the whole response (check/response.go, `strings.Contains`).
    if let Some(p) = output.response_contains {
        ex.response_contains.push(p);
    }
    req.expect = ex;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = r#"---
  meta:
    author: "someone"
    enabled: true
    name: 942100.yaml
  tests:
  -
    test_title: 942100-1
    desc: "Simple SQL Injection"
    stages:
    -
      stage:
        input:
          dest_addr: 127.0.0.1
          headers:
            Host: localhost
            User-Agent: ModSecurity CRS 3 Tests
            Content-Length: 15
          method: POST
          port: 80
          uri: "/?a=1"
          data: "var=1234 OR 1=1"
          version: HTTP/1.0
        output:
          log_contains: id "942100"
  -
    test_title: 942100-2
    stages:
    -
      stage:
        input:
          dest_addr: 127.0.0.1
          port: 80
          data:
            - 'line1'
            - 'line2'
        output:
          no_log_contains: "id \"942100\""
          status: [403, 400]
    -
      stage:
        input:
          dest_addr: 10.0.0.1
          port: 8080
          encoded_request: "R0VUIC94IEhUVFAvMS4wDQpIb3N0OiBoLmV4YW1wbGUNCg0KYm9keQ=="
        output:
          expect_error: true
          response_contains: "hello"
"#;

    const V4: &str = r#"
meta:
  author: "someone"
rule_id: 920100
tests:
  - test_id: 1
    desc: a
    stages:
      - input:
          dest_addr: "127.0.0.1"
          port: 80
          method: "OPTIONS"
          headers:
            Host: "localhost"
          protocol: https
        output:
          status: 200
          log:
            expect_ids: [920100]
            no_expect_ids: [949110, "920101"]
  - test_id: 2
    stages:
      - input:
          raw_request: "POST /r HTTP/1.1\r\nHost: x\r\n\r\na=\xac\xed"
        output:
          log:
            match_regex: "something"
"#;

    #[test]
    fn v3() {
        let (reqs, stats) = parse_with_stats("942100.yaml", V3).unwrap();
        assert_eq!(
            stats,
            FtwStats {
                tests: 2,
                stages: 3
            }
        );
        assert_eq!(reqs.len(), 3);
        let a = &reqs[0];
        assert_eq!(a.id, "942100-1");
        assert_eq!(a.method, "POST");
        assert_eq!(a.path, "/?a=1");
        assert_eq!(a.protocol, "HTTP/1.0");
        assert_eq!(a.authority, "localhost");
        assert_eq!(a.body, b"var=1234 OR 1=1");
        assert_eq!(
            a.headers[2],
            ("Content-Length".to_string(), "15".to_string())
        );
        assert_eq!(a.server_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(a.expect.rule_ids, vec!["942100"]);
        assert_eq!(
            a.source.to_string(),
            "942100.yaml: tests[0].stages[0] (test 942100-1)"
        );
        let b = &reqs[1];
        assert_eq!(b.id, "942100-2/stage1");
        assert_eq!(b.method, "GET");
        assert_eq!(b.path, "/");
        assert_eq!(b.authority, "127.0.0.1");
        assert_eq!(b.body, b"line1\r\nline2");
        assert_eq!(b.expect.no_rule_ids, vec!["942100"]);
        assert_eq!(b.expect.status, vec![403, 400]);
        let c = &reqs[2];
        assert_eq!(c.id, "942100-2/stage2");
        assert_eq!(c.method, "GET");
        assert_eq!(c.path, "/x");
        assert_eq!(c.protocol, "HTTP/1.0");
        assert_eq!(c.authority, "h.example");
        assert_eq!(c.body, b"body");
        assert_eq!(c.server_port, Some(8080));
        assert!(c.expect.error);
        assert_eq!(c.expect.response_contains, vec!["hello"]);
        assert!(c.expect.unchecked.is_empty());
    }

    #[test]
    fn v4() {
        let (reqs, stats) = parse_with_stats("920100.yaml", V4).unwrap();
        assert_eq!(
            stats,
            FtwStats {
                tests: 2,
                stages: 2
            }
        );
        let a = &reqs[0];
        assert_eq!(a.id, "920100-1");
        assert_eq!(a.method, "OPTIONS");
        assert_eq!(a.scheme, "https");
        assert_eq!(a.expect.status, vec![200]);
        assert_eq!(a.expect.rule_ids, vec!["920100"]);
        assert_eq!(a.expect.no_rule_ids, vec!["949110", "920101"]);
        let b = &reqs[1];
        assert_eq!(b.id, "920100-2");
        assert_eq!(b.method, "POST");
        assert_eq!(b.path, "/r");
        assert_eq!(b.body, vec![b'a', b'=', 0xac, 0xed]);
        assert_eq!(b.expect.log_matches, vec!["something"]);
        assert!(b.expect.rule_ids.is_empty());
    }

    #[test]
    fn log_patterns() {
        let ids = |p: &str| rule_ids_in_pattern(p);
        assert_eq!(ids(r#"id "942100""#), Some(vec!["942100".into()]));
        assert_eq!(ids(r#"id \"942100\""#), Some(vec!["942100".into()]));
        assert_eq!(ids("id:920273"), Some(vec!["920273".into()]));
        assert_eq!(ids(r#"id "920273"#), Some(vec!["920273".into()]));
        assert_eq!(ids(r#""941100""#), Some(vec!["941100".into()]));
        assert_eq!(ids("Invalid HTTP Request Line"), None);
        assert_eq!(ids("valid 12"), None, "`id` inside a word is not a rule id");
        assert_eq!(ids("id"), None);
    }

    fn err(text: &str) -> String {
        parse("bad.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_say_where() {
        let e = err("tests:\n  - test_title: t-1\n    stages:\n      - stage:\n          input:\n            port: eighty\n");
        assert!(e.starts_with("bad.yaml:6:"), "{e}");
        assert!(
            e.contains("tests[0].stages[0].stage.input.port (test t-1): invalid type"),
            "{e}"
        );
        let e = err("tests:\n  - test_title: t-2\n    stages:\n      - output: {}\n");
        assert!(
            e.starts_with("bad.yaml: tests[0].stages[0] (test t-2): a stage needs"),
            "{e}"
        );
        let e = err("meta: {}\n");
        assert!(e.contains("missing field `tests`"), "{e}");
        let e = err("tests: [\n");
        assert!(e.starts_with("bad.yaml:"), "{e}");
        let e = err("rule_id: 1\ntests:\n  - test_id: 7\n    stages:\n      - input:\n          encoded_request: '%%%'\n");
        assert!(
            e.starts_with(
                "bad.yaml: tests[0].stages[0] (test 1-7): input.encoded_request: not valid base64"
            ),
            "{e}"
        );
        let e = err("tests:\n  - test_title: z\n    stages:\n      - input:\n          raw_request: 'GARBAGE'\n");
        assert!(e.contains("(test z): input: raw request line"), "{e}");
        let e = err("tests:\n  - test_title: z\n    stages: []\n");
        assert!(e.contains("at least one stage"), "{e}");
    }

    /// go-ftw reads a file that holds only comments (or an empty document) as no tests.
    #[test]
    fn comment_only_and_empty_files_hold_no_tests() {
        for text in ["# only a comment\n", "", "---\n# c\n", "\n\n"] {
            let (reqs, stats) = parse_with_stats("c.yaml", text).unwrap();
            assert!(reqs.is_empty(), "{text:?}");
            assert_eq!(stats, FtwStats::default(), "{text:?}");
        }
    }

    /// go-ftw decodes `encoded_request` with Go's base64.StdEncoding, which skips line
    /// breaks: a request folded over lines is the same request.
    #[test]
    fn line_broken_encoded_request() {
        let folded = "tests:\n  - test_title: f\n    stages:\n      - input:\n          encoded_request: |\n            R0VUIC94IEhUVFAvMS4wDQpI\n            b3N0OiBoLmV4YW1wbGUNCg0KYm9keQ==\n";
        let r = parse("f.yaml", folded).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].path, "/x");
        assert_eq!(r[0].authority, "h.example");
        assert_eq!(r[0].body, b"body");
    }
}
