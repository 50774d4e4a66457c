#!/usr/bin/env bash
# Writes one small file of every output kind of the CLI into DIR, for the xarray and plotting
# checks: train.h5 (and train_N16.h5), data.h5 (--save-data), sweep.h5 (analysed, with a
# diverging LR), dmft.h5 (with two-time kernels), dmft_moe.h5, converge.h5, coord.h5.
# Usage: make_small_outputs.sh MOEDMFT DIR
set -euo pipefail
moedmft=$1
dir=$2
source_dir=$(cd "$(dirname "$0")/.." && pwd)
moe_config=$source_dir/experiments/configs/dmft_moe_regime1.toml
small=(--set train.steps=6 --set data.P=6 --set model.M=4 --set model.K=4 --set dmft.samples=128
       --set dmft.replicates=2)
mkdir -p "$dir"

for N in 8 16; do
  "$moedmft" train -q --set model.N=$N --set model.Ne=$N --set model.M=4 --set train.steps=12 \
    --set train.diag_every=4 -o "$dir/train_N$N.h5" --save-data "$dir/data.h5" >/dev/null
done
cp "$dir/train_N8.h5" "$dir/train.h5"

# Full batch on the limit's config, so the DMFT overlay compares like with like; lr = 50 diverges.
cat >"$dir/sweep.toml" <<EOF
base_config = "$moe_config"
[base.train]
steps = 6
[base.data]
P = 6
[base.model]
M = 4
K = 4
[[axis]]
name = "size"
keys = ["model.N", "model.Ne"]
values = [8, 16, 32]
[[axis]]
name = "lr"
key = "optim.lr"
values = [0.005, 0.02, 0.08, 50.0]
[[axis]]
name = "seed"
key = "seed"
values = [1, 2]
EOF
"$moedmft" sweep -q -c "$dir/sweep.toml" -o "$dir/sweep.h5" >/dev/null
"$moedmft" analyze "$dir/sweep.h5" -o "$dir/sweep.h5" >/dev/null   # the analysed copy replaces it

"$moedmft" dmft -q --set dmft.T=8 --set dmft.L=2 --set dmft.samples=128 --set dmft.replicates=2 \
  --set dmft.two_time_kernels=true --set data.P=5 -o "$dir/dmft.h5" >/dev/null
"$moedmft" dmft-moe -q -c "$moe_config" "${small[@]}" -o "$dir/dmft_moe.h5" >/dev/null
"$moedmft" converge -q -c "$moe_config" "${small[@]}" --widths 8,16,32 --seeds 2 -o "$dir/converge.h5" >/dev/null
"$moedmft" coord-check -q -p mup-I-sgd --sizes 16,32,64 --seeds 2 --steps 2 --batch 16 -o "$dir/coord.h5" >/dev/null
