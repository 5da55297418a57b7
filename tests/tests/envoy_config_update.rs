//! A configuration update on a running Envoy (1.40, V8): the listener comes from a file
//! Envoy watches (LDS), and the filter's configuration is replaced while Envoy serves. A
//! valid update takes effect; an invalid one is rejected (the plugin's `on_configure`
//! fails, logged with the JSON pointer, `listener_manager.lds.update_rejected` counts it)
//! and the previous configuration keeps serving. (A bad configuration at start-up stops
//! Envoy: `envoy_ip_allowlist.rs`, `bad_config_stops_envoy_and_logs_the_json_pointer`.)

use portcullis_e2e::{Envoy, EnvoyConfig, Request};
use std::time::{Duration, Instant};

fn only(partner_ip: &str) -> String {
    format!(
        r#"{{"metrics": {{"flush_interval_ms": 0}},
          "partners": [{{"name": "acme", "cidrs": ["{partner_ip}/32"]}}],
          "ip_allowlist": {{"client_ip": {{"source": "peer"}}}}}}"#
    )
}

fn status(envoy: &Envoy, from: &str) -> u16 {
    Request::get("/orders").from(from).send(envoy.addr()).status
}

/// Waits (10 s at most) until `from` gets `want`.
fn until(envoy: &Envoy, from: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(envoy, from) != want {
        assert!(
            Instant::now() < deadline,
            "{from} never got {want}:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_update_is_rejected_and_the_running_configuration_keeps_serving() {
    let mut envoy =
        Envoy::start(&EnvoyConfig::with_plugin(&only("127.0.0.2")).listener_from_file());
    assert_eq!(status(&envoy, "127.0.0.2"), 200);
    assert_eq!(status(&envoy, "127.0.0.3"), 403);

    // A valid update: acme moves to 127.0.0.3.
    envoy.update_plugin(&only("127.0.0.3"));
    until(&envoy, "127.0.0.3", 200);
    assert_eq!(status(&envoy, "127.0.0.2"), 403);

    // An invalid one: rejected with the reason in the log; the running one stays.
    envoy.update_plugin(
        r#"{"partners": [{"name": "acme", "cidrs": ["127.0.0.4/33"]}],
            "ip_allowlist": {"client_ip": {"source": "peer"}}}"#,
    );
    let log = envoy.wait_for_log("invalid configuration: /partners/0/cidrs/0");
    assert!(
        log.contains(r#""127.0.0.4/33" is not a CIDR (prefix length 33 > 32)"#),
        "{log}"
    );
    let rejected = envoy.stats_when("listener_manager.lds.update_rejected", |s| {
        s.get("listener_manager.lds.update_rejected")
            .copied()
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(
        rejected.get("listener_manager.lds.update_rejected"),
        Some(&1),
        "{rejected:?}\n{}",
        envoy.log()
    );
    for _ in 0..20 {
        assert_eq!(status(&envoy, "127.0.0.3"), 200);
        assert_eq!(status(&envoy, "127.0.0.2"), 403);
        assert_eq!(status(&envoy, "127.0.0.4"), 403);
    }
}
