//! Envoy's WASI subset, driven by a hand-written module under both WASI module names.

use std::time::{Duration, UNIX_EPOCH};

use portcullis_harness::{Error, Host, LogLevel, StreamProps, VmConfig};

fn run(module: &str) -> Vec<(LogLevel, String)> {
    let wat = include_str!("data/wasi.wat").replace("\"WASI\"", &format!("\"{module}\""));
    let host = Host::new(wat.as_bytes()).expect("compiles");
    let vm = host
        .start_vm(VmConfig {
            env: vec![("A".into(), "1".into()), ("B".into(), "2".into())],
            start_time: Some(UNIX_EPOCH + Duration::from_nanos(1_000_000_000_000)),
            ..Default::default()
        })
        .expect("starts");
    vm.logs()
        .iter()
        .map(|l| (l.level, l.message.clone()))
        .collect()
}

fn check(module: &str) {
    let logs = run(module);
    let has = |lvl: LogLevel, m: &str| logs.iter().any(|(l, x)| *l == lvl && x == m);
    assert!(
        has(LogLevel::Info, "hello"),
        "{module}: stdout → Info, newline stripped: {logs:?}"
    );
    assert!(
        has(LogLevel::Error, "oops"),
        "{module}: stderr → Error: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "badf-ok"),
        "{module}: other fd → BADF: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "env-sizes-ok"),
        "{module}: environ_sizes_get: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "A=1\0B=2\0"),
        "{module}: environ_get strings: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "clock-ok"),
        "{module}: virtual realtime clock: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "random-ok"),
        "{module}: random_get: {logs:?}"
    );
    assert!(
        has(LogLevel::Info, "random-limit-ok"),
        "{module}: random_get > 64 KiB: {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(l, m)| *l == LogLevel::Error && m.contains("proc_exit(3)")),
        "{module}: proc_exit logged and returned: {logs:?}"
    );
}

#[test]
fn wasi_snapshot_preview1_subset_answers_as_envoy() {
    check("wasi_snapshot_preview1");
}

#[test]
fn wasi_unstable_subset_answers_as_envoy() {
    check("wasi_unstable");
}

#[test]
fn unknown_wasi_function_is_a_missing_import() {
    let wat = r#"(module (import "wasi_snapshot_preview1" "thread_spawn" (func (param i32) (result i32)))
        (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_abi_version_0_2_1")))"#;
    match Host::new(wat.as_bytes()) {
        Err(e @ Error::MissingImport { .. }) => assert_eq!(
            e.to_string(),
            "Failed to load Wasm module due to a missing import: wasi_snapshot_preview1.thread_spawn"
        ),
        other => panic!("expected MissingImport, got {:?}", other.err()),
    }
}

#[test]
fn abi_0_1_0_only_import_is_missing_for_a_0_2_1_module() {
    let wat = r#"(module (import "env" "proxy_continue_request" (func (result i32)))
        (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_abi_version_0_2_1")))"#;
    assert!(
        matches!(Host::new(wat.as_bytes()), Err(Error::MissingImport { name, .. }) if name == "proxy_continue_request")
    );
}

#[test]
fn module_without_abi_marker_is_rejected() {
    let wat = r#"(module (memory (export "memory") 1))"#;
    assert!(matches!(
        Host::new(wat.as_bytes()),
        Err(Error::UnknownAbiVersion)
    ));
}

#[test]
fn hostcall_during_initialize_is_restricted() {
    let wat = r#"(module (import "env" "proxy_set_tick_period_milliseconds" (func $t (param i32) (result i32)))
        (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "_initialize") (drop (call $t (i32.const 5)))))"#;
    let host = Host::new(wat.as_bytes()).unwrap();
    match host.start_vm(VmConfig::default()) {
        Err(Error::Trap {
            callback, message, ..
        }) => {
            assert_eq!(callback, "_initialize");
            assert!(message.contains("restricted_callback"), "{message}");
        }
        other => panic!("expected a trap, got {:?}", other.err()),
    }
}

#[test]
fn runaway_start_callback_hits_the_start_deadline() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (loop $l (br $l)) (i32.const 1)))"#;
    let host = Host::new(wat.as_bytes()).unwrap();
    // The start-up budget, not the per-request one, bounds proxy_on_vm_start.
    let cfg = VmConfig {
        callback_deadline: Duration::from_secs(3600),
        start_deadline: Duration::from_millis(50),
        ..Default::default()
    };
    match host.start_vm(cfg) {
        Err(Error::Deadline {
            callback: "proxy_on_vm_start",
            deadline,
        }) => assert_eq!(deadline, Duration::from_millis(50)),
        other => panic!("expected the start deadline, got {:?}", other.err()),
    }
}

#[test]
fn runaway_request_callback_hits_the_callback_deadline() {
    let wat = r#"(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 1024)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (loop $l (br $l)) (i32.const 0)))"#;
    let host = Host::new(wat.as_bytes()).unwrap();
    // A generous start-up budget does not widen the per-request one.
    let cfg = VmConfig {
        callback_deadline: Duration::from_millis(50),
        start_deadline: Duration::from_secs(3600),
        ..Default::default()
    };
    let mut vm = host.start_vm(cfg).unwrap();
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    match s.request_headers([(":path", "/")], true) {
        Err(Error::Deadline {
            callback: "proxy_on_request_headers",
            deadline,
        }) => assert_eq!(deadline, Duration::from_millis(50)),
        other => panic!("expected the callback deadline, got {other:?}"),
    }
}

#[test]
fn memory_limit_caps_growth() {
    let wat = r#"(module (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) i32.const 0)
        (data (i32.const 0) "grow-failed")
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1))
            (then (drop (call $log (i32.const 2) (i32.const 0) (i32.const 11)))))
          (i32.const 1)))"#;
    let host = Host::new(wat.as_bytes()).unwrap();
    let vm = host
        .start_vm(VmConfig {
            memory_limit: 2 << 16,
            ..Default::default()
        })
        .unwrap();
    assert!(
        vm.logs().iter().any(|l| l.message == "grow-failed"),
        "{:?}",
        vm.logs()
    );
    let vm = host.start_vm(VmConfig::default()).unwrap();
    assert!(!vm.logs().iter().any(|l| l.message == "grow-failed"));
}

#[test]
fn memory_bytes_follows_the_guests_memory_grow() {
    // Starts with 2 pages; on_vm_start grows by 5 (to 7), on_configure by 3 more (to 10).
    let wat = r#"(module (memory (export "memory") 2)
        (func (export "malloc") (param i32) (result i32) i32.const 0)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (drop (memory.grow (i32.const 5))) (i32.const 1))
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (memory.grow (i32.const 3))) (i32.const 1)))"#;
    let host = Host::new(wat.as_bytes()).unwrap();
    let vm = host.start_vm(VmConfig::default()).unwrap();
    assert_eq!(vm.memory_bytes(), 10 * 65536);
    // A capped VM could not grow: its size is what the limit allowed.
    let vm = host
        .start_vm(VmConfig {
            memory_limit: 4 << 16,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(vm.memory_bytes(), 2 * 65536);
}
