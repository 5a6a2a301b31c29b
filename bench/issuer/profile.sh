#!/usr/bin/env bash
# keyway-issuer instruction profile: runs the release keyway-issuer under valgrind's callgrind
# with the benchmark's client (client_credentials, client_secret_basic, scope and resource),
# warms it up, then counts the instructions it executes (all threads) over a wrk run, and prints
# instructions per token and the costliest functions (inclusive). Reproducible where wall-clock
# CPU time is not (shared machines); valgrind hides ADX and SHA-NI, so ring and SHA-256 take
# their portable paths here.
#
# Usage: bash bench/issuer/profile.sh   (env: DURATION=5s CONNECTIONS=8, TOP=45,
#        KEYWAY_BIN_DIR=dir with a release keyway-issuer, OUT=dir to keep callgrind.out)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/callgrind.sh
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-8}"
BIN="${KEYWAY_BIN_DIR:?set KEYWAY_BIN_DIR to the directory of a release keyway-issuer}/keyway-issuer"
for tool in valgrind wrk curl python3 node; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed"; exit 1; }
done
WORK="$(mktemp -d)"
OUT="${OUT:-$WORK}"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
. bench/ports.sh
take_ports PORT
URL="http://127.0.0.1:$PORT"
CLIENT_ID=default.bench
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
mkdir -p "$WORK/clients"
cat > "$WORK/clients/bench.yaml" <<YAML
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: bench}
spec:
  displayName: Bench
  grantTypes: [client_credentials]
  scopes: [api:read]
  resource: "https://api.bench.example/"
  access: {allowedClients: [$CLIENT_ID]}
YAML
printf '%s' "$SECRET" > "$WORK/clients/$CLIENT_ID.secret"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=api%3Aread&resource=https%3A%2F%2Fapi.bench.example%2F"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf '%s:%s' "$CLIENT_ID" "$SECRET" | base64 -w0)"
LUA
# Pinned to one core as in bench.mjs (the runtime then has one worker thread).
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --instr-atstart=no \
  "$BIN" --issuer-url "$URL" --listen "127.0.0.1:$PORT" \
  --store "sqlite://$WORK/issuer.db" --clients-dir "$WORK/clients" --keys-dir "$WORK/keys" \
  > "$WORK/issuer.log" 2>&1 &
PID=$!
for _ in $(seq 600); do curl -fs "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "$URL/healthz" >/dev/null || { echo "keyway-issuer did not start:"; cat "$WORK/issuer.log"; exit 1; }
callgrind_measure "$PID" "$URL/token" "$WORK/post.lua" "$OUT/callgrind.out" keyway-issuer token
PID=""
