#!/usr/bin/env bash
# The whole test suite: `bash tests/run.sh` on a fresh machine (see README).
# Installs what it needs (tests/setup.sh), then runs every stage and reports each one;
# exits non-zero when any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# PostgreSQL for the store conformance suite (trust auth, database `test`).
export KEYWAY_TEST_POSTGRES_URL="${KEYWAY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

bash tests/setup.sh || { echo "setup failed"; exit 1; }

passed=0
failed=0
failures=()
stage() {
  local name="$1"
  shift
  echo
  echo "=== stage: $name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "=== stage ok: $name ($((SECONDS - start))s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "=== stage FAILED: $name ($((SECONDS - start))s)"
  fi
}

stage "rustfmt" cargo fmt --all --check
# No module cycles and no file over budget beyond the known ones (docs/architecture.md).
stage "layering (module cycles, file sizes)" bash -c '.venv/bin/python -m pytest -q tests/tools && python3 tests/tools/layering.py --baseline tests/tools/layering-baseline.txt'
stage "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
stage "build binaries" cargo build --workspace --bins --locked
stage "cargo test" cargo test --workspace --locked
# A few seconds of each fuzz target over its seeds (the long campaign: bench/fuzz/run.sh); the
# build is kept in ~/.cache/keyway, so only the first run on a machine compiles.
stage "fuzzing smoke" env FUZZ_TIME="${FUZZ_TIME:-5}" bash bench/fuzz/run.sh
# Files one after the other (the demo's ports are fixed); no test may hang the run.
stage "end-to-end (node)" bash -c 'cd tests/e2e && timeout 2400 node --test --test-concurrency=1 --test-timeout=600000 $(find . -path ./node_modules -prune -o -name "*.test.mjs" -print | sort)'
# etcd + kube-apiserver + kube-controller-manager 1.20.2 on 127.0.0.1: the chart and the binaries
# against a real control plane (docs/testing.md); stopped at the end whatever happens.
stage "real control plane (kube-apiserver 1.20.2)" bash tests/controlplane/run.sh
if compgen -G "tests/chart/test_*.py" >/dev/null; then
  stage "chart and manifests (pytest)" .venv/bin/python -m pytest -q tests/chart
fi

echo
if ((failed)); then
  echo "failed stages: ${failures[*]}"
fi
echo "stages: $passed passed, $failed failed"
((failed == 0))
