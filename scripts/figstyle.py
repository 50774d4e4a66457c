"""Shared figure style of the plot_*.py scripts: paper width (7 in), at most two panels per row,
fonts of at least 8 pt at that size, and the marker for diverged runs.

The scripts import it from their own directory (scripts/), so run them as
`/usr/bin/python3 scripts/plot_X.py ...` from anywhere.
"""
import math
import os

import matplotlib

if "MPLBACKEND" not in os.environ:  # files, not windows, unless the caller asks for one
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WIDTH = 7.0         # inches: a two-column paper's text width
PANEL_HEIGHT = 2.7  # inches per row of panels
DPI = 200
MIN_FONT = 8        # points; tests/check_plots.py checks every text against it

plt.rcParams.update({
    "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "legend.fontsize": 8, "figure.titlesize": 9, "lines.linewidth": 1.2, "lines.markersize": 4,
    "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False, "savefig.dpi": DPI,
})


def panels(n, height=PANEL_HEIGHT):
    """A figure of n panels, two per row, paper width; returns (fig, list of n axes)."""
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH if cols == 2 else WIDTH / 2 + 0.3, height * rows),
                             squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def mark_diverged(ax, xs, color="C3", label="diverged"):
    """An x at the top edge of the axis at each x whose run diverged (its loss is NaN or Inf)."""
    xs = list(xs)
    if xs:
        ax.plot(xs, [0.97] * len(xs), "x", color=color, ms=6, mew=1.5, clip_on=False,
                transform=ax.get_xaxis_transform(), label=label, zorder=5)


def colors(n):
    """n colours of one sequential map (sizes in increasing order)."""
    return plt.cm.viridis([0.1 + 0.75 * i / max(1, n - 1) for i in range(n)])


def text(v):
    """An HDF5 string (bytes or str) as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


def save(fig, out):
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    print(out)
