#!/usr/bin/env python3
"""The dense DMFT solution (`moedmft dmft` output): the loss with its error band, the outputs
f_mu(t) against their targets, how far each layer's kernels move from initialisation, and their
alignment with the targets.

usage: plot_dmft.py DMFT.h5 --out FIGURE.png [--points 6]
       plot_dmft.py A.h5 B.h5 ... --out FIGURE.png     (several solves, e.g. one per dmft.optimizer:
                                                      their losses and first-layer kernel movement)
"""
import argparse
import os
import tomllib

import h5py
import numpy as np

from figstyle import panels, save, text


def relative_change(k):
    """||K(t) - K(0)||_F / ||K(0)||_F for k [step, point, point2]."""
    return np.linalg.norm(k - k[0], axis=(1, 2)) / np.linalg.norm(k[0])


def alignment(k, y):
    """Kernel-target alignment y^T K y / (|y|^2 ||K||_F) per step."""
    return np.einsum("i,tij,j->t", y, k, y) / (y @ y * np.linalg.norm(k, axis=(1, 2)))


def open_dmft(path):
    """The `moedmft dmft` file at path, or a one-line exit naming it."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else "not an HDF5 file"
        raise SystemExit(f"{path}: cannot open as HDF5 ({why})")
    if text(f.attrs.get("kind", "")) != "dmft":
        f.close()
        raise SystemExit(f"{path}: not a `moedmft dmft` file")
    return f


def compare(paths, out_path):
    """Several solves side by side, each labelled by its optimizer, LR and eps."""
    fig, axes = panels(2)
    for i, path in enumerate(paths):
        with open_dmft(path) as f:
            loss, loss_err, phi = f["loss"][:], f["loss_err"][:], f["Phi"][:]
            d = tomllib.loads(text(f.attrs["config_toml"])).get("dmft", {})
        opt = d.get("optimizer", "sgd")
        label = f"{opt}, eta {d.get('eta')}" + (f", eps {d.get('eps')}" if opt == "adam" else "")
        steps = np.arange(len(loss))
        axes[0].fill_between(steps, np.maximum(loss - 2 * loss_err, loss.min() * 0.5), loss + 2 * loss_err,
                             color=f"C{i}", alpha=0.2)
        axes[0].plot(steps, loss, "-", color=f"C{i}", label=label)
        axes[1].plot(steps, relative_change(phi[0]), "-", color=f"C{i}", label=label)
    axes[0].set(yscale="log", xlabel="step", ylabel="training loss", title="DMFT loss (2 s.e. bands)")
    axes[0].legend()
    axes[1].set(xlabel="step", ylabel="relative change from step 0", title=r"first-layer kernel $\Phi^1$ movement")
    axes[1].legend()
    save(fig, out_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dmft", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--points", type=int, default=6, help="training points whose f(t) is drawn")
    args = parser.parse_args()
    if len(args.dmft) > 1:
        compare(args.dmft, args.out)
        return
    args.dmft = args.dmft[0]

    with open_dmft(args.dmft) as f:
        loss, loss_err = f["loss"][:], f["loss_err"][:]
        out, y = f["f"][:], f["y"][:]
        phi, g = f["Phi"][:], f["G"][:]  # [layer, step, point, point2]
        convention = text(f["loss"].attrs.get("convention", f.attrs.get("loss_convention", "")))

    steps = np.arange(len(loss))
    fig, axes = panels(4)
    ax = axes[0]
    ax.fill_between(steps, np.maximum(loss - 2 * loss_err, loss.min() * 0.5), loss + 2 * loss_err, color="k", alpha=0.2)
    ax.plot(steps, loss, "k-", label="DMFT (2 s.e. band)")
    ax.set(yscale="log", xlabel="step", ylabel="training loss", title="loss: " + convention.split(" (")[0])
    ax.legend()

    ax = axes[1]
    for mu in range(min(args.points, out.shape[1])):
        line, = ax.plot(steps, out[:, mu], lw=1)
        ax.axhline(y[mu], color=line.get_color(), ls=":", lw=1)
    ax.set(xlabel="step", ylabel=r"$f_\mu(t)$", title="outputs (dotted: targets)")

    ax = axes[2]
    for layer in range(phi.shape[0]):
        ax.plot(steps, relative_change(phi[layer]), "-", color=f"C{layer}", label=rf"$\Phi^{layer + 1}$")
        ax.plot(steps, relative_change(g[layer]), "--", color=f"C{layer}", label=rf"$G^{layer + 1}$")
    ax.set(xlabel="step", ylabel="relative change from step 0", title="kernel movement")
    ax.legend(ncol=2)

    ax = axes[3]
    for layer in range(phi.shape[0]):
        ax.plot(steps, alignment(phi[layer], y), "-", color=f"C{layer}", label=rf"$\Phi^{layer + 1}$")
    ax.set(xlabel="step", ylabel=r"$y^T \Phi y / (|y|^2 \|\Phi\|_F)$", title="kernel-target alignment")
    ax.legend()
    save(fig, args.out)


if __name__ == "__main__":
    main()
