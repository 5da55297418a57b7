//! Issue 4's "evaluation per request with no parsing and no allocation on the hot path",
//! checked: a counting global allocator around `Plan::evaluate` for the example gateway
//! policy (`policies/examples/gateway.json`: partner allow-lists and the seed
//! authorization policies), on requests whose path is already normal — allowed, denied
//! by policy, denied by the allow-list. A path that needs rewriting (dot segments,
//! decodable escapes) is the exception: its rewrite copies it (5 allocations today, for
//! decoding, parameter stripping and dot-segment removal; pinned so it cannot grow unseen).

use portcullis_filter::request::{PeerCertificate, StaticRequest};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts (per thread, so parallel tests
// don't disturb each other).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

fn plan() -> portcullis_filter::engine::Plan {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/examples/gateway.json"
    );
    let json = std::fs::read(path).expect("the example policy");
    portcullis_filter::engine::Plan::parse(&json).unwrap_or_else(|e| panic!("{e}"))
}

fn request(
    method: &str,
    authority: &str,
    path: &str,
    from: &str,
    sa: Option<&str>,
) -> StaticRequest {
    let mut r = StaticRequest::new(method, authority, path, from);
    r.peer_certificate = sa.map(|sa| PeerCertificate {
        uri_sans: vec![format!("spiffe://cluster.local/{sa}")],
        dns_sans: vec![],
        subject: "O=cluster.local".into(),
        sha256: Some("00".repeat(32)),
    });
    r
}

#[test]
fn evaluation_allocates_nothing_for_normal_paths() {
    let plan = plan();
    let cases = [
        // (request, denied?)
        (
            request(
                "GET",
                "httpbin.example.com",
                "/status/200",
                "10.20.0.5:1",
                Some("ns/default/sa/sleep"),
            ),
            false,
        ),
        (
            request(
                "POST",
                "httpbin.example.com",
                "/headers",
                "10.20.0.5:1",
                Some("ns/default/sa/sleep"),
            ),
            false,
        ),
        (
            request(
                "GET",
                "httpbin.example.com",
                "/headers",
                "10.20.0.5:1",
                Some("ns/default/sa/sleep"),
            ),
            true,
        ),
        (
            request(
                "GET",
                "bookinfo.example.com",
                "/static/app.js",
                "10.20.0.5:1",
                Some("ns/bookinfo/sa/bookinfo-user"),
            ),
            false,
        ),
        (
            request(
                "GET",
                "httpbin.example.com",
                "/status/200",
                "10.20.0.5:1",
                None,
            ),
            true,
        ),
        (
            request(
                "GET",
                "partners.example.com",
                "/api/orders?id=1",
                "203.0.113.9:1",
                None,
            ),
            false,
        ),
        (
            request(
                "GET",
                "partners.example.com",
                "/api/orders",
                "192.0.2.200:1",
                None,
            ),
            true,
        ),
    ];
    // Warm up once (lazily built state, if any, is not per request).
    for (r, _) in &cases {
        let _ = plan.evaluate(r);
    }
    for (r, denied) in &cases {
        let (d, n) = allocations_during(|| plan.evaluate(r).denial.is_some());
        assert_eq!(d, *denied, "{r:?}");
        assert_eq!(n, 0, "{n} allocations evaluating {r:?}");
    }
}

#[test]
fn a_path_that_needs_rewriting_costs_a_few_copies() {
    let plan = plan();
    let r = request(
        "GET",
        "httpbin.example.com",
        "/status/../status/%32%30%30",
        "10.20.0.5:1",
        Some("ns/default/sa/sleep"),
    );
    let _ = plan.evaluate(&r);
    let (denied, n) = allocations_during(|| plan.evaluate(&r).denial.is_some());
    assert!(!denied, "normalized to /status/200");
    assert!(n <= 5, "{n} allocations");
}
