#!/usr/bin/env bash
# examples/distributed/check.sh PRODUCER WORKER REDIS_SERVER JOBS
#
# The CTest of examples/distributed: a private redis-server (free loopback port, temporary
# directory, append-only on), 3 worker processes, one producer submitting JOBS jobs. When a
# quarter of the jobs are complete one worker is SIGKILLed; at half, Redis is restarted
# (SIGTERM, then started again on the same port and directory). The producer checks that
# every job completed exactly once with the right result. Then the workers are stopped with
# SIGTERM and must exit 0. Everything started here is killed on exit, whatever happens.
set -uo pipefail
producer=$1 worker=$2 redis_server=$3 jobs=$4
redis_cli=$(dirname "$(command -v "$redis_server")")/redis-cli
command -v "$redis_cli" >/dev/null || redis_cli=redis-cli

dir=$(mktemp -d /tmp/asio_futures_distributed_XXXXXX)
redis_pid=
worker_pids=()
producer_pid=
cleanup() {
  for p in $producer_pid "${worker_pids[@]}" $redis_pid; do
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "check.sh: FAILED: $*" >&2
  for f in "$dir"/*.log; do echo "--- $f"; tail -n 20 "$f"; done >&2
  exit 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[[ $port != 6379 ]] || fail "got the system port"

start_redis() {
  "$redis_server" --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --save "" \
    --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  for _ in $(seq 1 1000); do # bounded readiness poll (<= 10 s)
    [[ $("$redis_cli" -p "$port" PING 2>/dev/null) == PONG ]] && return 0
    sleep 0.01
  done
  fail "redis-server does not answer PING"
}

# Waits (<= 300 s) until the producer has reported at least $1 completions.
wait_completed() {
  for _ in $(seq 1 30000); do
    local n
    n=$(grep -o 'completed [0-9]*' "$dir/producer.log" 2>/dev/null | tail -n 1 | cut -d' ' -f2)
    [[ -n $n && $n -ge $1 ]] && return 0
    kill -0 "$producer_pid" 2>/dev/null || return 0 # finished (or failed) already
    sleep 0.01
  done
  fail "no progress to $1 completions"
}

start_redis
for i in 1 2 3; do
  "$worker" --port "$port" --queue seed >"$dir/worker$i.log" 2>&1 &
  worker_pids+=($!)
done
"$producer" --port "$port" --queue seed --jobs "$jobs" >"$dir/producer.log" 2>&1 &
producer_pid=$!

wait_completed $((jobs / 4))
kill -9 "${worker_pids[0]}"
wait "${worker_pids[0]}" 2>/dev/null
echo "check.sh: SIGKILLed worker 1 at $(grep -c completed "$dir/producer.log") progress lines"
wait_completed $((jobs / 2))
kill -TERM "$redis_pid"
wait "$redis_pid"
start_redis
echo "check.sh: restarted Redis"

wait "$producer_pid"
rc=$?
producer_pid=
cat "$dir/producer.log" | tail -n 1
[[ $rc -eq 0 ]] || fail "the producer exited with $rc"

for i in 1 2; do
  kill -TERM "${worker_pids[$i]}"
  wait "${worker_pids[$i]}" || fail "worker $((i + 1)) did not exit cleanly"
  tail -n 1 "$dir/worker$((i + 1)).log"
done
worker_pids=()
"$redis_cli" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$redis_pid" 2>/dev/null
redis_pid=
echo "check.sh: passed"
