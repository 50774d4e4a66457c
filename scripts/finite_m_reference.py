#!/usr/bin/env python3
"""Regime II: finite widths against the limit with its vanishing terms held at each width's size.

Under muP the expert2 init constant c2 = 8/sqrt(M) vanishes in the limit but is O(1) along any
practical ladder. For every width of a `moedmft converge` file this script solves `dmft-moe`
with `dmft.keep_vanishing = true` at that width's (N, M, K), i.e. the limit with the O(M^-1/2)
terms kept at their finite size, and reports the gap of the finite seed means to the limit and to
that width-matched reference (RMS over steps, with the seed error), with fitted slopes.

usage: finite_m_reference.py CONVERGENCE.h5 [--moedmft build/experiments/moedmft] [--out REF.h5]
"""
import argparse
import os
import subprocess
import re
import tempfile

import h5py
import numpy as np


def text(v):
    return v.decode() if isinstance(v, bytes) else v


def fit(widths, values):
    """log-log slope with a 95% interval (t quantiles for 1..6 degrees of freedom)."""
    x, y = np.log(widths), np.log(values)
    A = np.vstack([x, np.ones_like(x)]).T
    coef, res, _, _ = np.linalg.lstsq(A, y, rcond=None)
    dof = len(x) - 2
    if dof < 1:
        return coef[0], np.nan, np.nan
    s2 = float(np.sum((y - A @ coef) ** 2)) / dof
    se = np.sqrt(s2 / np.sum((x - x.mean()) ** 2))
    t = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45}.get(dof, 2.0)
    return coef[0], coef[0] - t * se, coef[0] + t * se


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("convergence")
    p.add_argument("--moedmft", default="build/experiments/moedmft")
    p.add_argument("--min-width", type=int, default=0, help="widths below are listed but not fitted")
    args = p.parse_args()
    with h5py.File(args.convergence, "r") as f:
        widths = f["width"][:]
        finite = f["finite_loss"][:, :, :-1]  # [width, seed, step]; step T is NaN (loss before each update)
        limit, limit_err = f["limit_loss"][:], f["limit_loss_err"][:]
        config = text(f.attrs["config_toml"])
    steps = finite.shape[2]
    seeds = finite.shape[1]
    mean = np.nanmean(finite, axis=1)
    se = np.nanstd(finite, axis=1, ddof=1) / np.sqrt(seeds)
    with tempfile.TemporaryDirectory() as work:
        cfg = os.path.join(work, "run.toml")
        with open(cfg, "w") as out:
            out.write(config)
        # the ladder keeps M/N and K/M of the document

        n0 = int(re.search(r"^\s*N\s*=\s*(\d+)", config.split("[model]")[1], re.M).group(1))
        m0 = int(re.search(r"^\s*M\s*=\s*(\d+)", config.split("[model]")[1], re.M).group(1))
        k0 = int(re.search(r"^\s*K\s*=\s*(\d+)", config.split("[model]")[1], re.M).group(1))
        refs = []
        for n in widths:
            path = os.path.join(work, f"ref{n}.h5")
            subprocess.run([args.moedmft, "dmft-moe", "-q", "-c", cfg, "-o", path, "--regime", "II",
                            "--set", f"model.N={n}", "--set", f"model.M={m0 * n // n0}",
                            "--set", f"model.K={k0 * n // n0}", "--set", "dmft.keep_vanishing=true"],
                           check=True, stdout=subprocess.DEVNULL)
            with h5py.File(path, "r") as r:
                refs.append((r["loss"][:steps], r["loss_err"][:steps]))
    print(f"{'N':>6} {'gap_limit':>11} {'gap_ref':>11} {'err':>10}")
    g_lim, g_ref, errs = [], [], []
    for w, n in enumerate(widths):
        ref, ref_err = refs[w]
        err = np.sqrt(np.mean(se[w] ** 2 + ref_err ** 2))
        g_lim.append(np.sqrt(np.mean((mean[w] - limit[:steps]) ** 2)))
        g_ref.append(np.sqrt(np.mean((mean[w] - ref) ** 2)))
        errs.append(err)
        print(f"{n:6d} {g_lim[-1]:11.3e} {g_ref[-1]:11.3e} {err:10.3e}")
    use = widths >= args.min_width
    for name, g in (("limit", g_lim), ("width-matched reference", g_ref)):
        s, lo, hi = fit(widths[use].astype(float), np.array(g)[use])
        print(f"gap to the {name} ~ N^{s:.2f} [{lo:.2f}, {hi:.2f}] (widths >= {args.min_width})")


if __name__ == "__main__":
    main()
