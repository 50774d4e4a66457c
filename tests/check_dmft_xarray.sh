#!/usr/bin/env bash
# Runs a small `moedmft dmft` solve with the CLI and checks the output file's dimensions in xarray.
set -euo pipefail
moedmft=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$moedmft" dmft -q --set dmft.T=20 --set dmft.L=2 --set dmft.samples=256 --set dmft.replicates=3 \
  --set data.P=6 -o "$work/dmft.h5" >/dev/null
python=/usr/bin/python3; [[ -x $python ]] || python=python3
"$python" - "$work/dmft.h5" <<'PY'
import sys
import numpy as np
import xarray as xr
ds = xr.open_dataset(sys.argv[1], engine="h5netcdf")
assert ds.f.dims == ("step", "point") and ds.sizes["step"] == 21 and ds.sizes["point"] == 6, ds.f.dims
assert ds.Phi.dims == ("layer", "step", "point", "point2") and ds.sizes["layer"] == 2
assert ds.f_replicates.dims == ("replicate", "step", "point") and ds.sizes["replicate"] == 3
assert float(abs(ds.f.isel(step=0)).max()) < 1e-12      # antithetic pairs: f(0) = 0 up to round-off
assert float(ds.loss[-1]) < float(ds.loss[0])               # it trains
K = ds.Phi.isel(layer=0, step=-1).values
assert np.allclose(K, K.T) and np.linalg.eigvalsh(K).min() > -1e-10   # symmetric PSD
print("dmft file ok:", dict(ds.sizes))
PY

# method = exact (deterministic, one replicate, zero error bars) and a two-layer SignGD run.
"$moedmft" dmft -q --set dmft.T=10 --set dmft.L=2 --set dmft.activation='"identity"' --set dmft.method='"exact"' \
  --set data.P=4 -o "$work/exact.h5" >/dev/null
"$moedmft" dmft -q --set dmft.T=10 --set dmft.optimizer='"signgd"' --set dmft.samples=256 --set dmft.replicates=2 \
  --set data.P=4 -o "$work/signgd.h5" >/dev/null
if "$moedmft" dmft -q --set dmft.method='"exact"' -o "$work/bad.h5" 2>"$work/err.txt"; then
  echo "method = exact with tanh was accepted"; exit 1
fi
grep -q "dmft.method" "$work/err.txt"
"$python" - "$work/exact.h5" "$work/signgd.h5" <<'PY'
import sys
import xarray as xr
ex = xr.open_dataset(sys.argv[1], engine="h5netcdf")
assert ex.sizes["replicate"] == 1 and float(abs(ex.f_err).max()) == 0.0
assert float(abs(ex.f.isel(step=0)).max()) == 0.0 and float(ex.loss[-1]) < float(ex.loss[0])
sg = xr.open_dataset(sys.argv[2], engine="h5netcdf")
assert float(sg.loss[-1]) < float(sg.loss[0]) and "optimizer = 'signgd'" in sg.attrs["config_toml"]
print("dmft exact and signgd files ok")
PY
