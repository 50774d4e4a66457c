#!/usr/bin/python3
"""Coordinate-check panels from a `moedmft coord-check --output FILE` result.

One panel per family of quantities (activations, effective updates, propagating updates,
aggregation terms, backward terms): RMS (seed mean, error bars = seed min..max) against the
ladder scale n on log-log axes, one line style per diagnostics step, one colour per quantity,
and the calculus' predicted slope as a dashed reference line anchored at the smallest size.

usage: /usr/bin/python3 scripts/plot_coord_check.py results/coord_I_mup_sgd.h5 [-o out.png] [--steps 0,1,3]
"""
import argparse
import warnings

import h5py
import numpy as np

from figstyle import panels, save, text

FAMILIES = {
    "activations": ["rms/h1", "b0/rms/psi", "b0/rms/a", "b0/rms/o", "b0/rms/hagg", "rms/f"],
    "effective updates": ["coord/eff/in", "b0/coord/eff/router", "b0/coord/eff/expert1",
                          "b0/coord/eff/expert2", "coord/eff/out"],
    "propagating updates": ["b0/coord/prop/router", "b0/coord/prop/expert1", "b0/coord/prop/expert2",
                            "coord/prop/out"],
    "aggregation terms": ["b0/agg/init", "b0/agg/prop", "b0/agg/eff", "b0/agg/cross"],
    "backward into h1": ["b0/back/init", "b0/back/w2", "b0/back/w1", "b0/back/cross"],
}
STYLES = ["-", "--", "-.", (0, (3, 1, 1, 1, 1, 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("-o", "--output", help="image file (default: FILE with .png)")
    ap.add_argument("--steps", help="diag steps to draw, comma separated (default: all)")
    a = ap.parse_args()
    with h5py.File(a.file, "r") as f:
        sizes = f["size"][:].astype(float)
        steps = list(f["diag_step"][:])
        metrics = [text(m) for m in f["metric"][:]]
        values = f["values"][:]  # [size, seed, diag_step, metric]
        predicted = f["predicted"][:]  # [diag_step, metric], NaN: none or zero
        verdict = f["verdict_code"][:]  # 0 -, 1 agree, 2 disagree, 3 zero, 4 n/a
        title = "coord-check: regime %s, %s, %s (lr %g)" % (
            text(f.attrs["regime"]), text(f.attrs["param"]), text(f.attrs["optimizer"]), float(f.attrs["lr"]))
    chosen = [int(s) for s in a.steps.split(",")] if a.steps else steps
    fig, axes = panels(len(FAMILIES) + 1)
    for ax, (family, cols) in zip(axes, FAMILIES.items()):
        for ci, col in enumerate(c for c in cols if c in metrics):
            m = metrics.index(col)
            colour = "C%d" % ci
            for si, step in enumerate(chosen):
                if step not in steps:
                    continue
                d = steps.index(step)
                v = np.abs(values[:, :, d, m])
                if not np.any(np.isfinite(v) & (v > 0)):
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a size where every seed diverged
                    mean = np.nanmean(v, axis=1)
                    lo, hi = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
                label = col if si == len(chosen) - 1 else None
                mark = "x" if verdict[d, m] == 2 else "o"
                ax.errorbar(sizes, mean, yerr=[mean - lo, hi - mean], fmt=mark, ls=STYLES[si % len(STYLES)],
                            color=colour, ms=4, lw=1.2, label=label, alpha=0.35 + 0.65 * (si + 1) / len(chosen))
                p = predicted[d, m]
                if si == len(chosen) - 1 and np.isfinite(p) and mean[0] > 0:
                    ax.plot(sizes, mean[0] * (sizes / sizes[0]) ** p, color=colour, ls=(0, (1, 3)), lw=1.5)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("N (ladder scale n)")
        ax.set_ylabel("RMS (seed mean, min..max)")
        ax.set_title(family)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(ncol=2 if len(cols) > 4 else 1)
    # The last panel holds the caption: a suptitle this long would not fit at paper width.
    axes[-1].axis("off")
    axes[-1].text(0, 1, title.replace(": ", ":\n", 1) + "\nline styles: diag steps %s (faint = early)\n"
                  "dotted: predicted slope at step %s\nx marker: disagrees with the prediction"
                  % (",".join(map(str, chosen)), chosen[-1]), va="top", ha="left", transform=axes[-1].transAxes)
    out = a.output or a.file.rsplit(".", 1)[0] + ".png"
    save(fig, out)


if __name__ == "__main__":
    main()
