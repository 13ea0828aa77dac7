"""Plots for the HTML report, rendered off-screen to base64 PNG.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas directly,
never through pyplot: no global state, no display, safe in worker threads.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Collection, Sequence

import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, DateFormatter
from matplotlib.figure import Figure as MplFigure

from synthgen.evaluate.alignment import Kind

REAL = "#1f77b4"
SYNTHETIC = "#ff7f0e"
HOLDOUT = "#2ca02c"


#: Resolution of every embedded plot (readable on high-density screens, still small as PNG).
DPI = 130


def _png(fig: MplFigure, dpi: int = DPI) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str, width: int = 14) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def marginals(
    real: pl.DataFrame,
    synthetic: pl.DataFrame,
    kinds: dict[str, Kind],
    *,
    dates: Collection[str] = (),
    top: int = 12,
    columns: int = 4,
) -> str:
    """One small panel per column: histograms (numeric) or bar pairs (categorical), real vs synthetic.

    Columns in ``dates`` hold epoch seconds (see :mod:`.alignment`); their axis shows dates.
    """
    names = list(kinds)
    rows = max(1, -(-len(names) // columns))
    fig = MplFigure(figsize=(3.2 * columns, 2.4 * rows))
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_title(_short(name, 28), fontsize=9)
        ax.tick_params(labelsize=6)
        if kinds[name] == "numeric":
            r = real[name].cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
            s = synthetic[name].cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
            if name in dates:
                # Matplotlib's date numbers are days since 1970-01-01.
                r, s = r / 86_400.0, s / 86_400.0
                ax.xaxis.set_major_locator(AutoDateLocator(maxticks=4))
                ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
            both = np.concatenate([r, s])
            if both.size == 0:
                continue
            # Clip to the central 99% so one outlier does not squash the whole histogram.
            lo, hi = np.quantile(both, [0.005, 0.995])
            if hi <= lo:
                lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
            edges = np.linspace(lo, hi, 31)
            ax.hist(
                np.clip(r, lo, hi), bins=edges.tolist(), density=True, alpha=0.5, color=REAL, label="real"
            )
            ax.hist(
                np.clip(s, lo, hi),
                bins=edges.tolist(),
                density=True,
                alpha=0.5,
                color=SYNTHETIC,
                label="synthetic",
            )
        else:
            r_counts = real[name].fill_null("(missing)").value_counts(name="n").sort("n", descending=True)
            cats = [str(c) for c in r_counts[name].head(top).to_list()]
            r_share = _shares(real[name], cats)
            s_share = _shares(synthetic[name], cats)
            x = np.arange(len(cats))
            ax.bar(x - 0.2, r_share, width=0.4, color=REAL, label="real")
            ax.bar(x + 0.2, s_share, width=0.4, color=SYNTHETIC, label="synthetic")
            ax.set_xticks(x)
            ax.set_xticklabels([_short(c) for c in cats], rotation=60, ha="right", fontsize=6)
        if i == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _shares(series: pl.Series, cats: Sequence[str]) -> np.ndarray:
    filled = series.fill_null("(missing)")
    n = max(1, filled.len())
    vc = filled.value_counts(name="n")
    counts = dict(zip(vc[series.name].to_list(), vc["n"].to_list(), strict=True))
    return np.array([counts.get(c, 0) / n for c in cats])


def heatmaps(matrices: Sequence[tuple[str, np.ndarray, tuple[float, float]]], labels: Sequence[str]) -> str:
    """Side-by-side heatmaps (title, matrix, colour range) over the same column labels."""
    size = max(4.0, 0.28 * len(labels) + 2)
    fig = MplFigure(figsize=(size * len(matrices), size))
    ticks = np.arange(len(labels))
    short = [_short(x, 16) for x in labels]
    for i, (title, matrix, (vmin, vmax)) in enumerate(matrices):
        ax = fig.add_subplot(1, len(matrices), i + 1)
        cmap = "Reds" if vmin >= 0 else "coolwarm"
        im = ax.imshow(np.nan_to_num(matrix, nan=0.0), vmin=vmin, vmax=vmax, cmap=cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xticklabels(short, rotation=90, fontsize=6)
        ax.set_yticklabels(short, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png(fig)


def distance_histograms(series: Sequence[tuple[str, np.ndarray, str]], *, xlabel: str) -> str:
    """Overlaid histograms of distance samples (label, values, colour) on shared bins."""
    fig = MplFigure(figsize=(6.5, 3.4))
    ax = fig.add_subplot(1, 1, 1)
    values = np.concatenate([v[np.isfinite(v)] for _, v, _ in series])
    hi = float(np.quantile(values, 0.99)) if values.size else 1.0
    edges = np.linspace(0.0, max(hi, 1e-6), 41)
    for label, v, colour in series:
        ax.hist(
            np.clip(v[np.isfinite(v)], 0, edges[-1]),
            bins=edges.tolist(),
            alpha=0.45,
            color=colour,
            label=label,
            density=True,
        )
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def roc_curves(curves: Sequence[tuple[str, np.ndarray, np.ndarray]], *, title: str) -> str:
    """ROC curves (label, fpr, tpr) with the chance diagonal."""
    fig = MplFigure(figsize=(4.6, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for label, fpr, tpr in curves:
        ax.plot(fpr, tpr, label=label, linewidth=1.4)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate", fontsize=8)
    ax.set_ylabel("true positive rate", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def grouped_bars(
    groups: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], *, ylabel: str, title: str
) -> str:
    """Bars per group for a few series (label, values, colour)."""
    fig = MplFigure(figsize=(max(4.5, 0.55 * len(groups) + 2), 3.2))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for i, (label, values, colour) in enumerate(series):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            np.nan_to_num(np.asarray(values, float)),
            width=width,
            color=colour,
            label=label,
        )
    ax.set_xticks(x)
    ax.set_xticklabels([_short(g) for g in groups], rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)
