#!/usr/bin/env bash
# Progress into a log file (issue 14): a tiny sweep, dmft and train with stderr to a file write no
# '\r' and a bounded number of lines; --threads 0 is refused with one line naming the flag (exit
# 2); and without OMP_WAIT_POLICY the passive-waiting re-exec runs the program once, not in a loop.
set -euo pipefail
moedmft=$1
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
check_log() {  # file, most lines allowed
  if grep -q $'\r' "$1"; then fail "$1 has a carriage return"; fi
  local n; n=$(wc -l <"$1")
  (( n <= $2 )) || { cat "$1"; fail "$1: $n lines (at most $2 expected)"; }
}
"$moedmft" sweep -c "$source_dir/tests/tiny_sweep.toml" -o "$work/sweep.h5" >/dev/null 2>"$work/sweep.log"
check_log "$work/sweep.log" 8  # one line per 10 s of a few seconds' sweep, the final line, the summary
grep -q "6/6 points (100%)" "$work/sweep.log" || { cat "$work/sweep.log"; fail "no final sweep line"; }
"$moedmft" dmft --set dmft.T=5 --set dmft.samples=64 --set dmft.replicates=3 --set data.P=4 -j 1 \
  -o "$work/dmft.h5" >/dev/null 2>"$work/dmft.log"
check_log "$work/dmft.log" 4
grep -q "3/3 replicates" "$work/dmft.log" || { cat "$work/dmft.log"; fail "no dmft progress line"; }
"$moedmft" dmft -q --set dmft.T=5 --set dmft.samples=64 --set dmft.replicates=2 --set data.P=4 \
  -o "$work/dmft_q.h5" >/dev/null 2>"$work/quiet.log"
[[ ! -s $work/quiet.log ]] || { cat "$work/quiet.log"; fail "-q printed something"; }

rc=0
"$moedmft" train -j 0 --set train.steps=1 -o "$work/t.h5" >/dev/null 2>"$work/j0.log" || rc=$?
(( rc == 2 )) || fail "train -j 0 exited $rc, expected 2"
[[ $(wc -l <"$work/j0.log") -eq 1 ]] && grep -q -- "--threads: must be >= 1" "$work/j0.log" || { cat "$work/j0.log"; fail "-j 0 message"; }

env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u GLIBC_TUNABLES -u MOEDMFT_WAIT_POLICY_SET timeout 120 \
  "$moedmft" train --set train.steps=20 -o "$work/t.h5" >/dev/null 2>"$work/train.log"
check_log "$work/train.log" 12
grep -q "20/20 steps" "$work/train.log" || { cat "$work/train.log"; fail "no final train line"; }
echo "progress and threads ok"
