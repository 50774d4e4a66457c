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
