#!/usr/bin/env bash
# The real-control-plane stage of tests/run.sh (docs/testing.md): builds kube-apiserver and
# kube-controller-manager 1.20.2 once (cached), then runs scenarios 1-6 against etcd +
# kube-apiserver + kube-controller-manager on 127.0.0.1 with the chart and the binaries in
# target/debug. Every process it starts and its test network namespace are ended at the end,
# also when a scenario fails or the stage is interrupted.
#
# Usage: bash tests/controlplane/run.sh [pytest arguments, e.g. -k test_3]
set -uo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x target/debug/keyway-operator ]]; then
  echo "controlplane: target/debug/keyway-operator is missing: run cargo build --bins first" >&2
  exit 1
fi
build_out="$(bash tests/controlplane/build.sh)" || { echo "$build_out"; exit 1; }
echo "$build_out" | sed '$d'
export KEYWAY_KUBE_BIN="${build_out##*$'\n'}"

state="$(mktemp -d /tmp/keyway-controlplane.XXXXXX)"
export KEYWAY_CP_STATE="$state"
cleanup() {
  .venv/bin/python -c 'import sys; sys.path.insert(0, "tests/controlplane"); import cluster, pathlib; cluster.cleanup(pathlib.Path(sys.argv[1]))' "$state"
  if [[ -n "${KEEP_CONTROLPLANE_LOGS:-}" ]]; then
    echo "controlplane: logs kept in $state/logs"
  else
    rm -rf "$state"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
# -p no:cacheprovider: nothing written into the tree. The timeout bounds a hung scenario.
timeout --signal=TERM --kill-after=30 1500 \
  .venv/bin/python -m pytest -p no:cacheprovider -v -s -rxXfE --durations=0 tests/controlplane "$@"
rc=$?
if ((rc != 0)); then
  for f in "$state"/logs/*.log; do
    [[ -f "$f" ]] || continue
    echo "--- last lines of $(basename "$f")"
    tail -n 25 "$f"
  done
fi
echo "controlplane: scenarios took $((SECONDS - started)) s"
exit "$rc"
