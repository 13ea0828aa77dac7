"""Correlation difference: pairwise association matrices of real and synthetic data, and their gap.

One measure per pair of column kinds, so that mixed tables get a full matrix:
Pearson's r between numeric columns (signed), Cramér's V between categorical columns,
and the correlation ratio η between a numeric and a categorical column (both in [0, 1]).
The difference matrix is ``|real - synthetic|``; its mean and max are reported.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import polars as pl

from synthgen.evaluate import plots
from synthgen.evaluate.encoding import fit_binning, sample_rows
from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Figure,
    Section,
    SectionResult,
    SectionSkipped,
    Table,
    rounded,
)

#: A real association at least this strong (|r|, V or η) is one the synthetic data should keep.
STRONG_ASSOCIATION = 0.3
#: How many of the strongest real associations the verdict checks.
STRONGEST_PAIRS = 5


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 2:
        return float("nan")
    a, b = x[ok] - x[ok].mean(), y[ok] - y[ok].mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def cramers_v(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> float:
    table = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    k = min(table.shape) - 1
    n = table.sum()
    if k < 1 or n == 0:
        return float("nan")
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(chi2 / n / k))


def correlation_ratio(values: np.ndarray, groups: np.ndarray, n_groups: int) -> float:
    ok = ~np.isnan(values)
    x, g = values[ok], groups[ok]
    if x.size < 2:
        return float("nan")
    total = ((x - x.mean()) ** 2).sum()
    if total == 0:
        return float("nan")
    counts = np.bincount(g, minlength=n_groups)
    sums = np.bincount(g, weights=x, minlength=n_groups)
    present = counts > 0
    means = sums[present] / counts[present]
    between = (counts[present] * (means - x.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def association_matrix(
    frame: pl.DataFrame, kinds: dict[str, str], codes: dict[str, tuple[np.ndarray, int]]
) -> np.ndarray:
    """Pairwise association matrix (diagonal 1) for the columns of ``kinds``, in order."""
    names = list(kinds)
    numeric = {
        c: frame[c].cast(pl.Float64).fill_null(float("nan")).to_numpy()
        for c in names
        if kinds[c] == "numeric"
    }
    m = np.eye(len(names))
    for i, a in enumerate(names):
        for j in range(i + 1, len(names)):
            b = names[j]
            if kinds[a] == "numeric" and kinds[b] == "numeric":
                v = pearson(numeric[a], numeric[b])
            elif kinds[a] == "categorical" and kinds[b] == "categorical":
                v = cramers_v(codes[a][0], codes[b][0], codes[a][1], codes[b][1])
            else:
                num, cat = (a, b) if kinds[a] == "numeric" else (b, a)
                v = correlation_ratio(numeric[num], codes[cat][0], codes[cat][1])
            m[i, j] = m[j, i] = v
    return m


class CorrelationSection(Section):
    name = "correlation"
    title = "Correlation difference"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data, st = ctx.data, ctx.settings
        if len(data.kinds) < 2:
            raise SectionSkipped(f"needs at least two comparable columns; the data has {len(data.kinds)}")
        if data.synthetic.height == 0 or data.train.height == 0:
            raise SectionSkipped("no rows to correlate (see the schema check)")
        kinds: dict[str, str] = dict(data.kinds)
        if len(kinds) > st.max_report_columns:
            keep = sorted(
                random.Random(st.seed).sample(list(kinds), st.max_report_columns), key=list(kinds).index
            )
            kinds = {c: kinds[c] for c in keep}
            out.note(f"Matrix on {st.max_report_columns} of {len(data.kinds)} columns, sampled.")
        real = sample_rows(data.train, st.max_rows, st.seed)
        syn = sample_rows(data.synthetic, st.max_rows, st.seed + 1)
        binnings = {
            c: fit_binning(real[c], "categorical", bins=st.bins, max_categories=st.max_categories)
            for c, k in kinds.items()
            if k == "categorical"
        }
        real_m = association_matrix(
            real, kinds, {c: (b.codes(real[c]), b.n_levels) for c, b in binnings.items()}
        )
        syn_m = association_matrix(
            syn, kinds, {c: (b.codes(syn[c]), b.n_levels) for c, b in binnings.items()}
        )
        diff = np.abs(real_m - syn_m)
        upper = diff[np.triu_indices(len(kinds), k=1)]
        finite = upper[np.isfinite(upper)]
        out.metrics["corr_diff_mean"] = rounded(float(finite.mean())) if finite.size else None
        out.metrics["corr_diff_max"] = rounded(float(finite.max())) if finite.size else None
        out.metrics["undefined_pairs"] = int(upper.size - finite.size)
        out.headline["corr_diff_mean"] = out.metrics["corr_diff_mean"]

        numeric = [c for c in kinds if kinds[c] == "numeric"]
        if len(numeric) >= 2:
            idx = [list(kinds).index(c) for c in numeric]
            sub = diff[np.ix_(idx, idx)][np.triu_indices(len(idx), k=1)]
            sub = sub[np.isfinite(sub)]
            out.metrics["pearson_diff_mean"] = rounded(float(sub.mean())) if sub.size else None
        elif not numeric:
            out.note("No numeric columns: associations are Cramér's V between categorical columns only.")
        else:
            out.note("One numeric column: no Pearson pairs; η and Cramér's V only.")
        if out.metrics["undefined_pairs"]:
            out.note(
                f"{out.metrics['undefined_pairs']} pair(s) undefined (a constant column)"
                " and left out of the mean."
            )

        names = list(kinds)
        order = sorted(
            ((i, j) for i in range(len(names)) for j in range(i + 1, len(names))),
            key=lambda ij: -np.nan_to_num(diff[ij], nan=-1.0),
        )
        out.tables.append(
            Table(
                "Largest association differences",
                ["column 1", "column 2", "real", "synthetic", "|diff|"],
                [
                    [names[i], names[j], rounded(real_m[i, j]), rounded(syn_m[i, j]), rounded(diff[i, j])]
                    for i, j in order[:10]
                ],
            )
        )
        self._strongest(names, real_m, syn_m, out)
        if st.plots:
            out.figures.append(
                Figure(
                    "Association matrices: real, synthetic, |difference|",
                    plots.heatmaps(
                        [
                            ("real", real_m, (-1.0, 1.0)),
                            ("synthetic", syn_m, (-1.0, 1.0)),
                            ("|difference|", diff, (0.0, 1.0)),
                        ],
                        names,
                    ),
                    "Pearson's r (numeric pairs), Cramér's V (categorical pairs),"
                    " correlation ratio η (mixed).",
                )
            )

    def _strongest(self, names: list[str], real_m: np.ndarray, syn_m: np.ndarray, out: SectionResult) -> None:
        """The strongest real associations and what the synthetic data kept of them (read by the verdict)."""
        pairs = [
            (i, j)
            for i in range(len(names))
            for j in range(i + 1, len(names))
            if np.isfinite(real_m[i, j]) and abs(real_m[i, j]) >= STRONG_ASSOCIATION
        ]
        pairs.sort(key=lambda ij: -abs(real_m[ij]))
        strongest: list[dict[str, Any]] = []
        rows: list[list[Any]] = []
        for i, j in pairs[:STRONGEST_PAIRS]:
            real, syn = float(real_m[i, j]), float(syn_m[i, j])
            kept = np.isfinite(syn)
            strongest.append(
                {
                    "column_1": names[i],
                    "column_2": names[j],
                    "real": rounded(real),
                    "synthetic": rounded(syn) if kept else None,
                }
            )
            rows.append(
                [names[i], names[j], rounded(real), rounded(syn), rounded(abs(real - syn)) if kept else None]
            )
        out.details["strongest"] = strongest
        out.tables.append(
            Table(
                f"Strongest real associations (|real| >= {STRONG_ASSOCIATION})",
                ["column 1", "column 2", "real", "synthetic", "|diff|"],
                rows,
            )
        )
