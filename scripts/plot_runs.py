#!/usr/bin/env python3
"""Loss curves and aggregation-decomposition summary of `moedmft train` outputs (h5py + matplotlib).

usage: plot_runs.py RUN.h5 [RUN.h5 ...] --out FIGURE.png

Files of another kind (a sweep, a DMFT limit: their own plot_*.py scripts) are skipped with a note,
so `plot_runs.py results/*.h5` works on a mixed directory.
"""
import argparse
import re
import sys

import h5py
import numpy as np

from figstyle import colors, mark_diverged, panels, save, text


def read_run(path):
    with h5py.File(path, "r") as f:
        kind = text(f.attrs.get("kind", ""))
        if kind != "train":
            print(f"plot_runs.py: skipping {path} (kind '{kind}', not a `moedmft train` file)", file=sys.stderr)
            return None
        config = text(f.attrs["config_toml"])
        width = int(re.search(r"^N = (\d+)", config.split("[model]")[1], re.M).group(1))
        run = {
            "path": path,
            "N": width,
            "param": text(f["param"].attrs["name"]),
            "train_loss": f["metrics/train_loss"][:],
            "diverged": bool(f.attrs["diverged"]),
        }
        if "diagnostics" in f:
            names = [text(n) for n in f["diagnostics/metric"][:]]
            run["diag_step"] = f["diagnostics/diag_step"][:]
            run["val_loss"] = f["diagnostics/val_loss"][:]
            run["diag"] = dict(zip(names, f["diagnostics/values"][:].T))
    return run


def running_mean(x, window):
    if len(x) < window:
        return x
    kernel = np.ones(window) / window
    return np.convolve(x, kernel, mode="valid")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--window", type=int, default=20, help="running-mean window for the train loss")
    args = parser.parse_args()

    runs = sorted((r for r in map(read_run, args.runs) if r is not None), key=lambda r: r["N"])
    if not runs:
        raise SystemExit("plot_runs.py: no `moedmft train` files among the inputs")
    palette = colors(len(runs))
    fig, axes = panels(3)

    for run, color in zip(runs, palette):
        label = f"N = {run['N']}" + (" (diverged)" if run["diverged"] else "")
        smooth = running_mean(run["train_loss"], args.window)
        window = len(run["train_loss"]) - len(smooth) + 1
        axes[0].plot(np.arange(len(smooth)) + window - 1, smooth, color=color, label=label)
        if "val_loss" in run:
            axes[1].plot(run["diag_step"], run["val_loss"], "o-", ms=3, color=color, label=label)
    axes[0].set(yscale="log", xlabel="step", ylabel=f"train loss (mean of {args.window})",
                title=f"{runs[0]['param']}: training loss")
    axes[1].set(yscale="log", xlabel="step", ylabel="validation loss", title="validation loss")

    # Final-step RMS of the four aggregation terms versus width (block 0).
    widths = [r["N"] for r in runs if "diag" in r]
    for term, marker in [("init", "o"), ("prop", "s"), ("eff", "^"), ("cross", "v")]:
        key = f"b0/agg/{term}"
        values = [r["diag"][key][-1] for r in runs if "diag" in r and key in r["diag"]]
        if len(values) == len(widths) and any(v > 0 for v in values):
            axes[2].plot(widths, values, marker + "-", label=term)
    mark_diverged(axes[2], [r["N"] for r in runs if r["diverged"]])
    axes[2].set(xscale="log", yscale="log", xlabel="N", ylabel="RMS at the last step",
                title="aggregation terms (block 0)")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
