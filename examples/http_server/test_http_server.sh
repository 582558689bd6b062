#!/usr/bin/env bash
# examples/http_server/test_http_server.sh MODE SERVER CLIENT [server options...]
#
# The CTest driver of example_http_server. MODE:
#   functional  every behaviour, with curl and example_http_client, on three servers
#               (default options; --max-waiting 2; --timeout 0.5), each ended by a signal
#               that must make it answer waiting requests 503 and exit 0 with its summary;
#               and a fourth signalled at once (the handler is installed before the port
#               is announced)
#   load        500 concurrent waiting requests and 500 responders (example_http_client load),
#               then SIGTERM
#   memory      2 000 idle long-polls held open at once (example_http_client idle): the
#               server's VmRSS must grow by at most 8 KiB per waiting request (Release
#               builds without sanitizers only: other builds' frames and allocators differ)
# Extra options (e.g. --threads 2) go to every server started.
#
# Every step is bounded: curl --max-time, `timeout` around the client, deadlines on every
# poll. Polls look at an observable (the server's stdout, /stats) every 20 ms until a
# deadline; no sleep stands in for synchronisation.
set -uo pipefail

mode=$1 server_bin=$2 client_bin=$3
shift 3
server_opts=("$@")

work=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  local f
  for f in "$work"/*.out "$work"/*.err; do
    [[ -s $f ]] && { echo "--- $f" >&2; cat "$f" >&2; }
  done
  exit 1
}
step() { echo "--- $*"; }

# poll SECONDS COMMAND...: runs COMMAND every 20 ms until it succeeds; fails after SECONDS.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.02
  done
}

# exited PID: the process has ended (a zombie until `wait`, which kill -0 cannot tell).
exited() { [[ ! -e /proc/$1/stat ]] || [[ $(</proc/$1/stat) =~ ^[0-9]+\ \(.*\)\ [ZX] ]]; }

# announced NAME: the server wrote its "listening on" line; fails the test at once if the
# server exited instead.
announced() {
  grep -q '^listening on ' "$work/$1.out" && return 0
  ! exited "$pid" || fail "$1 exited before announcing its port"
  return 1
}

# start_server NAME [options...]: starts a server on an ephemeral port; sets $port, $pid.
start_server() {
  local name=$1
  shift
  # The output files exist before the server starts: the background job opens them only
  # once it runs, and the first poll may come before that.
  : >"$work/$name.out"
  : >"$work/$name.err"
  "$server_bin" --port 0 "${server_opts[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  pids+=("$pid")
  poll 30 announced "$name" || fail "$name did not announce its port"
  port=$(sed -n '1s/^listening on .*:\([0-9]*\)$/\1/p' "$work/$name.out")
  [[ $port =~ ^[0-9]+$ ]] || fail "$name: bad first line: $(head -n 1 "$work/$name.out")"
  base="http://127.0.0.1:$port"
  echo "$name: pid $pid, port $port, options: ${server_opts[*]} $*"
}

# stop_server NAME SIGNAL: the server must exit 0 within 30 s and print its summary.
stop_server() {
  local name=$1 sig=$2 rc
  kill "-$sig" "$pid"
  poll 30 exited "$pid" || fail "$name did not exit after SIG$sig"
  wait "$pid"
  rc=$?
  [[ $rc -eq 0 ]] || fail "$name exited with $rc after SIG$sig"
  grep -E '^summary: [0-9]+ requests served, [0-9]+ pairs matched, .* requests/s$' \
    "$work/$name.out" || fail "$name printed no summary line"
  if [[ -s "$work/$name.err" ]]; then
    cat "$work/$name.err" >&2
    fail "$name wrote to stderr"
  fi
}

# http METHOD PATH [curl options...]: prints "CODE BODY" (body without its final newline).
http() {
  local method=$1 path=$2 code
  shift 2
  code=$(curl -sS --max-time 10 -X "$method" -o "$work/body" -w '%{http_code}' "$@" \
    "$base$path") || code="curl-failed"
  printf '%s %s' "$code" "$(cat "$work/body" 2>/dev/null)"
}

# expect WANT METHOD PATH [curl options...]: the answer must be exactly "CODE" or "CODE BODY".
expect() {
  local want=$1 got
  shift
  got=$(http "$@")
  [[ $got == "$want" || $got == "$want "* && $want != *" "* ]] ||
    fail "$1 $2: expected '$want', got '$got'"
  echo "ok: $1 $2 -> ${got%%$'\n'*}"
}

# head_vs_get PATH: a HEAD must get the GET's status, Content-Length and Content-Type, and no
# body (RFC 9110 9.3.2). Only for paths whose GET answer does not change between the two.
# The HEAD is followed by a GET /stats on the same connection: a body byte sent after the
# HEAD's header fields would be read as the start of that answer, which would then fail.
head_vs_get() {
  local path=$1 get next
  get=$(curl -sS --max-time 10 -D "$work/get.h" -o "$work/get.b" -w '%{http_code}' "$base$path") ||
    fail "GET $path: curl failed"
  next=$(curl -sS --max-time 10 --head -D "$work/head.h" -o /dev/null "$base$path" \
    --next -sS --max-time 10 -o /dev/null -w '%{http_code} %{num_connects}' "$base/stats") ||
    fail "HEAD $path, then GET /stats: curl failed"
  [[ $next == "200 0" ]] ||
    fail "HEAD $path, then GET /stats on the same connection: got '$next', expected '200 0'"
  [[ $(head -n 1 "$work/head.h") == $(head -n 1 "$work/get.h") ]] ||
    fail "HEAD $path: $(head -n 1 "$work/head.h"), GET: $(head -n 1 "$work/get.h")"
  local field
  for field in content-length content-type allow server; do
    [[ $(grep -i "^$field:" "$work/head.h") == $(grep -i "^$field:" "$work/get.h") ]] ||
      fail "HEAD $path: $field differs: $(cat "$work/head.h") vs GET: $(cat "$work/get.h")"
  done
  grep -qi "^content-length: $(wc -c <"$work/get.b")"$'\r'"\$" "$work/head.h" ||
    fail "HEAD $path: Content-Length is not the GET body's length"
  echo "ok: HEAD $path -> $(head -n 1 "$work/head.h" | tr -d '\r'): the GET's fields, no body"
}

# allow_is METHOD PATH WANT: the answer is 405 with exactly "Allow: WANT".
allow_is() {
  local code
  code=$(curl -sS --max-time 10 -X "$1" -D "$work/allow.h" -o /dev/null -w '%{http_code}' \
    "$base$2") || fail "$1 $2: curl failed"
  [[ $code == 405 ]] || fail "$1 $2: expected 405, got $code"
  grep -q "^Allow: $3"$'\r'"\$" "$work/allow.h" ||
    fail "$1 $2: expected 'Allow: $3', got: $(grep -i '^allow:' "$work/allow.h")"
  echo "ok: $1 $2 -> 405, Allow: $3"
}

counter() { # counter NAME: one counter of /stats
  curl -sS --max-time 10 "$base/stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
waiting_is() { [[ $(counter waiting) == "$1" ]]; }

# bg_request NAME ID [curl options...]: GET /request/ID in the background; its "CODE BODY"
# goes to $work/NAME (its header fields to $work/NAME.h).
bg_request() {
  local out=$work/$1 id=$2
  shift 2
  (
    code=$(curl -sS --max-time 60 -D "$out.h" -o "$out.body" -w '%{http_code}' "$@" \
      "$base/request/$id") || code="curl-failed"
    printf '%s %s' "$code" "$(cat "$out.body" 2>/dev/null)" >"$out"
  ) &
  bg_pid=$!
}

# bg_result NAME PID WANT: the background request must end with exactly WANT.
bg_result() {
  wait "$2"
  local got
  got=$(cat "$work/$1" 2>/dev/null)
  [[ $got == "$3" ]] || fail "background request $1: expected '$3', got '$got'"
  echo "ok: background $1 -> $got"
}

client() { timeout 90 "$client_bin" "$port" "$@" || fail "example_http_client $*"; }

functional() {
  step "server A: default options"
  start_server A

  step "rendezvous"
  bg_request alpha alpha
  local alpha=$bg_pid
  poll 20 waiting_is 1 || fail "/request/alpha never registered"
  expect "200 delivered" GET "/response/alpha?text=hi"
  bg_result alpha "$alpha" "200 hi"
  bg_request beta beta
  local beta=$bg_pid
  poll 20 waiting_is 1 || fail "/request/beta never registered"
  expect "200 delivered" POST /response/beta --data 'text=hello+world%21'
  bg_result beta "$beta" "200 hello world!"

  step "404: nobody waits; unknown endpoint"
  expect "404 no request is waiting for this id" GET "/response/nobody?text=x"
  expect 404 GET /nowhere

  step "400: bad ids, missing text, bad encoding; 405"
  expect "400 bad id" GET "/request/bad%21id"
  expect "400 bad id" GET /request/
  expect "400 bad id" GET /request/a/b
  expect "400 bad id" GET "/request/$(printf 'x%.0s' {1..65})"
  expect "400 missing text" GET /response/ok
  expect "400 missing text" GET "/response/ok?txt=a"
  expect "400 bad percent-encoding in text" GET "/response/ok?text=%zz"

  step "methods: 501 for what the server does not implement, 405 + Allow, HEAD"
  expect "501 method not implemented" DELETE /request/x
  expect "501 method not implemented" PUT /response/x
  expect "501 method not implemented" FROBNICATE /stats
  expect "501 method not implemented" OPTIONS /nowhere
  allow_is POST /request/x "GET, HEAD"
  allow_is POST /stats "GET, HEAD"
  head_vs_get /nowhere
  head_vs_get "/response/nobody?text=x"
  head_vs_get /request/bad%21id
  head_vs_get /request/
  # A HEAD long-poll waits like a GET and gets the answer's header fields without its text.
  bg_request headpoll headpoll --head
  local headpoll=$bg_pid
  poll 20 waiting_is 1 || fail "HEAD /request/headpoll never registered"
  expect "200 delivered" GET "/response/headpoll?text=twelve+bytes"
  wait "$headpoll"
  [[ $(head -c 4 "$work/headpoll") == "200 " ]] &&
    grep -qi "^content-length: 12"$'\r'"\$" "$work/headpoll.h" ||
    fail "HEAD /request/headpoll: $(cat "$work/headpoll")"
  echo "ok: background HEAD /request/headpoll -> 200, Content-Length: 12"

  step "409: duplicate request; second response"
  bg_request dup1 dup
  local dup1=$bg_pid
  poll 20 waiting_is 1 || fail "/request/dup never registered"
  expect "409 a request for this id is already waiting" GET /request/dup
  expect "200 delivered" GET "/response/dup?text=first"
  bg_result dup1 "$dup1" "200 first"
  expect "409 this id was already resolved" GET "/response/dup?text=second"
  bg_request dup2 dup # the id is free again: a new request for it waits
  local dup2=$bg_pid
  poll 20 waiting_is 1 || fail "the second /request/dup never registered"
  expect "200 delivered" GET "/response/dup?text=third"
  bg_result dup2 "$dup2" "200 third"

  step "keep-alive and pipelining (Beast client)"
  client keepalive

  step "a client hangs up while waiting (Beast client)"
  client disconnect gone
  [[ $(counter hung_up) == 2 ]] || fail "hung_up is $(counter hung_up), expected 2"

  step "50 concurrent pairs (Beast client)"
  client load 50

  step "graceful shutdown: every waiting request gets 503, the server exits 0"
  [[ $(counter waiting) == 0 ]] || fail "entries left behind: waiting is $(counter waiting)"
  local last=()
  for i in 1 2 3; do
    bg_request "last$i" "last$i"
    last+=("$bg_pid")
  done
  poll 20 waiting_is 3 || fail "/request/last1..3 never registered"
  stop_server A TERM
  for i in 1 2 3; do
    bg_result "last$i" "${last[i - 1]}" "503 shutting down"
  done

  step "server B: --max-waiting 2"
  start_server B --max-waiting 2
  bg_request c1 c1
  local c1=$bg_pid
  bg_request c2 c2
  local c2=$bg_pid
  poll 20 waiting_is 2 || fail "c1 and c2 never registered"
  expect "503 too many waiting requests" GET /request/c3
  expect "200 delivered" GET "/response/c1?text=one"
  bg_result c1 "$c1" "200 one"
  bg_request c3 c3 # room again
  local c3=$bg_pid
  poll 20 waiting_is 2 || fail "c3 never registered"
  expect "200 delivered" GET "/response/c2?text=two"
  expect "200 delivered" GET "/response/c3?text=three"
  bg_result c2 "$c2" "200 two"
  bg_result c3 "$c3" "200 three"
  stop_server B INT

  step "server C: --timeout 0.5"
  start_server C --timeout 0.5
  local t0=$SECONDS
  expect "504 nobody answered in time" GET /request/slow
  ((SECONDS - t0 < 10)) || fail "the 0.5 s timeout took $((SECONDS - t0)) s"
  [[ $(counter waiting) == 0 && $(counter timed_out) == 1 ]] ||
    fail "after the timeout: $(curl -sS --max-time 10 "$base/stats")"
  expect "404 no request is waiting for this id" GET "/response/slow?text=late"
  stop_server C INT

  step "server D: SIGTERM as soon as the port is announced is a graceful shutdown too"
  start_server D
  stop_server D TERM
}

load() {
  start_server L
  client load 500
  stop_server L TERM
}

memory() {
  local n=2000 max_bytes=8192 line bytes
  start_server M
  line=$(client idle "$n" "$pid") || exit 1
  echo "$line"
  bytes=$(sed -n 's/.* (\([0-9]*\) bytes) per waiting request.*/\1/p' <<<"$line")
  [[ $bytes =~ ^[0-9]+$ ]] || fail "no per-request figure in: $line"
  ((bytes <= max_bytes)) || fail "a waiting request costs $bytes bytes, more than $max_bytes"
  stop_server M TERM
}

case $mode in
  functional) functional ;;
  load) load ;;
  memory) memory ;;
  *) fail "unknown mode $mode" ;;
esac
echo "PASS: $mode ${server_opts[*]}"
