//! ABI paths that filters from other SDKs take and Rust SDK filters do not, pinned with a
//! hand-written module (data/sdk_paths.wat) that uses them as the AssemblyScript SDK
//! (@solo-io/proxy-runtime) does; tests/sdk_assemblyscript.rs runs the real SDK, and
//! tests/tests/envoy_assemblyscript.rs (workspace root) checks it against Envoy 1.40.

use portcullis_harness::{Action, Host, HttpReply, LogLevel, StreamProps, VmConfig};

fn host() -> Host {
    Host::new(include_bytes!("data/sdk_paths.wat")).expect("compiles")
}

fn config() -> VmConfig {
    VmConfig {
        plugin_configuration: b"hello".to_vec(),
        root_id: "my_root".into(),
        ..VmConfig::default()
    }
}

fn logged(logs: &[portcullis_harness::LogEntry], m: &str) -> bool {
    logs.iter()
        .any(|l| l.level == LogLevel::Info && l.message == m)
}

/// Envoy (cpp-host) accepts a module marked `proxy_abi_version_0_2_0` with a `malloc`
/// export and neither `_initialize` nor `_start`: instantiation runs the wasm start
/// function (AssemblyScript's top-level code), then proxy_on_context_create(root, 0).
#[test]
fn abi_0_2_0_module_with_a_start_function_and_malloc_starts() {
    let vm = host().start_vm(config()).expect("starts");
    assert!(logged(vm.logs(), "start function ran"), "{:?}", vm.logs());
}

/// `plugin_root_id` is readable in the root context's proxy_on_context_create, before
/// proxy_on_vm_start: the AssemblyScript SDK picks the root context class by it there.
/// Envoy answers it from the plugin's `root_id`.
#[test]
fn plugin_root_id_is_readable_when_the_root_context_is_created() {
    let vm = host().start_vm(config()).expect("starts");
    assert!(logged(vm.logs(), "root id: my_root"), "{:?}", vm.logs());
}

/// proxy_get_buffer_bytes writes the size to whatever address the filter passed: the
/// AssemblyScript SDK passes the configuration size itself as the size pointer (a low
/// address of its own memory) and Envoy, which only checks the address is in bounds,
/// writes there.
#[test]
fn buffer_size_is_written_to_any_in_bounds_address() {
    let vm = host().start_vm(config()).expect("starts");
    assert!(
        logged(vm.logs(), "config size written at its own address"),
        "{:?}",
        vm.logs()
    );
}

/// An http_call made in a stream callback is issued on the root context (cpp-host:
/// `contextOrEffectiveContext()->root_context()`), so Envoy calls
/// proxy_on_http_call_response with the ROOT context id; the filter then makes the waiting
/// stream the effective context with proxy_set_effective_context, and header edits and
/// proxy_continue_stream act on that stream.
#[test]
fn http_call_response_goes_to_the_root_context_and_acts_through_the_effective_context() {
    let host = host();
    let mut vm = host.start_vm(config()).expect("starts");
    vm.on_http_call("authz", |call| {
        assert_eq!(call.header(":path"), Some("/check"));
        HttpReply::ok(200, b"ok".to_vec())
    });
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    let action = s
        .request_headers(
            [
                (":authority", "example.com"),
                (":path", "/"),
                (":method", "GET"),
                (":scheme", "http"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Continue, "answered and resumed");
    let r = s.finish().unwrap();
    let all: Vec<_> = vm.logs().iter().chain(r.logs.iter()).cloned().collect();
    assert!(logged(&all, "call answered on the root context"), "{all:?}");
    assert!(logged(&all, "set_effective_context ok"), "{all:?}");
    assert_eq!(r.request_header("x-via"), Some("effective"));
    assert_eq!(r.http_calls.len(), 1);
}

/// Envoy splits a property path on `\0` only and looks the first segment up whole: the
/// AssemblyScript SDK's dotted `"request.path"` is one unknown attribute (NotFound, 1),
/// `request\0path` is the request's path (Ok, 0). Envoy's answer for the dotted form is
/// checked by tests/tests/envoy_assemblyscript.rs.
#[test]
fn a_dotted_property_path_is_one_unknown_segment() {
    let host = host();
    let mut vm = host.start_vm(config()).expect("starts");
    vm.on_http_call("authz", |_| HttpReply::ok(200, Vec::new()));
    let mut s = vm.http_stream(StreamProps::default()).unwrap();
    s.request_headers(
        [
            (":authority", "example.com"),
            (":path", "/p"),
            (":method", "GET"),
            (":scheme", "http"),
        ],
        true,
    )
    .unwrap();
    let r = s.finish().unwrap();
    assert!(logged(&r.logs, "dotted path status 1"), "{:?}", r.logs);
    assert!(logged(&r.logs, "segment path status 0"), "{:?}", r.logs);
}
