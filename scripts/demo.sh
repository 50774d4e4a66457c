#!/usr/bin/env bash
# Set up (install what is missing, build), then train a regime-I muP MoE on a synthetic teacher at
# three widths, write the HDF5 runs and a PNG of the loss curves, and say where they are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

out=results/demo
mkdir -p "$out"
python=/usr/bin/python3; [[ -x $python ]] || python=python3   # Debian's python has h5py/matplotlib
runs=()
start=$(date +%s)
for n in 64 256 1024; do
  file="$out/regime1_mup_N$n.h5"
  echo "== N = Ne = $n"
  ./build/experiments/moedmft train --config experiments/configs/demo_regime1_mup.toml \
    --set model.N=$n --set model.Ne=$n --output "$file" >/dev/null
  runs+=("$file")
done
"$python" scripts/plot_runs.py "${runs[@]}" --out "$out/loss_curves.png" >/dev/null
"$python" - "${runs[@]}" <<'PY'
import sys, h5py, numpy as np
print(f"{'run':40s} {'final train loss (mean of last 50)':>36s} {'final val loss':>15s}")
for path in sys.argv[1:]:
    with h5py.File(path, "r") as f:
        train = f["metrics/train_loss"][-50:].mean()
        val = f["diagnostics/val_loss"][-1]
        print(f"{path:40s} {train:36.4f} {val:15.4f}")
PY
echo "demo finished in $(( $(date +%s) - start )) s"
echo "runs:   ${runs[*]}"
echo "figure: $out/loss_curves.png"
