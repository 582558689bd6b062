#!/usr/bin/env bash
#
# model/check.sh -- exhaustive spin checks of the two lock-free protocols of asio_futures:
#   future_state.pml  the state word of a future (push / remove under lock_bit / publish)
#   task_gate.pml     a task's gate word (readers, writer, pending, generation, closed)
#
# usage: model/check.sh [--no-mutants | --mutants-only] [OUTDIR]
#   OUTDIR    where spin/pan run and their logs stay (default: a new mktemp -d directory)
#   default   every model check, then every mutant (each mutant must be caught)
#   env       DEPTH (pan -m, default 100000), MEMLIM (MB, default 4096)
#
# Each model check runs `spin -a`, compiles pan with gcc and runs it exhaustively (hash
# compaction is not used; -DCOLLAPSE is lossless). It fails (exit 1) on any error, on a
# truncated search (max search depth too small, memory bound reached, search not
# completed), or if pan does not finish. Each mutant (a -D macro that injects a known bug)
# must make pan report at least one error. One summary line per run.
#
# Needs: spin (Debian: apt-get install spin), gcc.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_models=1
run_mutants=1
out=""
for arg in "$@"; do
  case "$arg" in
    --no-mutants) run_mutants=0 ;;
    --mutants-only | --mutants) run_models=0 ;;
    -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "check.sh: unknown option $arg" >&2; exit 2 ;;
    *) out=$arg ;;
  esac
done
[[ -n "$out" ]] || out=$(mktemp -d "${TMPDIR:-/tmp}/asio_futures_model.XXXXXX")
mkdir -p "$out"
out=$(cd "$out" && pwd)

command -v spin >/dev/null || { echo "check.sh: spin not found (apt-get install spin)" >&2; exit 2; }
command -v gcc >/dev/null || { echo "check.sh: gcc not found" >&2; exit 2; }

DEPTH=${DEPTH:-100000}   # pan -m: far above the deepest path of any configuration (< 500)
MEMLIM=${MEMLIM:-4096}   # MB: pan stops (and we fail) rather than swap
CFLAGS=(-O2 -w "-DMEMLIM=$MEMLIM")
failures=0
t_all=$(date +%s.%N)

echo "check.sh: output in $out ($(spin -V | head -1))"

# build NAME MODEL "SPIN_DEFINES" "CC_DEFINES": spin -a + gcc into $out/NAME/pan
# (CC_DEFINES may override -O2: the last -O wins)
build() {
  local name=$1 model=$2 sdefs=$3 cdefs=$4 dir="$out/$1"
  rm -rf "$dir" && mkdir -p "$dir"
  cp "$here/$model" "$dir/"
  # shellcheck disable=SC2086
  if ! (cd "$dir" && spin $sdefs -a "$model" >spin.log 2>&1); then
    echo "FAIL    $name: spin -a failed (see $dir/spin.log)"; return 1
  fi
  # shellcheck disable=SC2086
  if ! (cd "$dir" && gcc "${CFLAGS[@]}" $cdefs -o pan pan.c >gcc.log 2>&1); then
    echo "FAIL    $name: gcc failed (see $dir/gcc.log)"; return 1
  fi
}

# field LOG: the numbers of a pan log, as "states transitions depth memMB"
fields() {
  local log=$1 states trans depth mem
  states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$log" | head -1)
  trans=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' "$log" | head -1)
  depth=$(sed -n 's/.*depth reached \([0-9]*\),.*/\1/p' "$log" | head -1)
  mem=$(sed -n 's/^ *\([0-9.]*\).total actual memory usage.*/\1/p' "$log" | head -1)
  echo "${states:-?} ${trans:-?} ${depth:-?} ${mem:-?}"
}

# verify NAME TAG "PAN_ARGS": run the pan built for NAME; expect no error, full search
verify() {
  local name=$1 tag=$2 args=$3 dir="$out/$1" log t0 t1 errs
  log="$dir/pan.$tag.log"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  (cd "$dir" && ./pan -m$DEPTH $args >"$log" 2>&1) || true
  t1=$(date +%s.%N)
  read -r states trans depth mem <<<"$(fields "$log")"
  errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -1)
  local why=""
  if ! grep -q 'pan: elapsed time' "$log"; then why="pan did not finish"
  elif [[ "$errs" != 0 ]]; then why="errors: ${errs:-?} ($(grep -m1 -E '^pan:[0-9]+:' "$log" || true))"
  elif grep -q -E 'max search depth too small|Search not completed|MEMLIM|out of memory' "$log"; then
    why="search truncated ($(grep -m1 -E 'too small|not completed|MEMLIM|out of memory' "$log"))"
  fi
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [[ -n "$why" ]]; then
    printf 'FAIL    %-30s %-20s %s (log: %s)\n' "$name" "$tag" "$why" "$log"
    failures=$((failures + 1))
  else
    printf 'ok      %-30s %-20s states %10s  transitions %10s  depth %4s  mem %7s MB  time %6.2f s\n' \
      "$name" "$tag" "$states" "$trans" "$depth" "$mem" "$secs"
  fi
}

# model NAME MODEL "SPIN_DEFINES" "CC_DEFINES" [LTL claims...]: safety run (assertions,
# invalid end states) and one -a run per LTL claim
model() {
  local name=$1 file=$2 sdefs=$3 cdefs=$4
  shift 4
  if build "$name" "$file" "$sdefs" "$cdefs -DSAFETY -DNOCLAIM"; then
    verify "$name" safety ""
  else
    failures=$((failures + 1)); return
  fi
  if (($# > 0)); then
    if build "$name-ltl" "$file" "$sdefs" "$cdefs"; then
      local c
      for c in "$@"; do verify "$name-ltl" "ltl:$c" "-a -N $c"; done
    else
      failures=$((failures + 1))
    fi
  fi
}

# mutant NAME MODEL "SPIN_DEFINES" [PAN_ARGS] [CC_DEFINES]: pan must report an error
mutant() {
  local name=$1 file=$2 sdefs=$3 args=${4:-} cdefs=${5:--DSAFETY -DNOCLAIM} dir="$out/$1"
  # -O0: a mutant stops at its first error within a second; compiling would dominate
  if ! build "$name" "$file" "$sdefs" "-O0 $cdefs"; then failures=$((failures + 1)); return; fi
  local log="$dir/pan.log" t0 t1 errs
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  (cd "$dir" && ./pan -m$DEPTH $args >"$log" 2>&1) || true
  t1=$(date +%s.%N)
  read -r states trans depth mem <<<"$(fields "$log")"
  errs=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$log" | head -1)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  if [[ -n "$errs" && "$errs" -ge 1 ]]; then
    printf 'caught  %-40s states %8s  time %5.2f s  %s\n' "$name" "$states" "$secs" \
      "$(grep -m1 -E '^pan:[0-9]+:' "$log" | sed 's/^pan:[0-9]*: *//')"
  else
    printf 'FAIL    %-40s the injected bug was NOT found (errors: %s; log: %s)\n' "$name" "${errs:-?}" "$log"
    failures=$((failures + 1))
  fi
}

if ((run_models)); then
  echo "== models"
  # future state word: 2 waiters (push, maybe remove, 2 rounds reusing the node) + 1 completer
  model fs-2waiters-1completer future_state.pml "-DNW=2 -DNC=1 -DROUNDS=2" "" all_done
  # 1 waiter + 2 competing completers (try_claim)
  model fs-1waiter-2completers future_state.pml "-DNW=1 -DNC=2 -DROUNDS=2" "" all_done
  # 4 threads: 2 waiters + 2 completers
  model fs-2waiters-2completers future_state.pml "-DNW=2 -DNC=2 -DROUNDS=2" "-DCOLLAPSE"
  # task gate: 2 generation bits (4 tasks, then closed), 2 cancels per task, current_task()
  model gate-gen2-req2-info task_gate.pml "-DGENBITS=2 -DNREQ=2 -DOWNER_INFO" "-DCOLLAPSE"
  # the same without current_task(), for the LTL claims
  model gate-gen2-req2 task_gate.pml "-DGENBITS=2 -DNREQ=2" "-DCOLLAPSE" \
    closed_stays pending_served requests_served
  # 2 rounds per reader (re-entry, executors kept from an earlier round)
  model gate-gen2-rounds2 task_gate.pml "-DGENBITS=2 -DROUNDS=2" "-DCOLLAPSE"
  model gate-gen1-rounds2-req2-info task_gate.pml "-DGENBITS=1 -DROUNDS=2 -DNREQ=2 -DOWNER_INFO" "-DCOLLAPSE"
fi

if ((run_mutants)); then
  echo "== mutants (each must be caught)"
  fs="-DNW=2 -DNC=1 -DROUNDS=2"
  for m in MUT_PUBLISH_LOAD_STORE MUT_PUBLISH_IGNORES_LOCK MUT_PUSH_IGNORES_LOCK \
           MUT_REMOVE_NO_LOCK MUT_NEXT_AFTER_FN MUT_NEXT_AFTER_PUBLISH; do
    mutant "fs-$m" future_state.pml "$fs -D$m"
  done
  mutant fs-MUT_CLAIM_LOAD_STORE future_state.pml "-DNW=1 -DNC=2 -DROUNDS=2 -DMUT_CLAIM_LOAD_STORE"

  gate="-DGENBITS=2 -DNREQ=2"
  for m in MUT_ENTER_IGNORES_WRITER MUT_ENTER_NO_GEN_CHECK MUT_RETIRE_WRAPS \
           MUT_LEAVE_IGNORES_PENDING MUT_END_WRITE_IGNORES_PENDING MUT_WRITE_IGNORES_READERS \
           MUT_SOLE_IGNORES_COUNT; do
    mutant "gate-$m" task_gate.pml "$gate -D$m"
  done
  # the liveness claims catch a lost pending emission on their own
  mutant gate-MUT_LEAVE_IGNORES_PENDING-ltl task_gate.pml "$gate -DMUT_LEAVE_IGNORES_PENDING" \
    "-a -N pending_served" " "
  mutant gate-MUT_END_WRITE_IGNORES_PENDING-ltl task_gate.pml "$gate -DMUT_END_WRITE_IGNORES_PENDING" \
    "-a -N requests_served" " "
fi

t_end=$(date +%s.%N)
total=$(awk -v a="$t_all" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')
if ((failures > 0)); then
  printf 'check.sh: %d FAILURE(S), total %.1f s (logs in %s)\n' "$failures" "$total" "$out"
  exit 1
fi
printf 'check.sh: all passed, total %.1f s (logs in %s)\n' "$total" "$out"
