;; A tiny proxy-wasm filter for the replay tests. It decides by the number of
;; request headers (4 pseudo-headers + N): N=0 continues, N=1 replies 403 with a JSON
;; body, N=2 replies 429 with an x-portcullis-rule-ids header, N=3 traps.
(module
      (import "env" "proxy_send_local_response"
        (func $reply (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 100) "{\"reason\":\"denied_by_test\",\"rule_ids\":[\"t1\",7]}")
      (data (i32.const 200) "test_details")
      ;; one header: x-portcullis-rule-ids: a,b  (u32 count, u32 klen, u32 vlen, k\0v\0)
      (data (i32.const 300) "\01\00\00\00\15\00\00\00\03\00\00\00x-portcullis-rule-ids\00a,b\00")
      (data (i32.const 400) "\00\00\00\00")
      (func (export "malloc") (param i32) (result i32) i32.const 4096)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
        (if (i32.eq (local.get 1) (i32.const 5))
          (then (drop (call $reply (i32.const 403) (i32.const 200) (i32.const 12)
                  (i32.const 100) (i32.const 47) (i32.const 400) (i32.const 4) (i32.const -1)))
                (return (i32.const 1))))
        (if (i32.eq (local.get 1) (i32.const 6))
          (then (drop (call $reply (i32.const 429) (i32.const 200) (i32.const 12)
                  (i32.const 0) (i32.const 0) (i32.const 300) (i32.const 38) (i32.const -1)))
                (return (i32.const 1))))
        (if (i32.eq (local.get 1) (i32.const 7)) (then unreachable))
        (i32.const 0)))
