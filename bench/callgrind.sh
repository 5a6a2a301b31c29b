# Sourced by bench/*/profile.sh: the measured part of an instruction profile. The server runs
# under `valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=FILE`; wrk warms it up
# for 2 s, instrumentation is on for one wrk run of $DURATION with $CONNECTIONS connections,
# then the server is stopped and the instructions per request and the costliest functions
# (inclusive, $TOP lines) are printed.

# callgrind_measure PID URL LUA FILE LABEL UNIT
callgrind_measure() {
  local pid="$1" url="$2" lua="$3" file="$4" label="$5" unit="$6" out reqs total
  wrk -t1 -c"$CONNECTIONS" -d2s -s "$lua" "$url" > /dev/null
  callgrind_control -i on "$pid" > /dev/null
  out=$(wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -s "$lua" "$url")
  callgrind_control -i off "$pid" > /dev/null
  grep -q Non-2xx <<<"$out" && { echo "non-2xx responses:"; echo "$out"; return 1; }
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo "$label: $reqs ${unit}s, $total instructions, $((total / reqs)) instructions/$unit"
  callgrind_annotate --inclusive=yes "$file" 2>/dev/null | sed -n '/file:function/,$p' | head -"${TOP:-45}" \
    | awk -v n="$reqs" -v u="$unit" 'NR > 1 && $1 ~ /[0-9]/ { c = $1; gsub(",", "", c); printf "%9d/%s  %s\n", c / n, u, substr($0, index($0, $3)) ; next } { print }'
}
