;; A hand-written proxy-wasm module that uses the ABI the way the AssemblyScript SDK
;; (@solo-io/proxy-runtime) does and the Rust SDK does not (tests/sdk_paths.rs):
;;   - ABI 0.2.0 marker, `malloc` allocator, no `_initialize`/`_start` (a wasm start
;;     function runs the module's top-level code at instantiation);
;;   - the root context reads `plugin_root_id` in proxy_on_context_create, before on_vm_start;
;;   - proxy_on_configure passes the configuration size itself as the size pointer of
;;     proxy_get_buffer_bytes (the SDK's RootContext.onConfigure does);
;;   - an http_call made in a stream callback is answered on the ROOT context, which then
;;     makes the stream the effective context (proxy_set_effective_context) to edit its
;;     headers and resume it;
;;   - property paths as one dotted string ("request.path") as well as `\0`-joined.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective (param i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue (param i32) (result i32)))
  (memory (export "memory") 1)
  ;; 1024..: strings
  (data (i32.const 1024) "plugin_root_id")                  ;; 14
  (data (i32.const 1040) "start function ran")              ;; 18
  (data (i32.const 1060) "authz")                           ;; 5
  (data (i32.const 1068) "x-via")                           ;; 5
  (data (i32.const 1076) "effective")                       ;; 9
  (data (i32.const 1088) "call answered on the root context")   ;; 33
  (data (i32.const 1124) "call answered on another context")    ;; 32
  (data (i32.const 1160) "set_effective_context ok")        ;; 24
  (data (i32.const 1188) "config size written at its own address") ;; 38
  (data (i32.const 1228) "config size NOT written")         ;; 23
  (data (i32.const 1252) "root id: ")                       ;; 9
  (data (i32.const 1264) "request.path")                    ;; 12
  (data (i32.const 1360) "request\00path")                  ;; 12
  (data (i32.const 1376) "dotted path status 0")            ;; 20, the digit at 1395
  (data (i32.const 1400) "segment path status 0")           ;; 21, the digit at 1420
  ;; 1280: the http_call's headers, serialized: 3 pairs, sizes, then NUL-terminated data.
  (data (i32.const 1280) "\03\00\00\00\07\00\00\00\03\00\00\00\05\00\00\00\06\00\00\00\0a\00\00\00\05\00\00\00:method\00GET\00:path\00/check\00:authority\00authz\00")
  (global $started (mut i32) (i32.const 0))
  (global $root (mut i32) (i32.const 0))
  (global $stream (mut i32) (i32.const 0))
  (global $heap (mut i32) (i32.const 8192))
  (func $start (global.set $started (i32.const 1)))
  (start $start)
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_0"))
  (func $say (param $p i32) (param $n i32)
    (drop (call $log (i32.const 2) (local.get $p) (local.get $n))))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (i32.eqz (local.get $parent))
      (then
        (global.set $root (local.get $id))
        (if (global.get $started) (then (call $say (i32.const 1040) (i32.const 18))))
        ;; "root id: " then the property's bytes, at 4096.
        (if (i32.eqz (call $get_property (i32.const 1024) (i32.const 14) (i32.const 512) (i32.const 516)))
          (then
            (memory.copy (i32.const 4096) (i32.const 1252) (i32.const 9))
            (memory.copy (i32.add (i32.const 4096) (i32.const 9)) (i32.load (i32.const 512)) (i32.load (i32.const 516)))
            (call $say (i32.const 4096) (i32.add (i32.const 9) (i32.load (i32.const 516)))))))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    ;; The size pointer IS the size (an address in low memory), as the SDK passes it.
    (i32.store (local.get $size) (i32.const 0))
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 520) (local.get $size)))
    (if (i32.eq (i32.load (local.get $size)) (local.get $size))
      (then (call $say (i32.const 1188) (i32.const 38)))
      (else (call $say (i32.const 1228) (i32.const 23))))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $id i32) (param i32 i32) (result i32)
    (global.set $stream (local.get $id))
    ;; Each property path's status, as one digit.
    (i32.store8 (i32.const 1395)
      (i32.add (i32.const 48) (call $get_property (i32.const 1264) (i32.const 12) (i32.const 528) (i32.const 532))))
    (call $say (i32.const 1376) (i32.const 20))
    (i32.store8 (i32.const 1420)
      (i32.add (i32.const 48) (call $get_property (i32.const 1360) (i32.const 12) (i32.const 528) (i32.const 532))))
    (call $say (i32.const 1400) (i32.const 21))
    (drop (call $http_call (i32.const 1060) (i32.const 5) (i32.const 1280) (i32.const 70)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 500) (i32.const 524)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param i32 i32 i32 i32)
    (if (i32.eq (local.get $ctx) (global.get $root))
      (then (call $say (i32.const 1088) (i32.const 33)))
      (else (call $say (i32.const 1124) (i32.const 32))))
    (if (i32.eqz (call $set_effective (global.get $stream)))
      (then (call $say (i32.const 1160) (i32.const 24))))
    ;; request headers (0) of the effective context, then resume the request (0).
    (drop (call $add_header (i32.const 0) (i32.const 1068) (i32.const 5) (i32.const 1076) (i32.const 9)))
    (drop (call $continue (i32.const 0))))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_delete") (param i32)))
