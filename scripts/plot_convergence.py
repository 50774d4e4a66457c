#!/usr/bin/env python3
"""Finite width against the MoE DMFT limit, regime I, II or III (`moedmft converge` output): seed-mean loss curves
per width over the limit with its error band, and the gap and seed spread versus N on log-log axes
with the fitted slopes.

usage: plot_convergence.py CONVERGENCE.h5 --out FIGURE.png
"""
import argparse
import warnings

import h5py
import numpy as np

from figstyle import colors, mark_diverged, panels, save, text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("convergence")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    with h5py.File(args.convergence, "r") as f:
        if text(f.attrs.get("kind", "")) != "dmft_convergence":
            raise SystemExit(f"{args.convergence}: not a `moedmft converge` file")
        widths = f["width"][:]
        finite = f["finite_loss"][:]  # [width, seed, step], NaN at the last step (loss before each update)
        limit, limit_err = f["limit_loss"][:], f["limit_loss_err"][:]
        gap, gap_err, spread = f["gap"][:], f["gap_err"][:], f["spread"][:]
        used = f["in_gap_fit"][:].astype(bool)
        fits = {k: (f.attrs[k + "_slope"], f.attrs[k + "_slope_lo"], f.attrs[k + "_slope_hi"]) for k in ("gap", "spread")}
        table = text(f["param"].attrs["name"])
        regime = text(f["limit_constants"].attrs.get("regime", "I"))

    steps = min(finite.shape[2], len(limit))
    t = np.arange(steps)
    fig, (ax1, ax2) = panels(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: the last step, diverged runs
        mean = np.nanmean(finite[:, :, :steps], axis=1)
    for w, c in zip(range(len(widths)), colors(len(widths))):
        ax1.plot(t, mean[w], color=c, lw=1.2, label=f"N = {widths[w]}")
    ax1.plot(t, limit[:steps], "k--", lw=1.5, label="DMFT limit")
    ax1.fill_between(t, limit[:steps] - 2 * limit_err[:steps], limit[:steps] + 2 * limit_err[:steps], color="k", alpha=0.2)
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (seed mean)")
    ax1.set_title(f"{table}: finite widths vs the limit")
    ax1.legend(ncol=2)

    ax2.errorbar(widths[used], gap[used], yerr=gap_err[used], fmt="o", color="C0", label="gap (in fit)")
    ax2.errorbar(widths[~used], gap[~used], yerr=gap_err[~used], fmt="o", mfc="none", color="C0", label="gap (below 2 error bars)")
    ax2.plot(widths, spread, "s", color="C1", label="seed spread")
    for key, color, pts in (("gap", "C0", used), ("spread", "C1", np.ones_like(used))):
        slope, lo, hi = fits[key]
        ref = gap if key == "gap" else spread
        if np.isfinite(slope) and pts.any():
            n0 = widths[pts][0]
            y0 = ref[pts][0]
            ax2.plot(widths, y0 * (widths / n0) ** slope, "-", color=color, lw=1,
                     label=f"{key} ~ N^{slope:.2f} [{lo:.2f}, {hi:.2f}]")
    n = widths.astype(float)
    ax2.plot(n, gap[0] * n[0] / n, ":", color="gray", lw=1, label="N^-1")
    ax2.plot(n, spread[0] * np.sqrt(n[0] / n), "-.", color="gray", lw=1, label="N^-1/2")
    mark_diverged(ax2, widths[~np.isfinite(gap)])
    ax2.set_xscale("log", base=2)
    ax2.set_yscale("log")
    ax2.set_xlabel({"I": "N (= Ne)", "II": "N (M = N/16, Ne fixed)"}.get(regime, "N (= Ne, M = N/16)"))
    ax2.set_ylabel("RMS over steps")
    ax2.set_title("gap of the seed mean and seed spread")
    ax2.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
