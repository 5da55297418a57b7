;; A proxy-wasm (ABI 0.2.1) filter that traps on demand, to pin what Envoy does when a
;; filter's VM traps (tests/tests/envoy_trap.rs): portcullis never traps on input, so a
;; trap cannot be provoked in it. A request with an `x-trap` header runs `unreachable` in
;; proxy_on_request_headers; any other request gets `x-trap-filter: seen` added (so the
;; upstream echo shows the filter ran, not bypassed). Each VM start is logged, so the log
;; shows whether Envoy started a new VM after the trap.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-trap")
  (data (i32.const 32) "x-trap-filter")
  (data (i32.const 48) "seen")
  (data (i32.const 64) "trap filter: vm started")
  (data (i32.const 96) "trap filter: trapping on x-trap")
  ;; Bump allocator for what the host hands us (an x-trap value, once per trapping
  ;; request); the heap starts past the constants and the two out-parameters at 200/204.
  (global $heap (mut i32) (i32.const 1024))
  (func $alloc (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (export "malloc" (func $alloc))
  (export "proxy_on_memory_allocate" (func $alloc))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "_initialize"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (drop (call $log (i32.const 2) (i32.const 64) (i32.const 23)))
    i32.const 1)
  (func (export "proxy_on_configure") (param i32 i32) (result i32) i32.const 1)
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; map 0: request headers; status 0: found.
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 16) (i32.const 6)
                                   (i32.const 200) (i32.const 204)))
      (then
        (drop (call $log (i32.const 3) (i32.const 96) (i32.const 31)))
        unreachable))
    (drop (call $add_header (i32.const 0) (i32.const 32) (i32.const 13)
                            (i32.const 48) (i32.const 4)))
    i32.const 0)
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) i32.const 0)
  (func (export "proxy_on_done") (param i32) (result i32) i32.const 1)
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32)))
