"""Encodings shared by the sections: shared bins for marginals, and a mixed-type distance space.

Both are fitted on real rows only. That is fine here: the report compares with real
rows anyway and is restricted; nothing fitted here reaches a synthetic output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from synthgen.evaluate.alignment import Kind

OTHER = "(other)"
MISSING = "(missing)"


def top_categories(series: pl.Series, limit: int) -> list[str]:
    """The ``limit`` most frequent non-null values of ``series`` (ties broken by value)."""
    counts = (
        series.drop_nulls()
        .value_counts(name="n")
        .sort(["n", series.name], descending=[True, False])
        .head(limit)
    )
    return [str(v) for v in counts[series.name].to_list()]


def category_codes(series: pl.Series, levels: list[str]) -> np.ndarray:
    """Codes ``0..len(levels)-1`` for known levels, ``len(levels)`` for others, ``+1`` for null."""
    mapping = {v: i for i, v in enumerate(levels)}
    codes = series.replace_strict(mapping, default=len(levels), return_dtype=pl.Int32)
    return codes.fill_null(len(levels) + 1).to_numpy().astype(np.int64, copy=False)


@dataclass(frozen=True)
class Binning:
    """How one column is discretised: codes ``0..n_levels-1`` and a label for each."""

    kind: Kind
    labels: list[str]
    #: Inner edges for numeric columns (bins are ``(-inf, e0], (e0, e1], ...``).
    edges: np.ndarray | None = None
    #: Kept categories for categorical columns.
    levels: list[str] | None = None

    @property
    def n_levels(self) -> int:
        return len(self.labels)

    def codes(self, series: pl.Series) -> np.ndarray:
        if self.kind == "numeric":
            assert self.edges is not None
            values = series.cast(pl.Float64).to_numpy()
            nulls = np.isnan(values)
            codes = np.searchsorted(self.edges, np.where(nulls, 0.0, values), side="left")
            codes[nulls] = len(self.edges) + 1
            return codes.astype(np.int64, copy=False)
        assert self.levels is not None
        return category_codes(series, self.levels)


def fit_binning(real: pl.Series, kind: Kind, *, bins: int, max_categories: int) -> Binning:
    """Shared bins for one column, from real values: quantile edges or the top categories.

    Quantile edges (not equal widths) keep heavy-tailed columns such as capital gains
    informative: equal widths would put nearly every row in the first bin. Nulls get
    their own level, as do categories outside the kept ones (synthetic-only values land
    there too, so the distance sees them).
    """
    if kind == "numeric":
        values = real.cast(pl.Float64).drop_nulls().drop_nans().to_numpy()
        if values.size:
            qs = np.quantile(values, np.linspace(0, 1, bins + 1))
            inner = np.unique(qs[1:-1])
        else:
            inner = np.array([], dtype=np.float64)
        labels = []
        lo = "-inf"
        for e in inner:
            labels.append(f"({lo}, {e:.4g}]")
            lo = f"{e:.4g}"
        labels += [f"({lo}, inf)", MISSING]
        return Binning(kind="numeric", labels=labels, edges=inner)
    levels = top_categories(real, max_categories)
    return Binning(kind="categorical", labels=[*levels, OTHER, MISSING], levels=levels)


class DistanceEncoder:
    """Mixed-type rows as vectors whose Euclidean distance is Gower-like.

    Numerics are min-max scaled on the real range, so a difference across the whole
    range adds 1 to the squared distance; a categorical mismatch also adds 1 (one-hot
    scaled by 1/sqrt(2)). Numeric nulls get an indicator (when the real data has any)
    and the real median as value. Categories outside the ``max_categories`` most
    frequent ones share one level.
    """

    def __init__(self, kinds: dict[str, Kind], *, max_categories: int = 100) -> None:
        self.kinds = kinds
        self.max_categories = max_categories

    def fit(self, real: pl.DataFrame) -> DistanceEncoder:
        self.numeric_: dict[str, tuple[float, float, float, bool]] = {}
        self.levels_: dict[str, list[str]] = {}
        for name, kind in self.kinds.items():
            col = real[name]
            if kind == "numeric":
                values = col.cast(pl.Float64).drop_nulls().drop_nans()
                if values.len() == 0:
                    lo, hi, med = 0.0, 1.0, 0.0
                else:
                    lo, hi, med = float(values.min()), float(values.max()), float(values.median())  # type: ignore[arg-type]
                has_null = bool(col.is_null().any() or col.cast(pl.Float64).is_nan().any())
                self.numeric_[name] = (lo, hi, med, has_null)
            else:
                self.levels_[name] = top_categories(col, self.max_categories)
        return self

    @property
    def width_(self) -> int:
        return sum(1 + int(v[3]) for v in self.numeric_.values()) + sum(
            len(v) + 2 for v in self.levels_.values()
        )

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        out = np.zeros((frame.height, self.width_), dtype=np.float32)
        j = 0
        weight = np.float32(1 / np.sqrt(2))
        rows = np.arange(frame.height)
        for name, kind in self.kinds.items():
            if kind == "numeric":
                lo, hi, med, has_null = self.numeric_[name]
                values = frame[name].cast(pl.Float64).to_numpy().astype(np.float64)
                nulls = np.isnan(values)
                scale = hi - lo if hi > lo else 1.0
                out[:, j] = (np.where(nulls, med, values) - lo) / scale
                j += 1
                if has_null:
                    out[:, j] = nulls
                    j += 1
            else:
                levels = self.levels_[name]
                codes = category_codes(frame[name], levels)
                out[rows, j + codes] = weight
                j += len(levels) + 2
        return out


def sample_rows(frame: pl.DataFrame, n: int, seed: int) -> pl.DataFrame:
    """At most ``n`` rows of ``frame``, drawn without replacement (all rows when smaller)."""
    if frame.height <= n:
        return frame
    return frame.sample(n=n, seed=seed, shuffle=True)
