#!/usr/bin/env python3
"""Delayed learning: loss curves versus step per size for each parameterization, and the number of
steps until the loss first drops below a fixed fraction of a reference loss, with seed error.

usage: plot_delay.py FILE.h5 [FILE.h5 ...] --out FIGURE.png [--frac 0.5 0.2] [--ref init|null]
                     [--smooth 5] [--ref-loss VALUE] [--lr LR [LR ...]]

Inputs are either one sweep file (`moedmft sweep`, docs/sweep_format.md) or any number of run files
(`moedmft train`, docs/output_format.md). Runs are grouped by param.table and optim.lr (the
"table" column), by model.N (the size) and by seed, all read from each run's resolved
configuration, so the sweep's axis names do not matter.

Reference losses:
  init  each run's own loss at step 0 (the batch loss before the first update);
  null  the loss of the zero predictor, i.e. the step-0 loss of a run whose output is exactly 0 at
        initialisation (diagnostic rms/f = 0 at step 0, e.g. a zero-initialised readout); every run
        must then see the same first batch (same data seed). Override with --ref-loss.
The curve is the trailing mean of the per-step training loss over --smooth steps (1: raw). The
step of a run is the first step at which that curve is below frac x reference (NaN: never, or
diverged). The table gives mean +- standard error over seeds.
"""
import argparse
import tomllib

import h5py
import matplotlib.ticker
import numpy as np

from figstyle import colors, panels, save, text


def run_record(cfg_text, loss, f0):
    cfg = tomllib.loads(cfg_text)
    return {
        "table": cfg["param"]["table"],
        "lr": float(cfg["optim"]["lr"]),
        "size": int(cfg["model"]["N"]),
        "seed": int(cfg["seed"]),
        "loss": np.asarray(loss, dtype=float),
        "f0": f0,
    }


def load(paths):
    runs = []
    for path in paths:
        with h5py.File(path, "r") as f:
            kind = text(f.attrs.get("kind", ""))
            if kind == "sweep":
                cfgs = [text(c) for c in f["config_toml"][:]]
                loss = f["train_loss"][:]
                shape = loss.shape[:-1]
                metrics = [text(m) for m in f["metric"][:]] if "metric" in f else []  # diag_every = 0: none
                diag = f["diagnostics"][:] if "rms/f" in metrics else None
                q = metrics.index("rms/f") if diag is not None else None
                for p, idx in enumerate(np.ndindex(*shape)):
                    f0 = float(diag[idx][0, q]) if diag is not None else np.nan
                    runs.append(run_record(cfgs[p], loss[idx], f0))
            else:
                metrics = [text(m) for m in f["diagnostics/metric"][:]] if "diagnostics" in f else []
                f0 = float(f["diagnostics/values"][0, metrics.index("rms/f")]) if "rms/f" in metrics else np.nan
                runs.append(run_record(text(f.attrs["config_toml"]), f["metrics/train_loss"][:], f0))
    return runs


def smooth(y, w):
    if w <= 1:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for t in range(len(y)):
        lo = max(0, t - w + 1)
        out[t] = (c[t + 1] - c[lo]) / (t + 1 - lo)
    return out


def first_below(curve, threshold):
    bad = ~np.isfinite(curve)
    hit = np.where(curve < threshold)[0]
    if len(hit) == 0:
        return np.nan
    if bad.any() and np.argmax(bad) < hit[0]:
        return np.nan
    return float(hit[0])


def mean_se(x):
    x = np.asarray(x, dtype=float)
    ok = x[np.isfinite(x)]
    if len(ok) == 0:
        return np.nan, np.nan, 0
    se = ok.std(ddof=1) / np.sqrt(len(ok)) if len(ok) > 1 else np.nan
    return ok.mean(), se, len(ok)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--frac", type=float, nargs="+", default=[0.5])
    parser.add_argument("--ref", choices=["init", "null"], default="init")
    parser.add_argument("--ref-loss", type=float, default=None, help="null reference loss (default: measured)")
    parser.add_argument("--smooth", type=int, default=5)
    parser.add_argument("--max-step", type=int, default=None, help="x range of the loss panels")
    parser.add_argument("--lr", type=float, nargs="+", default=None,
                        help="keep only runs at these LRs (a sweep file holds the whole grid)")
    args = parser.parse_args()

    runs = load(args.files)
    if args.lr is not None:
        runs = [r for r in runs if any(abs(r["lr"] - lr) <= 1e-9 * lr for lr in args.lr)]
        if not runs:
            raise SystemExit(f"no run at lr {args.lr}")
    null = args.ref_loss
    if args.ref == "null" and null is None:
        zero = [r["loss"][0] for r in runs if r["f0"] == 0.0]
        if not zero:
            raise SystemExit("no run has rms/f = 0 at step 0; pass --ref-loss")
        null = float(np.median(zero))
        if np.ptp(zero) > 1e-12 * abs(null):
            print(f"warning: zero-output runs disagree on the step-0 loss ({min(zero):.6g} .. {max(zero):.6g})")
    tables = sorted({(r["table"], r["lr"]) for r in runs}, key=lambda t: (t[0].startswith("mssp"), t[0], t[1]))
    sizes = sorted({r["size"] for r in runs})

    ref_txt = "own step-0 loss" if args.ref == "init" else f"zero-predictor loss {null:.4g}"
    print(f"steps until the loss (trailing mean over {args.smooth} steps) first drops below frac x {ref_txt}")
    print("mean +- s.e. over seeds (n = seeds that crossed); initial and final (last 10% of steps) loss: seed means")
    header = f"{'table':<14}{'lr':>8}{'size':>6}{'init loss':>11}{'final loss':>12}" + "".join(
        f"{'frac ' + format(fr, 'g'):>20}" for fr in args.frac)
    print(header)
    results = {}
    for t in tables:
        for s in sizes:
            sel = [r for r in runs if (r["table"], r["lr"]) == t and r["size"] == s]
            if not sel:
                continue
            init = np.mean([r["loss"][0] for r in sel])
            tail = max(1, len(sel[0]["loss"]) // 10)
            final = np.mean([np.mean(r["loss"][-tail:]) for r in sel])
            row = f"{t[0]:<14}{t[1]:>8g}{s:>6}{init:>11.4g}{final:>12.4g}"
            for fr in args.frac:
                steps = []
                for r in sel:
                    ref = r["loss"][0] if args.ref == "init" else null
                    steps.append(first_below(smooth(r["loss"], args.smooth), fr * ref))
                m, se, n = mean_se(steps)
                results[(t, s, fr)] = (m, se, n, steps)
                row += f"{m:>10.1f} +- {se:>4.1f} ({n})"
            print(row)

    palette = colors(len(sizes))
    fig, axs = panels(len(tables) + 1)
    for k, t in enumerate(tables):
        ax = axs[k]
        for j, s in enumerate(sizes):
            sel = [r for r in runs if (r["table"], r["lr"]) == t and r["size"] == s]
            if not sel:
                continue
            curve = np.mean([smooth(r["loss"], args.smooth) for r in sel], axis=0)
            ax.plot(np.arange(len(curve)), curve, color=palette[j], label=f"N = {s}")
        if args.ref == "null":
            for fr in args.frac:
                ax.axhline(fr * null, color="gray", ls=":", lw=1)
        ax.set(yscale="log", xlabel="step", ylabel=f"train loss (seed mean, trailing {args.smooth})",
               title=f"{t[0]}, lr {t[1]:g}")
        if args.max_step:
            ax.set_xlim(0, args.max_step)
        ax.legend()
    ax = axs[-1]
    markers = ["o", "s", "^", "v", "D"]
    for k, t in enumerate(tables):
        for i, fr in enumerate(args.frac):
            m = [results.get((t, s, fr), (np.nan,) * 4)[0] for s in sizes]
            e = [results.get((t, s, fr), (np.nan,) * 4)[1] for s in sizes]
            ax.errorbar(sizes, m, yerr=np.nan_to_num(e), marker=markers[i % len(markers)], capsize=3,
                        color=f"C{k}", ls="-" if i == 0 else "--", label=f"{t[0]}, lr {t[1]:g} ({fr:g} x ref)")
    ax.set(xscale="log", xlabel="N", ylabel="steps to threshold", title=f"steps until loss < frac x {args.ref} loss")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
