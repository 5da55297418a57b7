//! `waf_heap`: where the WAF's memory goes, natively (the filter VM's linear memory is this
//! heap plus the module's data and stack, with 4-byte instead of 8-byte pointers). Counts the
//! live heap bytes after parsing the SecLang of the default `waf` config, after compiling it
//! into the plan, and after 10,000 requests (regex lazy-DFA caches, per-request buffers).
//!
//! `cargo run --release -p portcullis-benches --bin waf_heap`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use portcullis_filter::request::{Headers, StaticRequest};

/// The system allocator, counting live bytes (why hand-written: a dozen lines, no crate
/// needed for one counter).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mib(n: isize) -> f64 {
    n as f64 / (1024.0 * 1024.0)
}

fn request(path: &str, content_type: Option<&str>) -> StaticRequest {
    let mut h = vec![
        (":method".to_string(), "POST".to_string()),
        (":authority".to_string(), "shop.example.com".to_string()),
        (":path".to_string(), path.to_string()),
        ("user-agent".to_string(), "Mozilla/5.0".to_string()),
        ("accept".to_string(), "text/html".to_string()),
    ];
    if let Some(ct) = content_type {
        h.push(("content-type".to_string(), ct.to_string()));
    }
    StaticRequest {
        headers: Headers::new(h),
        source_address: Some("203.0.113.9:40000".into()),
        ..Default::default()
    }
}

fn main() {
    let start = LIVE.load(Ordering::Relaxed);
    let source = portcullis_waf::seclang::MapSource::new(
        portcullis_waf::crs::aliases().map(|(n, t)| (n.to_string(), t.to_string())),
    );
    let embedded = LIVE.load(Ordering::Relaxed);
    let text = "Include @recommended.conf\nInclude @crs-setup.conf\nInclude @owasp_crs/*.conf";
    let directives =
        portcullis_waf::seclang::parse(text, "<heap>", &source).expect("the CRS parses");
    let parsed = LIVE.load(Ordering::Relaxed);
    let ruleset =
        portcullis_waf::engine::Ruleset::compile(directives, &source).expect("the CRS compiles");
    let compiled = LIVE.load(Ordering::Relaxed);
    drop(source);
    let plan_only = LIVE.load(Ordering::Relaxed);
    println!(
        "embedded CRS as a source map: {:.2} MiB",
        mib(embedded - start)
    );
    println!(
        "parsed directives (AST):      {:.2} MiB",
        mib(parsed - embedded)
    );
    println!(
        "compiled plan (AST consumed): {:.2} MiB ({} rules)",
        mib(plan_only - start),
        ruleset.report().rule_count
    );
    println!(
        "peak while compiling >=      {:.2} MiB",
        mib(compiled - start)
    );

    let plan = portcullis_filter::engine::Plan::parse(br#"{"waf": {}}"#).expect("the waf config");
    let waf = plan.waf().expect("waf");
    let before = LIVE.load(Ordering::Relaxed);
    let get = request("/products?page=2&sort=price", None);
    let sqli = request("/search?q=1%27%20OR%20%271%27%3D%271", None);
    let form = request("/comment", Some("application/x-www-form-urlencoded"));
    for i in 0..10_000 {
        let out = match i % 4 {
            0 => waf.evaluate(&get, None, None),
            1 => waf.evaluate(&sqli, None, None),
            2 => waf.evaluate(&form, None, Some(b"name=Jane+Doe&comment=Great+service")),
            _ => waf.evaluate(
                &form,
                None,
                Some(b"text=%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            ),
        };
        assert_eq!(out.intervention.is_some(), i % 2 == 1, "request {i}");
    }
    let after = LIVE.load(Ordering::Relaxed);
    println!(
        "after 10,000 requests:        +{:.2} MiB (regex caches and other lazily built state)",
        mib(after - before)
    );
}
