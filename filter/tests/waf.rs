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
