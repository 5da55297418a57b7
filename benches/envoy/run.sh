#!/usr/bin/env bash
# Envoy throughput benchmark (not a test; .ci/run does not run it). In one run, one Envoy
# worker per configuration on loopback, wrk -t1 -c32 against a direct_response route,
# 3 interleaved rounds of 5 s per configuration (best round shown; see bench.py):
#   - no filter;
#   - benches/benches/noop.wat, a Wasm module that only returns Continue (the floor any
#     Wasm filter pays: Envoy's Wasm filter and V8 calls, no host calls);
#   - native RBAC (ALLOW, one remote_ip principal per CIDR, as istiod generates) at
#     10, 100, 1k, 10k CIDRs;
#   - the portcullis filter with no check configured (its fixed cost), then at 10, 1k, 10k,
#     100k CIDRs.
# Random CIDRs plus one matching the client, so every request is allowed. Prints a table
# of req/s (and ratio to no filter) and Envoy CPU time per request. About 3-4 minutes (longer on a loaded machine).
#
# Environment: PORTCULLIS_WASM (default: built with scripts/build-filter), DURATION (5s), ROUNDS (3),
# CONNECTIONS (32), RBAC_SIZES (10,100,1000,10000), FILTER_SIZES (0,10,1000,10000,100000; 0 = no check;
# set either to empty to skip those rows).
# Extra arguments go to bench.py (e.g. --keep to keep the configs and logs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

. "$here/preflight.sh"
preflight run.sh
noop="$(mktemp --suffix=.wasm)"
trap 'rm -f "$noop"' EXIT
(cd "$root" && cargo run -q --release -p portcullis-benches --bin wat2wasm -- benches/benches/noop.wat "$noop")

python3 "$here/bench.py" --wasm "$wasm" --noop-wasm "$noop" \
  --duration "${DURATION:-5s}" --rounds "${ROUNDS:-3}" --connections "${CONNECTIONS:-32}" \
  --rbac "${RBAC_SIZES-10,100,1000,10000}" --filter "${FILTER_SIZES-0,10,1000,10000,100000}" "$@"
