"""Numeric columns without public bounds, through a whole DP-MST fit: do the values stay where the data are?

A generated table of columns nobody declared (what a new user gets), each a kind that real tables
hold: a year (1990-2020), a longitude in two clusters (-124 to -116), a latitude, a systolic blood
pressure, an age, an amount that is mostly 0 with a long tail, and a lognormal income. Each case
(row count, epsilon) fits DP-MST ``FITS`` times two ways in the same run:

* ``synthgen``: :func:`~synthgen.privacy.mechanisms.dp_range_quantiles` (the coarse range, then a
  fine grid over a narrow range far from zero, pooled back to one histogram otherwise);
* ``single_histogram`` (baseline, the mechanism before): one DP histogram on the log grid at the
  column's whole noise, quantiles read linearly inside its buckets.

Per column: the share of synthetic values outside the real data's [min, max], how far the synthetic
range reaches past it (in units of the real p1-p99 span), and the 1-way TVD on the real deciles.
Goal: on the year, longitude and latitude columns, a reach of at most one span at 10,000 rows
(before: years from 1868 to 2048) and less than the baseline's in every case; on the age, amount
and income columns, a TVD no worse than the baseline's by more than 0.01.

Run: ``python -m bench dp_ranges``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark

FITS = 12
CASES = [(2_000, 1.0), (2_000, 3.0), (10_000, 1.0), (10_000, 3.0)]
NARROW = ("year", "longitude", "latitude")
WIDE = ("age", "amount", "income")


def table(n: int, seed: int = 0) -> pl.DataFrame:
    """The generated table: seven undeclared numeric columns, related (price follows the year)."""
    rng = np.random.default_rng(seed)
    year = rng.integers(1990, 2021, n)
    south = rng.random(n) < 0.6
    lon = np.where(south, rng.normal(-118.3, 0.5, n), rng.normal(-122.2, 0.4, n))
    lat = np.where(south, 34.0, 37.7) + rng.normal(0, 0.3, n)
    age = rng.normal(45, 15, n).clip(18, 95).round()
    amount = np.where(rng.random(n) < 0.85, 0.0, np.exp(rng.normal(7, 1.5, n))).round()
    income = np.exp(rng.normal(10.5, 0.6, n)) + (year - 1990) * 300.0
    return pl.DataFrame(
        {
            "year": year,
            "longitude": lon,
            "latitude": lat,
            "systolic_bp": rng.normal(130, 15, n).round().astype(np.int64),
            "age": age.astype(np.int64),
            "amount": amount.astype(np.int64),
            "income": income,
        }
    )


def _column_scores(real: pl.Series, synth: pl.Series) -> dict[str, float]:
    from bench.utility import tvd_1way

    r, s = real.to_numpy().astype(np.float64), synth.to_numpy().astype(np.float64)
    s = s[np.isfinite(s)]
    span = float(np.percentile(r, 99) - np.percentile(r, 1)) or 1.0
    outside = float(((s < r.min()) | (s > r.max())).mean())
    reach = max(float(r.min() - s.min()), float(s.max() - r.max()), 0.0) / span
    return {
        "outside": outside,
        "reach_spans": reach,
        "tvd": tvd_1way(real.to_frame(), synth.to_frame()),
    }


def _single_histogram(values: np.ndarray, **kw: Any) -> Any:
    """The mechanism before: one histogram on the coarse grid at the column's whole noise."""
    from synthgen.privacy.mechanisms import dp_quantiles, log_grid_steps, signed_log_grid

    noise, n_public, integer = kw.pop("noise"), kw.pop("n_public"), kw.pop("integer")
    steps = 10 if n_public is None else log_grid_steps(n_public, noise.epsilon, noise=noise)
    grid = signed_log_grid(
        integer=integer, lower=kw.pop("lower"), upper=kw.pop("upper"), steps_per_decade=steps
    )
    return dp_quantiles(values, grid=grid, noise=noise, integer=integer, **kw)


def _fit(real: pl.DataFrame, eps: float, seed: int, baseline: bool) -> pl.DataFrame:
    import synthgen.models.encoding as encoding
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.sources import infer_schema

    model = ModelSettings(kind="dp_mst", device="cpu", seed=seed)
    synth = make_synthesizer(
        "dp_mst", schema=infer_schema(real), model=model, privacy=PrivacySettings(epsilon=eps, delta=1e-5)
    )
    kept = encoding.dp_range_quantiles
    if baseline:
        encoding.dp_range_quantiles = _single_histogram  # type: ignore[assignment]
    try:
        synth.fit(real)
    finally:
        encoding.dp_range_quantiles = kept
    return synth.sample(real.height, seed=seed)


@benchmark("dp_ranges")
def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = []
    for n, eps in CASES[-1:] if args.quick else CASES:
        real = table(n)
        sides: dict[str, dict[str, dict[str, float]]] = {}
        for side in ("synthgen", "single_histogram"):
            per: dict[str, list[dict[str, float]]] = {c: [] for c in real.columns}
            for seed in range(1 if args.quick else FITS):
                out = _fit(real, eps, seed, baseline=side != "synthgen")
                for c in real.columns:
                    per[c].append(_column_scores(real[c], out[c]))
            sides[side] = {
                c: {k: round(float(np.mean([x[k] for x in v])), 4) for k in v[0]} for c, v in per.items()
            }
        cases.append({"rows": n, "epsilon": eps, **sides})

    def worst(side: str, key: str, names: tuple[str, ...], rows: int | None = None) -> float:
        return max(c[side][k][key] for c in cases for k in names if rows is None or c["rows"] >= rows)

    reach_10k = worst("synthgen", "reach_spans", NARROW, rows=10_000)
    below = all(
        c["synthgen"][k]["reach_spans"] <= c["single_histogram"][k]["reach_spans"]
        for c in cases
        for k in NARROW
    )
    wide_worse = max(c["synthgen"][k]["tvd"] - c["single_histogram"][k]["tvd"] for c in cases for k in WIDE)
    return {
        "fits_per_case": 1 if args.quick else FITS,
        "table": "bench.dp_ranges.table: 7 generated numeric columns, no schema declared",
        "baseline": "single_histogram: one DP histogram on the log grid at the column's whole noise "
        "(the mechanism before)",
        "cases": cases,
        "narrow_reach_spans_max_10k": round(reach_10k, 4),
        "narrow_reach_spans_max_10k_baseline": round(
            worst("single_histogram", "reach_spans", NARROW, 10_000), 4
        ),
        "narrow_reach_below_baseline_everywhere": below,
        "wide_tvd_worse_max": round(wide_worse, 4),
        "goal": "at 10,000 rows narrow_reach_spans_max <= 1; below the baseline in every case; "
        "wide_tvd_worse_max <= 0.01",
        "goal_met": reach_10k <= 1.0 and below and wide_worse <= 0.01,
    }
