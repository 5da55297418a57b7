//! The WAF check natively: the `waf` config section, the embedded CRS, decisions and errors.

use portcullis_filter::engine::Plan;
use portcullis_filter::request::{Headers, StaticRequest};

fn request(method: &str, authority: &str, path: &str, extra: &[(&str, &str)]) -> StaticRequest {
    let mut h = vec![
        (":method".to_string(), method.to_string()),
        (":authority".to_string(), authority.to_string()),
        (":path".to_string(), path.to_string()),
        ("user-agent".to_string(), "Mozilla/5.0".to_string()),
        ("accept".to_string(), "text/html".to_string()),
    ];
    h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    StaticRequest {
        headers: Headers::new(h),
        source_address: Some("203.0.113.9:40000".into()),
        ..Default::default()
    }
}

const SQLI: &str = "/search?q=1%27%20OR%20%271%27%3D%271";

#[test]
fn crs_blocks_sqli_and_passes_a_benign_get() {
    let plan = Plan::parse(br#"{"waf": {}}"#).unwrap();
    let waf = plan.waf().unwrap();
    let ok = waf.evaluate(
        &request("GET", "shop.example.com", "/products?page=2", &[]),
        None,
        None,
    );
    assert_eq!(ok.intervention, None, "{ok:?}");
    assert!(ok.matched.is_empty(), "{ok:?}");
    let bad = waf.evaluate(&request("GET", "shop.example.com", SQLI, &[]), None, None);
    let i = bad.intervention.as_ref().expect("blocked");
    assert_eq!((i.rule_id, i.status), (949110, 403));
    assert!(bad.matched.contains(&942100), "{bad:?}");
    assert!(bad.anomaly_score >= 5);
    let reply = plan.waf_reply(&bad, Some("req-1")).unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "portcullis_waf_rule_matched[949110]");
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["check"], "waf");
    assert_eq!(body["rule"], 949110);
    assert_eq!(body["request_id"], "req-1");
}

#[test]
fn a_body_is_inspected_by_content_type() {
    let plan = Plan::parse(br#"{"waf": {}}"#).unwrap();
    let waf = plan.waf().unwrap();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = request("POST", "h", "/comment", &form);
    let bad = waf.evaluate(&r, None, Some(b"text=%3Cscript%3Ealert(1)%3C%2Fscript%3E"));
    assert!(bad.matched.contains(&941100), "{bad:?}");
    assert!(bad.intervention.is_some());
    let ok = waf.evaluate(&r, None, Some(b"text=hello+world"));
    assert_eq!(ok.intervention, None, "{ok:?}");
    let json = [("content-type", "application/json")];
    let r = request("POST", "h", "/api", &json);
    let bad = waf.evaluate(&r, None, Some(br#"{"user":"admin' OR '1'='1' --"}"#));
    assert!(bad.intervention.is_some(), "{bad:?}");
    // A malformed JSON body is REQBODY_ERROR: 200002 denies with 400.
    let broken = waf.evaluate(&r, None, Some(br#"{"user": "#));
    let i = broken.intervention.expect("malformed body denied");
    assert_eq!((i.rule_id, i.status), (200002, 400));
}

#[test]
fn dry_run_detects_without_blocking() {
    let plan = Plan::parse(br#"{"waf": {"mode": "dry_run"}}"#).unwrap();
    let out = plan
        .waf()
        .unwrap()
        .evaluate(&request("GET", "h", SQLI, &[]), None, None);
    assert_eq!(out.intervention, None);
    assert_eq!(out.detected.as_ref().map(|i| i.rule_id), Some(949110));
    assert!(plan.waf_reply(&out, None).is_none());
    let line = out.log_line("h", SQLI, None).unwrap();
    assert!(
        line.starts_with("dry-run, would deny check=waf reason=rule_matched rule=949110"),
        "{line}"
    );
}

#[test]
fn per_authority_rule_sets_and_exclusions() {
    let cfg = br#"{"waf": {
        "directives": ["Include @recommended.conf", "Include @crs-setup.conf", "Include @owasp_crs/*.conf",
                       "SecRuleRemoveById 942100"],
        "rule_sets": {"api": ["SecRule ARGS:token \"@streq forbidden\" \"id:1001,phase:1,deny,status:401,log\""]},
        "per_authority": {"api.example.com": "api"}}}"#;
    let plan = Plan::parse(cfg).unwrap();
    let waf = plan.waf().unwrap();
    // The API host runs only its own rule: no CRS there.
    let api = waf.evaluate(
        &request("GET", "API.example.com:443", SQLI, &[]),
        None,
        None,
    );
    assert_eq!(api.intervention, None, "{api:?}");
    let api = waf.evaluate(
        &request("GET", "api.example.com", "/?token=forbidden", &[]),
        None,
        None,
    );
    assert_eq!(
        api.intervention.map(|i| (i.rule_id, i.status)),
        Some((1001, 401))
    );
    // Elsewhere CRS runs without 942100.
    let other = waf.evaluate(&request("GET", "shop.example.com", SQLI, &[]), None, None);
    assert!(!other.matched.contains(&942100), "{other:?}");
}

#[test]
fn config_errors_say_where_and_why() {
    let err = Plan::parse(br#"{"waf": {"directives": ["SecRuleEngine On", "SecRule ARGS \"@rx a\" \"id:1,phase:1,frobnicate\""]}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/waf/directives/1: "), "{err}");
    assert!(err.contains("frobnicate"), "{err}");
    let err = Plan::parse(br#"{"waf": {"directives": ["Include @owasp_crs/NOPE-*.conf"]}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/waf/directives/0: "), "{err}");
    let err = Plan::parse(br#"{"waf": {"crs": {"paranoia_level": 5}}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/waf/crs/paranoia_level: 5 is not a paranoia level"),
        "{err}"
    );
    let err = Plan::parse(br#"{"waf": {"per_authority": {"a.example": "nope"}}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/waf/per_authority/a.example: \"nope\" is not a rule set"),
        "{err}"
    );
    let err = Plan::parse(br#"{"waf": {"typo": 1}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `typo`"), "{err}");
}

/// A directory listing (CRS 950130, phase 4, PL1: outbound score 5, blocked by 959100).
const LISTING: &[u8] = b"<html><head><title>Index of /backup</title></head><body><h1>Index of /backup</h1><ul><li><a href=\"db.sql\">db.sql</a></li></ul></body></html>";

fn html() -> Vec<(String, Vec<u8>)> {
    vec![
        (":status".into(), b"200".to_vec()),
        ("content-type".into(), b"text/html; charset=utf-8".to_vec()),
    ]
}

#[test]
fn response_phases_are_off_by_default() {
    let plan = Plan::parse(br#"{"waf": {}}"#).unwrap();
    let waf = plan.waf().unwrap();
    assert!(!waf.response_enabled());
    assert!(!waf.inspects_response_body(Some("text/html")));
    let (_, response) = waf.evaluate_request(&request("GET", "h", "/backup/", &[]), None, None);
    assert!(
        response.is_none(),
        "no transaction kept without response.enabled"
    );
}

#[test]
fn response_phases_block_a_data_leak_in_the_body() {
    let plan = Plan::parse(br#"{"waf": {"response": {"enabled": true}}}"#).unwrap();
    let waf = plan.waf().unwrap();
    assert!(waf.inspects_response_body(Some("text/html; charset=utf-8")));
    assert!(waf.inspects_response_body(Some("text/xml")));
    assert!(!waf.inspects_response_body(Some("image/png")));
    assert_eq!(waf.response_body_limit(), 512 * 1024);

    let r = request("GET", "h", "/backup/", &[]);
    let (out, response) = waf.evaluate_request(&r, None, None);
    assert_eq!(out.intervention, None);
    let mut check = response.expect("kept for the response");
    assert_eq!(check.headers(200, &html()).intervention, None);
    let out = check.body(LISTING);
    let i = out.intervention.as_ref().expect("the listing is blocked");
    assert_eq!((i.rule_id, i.status, i.phase), (959100, 403, 4));
    assert!(out.matched.contains(&950130), "{out:?}");
    assert!(out.anomaly_score >= 4, "the outbound score: {out:?}");
    let reply = plan.waf_reply(&out, None).expect("a denial reply");
    assert_eq!(reply.status, 403);

    // A benign page passes.
    let (_, response) = waf.evaluate_request(&r, None, None);
    let mut check = response.unwrap();
    assert_eq!(check.headers(200, &html()).intervention, None);
    let out = check.body(b"<html><body><h1>Welcome</h1></body></html>");
    assert_eq!(out.intervention, None, "{out:?}");
    assert!(!out.matched.contains(&950130));
}

#[test]
fn a_phase_3_rule_blocks_on_the_response_headers() {
    let cfg = br#"{"waf": {"response": {"enabled": true}, "directives": [
        "Include @recommended.conf", "Include @crs-setup.conf", "Include @owasp_crs/*.conf",
        "SecRule RESPONSE_HEADERS:X-Debug-Token \"@rx .\" \"id:1003,phase:3,deny,status:502,log,msg:'debug token leaked'\""]}}"#;
    let plan = Plan::parse(cfg).unwrap();
    let waf = plan.waf().unwrap();
    let (_, response) = waf.evaluate_request(&request("GET", "h", "/", &[]), None, None);
    let mut check = response.unwrap();
    let mut headers = html();
    headers.push(("x-debug-token".into(), b"abc123".to_vec()));
    let out = check.headers(200, &headers);
    let i = out.intervention.expect("blocked at phase 3");
    assert_eq!((i.rule_id, i.status, i.phase), (1003, 502, 3));
    assert_eq!(i.msg.as_deref(), Some("debug token leaked"));
}

#[test]
fn response_phases_in_dry_run_detect_without_blocking() {
    let plan =
        Plan::parse(br#"{"waf": {"mode": "dry_run", "response": {"enabled": true}}}"#).unwrap();
    let waf = plan.waf().unwrap();
    let (_, response) = waf.evaluate_request(&request("GET", "h", "/backup/", &[]), None, None);
    let mut check = response.unwrap();
    check.headers(200, &html());
    let out = check.body(LISTING);
    assert_eq!(out.intervention, None);
    assert_eq!(out.detected.as_ref().map(|i| i.rule_id), Some(959100));
    assert!(plan.waf_reply(&out, None).is_none());
}

#[test]
fn response_settings_errors_say_where() {
    let err = Plan::parse(br#"{"waf": {"response": {"enabled": true, "body_mime_types": ["text/html; charset=utf-8"]}}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/waf/response/body_mime_types/0: "),
        "{err}"
    );
    let err = Plan::parse(br#"{"waf": {"response": {"enable": true}}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `enable`"), "{err}");
}

#[test]
fn the_summary_names_the_embedded_crs() {
    let plan = Plan::parse(br#"{"waf": {}}"#).unwrap();
    let s = plan.waf().unwrap().summary();
    let v = portcullis_filter::waf::Waf::crs_version().expect("a CRS embedded");
    assert!(
        s.starts_with(&format!("waf: OWASP CRS {v} embedded")),
        "{s}"
    );
    assert!(s.contains(&format!("CRS {v} loaded")), "{s}");
    assert!(s.ends_with("mode enforce; response phases off"), "{s}");
}
