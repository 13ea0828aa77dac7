"""What integer-valued noise costs: the exact discrete Laplace sampler against numpy's Laplace.

Two ways in the same run:

* ``discrete`` (synthgen): :func:`synthgen.privacy.discrete.discrete_laplace`, exact
  integer arithmetic (Canonne, Kamath and Steinke 2020), pure Python;
* ``continuous`` (baseline): ``numpy.random.Generator.laplace`` with scale ``1/epsilon``,
  the floating-point mechanism synthgen used before.

Figures: time per draw, the noise's variance and mean absolute error (the accuracy cost of
integer noise is its variance ``2p/(1-p)^2`` with ``p = e^-eps``, about ``2/eps^2``), and
end to end the DP preprocessing of a DP-TVAE fit on Adult's training rows (DP row count,
DP quantiles of every numeric column, DP category discovery) with each noise source.

Run: ``python -m bench discrete_noise``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from bench.harness import alternating_median_times, benchmark


def _continuous(epsilon: float, size: int, rng: np.random.Generator) -> np.ndarray:
    return rng.laplace(0.0, 1.0 / epsilon, size=size)


def _draws(draws: int) -> list[dict[str, Any]]:
    from synthgen.privacy.discrete import discrete_laplace

    out = []
    for eps in (0.1, 1.0, 3.0):
        rng = np.random.default_rng(0)
        sides = {
            "discrete": lambda eps=eps, rng=rng: discrete_laplace(eps, draws, rng=rng),
            "continuous": lambda eps=eps, rng=rng: _continuous(eps, draws, rng),
        }
        times = alternating_median_times(list(sides.values()), repeats=3)
        row: dict[str, Any] = {"epsilon": eps, "draws": draws}
        for (name, fn), t in zip(sides.items(), times, strict=True):
            z = fn()
            row[name] = {
                "us_per_draw": round(t / draws * 1e6, 3),
                "variance": round(float(np.var(z)), 4),
                "mean_abs_error": round(float(np.mean(np.abs(z))), 4),
            }
        p = float(np.exp(-eps))
        row["discrete_variance_theory"] = round(2 * p / (1 - p) ** 2, 4)
        row["continuous_variance_theory"] = round(2 / eps**2, 4)
        out.append(row)
    return out


def _preprocessing(args: argparse.Namespace) -> dict[str, Any]:
    import polars as pl

    from synthgen.models.base import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy import mechanisms
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.schema import ColumnSchema, ColumnType, TableSchema

    frame = pl.read_csv(args.data / "adult_train.csv")
    if args.quick:
        frame = frame.head(5_000)
    cols = []
    for name, dtype in frame.schema.items():
        kind = ColumnType.numeric if dtype.is_numeric() else ColumnType.categorical
        cols.append(ColumnSchema(name=name, type=kind, integer=dtype.is_integer()))
    schema = TableSchema(columns=cols)
    synth = make_synthesizer(
        "dp_tvae",
        schema=schema,
        model=ModelSettings(kind="dp_tvae", device="cpu"),
        privacy=PrivacySettings(epsilon=3.0),
    )
    discrete = mechanisms.count_noise

    def with_discrete() -> None:
        mechanisms.count_noise = discrete
        synth._prepare(frame)

    def with_continuous() -> None:
        mechanisms.count_noise = _continuous  # type: ignore[assignment]
        synth._prepare(frame)

    try:
        t_discrete, t_continuous = alternating_median_times([with_discrete, with_continuous], repeats=3)
    finally:
        mechanisms.count_noise = discrete
    return {
        "rows": frame.height,
        "columns": len(cols),
        "discrete_s": round(t_discrete, 3),
        "continuous_s": round(t_continuous, 3),
        "extra_s": round(t_discrete - t_continuous, 3),
    }


@benchmark("discrete_noise")
def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    draws = _draws(2_000 if args.quick else 20_000)
    prep = _preprocessing(args)
    return {
        "baseline": "numpy Generator.laplace (floating point), same run",
        "draws": draws,
        "dp_preprocessing_adult": prep,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "note": "2 shared cores under other agents' load: relative figures only",
    }
