#!/usr/bin/env bash
# examples/http_server/measure.sh SERVER CLIENT [RUNS]
#
# The figures of docs/http-server.md, measured with the repository's own client
# (example_http_client) against example_http_server on loopback; not a test. For each of
# --threads 1 and --threads 2, RUNS times (default 5), each on a fresh server:
#   idle     10 000 idle long-polls held open at once: growth of the server's VmRSS
#            (/proc/PID/status) per waiting request
#   bench 1  one keep-alive connection sending GET /stats back to back for 3 s: requests/s
#   bench 50 the same on 50 connections
#   load 500 500 waiting requests, then 500 responders (the CTest load test): requests/s
# and prints the median of each. Needs `ulimit -n` above 10 100 (client and server each hold
# 10 000 sockets).
set -euo pipefail

server_bin=$1 client_bin=$2 runs=${3:-5}
work=$(mktemp -d)
pid=
cleanup() {
  [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start() {
  : >"$work/out"
  "$server_bin" --port 0 "$@" >"$work/out" 2>"$work/err" &
  pid=$!
  local deadline=$((SECONDS + 30))
  until grep -q '^listening on ' "$work/out"; do
    ((SECONDS < deadline)) && kill -0 "$pid" 2>/dev/null || {
      echo "measure: the server did not start" >&2
      exit 1
    }
    sleep 0.02
  done
  port=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'),"\
  "load average $(cut -d' ' -f1-3 /proc/loadavg); $runs runs each, medians"
for threads in 1 2; do
  declare -a idle=() one=() fifty=() load=()
  for ((r = 0; r < runs; ++r)); do
    start --threads "$threads" --max-waiting 10000
    idle+=("$("$client_bin" "$port" idle 10000 "$pid" | sed -n 's/.* (\([0-9]*\) bytes) per waiting.*/\1/p')")
    stop
    start --threads "$threads"
    one+=("$("$client_bin" "$port" bench 1 3 | sed -n 's/.* = \([0-9]*\) requests\/s$/\1/p')")
    fifty+=("$("$client_bin" "$port" bench 50 3 | sed -n 's/.* = \([0-9]*\) requests\/s$/\1/p')")
    load+=("$("$client_bin" "$port" load 500 | sed -n 's/.* = \([0-9]*\) requests\/s (.*/\1/p')")
    stop
  done
  printf -- '--threads %s: idle %s bytes per waiting request [%s]; 1 connection %s requests/s [%s];' \
    "$threads" "$(printf '%s\n' "${idle[@]}" | median)" "${idle[*]}" \
    "$(printf '%s\n' "${one[@]}" | median)" "${one[*]}"
  printf ' 50 connections %s requests/s [%s]; load 500 pairs %s requests/s [%s]\n' \
    "$(printf '%s\n' "${fifty[@]}" | median)" "${fifty[*]}" \
    "$(printf '%s\n' "${load[@]}" | median)" "${load[*]}"
done
