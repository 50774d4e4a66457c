#!/usr/bin/env bash
# Runs a tiny `moedmft dmft-moe` and `moedmft converge` with the CLI and checks both files'
# dimensions in xarray. Usage: check_moe_xarray.sh MOEDMFT CONFIG [WIDTHS] [EXTRA_OVERRIDES]
# (the regime comes from the file).
set -euo pipefail
moedmft=$1
config=$2
widths=${3:-8,16,32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
small=(--set train.steps=5 --set data.P=6 --set model.M=4 --set model.K=4 --set dmft.samples=128 --set dmft.replicates=2
       --set dmft.expert_samples=64 ${4:-})
"$moedmft" dmft-moe -q -c "$config" "${small[@]}" -o "$work/limit.h5" >/dev/null
"$moedmft" converge -q -c "$config" "${small[@]}" --widths "$widths" --seeds 2 -o "$work/conv.h5" >/dev/null
python=/usr/bin/python3; [[ -x $python ]] || python=python3
"$python" - "$work/limit.h5" "$work/conv.h5" "$widths" <<'PY'
import sys
import xarray as xr
lim = xr.open_dataset(sys.argv[1], engine="h5netcdf")
import h5py
regime = h5py.File(sys.argv[1])["limit_constants"].attrs["regime"]
assert lim.loss.dims == ("step",) and lim.sizes["step"] == 6, lim.loss.dims
if regime == "I":
    assert lim.router_logits.dims == ("step", "expert", "point") and lim.sizes["expert"] == 4
else:
    assert lim.logit_std.dims == ("step", "point"), lim.logit_std.dims
    assert lim.load_stats.dims == ("step", "load_stat") and lim.sizes["load_stat"] == 3
    assert lim.kernel_expert_gated.dims == ("step", "point", "point2")
if regime == "III":
    assert int(h5py.File(sys.argv[1]).attrs["neuron_samples"]) == 64
    assert h5py.File(sys.argv[1])["limit_constants"].attrs["shared"] == 1.0
assert lim.aggregation_rms.dims == ("step", "term") and lim.sizes["term"] == 5
assert lim.kernel_h1.dims == ("step", "point", "point2")
assert float(lim.loss[-1]) < float(lim.loss[0])
conv = xr.open_dataset(sys.argv[2], engine="h5netcdf")
# One time axis shared with the limit; real seed values (the config's seed = 1, then 2).
assert conv.finite_loss.dims == ("width", "seed", "step"), conv.finite_loss.dims
assert conv.sizes["step"] == conv.limit_loss.sizes["step"] and list(conv.seed.values) == [1, 2], conv.seed.values
assert conv.finite_loss.isel(step=-1).isnull().all() and conv.finite_loss.isel(step=0).notnull().all()
assert conv.in_gap_fit.dtype.kind in "iu" and "convention" in conv.finite_loss.attrs
assert list(conv.width.values) == [int(w) for w in sys.argv[3].split(",")] and conv.sizes["seed"] == 2
assert conv.gap.dims == ("width",) and conv.limit_loss.dims == ("step",)
assert lim.loss.attrs["convention"] == conv.limit_loss.attrs["convention"] == conv.finite_loss.attrs["convention"]
print("moe limit files ok (regime %s):" % regime, dict(lim.sizes), dict(conv.sizes))
PY
