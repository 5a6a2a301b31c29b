#!/usr/bin/env bash
# Runs keyway's fuzz targets (fuzz/, cargo-fuzz with libFuzzer) one after the other, each for a
# given time or number of executions, and reports per target: executions, executions per
# second, new corpus entries, crashes (panics, sanitizer reports, out-of-memory) and hangs (an
# input running longer than FUZZ_TIMEOUT). Exits non-zero when any target crashed or hung.
#
# Usage: bash bench/fuzz/run.sh [TARGET...]        (default: every target in fuzz/Cargo.toml)
#   FUZZ_TIME=60        seconds per target (ignored when FUZZ_RUNS is set)
#   FUZZ_RUNS=          executions per target instead, e.g. 10000000 for the campaign's goal
#   FUZZ_TIMEOUT=10     seconds one input may take before it counts as a hang
#   FUZZ_RSS_MB=2048    memory limit (libFuzzer's -rss_limit_mb)
#   FUZZ_NICE=10        nice level of the fuzzing processes (the machine stays usable)
#   FUZZ_CODEGEN_UNITS=16   16 builds several times faster; 1 runs a little faster
#   FUZZ_SANITIZER=address  or none: no AddressSanitizer, several times the executions per
#                       second, for long campaigns (debug assertions and overflow checks stay on;
#                       fuzz/README.md compares the two)
#   FUZZ_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/keyway   build, working corpora and results
#                       (kept between runs, so a second run does not build again)
#
# The checked-in seeds (fuzz/corpus/TARGET) are read, never written: what a run finds goes to
# FUZZ_CACHE/fuzz-corpus/TARGET, and a crash or hang input to the run's results directory
# (printed at the end), with the command that replays it. Add a finding worth keeping to
# fuzz/corpus/TARGET (it also feeds the differential test for h1_request and
# upstream_response).
#
# Needs cargo-fuzz (tests/setup.sh installs it) and, on a stable toolchain, RUSTC_BOOTSTRAP=1
# for the nightly flags cargo-fuzz passes (set here).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
FUZZ_TIME="${FUZZ_TIME:-60}"
FUZZ_RUNS="${FUZZ_RUNS:-}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
FUZZ_NICE="${FUZZ_NICE:-10}"
FUZZ_CODEGEN_UNITS="${FUZZ_CODEGEN_UNITS:-16}"
FUZZ_CACHE="${FUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/keyway}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed (bash tests/setup.sh installs it)"; exit 1; }
mkdir -p "$FUZZ_CACHE"
case "$FUZZ_SANITIZER" in
  address) TARGET_DIR="$FUZZ_CACHE/fuzz-target" ;;
  none) TARGET_DIR="$FUZZ_CACHE/fuzz-target-none" ;;
  *) echo "FUZZ_SANITIZER must be address or none, not '$FUZZ_SANITIZER'"; exit 64 ;;
esac
RESULTS="$FUZZ_CACHE/fuzz-results/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$RESULTS"

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

echo "fuzz: building ${targets[*]} (sanitizer $FUZZ_SANITIZER, target dir $TARGET_DIR)"
build_start=$SECONDS
# One build for every target: they share all dependencies.
nice -n "$FUZZ_NICE" cargo fuzz build --fuzz-dir fuzz --target-dir "$TARGET_DIR" \
  --sanitizer "$FUZZ_SANITIZER" --codegen-units "$FUZZ_CODEGEN_UNITS" >"$RESULTS/build.log" 2>&1 || {
  tail -40 "$RESULTS/build.log"
  echo "fuzz: build failed (log: $RESULTS/build.log)"
  exit 1
}
echo "fuzz: built in $((SECONDS - build_start))s"
BIN_DIR="$TARGET_DIR/x86_64-unknown-linux-gnu/release"

if [[ -n "$FUZZ_RUNS" ]]; then
  limit=(-runs="$FUZZ_RUNS")
  what="$FUZZ_RUNS executions"
else
  limit=(-max_total_time="$FUZZ_TIME")
  what="${FUZZ_TIME}s"
fi
echo "fuzz: each target for $what (timeout ${FUZZ_TIMEOUT}s per input, ${FUZZ_RSS_MB} MB)"
printf '%-20s %12s %10s %8s %8s %6s  %s\n' target executions exec/s corpus+ crashes hangs result
bad=0
for t in "${targets[@]}"; do
  work="$FUZZ_CACHE/fuzz-corpus/$t"
  seeds="$ROOT/fuzz/corpus/$t"
  mkdir -p "$work" "$seeds"
  log="$RESULTS/$t.log"
  before=$(find "$work" -type f | wc -l)
  start=$SECONDS
  set +e
  nice -n "$FUZZ_NICE" "$BIN_DIR/$t" "$work" "$seeds" "${limit[@]}" \
    -timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" -print_final_stats=1 \
    -artifact_prefix="$RESULTS/$t-" >"$log" 2>&1
  status=$?
  set -e
  elapsed=$((SECONDS - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  runs="${runs:-$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')}"
  runs="${runs:-0}"
  rate=$((runs / (elapsed > 0 ? elapsed : 1)))
  added=$(($(find "$work" -type f | wc -l) - before))
  crashes=$(find "$RESULTS" -maxdepth 1 \( -name "$t-crash-*" -o -name "$t-oom-*" -o -name "$t-leak-*" \) | wc -l)
  hangs=$(find "$RESULTS" -maxdepth 1 -name "$t-timeout-*" | wc -l)
  if ((status != 0 && crashes == 0 && hangs == 0)); then
    crashes=1 # libFuzzer stopped without leaving an input (see the log)
  fi
  result=ok
  if ((crashes || hangs)); then
    result="FAILED (log: $log)"
    bad=1
  fi
  printf '%-20s %12s %10s %8s %8s %6s  %s\n' "$t" "$runs" "$rate" "$added" "$crashes" "$hangs" "$result"
done
echo "fuzz: results in $RESULTS"
if ((bad)); then
  echo "fuzz: replay an input with: $BIN_DIR/TARGET INPUT (or cargo fuzz run --fuzz-dir fuzz TARGET INPUT)"
fi
exit "$bad"
