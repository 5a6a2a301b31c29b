#!/usr/bin/env bash
# Benchmark: client_credentials token issuance with keep-alive, keyway-issuer vs npm
# oidc-provider, in the same run on the same machine, plus the raw P-256 signing rate of
# `openssl speed ecdsap256`. Both servers issue an ES256 JWT access token for a resource.
#
#   bash issuer/bench/client_credentials.sh            # builds keyway-issuer --release first
#   KEYWAY_BIN_DIR=/path/to/release bash issuer/bench/client_credentials.sh
#
# Env: DURATION (seconds, default 10), CONNECTIONS (default 32), THREADS (wrk, default 1).
# Goals (issue 3): keyway >= 10x oidc-provider, and >= 40% of openssl's single-process rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
if [[ -z "${KEYWAY_BIN_DIR:-}" ]]; then
  cargo build --release -p issuer --bin keyway-issuer >&2
  KEYWAY_BIN_DIR=$root/target/release
fi
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_http() {
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "not up: $1" >&2
  return 1
}

mkdir -p "$work/clients"
cat > "$work/clients/svc.yaml" <<'YAML'
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: svc}
spec:
  displayName: Benchmark service
  grantTypes: [client_credentials]
  scopes: ["tool:read"]
---
apiVersion: keyway.dev/v1alpha1
kind: ConnectedApp
metadata: {name: tool}
spec:
  displayName: Tool
  redirectURIs: ["https://tool.example/oauth2/callback"]
  resource: https://tool.example
YAML
printf 'svc-secret' > "$work/clients/default.svc.secret"

kport=$(free_port)
"$KEYWAY_BIN_DIR/keyway-issuer" --issuer-url "http://127.0.0.1:$kport" --listen "127.0.0.1:$kport" \
  --store "sqlite://$work/store.db" --keys-dir "$work/keys" --clients-dir "$work/clients" \
  >"$work/keyway.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$kport/healthz"

oport=$(free_port)
E2E_DIR="$root/tests/e2e" PORT=$oport node "$root/issuer/bench/oidc-provider-cc.mjs" >"$work/op.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$oport/.well-known/openid-configuration"

lua() { # $1 client id, $2 secret, $3 extra body
  local auth
  auth=$(printf '%s:%s' "$1" "$2" | base64 -w0)
  cat <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=tool%3Aread$3"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $auth"
LUA
}
lua default.svc svc-secret "&resource=https%3A%2F%2Ftool.example" > "$work/keyway.lua"
lua svc svc-secret "&resource=https%3A%2F%2Ftool.example" > "$work/op.lua"

# Sanity: both answer with a JWT.
for u in "http://127.0.0.1:$kport/token default.svc" "http://127.0.0.1:$oport/token svc"; do
  set -- $u
  curl -sS -u "$2:svc-secret" -d 'grant_type=client_credentials&scope=tool%3Aread&resource=https%3A%2F%2Ftool.example' "$1" \
    | python3 -c 'import json,sys; b=sys.stdin.read(); t=json.loads(b).get("access_token",""); assert t.count(".")==2, "'"$1"': "+b'
done

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rps() { # $1 url, $2 lua, $3 server pid -> "requests/s cpu-microseconds-per-request"
  local out t0 t1 n
  t0=$(ticks "$3")
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$2" "$1")
  t1=$(ticks "$3")
  if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx responses:" >&2; echo "$out" >&2; return 1; fi
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(python3 -c "print(($t1-$t0)*1e6/$(getconf CLK_TCK)/$n)")"
}

echo "warming up…" >&2
wrk -t1 -c4 -d2s -s "$work/keyway.lua" "http://127.0.0.1:$kport/token" >/dev/null
wrk -t1 -c4 -d2s -s "$work/op.lua" "http://127.0.0.1:$oport/token" >/dev/null
keyway=$(rps "http://127.0.0.1:$kport/token" "$work/keyway.lua" "${pids[0]}")
op=$(rps "http://127.0.0.1:$oport/token" "$work/op.lua" "${pids[1]}")
openssl_rate=$(openssl speed -seconds "$DURATION" ecdsap256 2>/dev/null | awk '/nistp256/ {print $(NF-1)}')

python3 - $keyway $op "$openssl_rate" <<'PY'
import sys
keyway, kcpu, op, ocpu, ossl = map(float, sys.argv[1:])
print(f"keyway-issuer client_credentials: {keyway:10.0f} tokens/s, {kcpu:6.1f} us CPU per token")
print(f"oidc-provider client_credentials: {op:10.0f} tokens/s, {ocpu:6.1f} us CPU per token")
print(f"openssl speed ecdsap256 (1 proc): {ossl:10.0f} signatures/s")
print(f"keyway / oidc-provider = {keyway/op:.1f}x throughput, {ocpu/kcpu:.1f}x less CPU per token (goal >= 10x)")
print(f"signature alone: {1e6/ossl:.1f} us; keyway per token: {kcpu:.1f} us")
print(f"keyway / openssl       = {100*keyway/ossl:.0f}% (goal >= 40%)")
PY
