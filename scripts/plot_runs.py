#!/usr/bin/env python3
"""Loss curves and aggregation-decomposition summary of `moedmft train` outputs (h5py + matplotlib).

usage: plot_runs.py RUN.h5 [RUN.h5 ...] --out FIGURE.png
"""
import argparse
import re

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def read_run(path):
    with h5py.File(path, "r") as f:
        config = f.attrs["config_toml"]
        config = config.decode() if isinstance(config, bytes) else config
        width = int(re.search(r"^N = (\d+)", config.split("[model]")[1], re.M).group(1))
        run = {
            "path": path,
            "N": width,
            "param": f["param"].attrs["name"],
            "train_loss": f["metrics/train_loss"][:],
            "diverged": bool(f.attrs["diverged"]),
        }
        if "diagnostics" in f:
            names = [n.decode() if isinstance(n, bytes) else n for n in f["diagnostics/metric"][:]]
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

    runs = sorted((read_run(p) for p in args.runs), key=lambda r: r["N"])
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(runs)))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    for run, color in zip(runs, colors):
        label = f"N = Ne = {run['N']}" + (" (diverged)" if run["diverged"] else "")
        smooth = running_mean(run["train_loss"], args.window)
        axes[0].plot(np.arange(len(smooth)) + args.window - 1, smooth, color=color, label=label)
        if "val_loss" in run:
            axes[1].plot(run["diag_step"], run["val_loss"], "o-", ms=3, color=color, label=label)
    axes[0].set(yscale="log", xlabel="step", ylabel=f"train loss (running mean of {args.window})",
                title=f"{runs[0]['param']}: training loss")
    axes[1].set(yscale="log", xlabel="step", ylabel="validation loss", title="validation loss")

    # Final-step RMS of the four aggregation terms versus width (block 0).
    widths = [r["N"] for r in runs if "diag" in r]
    for term, marker in [("init", "o"), ("prop", "s"), ("eff", "^"), ("cross", "v")]:
        key = f"b0/agg/{term}"
        values = [r["diag"][key][-1] for r in runs if "diag" in r and key in r["diag"]]
        if len(values) == len(widths) and any(v > 0 for v in values):
            axes[2].plot(widths, values, marker + "-", label=term)
    axes[2].set(xscale="log", yscale="log", xlabel="N = Ne", ylabel="RMS at the last step",
                title="aggregation decomposition (block 0)")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
