#!/usr/bin/env bash
# A write that fails part-way (disk full, quota; here a file size limit) must leave no file under
# the output name and no temporary, and end with one line naming the output and the reason, a
# non-zero exit and no crash. SIGXFSZ is ignored so that write() returns EFBIG instead of the
# signal killing the process, as on a full disk.
set -uo pipefail
moedmft=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "check_failed_write: FAIL: $*" >&2; echo "--- stderr:" >&2; cat err >&2; exit 1; }

# A small train whose weights alone exceed the 64 KiB limit.
(trap '' XFSZ; ulimit -f 64; exec "$moedmft" train --set model.N=128 --set model.Ne=128 --set train.steps=2 \
   --set train.log_every=1000 -o out.h5) >out 2>err
rc=$?
message=$(tail -n 1 err)  # the run's banner and progress go to stderr before it
[[ $rc -ne 0 ]] || fail "exit code 0 after a failed write"
[[ $rc -ne 139 && $rc -lt 128 ]] || fail "crashed (exit code $rc)"
[[ $(grep -c '^moedmft: ' err) -eq 1 ]] || fail "expected one error line, got $(grep -c '^moedmft: ' err)"
[[ $message == "moedmft: cannot write 'out.h5': "* ]] || fail "the last line does not name the output: $message"
[[ ! -e out.h5 ]] || fail "a file was left under the final name"
leftover=$(ls -A | grep -v '^out$\|^err$' || true)
[[ -z $leftover ]] || fail "left behind: $leftover"

# The same run without the limit writes the file (so the limit, not the run, made it fail).
"$moedmft" train --set model.N=128 --set model.Ne=128 --set train.steps=2 --set train.log_every=1000 \
  -o out.h5 >out 2>err || fail "the unlimited run failed"
[[ -s out.h5 ]] || fail "the unlimited run wrote nothing"
echo "check_failed_write: ok (exit $rc under ulimit -f 64: $message)"
