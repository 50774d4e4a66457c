#!/usr/bin/env bash
# The showcase, on built-in configs (about two minutes after the build on 2 cores; README "Quick start"): set up (install what is missing,
# build), then
#   1.+2. solve the regime-I DMFT limit of an MoE (MSSP, SGD, full batch), train finite widths
#      N = Ne = 32..512 against it, and fit the gap and seed spread versus N (one `converge` call;
#      `moedmft dmft-moe` solves the limit alone);
#   3. run an LR sweep on Fashion-MNIST (real data, Debian's dataset-fashion-mnist) in regime I,
#      SP versus muP versus MSSP, and analyse LR transfer (verdicts: transfers / drifts /
#      inconclusive / not bracketed, from the drift's 95% interval);
#   4. draw the figures and print the verdicts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=results/demo
mkdir -p "$out"
python=/usr/bin/python3; [[ -x $python ]] || python=python3   # Debian's python has h5py/matplotlib
moedmft=./build/experiments/moedmft
export OMP_WAIT_POLICY=passive   # moedmft defaults to it anyway; kept for the other tools
start=$(date +%s)

echo "== 1-2. regime-I DMFT limit (mssp-I-sgd, M = 8 soft experts, P = 16, 30 full-batch steps)"
echo "        and finite widths N = Ne = 32..512 (4 seeds each) against it"
$moedmft converge -c experiments/configs/dmft_moe_regime1.toml --widths 32,64,128,256,512 --seeds 4 -q \
  -o "$out/dmft_convergence.h5" | sed '$d'
"$python" scripts/plot_convergence.py "$out/dmft_convergence.h5" --out "$out/dmft_convergence.png" >/dev/null

echo "== 3. LR sweep on Fashion-MNIST, regime I: sp vs mup-I-sgd vs mssp-I-sgd"
echo "        (N = Ne = 64, 128, 256; 8 LRs 2x apart; 3 seeds; 400 online SGD steps of batch 50)"
rm -rf "$out/sweep_fmnist_regime1.h5" "$out/sweep_fmnist_regime1.h5.points"
$moedmft sweep -c experiments/configs/demo_fmnist_regime1.toml >/dev/null
$moedmft analyze "$out/sweep_fmnist_regime1.h5" -o "$out/sweep_fmnist_regime1_analysed.h5" | sed '$d'
"$python" scripts/plot_sweep.py "$out/sweep_fmnist_regime1_analysed.h5" --out "$out/sweep_fmnist_regime1.png" >/dev/null

echo "demo finished in $(( $(date +%s) - start )) s"
echo "files:   $out/dmft_convergence.h5 $out/sweep_fmnist_regime1.h5 $out/sweep_fmnist_regime1_analysed.h5"
echo "figures: $out/dmft_convergence.png $out/sweep_fmnist_regime1.png"
