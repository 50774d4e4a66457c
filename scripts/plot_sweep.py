#!/usr/bin/env python3
"""LR-transfer figure of an analysed sweep (`moedmft analyze FILE -o ANALYSED.h5` first): loss versus LR per size
with the optima marked (one panel per group), optimal LR versus size, and the loss curves at the
transferred LR.

usage: plot_sweep.py SWEEP.h5 --out FIGURE.png

An LR at which a run diverged (final loss NaN or Inf) is marked by an x at the top of its panel.
The limit over the finite widths: scripts/plot_sweep_dmft.py.
"""
import argparse
import warnings

import h5py
import numpy as np

import figstyle
from figstyle import colors, mark_diverged, panels, save


def text(values):
    return [figstyle.text(v) for v in values]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    with h5py.File(args.sweep, "r") as f:
        if "analysis" not in f:
            raise SystemExit(f"{args.sweep}: no /analysis group; run `moedmft analyze {args.sweep} -o ANALYSED.h5` and plot ANALYSED.h5")
        a = f["analysis"]
        groups = text(a["group"][:])
        sizes, lrs = a["size"][:], a["lr"][:]
        loss, err = a["final_loss"][:], a["final_loss_err"][:]
        best = a["optimal_lr"][:]
        best_err = a["optimal_lr_index_err"][:]
        transferred = a["transferred_lr"][:]
        transfers, monotonic = a["transfers"][:], a["monotonic"][:]
        drift = a["drift"][:]
        # files analysed before the three-way verdict have no transfer_verdict
        verdicts = text(a["transfer_verdict"][:]) if "transfer_verdict" in a else [
            "transfers" if t else f"drifts {d:+.0f} steps" for t, d in zip(transfers, drift)]
        axes = figstyle.text(f.attrs["axes"]).split(",")
        train = f["train_loss"][:]
        lr_axis_values = f["lr"][:]

    n = len(groups)
    fig, axs = panels(n + 2)
    palette = colors(len(sizes))
    top = np.nanmax(np.where(np.isfinite(loss), loss, np.nan))
    bottom = np.nanmin(np.where(np.isfinite(loss), loss, np.nan))
    for g, name in enumerate(groups):
        ax = axs[g]
        for s, size in enumerate(sizes):
            y = loss[g, s]
            ax.errorbar(lrs, y, yerr=err[g, s], color=palette[s], marker="o", ms=3, label=f"N = {size:g}")
            if np.isfinite(best[g, s]):
                j = int(np.argmin(np.abs(lrs - best[g, s])))
                ax.plot(lrs[j], y[j], "*", ms=10, color=palette[s], markeredgecolor="k")
        diverged = sorted({lr for s in range(len(sizes)) for lr, v in zip(lrs, loss[g, s]) if not np.isfinite(v)})
        mark_diverged(ax, diverged)
        verdict = verdicts[g] + (f" ({drift[g]:+.0f} steps)" if verdicts[g] in ("drifts", "inconclusive") else "") + (
            ", monotonic" if monotonic[g] else ", not monotonic")
        ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final loss", title=f"{name}\n{verdict}",
               ylim=(bottom * 0.8, min(top, bottom * 50) * 1.2))
        ax.legend()

    ax = axs[n]
    log_step = np.log2(lrs[1] / lrs[0]) if len(lrs) > 1 else 1.0
    for g, name in enumerate(groups):
        ax.errorbar(sizes * (1 + 0.03 * g), best[g], yerr=best[g] * (2 ** (best_err[g] * log_step) - 1),
                    marker="o", capsize=3, label=name)
    ax.set(xscale="log", yscale="log", xlabel="N", ylabel="optimal learning rate", title="optimal LR versus N")
    ax.legend()

    # Loss curves at each group's transferred LR (seed mean), one line per size.
    ax = axs[n + 1]
    styles = ["-", "--", ":", "-."]
    curve_bounds = []
    for g, name in enumerate(groups):
        if not np.isfinite(transferred[g]):
            continue
        names = list(axes)
        block = np.take(train, int(np.argmin(np.abs(lr_axis_values - transferred[g]))), axis=names.index("lr"))
        names.remove("lr")
        if "seed" in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN where every seed diverged
                block = np.nanmean(block, axis=names.index("seed"))
            names.remove("seed")
        block = np.moveaxis(block, names.index("size"), -2)
        # The remaining leading axes are the group axes in file order, as `moedmft analyze` orders groups.
        curves = block.reshape(-1, block.shape[-2], block.shape[-1])[g]
        curve_bounds += [np.nanmax(curves[:, 0]), np.nanmin(curves)]
        for s, size in enumerate(sizes):
            ax.plot(curves[s], styles[g % len(styles)], color=palette[s], lw=1,
                    label=f"{name}, N = {size:g}" if s in (0, len(sizes) - 1) else None)
    if curve_bounds:  # a run blowing up must not flatten the others
        ax.set_ylim(0.8 * np.nanmin(curve_bounds[1::2]), 3 * np.nanmax(curve_bounds[0::2]))
    ax.set(yscale="log", xlabel="step", ylabel="train loss (seed mean)", title="at the transferred LR")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
