#!/usr/bin/env python3
"""Delayed learning in the regime-III limits: the loss and the learned part of hagg (propagating
and effective terms) against step, for muP and MSSP, with finite widths overlaid, and the steps
to first learning.

usage: plot_delay_limit.py --mup CONV.h5 --mssp CONV.h5 [--mup-runs RUN.h5 ...]
                           [--mssp-runs RUN.h5 ...] --out FIGURE.png [--learned 1e-3]

CONV.h5 are `moedmft converge` files (the limit, with aggregation_rms, and the finite seed losses
per width). RUN.h5 are optional `moedmft train` files with diag_every = 1 (their b0/agg/prop and
b0/agg/eff columns are overlaid on the limit's). Printed per table: for the limit and each width
(seed mean), the steps until the loss falls below 0.5 and 0.2 x the zero-predictor loss (the
limit's loss at step 0, mean y^2; both limits start at f = 0), and the first step at which the
learned part of hagg (max of the propagating and effective RMS) exceeds --learned.
"""
import argparse
import tomllib

import h5py
import numpy as np

from figstyle import colors, panels, save

TERMS = {"propagating": 2, "effective": 3}


def first_below(curve, level):
    hits = np.nonzero(np.asarray(curve) < level)[0]
    return int(hits[0]) if hits.size else None


def first_above(curve, level):
    hits = np.nonzero(np.asarray(curve) > level)[0]
    return int(hits[0]) if hits.size else None


def read_conv(path):
    with h5py.File(path, "r") as f:
        return {
            "loss": f["limit_loss"][:],
            "loss_err": f["limit_loss_err"][:],
            "agg": f["limit_aggregation_rms"][:],
            "finite": f["finite_loss"][:],
            "widths": f["width"][:],
            "table": tomllib.loads(f.attrs["config_toml"])["param"]["table"]
            if "config_toml" in f.attrs else path,
        }


def read_run(path):
    with h5py.File(path, "r") as f:
        names = [m.decode() if isinstance(m, bytes) else str(m) for m in f["diagnostics/metric"][:]]
        values = f["diagnostics/values"][:]
        cfg = tomllib.loads(f.attrs["config_toml"])
    col = {n: values[:, i] for i, n in enumerate(names)}
    return cfg["model"]["N"], col["b0/agg/prop"], col["b0/agg/eff"]


def step_text(s):
    return "never" if s is None else str(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mup", required=True)
    ap.add_argument("--mssp", required=True)
    ap.add_argument("--mup-runs", nargs="*", default=[])
    ap.add_argument("--mssp-runs", nargs="*", default=[])
    ap.add_argument("--out", required=True)
    ap.add_argument("--learned", type=float, default=1e-3)
    a = ap.parse_args()

    fig, flat = panels(4)
    axes = [[flat[0], flat[1]], [flat[2], flat[3]]]  # columns: muP, MSSP
    print(f"{'table':<14}{'curve':<12}{'to 0.5 L0':>10}{'to 0.2 L0':>10}{'learned > ' + str(a.learned):>18}")
    for col, (name, conv_path, runs) in enumerate([("muP", a.mup, a.mup_runs), ("MSSP", a.mssp, a.mssp_runs)]):
        c = read_conv(conv_path)
        null = float(c["loss"][0])
        steps = np.arange(len(c["loss"]))
        ax = axes[0][col]
        for i, N in enumerate(c["widths"]):
            mean = c["finite"][i].mean(axis=0)  # NaN at the last step: the runs record the loss before each update
            ax.plot(np.arange(len(mean)), mean, color=colors(len(c["widths"]))[i], lw=0.9,
                    label=f"N = {N}")
            print(f"{name:<14}{'N = ' + str(N):<12}{step_text(first_below(mean, 0.5 * null)):>10}"
                  f"{step_text(first_below(mean, 0.2 * null)):>10}")
        ax.fill_between(steps, c["loss"] - 2 * c["loss_err"], c["loss"] + 2 * c["loss_err"], color="k", alpha=0.2)
        ax.plot(steps, c["loss"], "k-", lw=2, label="limit")
        ax.axhline(0.5 * null, color="0.5", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_title(f"{name} (regime III): loss")
        ax.legend(ncol=2)
        learned = np.maximum(c["agg"][:, TERMS["propagating"]], c["agg"][:, TERMS["effective"]])
        print(f"{name:<14}{'limit':<12}{step_text(first_below(c['loss'], 0.5 * null)):>10}"
              f"{step_text(first_below(c['loss'], 0.2 * null)):>10}{step_text(first_above(learned, a.learned)):>18}")

        ax = axes[1][col]
        for term, style in [("propagating", "-"), ("effective", "--")]:
            ax.plot(steps, np.maximum(c["agg"][:, TERMS[term]], 1e-12), "k" + style, lw=2, label=f"limit, {term}")
        for j, path in enumerate(sorted(runs, key=lambda p: read_run(p)[0])):
            N, prop, eff = read_run(path)
            color = colors(len(runs))[j]
            ax.plot(np.arange(len(prop)), np.maximum(prop, 1e-12), "-", color=color, lw=0.9, label=f"N = {N}, prop.")
            ax.plot(np.arange(len(eff)), np.maximum(eff, 1e-12), "--", color=color, lw=0.9, label=f"N = {N}, eff.")
            print(f"{name:<14}{'N = ' + str(N) + ' run':<12}{'':>10}{'':>10}"
                  f"{step_text(first_above(np.maximum(prop, eff), a.learned)):>18}")
        ax.set_yscale("log")
        ax.set_ylim(1e-6, None)
        ax.set_xlabel("step")
        ax.set_ylabel("RMS over hagg neurons and points")
        ax.set_title(f"{name}: learned part of hagg")
        ax.legend(ncol=2)
    save(fig, a.out)


if __name__ == "__main__":
    main()
