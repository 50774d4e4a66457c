#!/usr/bin/env bash
# Runs a tiny sweep with the CLI and checks that xarray (h5netcdf engine) opens the gathered
# file with the documented dimension names and shapes.
set -euo pipefail
moedmft=$1
source_dir=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$moedmft" sweep -q -c "$source_dir/tests/tiny_sweep.toml" -o "$work/sweep.h5" >/dev/null
python=/usr/bin/python3; [[ -x $python ]] || python=python3
"$python" - "$work/sweep.h5" <<'PY'
import sys
import xarray as xr
ds = xr.open_dataset(sys.argv[1], engine="h5netcdf")
expect = {
    "train_loss": ("parameterization", "lr", "step"),
    "val_loss": ("parameterization", "lr", "diag_step"),
    "val_accuracy": ("parameterization", "lr", "diag_step"),
    "diagnostics": ("parameterization", "lr", "diag_step", "metric"),
    "diverged": ("parameterization", "lr"),
}
for name, dims in expect.items():
    assert ds[name].dims == dims, (name, ds[name].dims)
assert list(ds.parameterization.values) == ["sp", "mup-I-sgd"], ds.parameterization.values
assert list(ds.lr.values) == [0.01, 0.1, 1.0]
assert ds.sizes["step"] == 20 and list(ds.diag_step.values) == [0, 10, 20]
assert "b0/agg/eff" in list(ds.metric.values)
value = float(ds.train_loss.sel(parameterization="mup-I-sgd", lr=0.1).isel(step=0))
assert value > 0, value
print("xarray schema ok:", dict(ds.sizes))
PY

# The docs/sweep_format.md recipe for the optimal LR gives what `moedmft analyze` finds.
cat >"$work/lr.toml" <<'T'
[base.model]
N = 8
Ne = 8
M = 4
[base.train]
steps = 30
diag_every = 0
[[axis]]
name = "size"
keys = ["model.N", "model.Ne"]
values = [8, 16]
[[axis]]
name = "lr"
key = "optim.lr"
values = [0.03, 0.1, 0.3, 1.0, 30.0]
[[axis]]
name = "seed"
key = "seed"
values = [1, 2]
T
"$moedmft" sweep -q -c "$work/lr.toml" -o "$work/lr.h5" >/dev/null
"$moedmft" analyze "$work/lr.h5" -o "$work/analysis.h5" >/dev/null
"$python" - "$work/lr.h5" "$work/analysis.h5" <<'PY'
import sys
import h5py
import numpy as np
import xarray as xr
ds = xr.open_dataset(sys.argv[1], engine="h5netcdf")
# --- the recipe, as printed in docs/sweep_format.md ---
window = max(1, round(0.1 * ds.sizes["step"]))  # analyze --window (default 0.1 of the steps)
final = ds.train_loss.isel(step=slice(-window, None)).mean("step", skipna=False).mean("seed", skipna=False)
best = final.where(np.isfinite(final)).idxmin("lr")  # optimal LR per size (diverged LRs excluded)
# ---
with h5py.File(sys.argv[2], "r") as f:
    analyze = f["analysis/optimal_lr"][()].ravel()
assert np.allclose(best.values.ravel(), analyze, equal_nan=True), (best.values, analyze)
assert bool(ds.diverged.sel(lr=30.0).any()), "the largest LR was meant to diverge"
print("recipe optimum = analyze optimum:", analyze)
PY
