#!/usr/bin/env bash
# examples/distributed/check.sh PRODUCER WORKER REDIS_SERVER JOBS
#
# The CTest of examples/distributed: a private redis-server (free loopback port, temporary
# directory, append-only on), 3 worker processes, one producer submitting JOBS jobs. When a
# quarter of the jobs are complete a worker that holds jobs (XPENDING) is SIGKILLed; at
# half, Redis is restarted (SIGTERM, then started again on the same port and directory).
# Each fault must land while jobs are in flight: the dead worker still holds unacknowledged
# jobs after its death, and the producer has not seen all results after each fault, or the
# check fails. The producer checks that every job completed exactly once (it counts each
# job's completions) with the right result; Redis must then hold one result per job and
# no job left in the stream. The workers are stopped with SIGTERM and must exit 0.
# Everything started here is killed on exit, whatever happens.
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

# The last completion count the producer reported (0 before the first).
completed() {
  local n
  n=$(grep -o 'completed [0-9]*' "$dir/producer.log" 2>/dev/null | tail -n 1 | cut -d' ' -f2)
  echo "${n:-0}"
}

# Waits (<= 300 s) until the producer has reported at least $1 completions.
wait_completed() {
  for _ in $(seq 1 30000); do
    [[ $(completed) -ge $1 ]] && return 0
    kill -0 "$producer_pid" 2>/dev/null || fail "the producer ended before $1 completions"
    sleep 0.01
  done
  fail "no progress to $1 completions"
}

# After a fault: the producer has not reported all completions yet (it reports the last
# one), so jobs were in flight when the fault happened.
in_flight() {
  local n
  n=$(completed)
  [[ $n -lt $jobs ]] || fail "$1 landed after every job had completed"
  echo "check.sh: $1 at $n of $jobs completions"
}

# Jobs delivered to consumer $1 and not acknowledged.
pending_of() {
  "$redis_cli" -p "$port" XPENDING seed:jobs seed:workers - + 100000 "$1" | grep -c '^[0-9]*-[0-9]*$'
}

consumer_of() { sed -n 's/^worker \([^ ]*\) started$/\1/p' "$dir/worker$1.log"; }

start_redis
for i in 1 2 3; do
  "$worker" --port "$port" --queue seed >"$dir/worker$i.log" 2>&1 &
  worker_pids+=($!)
done
"$producer" --port "$port" --queue seed --jobs "$jobs" >"$dir/producer.log" 2>&1 &
producer_pid=$!

wait_completed $((jobs / 4))
# SIGKILL a worker that holds jobs now (worker 1 unless it is between jobs).
victim=
for _ in $(seq 1 1000); do
  for i in 0 1 2; do
    c=$(consumer_of $((i + 1)))
    if [[ -n $c && $(pending_of "$c") -gt 0 ]]; then
      victim=$i
      break 2
    fi
  done
  sleep 0.01
done
[[ -n $victim ]] || fail "no worker holds a job at $(completed) completions"
kill -9 "${worker_pids[$victim]}"
wait "${worker_pids[$victim]}" 2>/dev/null
dead=$(consumer_of $((victim + 1)))
held=$(pending_of "$dead")
[[ $held -gt 0 ]] || fail "the SIGKILLed worker held no job after its death"
in_flight "SIGKILL of worker $((victim + 1)) (holding $held jobs)"
survivors=()
for i in 0 1 2; do [[ $i == "$victim" ]] || survivors+=("$i"); done

wait_completed $((jobs / 2))
kill -TERM "$redis_pid"
wait "$redis_pid"
in_flight "Redis restart"
start_redis

wait "$producer_pid"
rc=$?
producer_pid=
tail -n 1 "$dir/producer.log"
[[ $rc -eq 0 ]] || fail "the producer exited with $rc"

# Redis agrees: one stored result per job, no job left in the stream or pending.
results=$("$redis_cli" -p "$port" --scan --pattern 'seed:result:*' | sort -u | wc -l)
[[ $results -eq $jobs ]] || fail "$results results stored in Redis for $jobs jobs"
[[ $("$redis_cli" -p "$port" XLEN seed:jobs) -eq 0 ]] || fail "jobs left in the stream"
[[ $("$redis_cli" -p "$port" XPENDING seed:jobs seed:workers | head -n 1) -eq 0 ]] ||
  fail "jobs left pending"
[[ $(pending_of "$dead") -eq 0 ]] || fail "the dead worker's jobs were not taken over"

for i in "${survivors[@]}"; do
  kill -TERM "${worker_pids[$i]}"
  wait "${worker_pids[$i]}" || fail "worker $((i + 1)) did not exit cleanly"
  tail -n 1 "$dir/worker$((i + 1)).log"
done
worker_pids=()
"$redis_cli" -p "$port" SHUTDOWN NOSAVE >/dev/null 2>&1
wait "$redis_pid" 2>/dev/null
redis_pid=
echo "check.sh: passed"
