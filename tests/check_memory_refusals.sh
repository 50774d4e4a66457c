#!/usr/bin/env bash
# Sizes beyond the machine are refused up front by every heavy subcommand: exit 2, one line on
# stderr naming the field, no std::bad_alloc and no std::terminate.
set -uo pipefail
moedmft=$(realpath "$1")
configs=$(realpath "$2")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "check_memory_refusals: FAIL: $*" >&2; exit 1; }

refuses() {  # refuses FIELD-PREFIX COMMAND...
  local want=$1; shift
  "$@" >out.txt 2>err.txt
  local rc=$?
  [[ $rc == 2 ]] || fail "'$*' exits $rc (expected 2): $(cat err.txt)"
  [[ $(wc -l <err.txt) == 1 ]] || fail "'$*' printed more than one line: $(cat err.txt)"
  grep -q "^moedmft: $want" err.txt || fail "'$*' does not name $want: $(cat err.txt)"
  grep -qiE "bad_alloc|terminate" err.txt && fail "'$*' leaked: $(cat err.txt)"
  [[ ! -e big.h5 ]] || fail "'$*' left big.h5"
}

huge=(--set model.N=1048576 --set model.Ne=1048576)
refuses "model.N/model.Ne" "$moedmft" train "${huge[@]}" -o big.h5
refuses "dmft.T/dmft.samples" "$moedmft" dmft --set dmft.T=1048576 --set dmft.L=2 -o big.h5
refuses "dmft.T/dmft.samples.*dmft.two_time_kernels" "$moedmft" dmft --set dmft.T=200000 --set dmft.two_time_kernels=true -o big.h5
refuses "dmft.samples/train.steps" "$moedmft" dmft-moe -c "$configs/dmft_moe_regime1.toml" \
  --set dmft.samples=4194304 --set train.steps=100000 -o big.h5
refuses "--sizes: size 1048576: model.N" "$moedmft" coord-check --param mup-I-sgd --sizes 64,1048576 -o big.h5
refuses "--widths: width 1048576: model.N" "$moedmft" converge -c "$configs/dmft_moe_regime1.toml" \
  --widths 64,128,1048576 -o big.h5
echo "check_memory_refusals: ok"
