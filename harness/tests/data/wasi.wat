;; A hand-written proxy-wasm module that drives Envoy's WASI subset from
;; proxy_on_vm_start and reports each outcome with proxy_log. "WASI" is replaced by
;; the WASI module name under test (wasi_snapshot_preview1 / wasi_unstable).
(module
  (import "WASI" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "WASI" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "WASI" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "WASI" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "WASI" "random_get" (func $random (param i32 i32) (result i32)))
  (import "WASI" "proc_exit" (func $exit (param i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "hello\n")
  (data (i32.const 16) "oops\n")
  (data (i32.const 32) "env-sizes-ok")
  (data (i32.const 48) "clock-ok")
  (data (i32.const 64) "random-ok")
  (data (i32.const 80) "badf-ok")
  (data (i32.const 96) "random-limit-ok")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "malloc") (param $n i32) (result i32)
    (local $p i32)
    global.get $heap
    local.set $p
    global.get $heap
    local.get $n
    i32.add
    global.set $heap
    local.get $p)
  (func (export "proxy_abi_version_0_2_1"))
  (func $say (param $p i32) (param $n i32)
    (drop (call $log (i32.const 2) (local.get $p) (local.get $n))))
  (func $write (param $fd i32) (param $p i32) (param $n i32) (result i32)
    (i32.store (i32.const 256) (local.get $p))
    (i32.store (i32.const 260) (local.get $n))
    (call $fd_write (local.get $fd) (i32.const 256) (i32.const 1) (i32.const 264)))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    ;; stdout / stderr
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 6)))
    (drop (call $write (i32.const 2) (i32.const 16) (i32.const 5)))
    (if (i32.eq (call $write (i32.const 7) (i32.const 0) (i32.const 6)) (i32.const 8))
      (then (call $say (i32.const 80) (i32.const 7))))
    ;; environment: count at 512, size at 516, pointers at 520, strings at 1024
    (drop (call $env_sizes (i32.const 512) (i32.const 516)))
    (if (i32.and (i32.eq (i32.load (i32.const 512)) (i32.const 2))
                 (i32.eq (i32.load (i32.const 516)) (i32.const 8)))
      (then (call $say (i32.const 32) (i32.const 12))))
    (drop (call $env_get (i32.const 520) (i32.const 1024)))
    (drop (call $write (i32.const 1) (i32.load (i32.const 520)) (i32.load (i32.const 516))))
    ;; realtime clock == configured start (1_000_000_000_000 ns)
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 600)))
    (if (i64.eq (i64.load (i32.const 600)) (i64.const 1000000000000))
      (then (call $say (i32.const 48) (i32.const 8))))
    ;; random: 16 bytes fine, 70000 bytes rejected with INVAL
    (if (i32.eqz (call $random (i32.const 2048) (i32.const 16)))
      (then (call $say (i32.const 64) (i32.const 9))))
    (if (i32.eq (call $random (i32.const 2048) (i32.const 70000)) (i32.const 28))
      (then (call $say (i32.const 96) (i32.const 15))))
    (call $exit (i32.const 3))
    (i32.const 1))
)
