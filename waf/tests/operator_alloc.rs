//! `CompiledOperator::matches` without captures allocates nothing (after the first search
//! warmed the regex's per-thread cache), for every operator except the two that call into
//! libraries which allocate internally: the `fancy-regex` fallback and libinjection's XSS
//! check (`libinjectionrs`); `@detectSQLi` is our own and allocates nothing.

use portcullis_waf::ast::OperatorName;
use portcullis_waf::operator::CompiledOperator;
use portcullis_waf::seclang::RuleSource;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct OneFile;

impl RuleSource for OneFile {
    fn read(&self, path: &str) -> Result<String, String> {
        Ok(match path {
            "ips.data" => "10.0.0.0/8\n",
            _ => "/etc/passwd\n",
        }
        .to_string())
    }
    fn glob(&self, _: &str) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    fn resolve(&self, _: &str, name: &str) -> String {
        name.to_string()
    }
}

#[test]
fn matching_without_captures_allocates_nothing() {
    let operators: Vec<CompiledOperator> = [
        (OperatorName::Rx, "(?i)union\\s+select|<script"),
        (OperatorName::Rx, "^$"),
        (OperatorName::Pm, "passwd shadow"),
        (OperatorName::PmFromFile, "x.data"),
        (OperatorName::Streq, "abc"),
        (OperatorName::BeginsWith, "ab"),
        (OperatorName::EndsWith, "bc"),
        (OperatorName::Contains, "b"),
        (OperatorName::StrMatch, "b"),
        (OperatorName::Within, "GET POST"),
        (OperatorName::ContainsWord, "select"),
        (OperatorName::Eq, "1"),
        (OperatorName::Lt, "10"),
        (OperatorName::ValidateByteRange, "32-126"),
        (OperatorName::ValidateUrlEncoding, ""),
        (OperatorName::ValidateUtf8Encoding, ""),
        (OperatorName::IpMatch, "10.0.0.0/8,::1"),
        (OperatorName::IpMatchFromFile, "ips.data"),
        (OperatorName::UnconditionalMatch, ""),
        (OperatorName::NoMatch, ""),
        (OperatorName::DetectSqli, ""),
    ]
    .into_iter()
    .map(|(name, arg)| CompiledOperator::compile(name, arg, &OneFile, "r.conf").unwrap())
    .collect();
    let inputs: [&[u8]; 5] = [
        b"1 UNION SELECT password FROM users",
        b"/etc/passwd",
        b"10.1.2.3",
        b"\xc3\xa9t\xe9 %zz",
        b"line one\nline two",
    ];
    // Warm-up: the regex engines build their per-thread search caches on first use.
    for op in &operators {
        for input in inputs {
            op.matches(input, None);
        }
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut matched = 0;
    for op in &operators {
        for input in inputs {
            matched += usize::from(op.matches(input, None));
        }
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert!(
        matched > 10,
        "the inputs exercise matching paths ({matched})"
    );
    assert_eq!(allocated, 0, "allocations while matching");
}
