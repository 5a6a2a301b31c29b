#!/usr/bin/env bash
# keyway-proxy instruction profile: runs the release keyway-proxy under valgrind's callgrind,
# warms it up, then counts the instructions it executes (all threads) over a wrk run with one
# scenario's credential, and prints instructions per request and the costliest functions
# (inclusive). Reproducible where wall-clock CPU time is not (shared machines).
#
# Usage: bash bench/proxy/profile.sh [token|cookie|fresh]   (env: DURATION=5s CONNECTIONS=8,
#        KEYWAY_BIN_DIR=dir with a release keyway-proxy, OUT=dir to keep callgrind.out,
#        KEYWAY_ACCESS_LOG=true to include the access log, off by default as in run.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/callgrind.sh
SCENARIO="${1:-token}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-8}"
BIN="${KEYWAY_BIN_DIR:?set KEYWAY_BIN_DIR to the directory of a release keyway-proxy}/keyway-proxy"
command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 1; }
WORK="$(mktemp -d)"
OUT="${OUT:-$WORK}"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f "$WORK/nginx-tool.pid" ]] && kill "$(cat "$WORK/nginx-tool.pid")" 2>/dev/null || true
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT
source bench/ports.sh
take_ports TOOL_PORT ISSUER_PORT PROXY_PORT ADMIN_PORT
node bench/proxy/fixtures.mjs "$WORK" "$ISSUER_PORT" "http://127.0.0.1:$PROXY_PORT" > "$WORK/issuer.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$WORK/issuer.log" 2>/dev/null && break; sleep 0.1; done
cat > "$WORK/nginx-tool.conf" <<CONF
worker_processes 1;
pid $WORK/nginx-tool.pid;
error_log $WORK/nginx-tool.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/b; proxy_temp_path $WORK/p; fastcgi_temp_path $WORK/f;
  uwsgi_temp_path $WORK/u; scgi_temp_path $WORK/s;
  server { listen 127.0.0.1:$TOOL_PORT; location / { default_type text/plain; return 200 "hello from the tool\n"; } }
}
CONF
nginx -c "$WORK/nginx-tool.conf" -p "$WORK" -e "$WORK/nginx-tool.err"
case "$SCENARIO" in
  token) printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$(cat "$WORK/token.txt")" > "$WORK/s.lua"; EXTRA=() ;;
  cookie) printf 'wrk.headers["Cookie"] = "%s"\n' "$(cat "$WORK/cookie.txt")" > "$WORK/s.lua"; EXTRA=() ;;
  fresh) cat > "$WORK/s.lua" <<LUA
local tokens = {}
for line in io.lines("$WORK/tokens.txt") do
  if #tokens < 1000 then tokens[#tokens + 1] = "Bearer " .. line end
end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", { ["Authorization"] = tokens[i] })
end
LUA
    EXTRA=(--token-cache-size 0) ;;
  *) echo "unknown scenario $SCENARIO"; exit 2 ;;
esac
KEYWAY_CONFIG_DIR="$WORK/config" KEYWAY_LISTEN="127.0.0.1:$PROXY_PORT" \
  KEYWAY_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" KEYWAY_UPSTREAM_PORT="$TOOL_PORT" \
  KEYWAY_WORKER_THREADS=1 KEYWAY_ACCESS_LOG="${KEYWAY_ACCESS_LOG:-false}" \
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" --instr-atstart=no \
  "$BIN" "${EXTRA[@]}" > "$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
for _ in $(seq 600); do curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
callgrind_measure "$PROXY_PID" "http://127.0.0.1:$PROXY_PORT/" "$WORK/s.lua" "$OUT/callgrind.out" "scenario $SCENARIO" request
