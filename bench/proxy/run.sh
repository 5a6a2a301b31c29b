#!/usr/bin/env bash
# keyway-proxy benchmark: in one run and with the same load generator (wrk), measures
#   direct     the tool itself (an nginx returning a small body)
#   nginx      a bare nginx reverse proxy in front of the tool (Debian nginx-light), setting
#              X-Forwarded-For/Proto/Host as keyway-proxy does, sent the same requests as (a)
#              (the bearer token is passed on to the tool, as keyway-proxy passes it)
#   (a) token  keyway-proxy, one repeated bearer token (validated once, then cached)
#   (a) 10k    keyway-proxy, 10,000 distinct bearer tokens in rotation (memory with a full cache)
#   (b) cookie keyway-proxy, a session cookie
#   (c) fresh  keyway-proxy, a signature verification on every request (token cache disabled,
#              1,000 distinct tokens in rotation)
#   (a) log-on (a) with keyway-proxy's access log on (its default; off in every other row, as
#              nginx's is), to a file
# and reports requests/s, p50/p99 latency, CPU time per request of the proxy process(es) (total,
# user, system: all threads, from /proc, the same for nginx and keyway-proxy), RSS, the tool's
# CPU time per request (tool_us, for reading req/s), and keyway-proxy's start-up time (process
# start to ready: issuer metadata and keys loaded). It first prints what one system call costs
# here (dd, one byte per read and write): most of every row's CPU time is the kernel's, and that
# cost differs between machines by a factor of three, so figures compare within a run only.
#
# Usage: bash bench/proxy/run.sh   (env: DURATION=10s CONNECTIONS=64 THREADS=1 WORKERS=1 ROUNDS=3,
#        PIN=1 SUT_CPU=0 LOAD_CPU=1 TOOL_CPU=$SUT_CPU, CARGO_TARGET_DIR to reuse a build,
#        KEYWAY_BIN_DIR to skip the build, KEYWAY_HTTP1_FAST_PATH=false for keyway-proxy rows
#        served by hyper's HTTP/1.1 server and client instead of its own loop and exchange:
#        run once with each to see what the fast path buys)
# Rounds: nginx, (a), (b) and (c) run ROUNDS times in turn, and each keyway-proxy row is compared
# with the nginx row of its own round. A goal's verdict uses the median of the rounds' ratios
# and says in how many rounds it held, so a neighbour that steals the core for a few seconds
# (the steal column: ms taken by the hypervisor from the proxies' cpu during the run) moves one
# round, not the verdict. The direct, 10k and log-on rows run once.
# Pinning (PIN=1, the default on a machine with two or more cores) lays the machine out as a pod
# and its clients: the proxy under test (nginx or keyway-proxy, the same for both) and the tool
# share SUT_CPU, as a sidecar shares its pod with the tool; wrk and the test issuer run on
# LOAD_CPU. The proxies then do not compete with their own load generator for a core, and CPU
# time per request stops depending on how the scheduler interleaved them.
# TOOL_CPU=$LOAD_CPU puts the tool beside wrk instead: the proxy alone on its core. Then every
# request sent to the tool and every response sent to wrk may have to wake an idle vCPU, which
# costs the sender several µs of system time whenever the load core is not saturated, as in (c)
# (~16k req/s) but not in the nginx row (~80k req/s). PIN=0 lets the scheduler place everything
# (the figures then move by a factor of 1.5 between runs).
# Release build only. Every server binds 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
WORKERS="${WORKERS:-1}"
ROUNDS="${ROUNDS:-3}"
PIN="${PIN:-1}"
SUT_CPU="${SUT_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
if [[ "$PIN" == 1 && $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
  ON_SUT=(taskset -c "$SUT_CPU"); ON_LOAD=(taskset -c "$LOAD_CPU")
else
  PIN=0; ON_SUT=(); ON_LOAD=()
fi
command -v wrk >/dev/null || { echo "wrk is not installed (tests/setup.sh installs it)"; exit 1; }
command -v nginx >/dev/null || { echo "nginx is not installed (tests/setup.sh installs nginx-light)"; exit 1; }

if [[ -z "${KEYWAY_BIN_DIR:-}" ]]; then
  cargo build --release -p proxy --bin keyway-proxy --example verify_cost
  KEYWAY_BIN_DIR="${CARGO_TARGET_DIR:-target}/release"
fi
BIN="$KEYWAY_BIN_DIR/keyway-proxy"
VERIFY="$KEYWAY_BIN_DIR/examples/verify_cost"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f "$WORK/nginx-tool.pid" ]] && kill "$(cat "$WORK/nginx-tool.pid")" 2>/dev/null || true
  [[ -f "$WORK/nginx-proxy.pid" ]] && kill "$(cat "$WORK/nginx-proxy.pid")" 2>/dev/null || true
  sleep 0.2
  rm -rf "$WORK"
}
trap cleanup EXIT

source bench/ports.sh
take_ports TOOL_PORT NGINX_PORT ISSUER_PORT PROXY_PORT ADMIN_PORT
RESOURCE="http://127.0.0.1:$PROXY_PORT"

"${ON_LOAD[@]}" node bench/proxy/fixtures.mjs "$WORK" "$ISSUER_PORT" "$RESOURCE" > "$WORK/issuer.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q ready "$WORK/issuer.log" 2>/dev/null && break; sleep 0.1; done
# The test issuer answers its first requests slowly (node compiles its handler); a real issuer
# is long-running, so warm it before the first start-up is timed.
for _ in 1 2 3; do
  curl -fs "http://127.0.0.1:$ISSUER_PORT/.well-known/openid-configuration" "http://127.0.0.1:$ISSUER_PORT/jwks" >/dev/null || true
done

nginx_conf() { # name port cpu-command body
  cat > "$WORK/nginx-$1.conf" <<CONF
worker_processes $WORKERS;
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/$1-body; proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fcgi; uwsgi_temp_path $WORK/$1-uwsgi; scgi_temp_path $WORK/$1-scgi;
  upstream tool { server 127.0.0.1:$TOOL_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    $4
  }
}
CONF
  local -a pin=(); [[ "$PIN" == 1 ]] && pin=(taskset -c "$3")
  "${pin[@]}" nginx -c "$WORK/nginx-$1.conf" -p "$WORK" -e "$WORK/nginx-$1.err"
}
nginx_conf tool "$TOOL_PORT" "${TOOL_CPU:-$SUT_CPU}" 'location / { default_type text/plain; return 200 "hello from the tool\n"; }'
nginx_conf proxy "$NGINX_PORT" "$SUT_CPU" 'location / { proxy_pass http://tool; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $host; proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; }'
sleep 0.3

cpu_ticks() { # pids... -> "utime stime" in clock ticks (all threads; the same for every server)
  local user=0 sys=0
  for pid in "$@"; do
    read -r -a f < "/proc/$pid/stat"
    user=$((user + f[13])); sys=$((sys + f[14]))
  done
  echo "$user $sys"
}
rss_kib() { local t=0; for pid in "$@"; do t=$((t + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status"))); done; echo "$t"; }
nginx_pids() { local master; master=$(cat "$WORK/nginx-$1.pid"); echo "$master $(pgrep -P "$master" | tr '\n' ' ')"; }
HZ=$(getconf CLK_TCK)
syscall_ns() { # ns per system call: dd makes one read and one write per byte
  local t0 t1; t0=$(date +%s%N); "${ON_SUT[@]}" dd if=/dev/zero of=/dev/null bs=1 count=200000 2>/dev/null; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 400000 ))
}
steal_ticks() { # steal time of the proxies' cpu (all cpus when not pinned), in clock ticks
  local cpu=cpu; [[ "$PIN" == 1 ]] && cpu="cpu$SUT_CPU"
  awk -v c="$cpu" '$1 == c {print $9}' /proc/stat
}

lua_header() { # name header-name file
  cat > "$WORK/$1.lua" <<LUA
local f = io.open("$3"); local v = f:read("*l"); f:close()
wrk.headers["$2"] = v
LUA
}
lua_header token Authorization "$WORK/token.bearer"
lua_header cookie Cookie "$WORK/cookie.txt"
printf 'Bearer %s\n' "$(cat "$WORK/token.txt")" > "$WORK/token.bearer"
lua_rotation() { # name count
  cat > "$WORK/$1.lua" <<LUA
local tokens = {}
for line in io.lines("$WORK/tokens.txt") do
  if #tokens < $2 then tokens[#tokens + 1] = "Bearer " .. line end
end
local i = math.random(#tokens)
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/", { ["Authorization"] = tokens[i] })
end
LUA
}
lua_rotation tokens10k 10000
lua_rotation tokens1k 1000

RESULTS="$WORK/results.txt"
: > "$RESULTS"
run() { # label url lua pids...
  local label="$1" url="$2" lua="$3"; shift 3
  local before after out
  local tool_before tool_after
  before=$(cpu_ticks "$@")
  tool_before=$(cpu_ticks $(nginx_pids tool))
  local steal_before; steal_before=$(steal_ticks)
  if [[ -n "$lua" ]]; then out=$("${ON_LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$lua" "$url");
  else out=$("${ON_LOAD[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url"); fi
  after=$(cpu_ticks "$@")
  tool_after=$(cpu_ticks $(nginx_pids tool))
  local steal_ms; steal_ms=$(( ($(steal_ticks) - steal_before) * 1000 / HZ ))
  local rps p50 p99 reqs non2xx rss
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $4}' <<<"$out"); non2xx=${non2xx:-0}
  rss=$(rss_kib "$@")
  local cpu_us user_us sys_us tool_us
  read -r user_us sys_us cpu_us tool_us < <(awk -v b="$before" -v a="$after" -v tb="$tool_before" -v ta="$tool_after" -v hz="$HZ" -v n="$reqs" 'BEGIN {
    split(b, x, " "); split(a, y, " "); u = y[1] - x[1]; s = y[2] - x[2]
    split(tb, p, " "); split(ta, q, " "); t = q[1] + q[2] - p[1] - p[2]
    printf "%.1f %.1f %.1f %.1f\n", u / hz * 1e6 / n, s / hz * 1e6 / n, (u + s) / hz * 1e6 / n, t / hz * 1e6 / n }')
  printf '%-12s %10s %9s %9s %12s %9s %9s %8s %8s %8s %8s\n' "$label" "$rps" "$p50" "$p99" "$cpu_us" "$user_us" "$sys_us" "$((rss / 1024))MiB" "$non2xx" "$tool_us" "$steal_ms" | tee -a "$RESULTS"
}

start_proxy() { # extra args...
  local t0 ready
  # The test issuer (node) answers its first request after an idle spell slowly (10-30 ms
  # seen); the start-up measured is the proxy's, so wake it first, as a busy issuer would be.
  "${ON_LOAD[@]}" curl -fs "http://127.0.0.1:$ISSUER_PORT/.well-known/openid-configuration" "http://127.0.0.1:$ISSUER_PORT/jwks" >/dev/null || true
  t0=$(date +%s%N)
  KEYWAY_CONFIG_DIR="$WORK/config" KEYWAY_LISTEN="127.0.0.1:$PROXY_PORT" \
    KEYWAY_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" KEYWAY_UPSTREAM_PORT="$TOOL_PORT" \
    KEYWAY_ACCESS_LOG="${ACCESS_LOG:-false}" KEYWAY_WORKER_THREADS="$WORKERS" "${ON_SUT[@]}" "$BIN" "$@" > "$WORK/proxy.log" 2>&1 &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  for _ in $(seq 5000); do
    # On the load cpu: a curl started every millisecond beside the proxy would slow its start.
    if "${ON_LOAD[@]}" curl -fs "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.001
  done
  ready=$(date +%s%N)
  STARTUP_OUTSIDE_MS=$(( (ready - t0) / 1000000 ))
  STARTUP_INSIDE_MS=$(grep -o '"startup_ms":[0-9]*' "$WORK/proxy.log" | cut -d: -f2)
  sleep 0.2
  IDLE_RSS_KIB=$(rss_kib "$PROXY_PID")
  echo "keyway-proxy start-up: ${STARTUP_INSIDE_MS} ms in-process (ready log), ${STARTUP_OUTSIDE_MS} ms from exec to /readyz 200; idle RSS $((IDLE_RSS_KIB / 1024)) MiB ($IDLE_RSS_KIB KiB)" | tee -a "$WORK/startup.txt"
}
stop_proxy() { kill "$PROXY_PID"; wait "$PROXY_PID" 2>/dev/null || true; }

pinning="not pinned"; [[ "$PIN" == 1 ]] && pinning="proxies on cpu $SUT_CPU, tool on cpu ${TOOL_CPU:-$SUT_CPU}, wrk and issuer on cpu $LOAD_CPU"
echo "keyway-proxy benchmark: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $WORKERS worker(s) each, $(nproc) cores, $pinning, HTTP/1.1 fast path ${KEYWAY_HTTP1_FAST_PATH:-true}"
header() { printf '%-12s %10s %9s %9s %12s %9s %9s %8s %8s %8s %8s\n' scenario "req/s" p50 p99 "cpu_us/req" "user_us" "sys_us" RSS non2xx "tool_us" "steal_ms"; }
printf 'system call cost: %s\n' "$(syscall_ns) ns per 1-byte read or write (dd), a measure of this machine's kernel entry"
header
run direct "http://127.0.0.1:$TOOL_PORT/" "" $(nginx_pids tool)
for round in $(seq "$ROUNDS"); do
  echo "-- round $round of $ROUNDS"
  "${ON_SUT[@]}" "$VERIFY" "$WORK/jwks.json" "$WORK/token.txt" "http://127.0.0.1:$ISSUER_PORT" "$RESOURCE" | tee -a "$WORK/verify.txt"
  run nginx "http://127.0.0.1:$NGINX_PORT/" "$WORK/token.lua" $(nginx_pids proxy)
  start_proxy
  run "(a) token" "http://127.0.0.1:$PROXY_PORT/" "$WORK/token.lua" "$PROXY_PID"
  run "(b) cookie" "http://127.0.0.1:$PROXY_PORT/" "$WORK/cookie.lua" "$PROXY_PID"
  stop_proxy
  start_proxy --token-cache-size 0
  run "(c) fresh" "http://127.0.0.1:$PROXY_PORT/" "$WORK/tokens1k.lua" "$PROXY_PID"
  stop_proxy
done
echo "-- once"
start_proxy
run "(a) 10k" "http://127.0.0.1:$PROXY_PORT/" "$WORK/tokens10k.lua" "$PROXY_PID"
CACHED=$(curl -fs "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^keyway_proxy_token_cache_entries/ {print $2}')
echo "tokens cached after (a) 10k: $CACHED"
stop_proxy
ACCESS_LOG=true start_proxy
run "(a) log-on" "http://127.0.0.1:$PROXY_PORT/" "$WORK/token.lua" "$PROXY_PID"
stop_proxy

# Each round's keyway-proxy rows against that round's nginx row and signature cost; the verdict
# takes the median of the rounds' ratios.
awk '$1 == "nginx" || $1 == "(a)" && $2 == "token" || $1 == "(b)" || $1 == "(c)"' "$RESULTS" |
awk -v sigs="$(grep -o 'signature_only_us=[0-9.]*' "$WORK/verify.txt" | cut -d= -f2 | tr '\n' ' ')" '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  BEGIN { split(sigs, sig, " ") }
  $1 == "nginx" { r++; nrps = $2; ncpu = $5; next }
  { k = $1 $2; n[k] = r; rps[k, r] = $3 / nrps; cpu[k, r] = $6 / ncpu; lim[k, r] = ncpu + 1.25 * sig[r]; abs[k, r] = $6 }
  END {
    for (i = 1; i <= r; i++) {
      a1[i] = rps["(a)token", i]; a2[i] = cpu["(a)token", i]; b1[i] = rps["(b)cookie", i]; b2[i] = cpu["(b)cookie", i]
      c1[i] = abs["(c)fresh", i] - lim["(c)fresh", i]
      ma += a1[i] >= 0.9 && a2[i] <= 1.2; mb += b1[i] >= 0.9 && b2[i] <= 1.2; mc += c1[i] <= 0
      line = line sprintf("  round %d: (a) %.2fx req/s %.2fx cpu; (b) %.2fx req/s %.2fx cpu; (c) %.1f us, limit %.1f\n", i, a1[i], a2[i], b1[i], b2[i], abs["(c)fresh", i], lim["(c)fresh", i])
    }
    printf "%s", line
    printf "goals (median of %d rounds):\n", r
    printf "  (a) %.2fx nginx req/s (>= 0.9), %.2fx nginx cpu/req (<= 1.2); both held in %d of %d rounds\n", median(a1, r), median(a2, r), ma, r
    printf "  (b) %.2fx nginx req/s (>= 0.9), %.2fx nginx cpu/req (<= 1.2); both held in %d of %d rounds\n", median(b1, r), median(b2, r), mb, r
    printf "  (c) cpu/req minus (nginx + 1.25 x signature) %+.1f us (<= 0); held in %d of %d rounds\n", median(c1, r), mc, r
  }'
# Every start is timed (2 x ROUNDS + 2 of them); the verdict takes the median, as above, and the
# slowest start is shown beside it.
awk '{ gsub(/[^0-9 ]/, " "); n++; ms[n] = $1 + 0; out[n] = $2 + 0; rss = $4 + 0; if (rss > x) x = rss }
  function sorted_median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    mi = sorted_median(ms, n); mo = sorted_median(out, n)
    printf "  start-up to ready (%d starts): median %d ms in-process, %d ms from exec (<= 50); slowest %d ms in-process, %d ms from exec; idle RSS at most %d MiB (<= 12)\n", n, mi, mo, ms[n], out[n], x
  }' "$WORK/startup.txt"
