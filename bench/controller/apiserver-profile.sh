#!/usr/bin/env bash
# Where kube-apiserver's CPU goes while the controller brings N ConnectedApps from cold start to
# Ready (docs/operator.md, "Scale"): starts the real control plane of tests/controlplane with
# /debug/pprof on, runs the scale benchmark against it (--real), takes a CPU profile of
# kube-apiserver for PROFILE_SECONDS from 5 s into the cold start, and prints its heaviest functions.
#
# Usage: bash bench/controller/apiserver-profile.sh     (env: KEYWAY_BENCH_APPS=10000 PROFILE_SECONDS=40)
# Needs what the control-plane stage needs (bash tests/setup.sh) and Go's pprof (`go tool pprof`,
# from Debian's golang-go, which tests/controlplane/build.sh installs).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ "${1:-}" != "--inside" ]]; then
  out="$(mktemp -d)"
  KEYWAY_APISERVER_PROFILING=1 KEYWAY_BENCH_APPS="${KEYWAY_BENCH_APPS:-10000}" \
    .venv/bin/python tests/controlplane/cluster.py -- bash "$0" --inside "$out"
  bin="$(bash tests/controlplane/build.sh | tail -1)"
  go tool pprof -top -cum -nodecount=60 "$bin/kube-apiserver" "$out/cpu.pprof" 2>/dev/null |
    sed 's|k8s.io/kubernetes/vendor/||'
  echo "profile: $out/cpu.pprof"
  exit 0
fi

# Inside cluster.py: KUBECONFIG names the admin's kubeconfig.
out="$2"
server="$(awk '/server:/ {print $2; exit}' "$KUBECONFIG")"
token="$(awk '/token:/ {print $2; exit}' "$KUBECONFIG")"
cargo bench -p operator --bench controller_scale -- --real > "$out/bench.txt" 2>&1 &
bench=$!
until grep -q "controller benchmark:" "$out/bench.txt" 2>/dev/null; do
  kill -0 "$bench" 2>/dev/null || { cat "$out/bench.txt"; exit 1; }
  sleep 0.5
done
sleep 5
curl -sfk -H "Authorization: Bearer $token" -o "$out/cpu.pprof" \
  "$server/debug/pprof/profile?seconds=${PROFILE_SECONDS:-40}"
wait "$bench" || true
grep -E "cold start|writes during|CPU until" "$out/bench.txt"
