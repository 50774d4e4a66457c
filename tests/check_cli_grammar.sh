#!/usr/bin/env bash
# One CLI grammar: usage errors exit 2 (help exits 0), one meaning per short flag across
# subcommands, -o on every subcommand that writes, analyze never edits its input, and files a
# sweep config names resolve against its own folder (run from another working directory).
set -euo pipefail
moedmft=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "check_cli_grammar: FAIL: $*" >&2; exit 1; }

set +e
"$moedmft" train --no-such-option >/dev/null 2>&1; rc1=$?
"$moedmft" sweep >/dev/null 2>&1; rc2=$?
"$moedmft" train --set model.N=0 -q >/dev/null 2>&1; rc3=$?
"$moedmft" train --help >/dev/null 2>&1; rc4=$?
set -e
[[ $rc1 == 2 && $rc2 == 2 && $rc3 == 2 ]] || fail "usage/config errors exit $rc1 $rc2 $rc3 (expected 2)"
[[ $rc4 == 0 ]] || fail "--help exits $rc4"

declare -A meaning
for c in train config analyze sweep exponents diagnose coord-check dmft dmft-moe converge params; do
  help=$("$moedmft" "$c" --help)
  [[ $c == diagnose ]] || grep -q -- '-o,--output' <<<"$help" || fail "$c has no -o,--output"  # diagnose only prints
  while read -r short long; do
    [[ -z ${meaning[$short]:-} || ${meaning[$short]} == "$long" ]] ||
      fail "$short means ${meaning[$short]} and $long ($c)"
    meaning[$short]=$long
  done < <(grep -oE '^  -[a-zA-Z],--[a-z-]+' <<<"$help" | tr ',' ' ')
done
grep -q 'INT=4' <<<"$("$moedmft" converge --help)" || fail "converge --help shows no default for --seeds"

mkdir -p cfg/tables elsewhere
"$moedmft" params mup-I-sgd -o cfg/tables/mine.toml
cat >cfg/base.toml <<'T'
[model]
N = 16
Ne = 16
[param]
table = "tables/mine.toml"
[train]
steps = 4
log_every = 100
diag_every = 0
T
cat >cfg/sweep.toml <<'T'
output = "sweep.h5"
base_config = "base.toml"
[[axis]]
name = "size"
keys = ["model.N", "model.Ne"]
values = [16, 32]
[[axis]]
name = "lr"
key = "optim.lr"
values = [0.05, 0.1, 0.2]
T
(cd elsewhere && "$moedmft" sweep -c ../cfg/sweep.toml -q >/dev/null) || fail "a sweep run from another folder cannot find its base/table"
[[ -f elsewhere/sweep.h5 ]] || fail "the sweep's output is not relative to the working directory"
"$moedmft" config -c cfg/base.toml -o resolved.toml
grep -q "table = 'cfg/tables/mine.toml'" resolved.toml || fail "config -o does not store the anchored table path"

before=$(md5sum elsewhere/sweep.h5)
"$moedmft" analyze elsewhere/sweep.h5 >/dev/null
"$moedmft" analyze elsewhere/sweep.h5 -o analysed.h5 >/dev/null
[[ $(md5sum elsewhere/sweep.h5) == "$before" ]] || fail "analyze modified its input"
/usr/bin/python3 -c "import h5py,sys; f=h5py.File('analysed.h5'); sys.exit(0 if 'analysis' in f and 'train_loss' in f else 1)" ||
  fail "analyze -o did not write the sweep with /analysis"
echo "check_cli_grammar: ok"
