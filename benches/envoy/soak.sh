#!/usr/bin/env bash
# Soak (not a benchmark, not a test; tests/tests/envoy_soak.rs runs a short one in CI): a real
# Envoy (2 workers) with the release filter, 10,000 partner CIDRs and 50 authorization
# policies, under wrk on loopback with a mix of allowed and denied requests, every response
# checked, until REQUESTS (10 million) responses; rounds of INTERVAL seconds, one table row
# each: requests, unexpected responses, the filter's allowed/denied counts, Envoy's RSS and
# the filter's linear memory (gauge portcullis.vm.linear_memory_bytes). Exits non-zero when
# a response is unexpected, the filter's counters disagree with the requests, or RSS or
# linear memory moves beyond +-5% after warm-up (see soak.py for the exact checks).
# About 10-20 minutes on a loaded 2-core machine (8-19k req/s there).
#
# Environment: PORTCULLIS_WASM (default: built with scripts/build-filter), REQUESTS (10000000),
# INTERVAL (30, seconds), CONNECTIONS (32), THREADS (2, wrk), CONCURRENCY (2, Envoy workers).
# Extra arguments go to soak.py (e.g. --keep, --json rows.json).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

. "$here/preflight.sh"
preflight soak.sh

exec python3 "$here/soak.py" --wasm "$wasm" --requests "${REQUESTS:-10000000}" \
  --interval "${INTERVAL:-30}" --connections "${CONNECTIONS:-32}" --threads "${THREADS:-2}" \
  --concurrency "${CONCURRENCY:-2}" "$@"
