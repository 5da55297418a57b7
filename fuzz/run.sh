#!/usr/bin/env bash
# Runs the fuzz targets (cargo-fuzz / libFuzzer) one at a time, single process, each for a
# time or a number of executions, and prints one line per target with its executions, its
# coverage (libFuzzer's `cov:` edges) and whether it found anything.
#
#   fuzz/run.sh --ci                   # every target briefly (scripts/test): ~4 s each
#   fuzz/run.sh --time 600 [TARGET...] # a campaign: 600 s per target
#   fuzz/run.sh --runs 10000000 [TARGET...]
#   fuzz/run.sh --sanitizer none ...   # without AddressSanitizer
#
# Needs cargo-fuzz (installed when missing). libFuzzer and the sanitizer need nightly
# flags; RUSTC_BOOTSTRAP=1 lets the installed stable toolchain take them. Two projects:
# fuzz/ (filter and WAF parsers) and fuzz/replay/ (the harness's replay readers, apart so
# the others never build wasmtime instrumented). Seeds come from the project's tests
# (fuzz/seeds.py); findings land in <project>/artifacts/<target>/, logs in
# fuzz/target/logs/. Exits 1 when a target found something.
set -euo pipefail
cd "$(dirname "$0")"

limit=(-max_total_time=4)
ci=false
sanitizer=address
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) limit=(-max_total_time=4); ci=true ;;
    --time) limit=(-max_total_time="$2"); shift ;;
    --runs) limit=(-runs="$2"); shift ;;
    --sanitizer) sanitizer="$2"; shift ;;
    -h|--help) sed -n 2,17p "$0"; exit 0 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi
export RUSTC_BOOTSTRAP=1
host=$(rustc -vV | sed -n 's/^host: //p')
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir .; cargo fuzz list --fuzz-dir replay)
fi

python3 seeds.py 2>/dev/null
mkdir -p target/logs
built=()
status=0
printf '%-16s %12s %8s %8s  %s\n' target executions cov ft result
for t in "${targets[@]}"; do
  project=.
  [ "$t" = replay ] && project=replay
  if [[ " ${built[*]-} " != *" $project "* ]]; then
    s=$sanitizer
    # CI builds fuzz/replay without AddressSanitizer: it instruments wasmtime and cranelift
    # for the one target (12 min on two cores without ASan), and the readers it runs are
    # safe Rust; campaigns pick the sanitizer with --sanitizer.
    if $ci && [ "$project" = replay ]; then s=none; fi
    cargo fuzz build --fuzz-dir "$project" -O -s "$s" >&2
    built+=("$project")
  fi
  log="$PWD/target/logs/$t.log"
  mkdir -p "$project/corpus/$t" "$project/artifacts/$t"
  # The built binary directly: `cargo fuzz run` would check the build again per target.
  if (cd "$project" && "target/$host/release/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
      "${limit[@]}" -timeout=20 -rss_limit_mb=2048 -max_len=8192 \
      -print_final_stats=1 >"$log" 2>&1); then
    result=ok
  else
    result="FOUND (see $log, fuzz/$project/artifacts/$t)"
    status=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  ft=$(grep -o 'ft: *[0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
  printf '%-16s %12s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
