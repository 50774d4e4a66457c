#!/usr/bin/env bash
# `train -c RUN.h5` repeats a run from its result file alone: the stored resolved config and the
# stored table text (the table file is deleted first), giving the same losses and weights.
# `config -c RUN.h5` prints that config; a file of another kind is refused naming --config.
set -euo pipefail
moedmft=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
python=/usr/bin/python3; [[ -x $python ]] || python=python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "check_rerun_from_result: FAIL: $*" >&2; exit 1; }

"$moedmft" params mup-I-sgd >my_table.toml
small=(--set model.N=32 --set model.Ne=32 --set train.steps=3 --set train.log_every=1000)
"$moedmft" train "${small[@]}" --set param.table=my_table.toml -o first.h5 >/dev/null
rm my_table.toml
"$moedmft" config -c first.h5 >first.toml || fail "config -c RUN.h5 failed"
grep -q "^table = 'my_table.toml'" first.toml || fail "config -c RUN.h5 does not print the stored config"
"$moedmft" train -c first.h5 -o second.h5 >/dev/null || fail "train -c RUN.h5 failed without the table file"
"$moedmft" config -c second.h5 | grep -v '^output' >second.toml
grep -v '^output' first.toml | cmp -s - second.toml || fail "the re-run's resolved config differs"
"$python" "$here/h5_same.py" first.h5 second.h5 --ignore wall_seconds --ignore command_line --ignore config_toml \
  || fail "the re-run differs from the original"
"$moedmft" train -c first.h5 --set train.steps=2 -o third.h5 >/dev/null || fail "train -c RUN.h5 --set failed"

# A file that is not a train result is refused with one line naming --config.
"$python" -c "import h5py; h5py.File('other.h5', 'w').attrs['kind'] = 'dmft'"
set +e
"$moedmft" train -c other.h5 >/dev/null 2>err
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "train -c on a dmft file exited $rc (expected 2)"
grep -q "^moedmft: --config: 'other.h5' is a dmft file" err || fail "unexpected message: $(cat err)"
echo "check_rerun_from_result: ok"
