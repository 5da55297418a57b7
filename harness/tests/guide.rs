//! The complete example of `harness/README.md` ("Testing your filter from `cargo test`"),
//! verbatim: if this stops compiling or passing, the guide is wrong.

use std::time::Duration;

use portcullis_harness::{Action, Host, HttpReply, StreamProps, VmConfig};

#[test]
fn authz_callout_then_upstream() {
    let wasm = portcullis_harness::build::build_wasm_crate("test-filters/conformance").unwrap();
    let host = Host::from_file(&wasm).unwrap();
    let mut vm = host
        .start_vm(VmConfig {
            plugin_configuration: b"my config".to_vec(),
            root_id: "my_root_id".into(),
            ..VmConfig::default()
        })
        .unwrap();
    // The authz service answers 30 ms later (virtual time).
    vm.on_http_call("authz", |call| {
        assert_eq!(call.header(":path"), Some("/check"));
        HttpReply::ok(200, b"alice".to_vec()).delayed(Duration::from_millis(30))
    });

    let client = "203.0.113.7:41000".parse().unwrap();
    let mut s = vm
        .http_stream(StreamProps::default().source(client))
        .unwrap();
    let action = s
        .request_headers(
            [
                (":authority", "api.example.com"),
                (":path", "/callout"),
                (":method", "GET"),
                (":scheme", "https"),
                ("x-forwarded-proto", "https"),
                ("x-request-id", "3e1b0c2a-0000-4000-8000-000000000001"),
                ("x-remove-me", "1"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Pause, "waiting for authz");
    // The reply reaches the waiting request once its delay has passed.
    assert_eq!(
        s.advance_time(Duration::from_millis(30)).unwrap(),
        Action::Continue
    );

    // The upstream's answer goes back through the filter.
    s.response_headers([(":status", "200"), ("content-type", "text/plain")], false)
        .unwrap();
    s.response_body(b"hello", true).unwrap();
    let rec = s.finish().unwrap();

    // Headers: what the filter added, replaced and removed.
    assert_eq!(rec.request_header("x-authz"), Some("alice"));
    assert_eq!(rec.request_header("x-added"), Some("1"));
    assert_eq!(rec.request_header("x-remove-me"), None);
    assert_eq!(rec.response_header("x-seen-by"), Some("conformance"));
    // Bodies as they left the filter.
    assert_eq!(rec.response_body, b"hello");
    // Calls it made.
    assert_eq!(rec.http_calls.len(), 1);
    assert_eq!(rec.http_calls[0].cluster, "authz");
    // Its log lines.
    assert!(rec.logged("response body hello"), "{:?}", rec.logs);
    assert!(rec.local_reply.is_none());
}

/// This file's example is the README's, character for character.
#[test]
fn the_readme_shows_this_example() {
    let readme = include_str!("../README.md");
    let this = include_str!("guide.rs");
    let start = readme
        .find("```rust\nuse std::time::Duration;")
        .expect("the README's example")
        + "```rust\n".len();
    let len = readme[start..].find("```").expect("its end");
    let example = &readme[start..start + len];
    assert!(
        this.contains(example),
        "harness/README.md's example and tests/guide.rs differ"
    );
}
