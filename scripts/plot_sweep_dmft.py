#!/usr/bin/env python3
"""Finite widths of a sweep against the infinite-width limit: the seed-mean training loss per N as
points with the DMFT limit's curve over them, and the RMS gap to the limit versus N.

usage: plot_sweep_dmft.py SWEEP.h5 --out FIGURE.png [--dmft LIMIT.h5] [--lr LR]
                          [--select AXIS=VALUE ...] [--size-axis size] [--seed-axis seed]

LIMIT.h5 is a `moedmft dmft-moe` (or dense `moedmft dmft`) file; all three share the loss
convention (mean over points of (f - y)^2, the `convention` attribute of each loss variable). The
LR defaults to the limit's `lr` attribute (nearest grid LR), else the middle of the grid. Any other
axis is fixed by --select, or to the limit's parameterization when that is one of its values, or
else to its first value. Without --dmft the second panel is the final loss versus N. A size at
which a seed diverged is marked by an x at the top of the panel.
"""
import argparse
import warnings

import h5py
import numpy as np
import xarray as xr

from figstyle import colors, mark_diverged, panels, save, text


def read_limit(path):
    with h5py.File(path, "r") as f:
        kind = text(f.attrs.get("kind", ""))
        if kind not in ("dmft_moe", "dmft"):
            raise SystemExit(f"{path}: not a `moedmft dmft-moe` or `moedmft dmft` file (kind '{kind}')")
        table = text(f["param"].attrs["name"]) if "param" in f else None
        lr = float(f.attrs["lr"]) if "lr" in f.attrs else None
        return {"kind": kind, "loss": f["loss"][:], "err": f["loss_err"][:], "table": table, "lr": lr}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dmft", help="dmft-moe or dmft file of the limit")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--select", action="append", default=[], metavar="AXIS=VALUE")
    parser.add_argument("--size-axis", default="size")
    parser.add_argument("--seed-axis", default="seed")
    args = parser.parse_args()

    ds = xr.open_dataset(args.sweep, engine="h5netcdf")
    if text(ds.attrs.get("kind", "")) != "sweep":
        raise SystemExit(f"{args.sweep}: not a `moedmft sweep` file")
    limit = read_limit(args.dmft) if args.dmft else None
    loss = ds.train_loss
    if args.size_axis not in loss.dims:
        raise SystemExit(f"{args.sweep}: no axis '{args.size_axis}' (axes: {', '.join(loss.dims[:-1])})")
    lr = args.lr if args.lr is not None else (limit or {}).get("lr")
    if "lr" in loss.dims:
        loss = loss.sel(lr=lr, method="nearest") if lr is not None else loss.isel(lr=loss.sizes["lr"] // 2)
    chosen = dict(s.split("=", 1) for s in args.select)
    for dim in [d for d in loss.dims if d not in (args.size_axis, args.seed_axis, "step")]:
        values = [text(v) for v in loss[dim].values]
        pick = chosen.get(dim, limit["table"] if limit and limit["table"] in values else values[0])
        loss = loss.isel({dim: values.index(pick)})
    finite = loss.transpose(args.size_axis, ..., "step").values
    finite = finite.reshape(finite.shape[0], -1, finite.shape[-1])  # [size, seed, step]
    sizes = loss[args.size_axis].values
    diverged = [n for n, run in zip(sizes, finite) if not np.isfinite(run).all()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where every seed diverged
        mean = np.nanmean(finite, axis=1)
    fixed = ", ".join(f"{k} = {text(v.values)}" for k, v in loss.coords.items() if v.ndim == 0)

    fig, (ax1, ax2) = panels(2)
    steps = np.arange(mean.shape[1])
    every = max(1, len(steps) // 25)
    for s, (n, c) in enumerate(zip(sizes, colors(len(sizes)))):
        ax1.plot(steps[::every], mean[s, ::every], "o", ms=3, color=c, label=f"N = {n}")
    if limit:
        t = np.arange(min(len(limit["loss"]), len(steps)))
        band = (limit["loss"][t] - 2 * limit["err"][t], limit["loss"][t] + 2 * limit["err"][t])
        ax1.fill_between(t, *band, color="k", alpha=0.2)
        ax1.plot(t, limit["loss"][t], "k-", lw=1.5, label="DMFT limit")
    ax1.set(yscale="log", xlabel="step", ylabel="training loss (seed mean)", title=fixed)
    ax1.legend(ncol=2)

    if limit:
        t = np.arange(min(len(limit["loss"]), len(steps)))
        gap = np.sqrt(np.nanmean((mean[:, t] - limit["loss"][t]) ** 2, axis=1))
        ok = np.isfinite(gap)
        ax2.plot(sizes[ok], gap[ok], "o-", color="C0", label="RMS gap to the limit")
        if ok.any():
            n = sizes.astype(float)
            n0, g0 = n[ok][0], gap[ok][0]
            ax2.plot(n, g0 * n0 / n, ":", color="gray", label=r"$N^{-1}$")
            ax2.plot(n, g0 * np.sqrt(n0 / n), "-.", color="gray", label=r"$N^{-1/2}$")
        ax2.set(ylabel="RMS over steps", title="gap of the seed mean to the limit")
    else:
        tail = max(1, len(steps) // 10)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            final = np.nanmean(mean[:, -tail:], axis=1)
        ax2.plot(sizes, final, "o-", color="C0", label="final loss")
        ax2.set(ylabel=f"loss (mean of the last {tail} steps)", title="final loss versus N")
    mark_diverged(ax2, diverged)
    ax2.set(xscale="log", yscale="log", xlabel="N")
    ax2.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
