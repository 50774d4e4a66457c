"""Opens every output kind (tests/make_small_outputs.sh) in xarray and checks the layout
(docs/output_format.md), then runs every scripts/plot_*.py on them with MPLBACKEND=Agg, checking
exit 0, a PNG and the paper-width limit. Usage: check_outputs.py DIR SOURCE_DIR"""
import os
import struct
import subprocess
import sys

import numpy as np
import xarray as xr

d, src = sys.argv[1], sys.argv[2]


def open_(name, group=None):
    return xr.open_dataset(os.path.join(d, name), engine="h5netcdf", group=group)


def described(ds, names):
    for n in names:
        assert "long_name" in ds[n].attrs and "units" in ds[n].attrs, (n, ds[n].attrs)


def integer(ds, names):
    for n in names:
        assert ds[n].dtype.kind in "iu", (n, ds[n].dtype)


m = open_("train.h5", "metrics")
assert m.train_loss.dims == ("step",) and "convention" in m.train_loss.attrs
integer(m, ["step"]); described(m, ["train_loss"])
g = open_("train.h5", "diagnostics"); described(g, ["values", "val_loss"]); integer(g, ["diag_step"])
p = open_("train.h5", "param"); integer(p, ["zero_init"]); described(p, ["lr", "init_std"])
for grp in ("weights", "weights_init"):
    w = open_("train.h5", grp)
    assert w.w_expert1.dims == ("expert", "hidden", "expert_hidden") and w.w_in.dims == ("feature", "hidden")
    described(w, ["w_in", "w_out"])
data = open_("data.h5")
assert data.x.dims == ("point", "feature") and data.y.dims == ("point", "output"); described(data, ["x", "y"])
sw = open_("sweep.h5")
assert sw.train_loss.dims == ("size", "lr", "seed", "step")
integer(sw, ["diverged", "diverged_at", "size", "seed", "step"]); described(sw, ["train_loss", "diverged", "wall_seconds"])
assert list(sw.seed.values) == [1, 2] and int(sw.diverged.sel(lr=50.0).max()) == 1 and int(sw.diverged.sel(lr=0.005).max()) == 0
an = open_("sweep.h5", "analysis"); integer(an, ["transfers", "monotonic", "optimum_bracketed", "size"])
dm = open_("dmft.h5")
assert dm.Phi_two.dims == ("layer", "step", "point", "step2", "point2")
described(dm, ["loss", "f", "Phi"]); integer(dm, ["step", "point"])
mo = open_("dmft_moe.h5"); cv = open_("converge.h5")
conv = {dm.loss.attrs["convention"], mo.loss.attrs["convention"], cv.limit_loss.attrs["convention"],
        cv.finite_loss.attrs["convention"]}
assert len(conv) == 1, conv
# dmft stores mean MSE: loss(0) = mean y^2 (f(0) = 0 for antithetic samples)
assert np.isclose(float(dm.loss[0]), float((dm.y ** 2).mean()), rtol=1e-6)
assert cv.finite_loss.dims == ("width", "seed", "step") and cv.sizes["step"] == cv.limit_loss.sizes["step"]
assert list(cv.seed.values) == [1, 2]; integer(cv, ["in_gap_fit", "width", "seed"])
cc = open_("coord.h5"); integer(cc, ["verdict_code", "measured_zero", "size", "seed"]); described(cc, ["values", "slope"])
print("xarray layout ok")

py = sys.executable
s = os.path.join(src, "scripts")
out = os.path.join(d, "fig")
os.makedirs(out, exist_ok=True)
j = lambda n: os.path.join(d, n)  # noqa: E731
runs = {
    "plot_runs.py": [j("train_N8.h5"), j("train_N16.h5"), j("sweep.h5"), "--out"],
    "plot_sweep.py": [j("sweep.h5"), "--out"],
    "plot_sweep_dmft.py": [j("sweep.h5"), "--dmft", j("dmft_moe.h5"), "--out"],
    "plot_dmft.py": [j("dmft.h5"), "--out"],
    "plot_convergence.py": [j("converge.h5"), "--out"],
    "plot_coord_check.py": [j("coord.h5"), "-o"],
    "plot_delay.py": [j("sweep.h5"), "--out"],
    "plot_delay_limit.py": ["--mup", j("converge.h5"), "--mssp", j("converge.h5"), "--out"],
}
env = dict(os.environ, MPLBACKEND="Agg")
for script, argv in runs.items():
    png = os.path.join(out, script.replace(".py", ".png"))
    r = subprocess.run([py, os.path.join(s, script)] + argv + [png], env=env, capture_output=True, text=True)
    assert r.returncode == 0, (script, r.stderr[-2000:])
    with open(png, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", script
    width = struct.unpack(">I", head[16:20])[0]
    assert width <= 7.0 * 200 + 1, (script, width)  # paper width at figstyle.DPI
    if script == "plot_runs.py":
        assert "skipping" in r.stderr and "sweep.h5" in r.stderr, r.stderr
print("plots ok:", ", ".join(runs))
