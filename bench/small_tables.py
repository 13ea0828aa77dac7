"""Small numeric tables through a whole DP-MST fit, nothing declared: are the relationships kept?

Hospitals and labs share tables of a few hundred rows and ten to thirty measurements (a trial arm,
a clinic's panel). A generated lab panel (:func:`lab_panel`: age, a sex code, BMI, blood pressure,
cholesterol and LDL that move together, HDL, their ratio, glucose, an outcome driven by several of
them), and a wide version with ten more measurement pairs (mean and worst of each, nearly equal), is
fitted ``FITS`` times per case two ways in the same run:

* ``synthgen``: edge marginals in groups of adjacent bins where the noise needs it
  (:func:`~synthgen.models.dp_mst.edge_groups`), a refined range read in as many fine buckets as the
  DP row count supports (:func:`~synthgen.privacy.mechanisms.fine_buckets`);
* ``ungrouped_128`` (baseline, the code before): one group per bin and 128 fine buckets always. Both
  project the tables to the DP count pooled with the 1-way totals.

Scores against the real table: mean 1-way TVD (real deciles), mean association gap over every pair
and the four strongest pairs (:func:`bench.utility.associations`), share of synthetic values outside
each column's real [min, max]. Goal: a lower association gap and TVD than the baseline in every case.

Run: ``python -m bench small_tables``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark

FITS = 8
CASES = [(400, 1.0, False), (400, 3.0, False), (1_500, 1.0, False), (1_500, 3.0, False), (450, 3.0, True)]


def lab_panel(n: int, seed: int = 1, wide: bool = False) -> pl.DataFrame:
    """A generated lab panel (10 columns, 30 with ``wide``), four latent factors; seeded, nothing real."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    age = np.clip(np.round(50 + 13 * z[:, 0]), 19, 80)
    bmi = np.round(np.exp(3.25 + 0.15 * (0.5 * z[:, 1] + 0.87 * rng.normal(size=n))), 1)
    bp = np.round(75 + 0.35 * age + 0.9 * (bmi - 26) + 10 * rng.normal(size=n))
    chol = np.round(190 + 35 * z[:, 2] + 0.4 * (age - 50))
    hdl = np.round(np.clip(50 - 8 * z[:, 1] + 10 * rng.normal(size=n), 20, 100))
    outcome = 150 + 60 * z[:, 1] + 25 * z[:, 3] + 0.8 * (bp - 95) + 30 * rng.normal(size=n)
    cols: dict[str, Any] = {
        "age": age,
        "sex": np.where(rng.random(n) < 0.47, 2.0, 1.0),
        "bmi": bmi,
        "bp": bp,
        "chol": chol,
        "ldl": np.round(0.65 * chol - 10 + 12 * rng.normal(size=n), 1),
        "hdl": hdl,
        "ratio": np.round(chol / hdl, 2),
        "glucose": np.round(np.exp(4.5 + 0.12 * z[:, 3] + 0.05 * z[:, 1])),
        "outcome": np.round(np.clip(outcome, 25, 350)),
    }
    if wide:
        for k in range(10):
            base = np.exp(rng.normal(k * 0.7, 0.25 + 0.05 * k) + 0.3 * z[:, k % 4])
            cols[f"m{k}_mean"] = np.round(base, 3)
            cols[f"m{k}_worst"] = np.round(base * rng.lognormal(0.3, 0.08, n), 3)
    return pl.DataFrame(cols)


@contextlib.contextmanager
def _baseline() -> Iterator[None]:
    """One group per bin (a cell target of ~0) and 128 fine buckets (a row target of ~0)."""
    import synthgen.models.dp_mst as dp_mst
    import synthgen.privacy.mechanisms as mechanisms

    kept = dp_mst.ROWS_PER_CELL_SIGMAS, mechanisms.FINE_ROWS_SIGMAS
    dp_mst.ROWS_PER_CELL_SIGMAS, mechanisms.FINE_ROWS_SIGMAS = 1e-12, 1e-12
    try:
        yield
    finally:
        dp_mst.ROWS_PER_CELL_SIGMAS, mechanisms.FINE_ROWS_SIGMAS = kept


def _fit(real: pl.DataFrame, eps: float, seed: int) -> pl.DataFrame | None:
    from synthgen.errors import SynthgenError
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.sources import infer_schema

    model = ModelSettings(kind="dp_mst", device="cpu", seed=seed)
    privacy = PrivacySettings(epsilon=eps, delta=1e-5)
    try:
        synth = make_synthesizer("dp_mst", schema=infer_schema(real), model=model, privacy=privacy).fit(real)
    except SynthgenError:  # a DP count too low to fit (the refusal), or no range above the noise
        return None
    return synth.sample(real.height, seed=seed)


def _scores(real: pl.DataFrame, synth: pl.DataFrame) -> dict[str, Any]:
    from bench.utility import associations, tvd_1way

    a = associations(real, synth)
    lo, hi = real.min().row(0), real.max().row(0)
    outside = np.mean(
        [((synth[c] < lo[k]) | (synth[c] > hi[k])).mean() for k, c in enumerate(real.columns)]  # type: ignore[operator]
    )
    return {
        "tvd": tvd_1way(real, synth),
        "mean_gap": a["mean_gap"],
        "outside": float(outside),
        "top4": a["top4"],
    }


@benchmark("small_tables")
def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = []
    fits = 2 if args.quick else FITS
    for n, eps, wide in CASES[1:2] if args.quick else CASES:
        real = lab_panel(n, wide=wide)
        sides: dict[str, Any] = {}
        for side in ("synthgen", "ungrouped_128"):
            runs = []
            for seed in range(fits):
                with _baseline() if side != "synthgen" else contextlib.nullcontext():
                    out = _fit(real, eps, seed)
                if out is not None:
                    runs.append(_scores(real, out))
            sides[side] = {
                "fits": len(runs),
                **{k: round(float(np.mean([r[k] for r in runs])), 4) for k in ("tvd", "mean_gap", "outside")},
                "top4_first_fit": runs[0]["top4"] if runs else [],
            }
        cases.append({"rows": n, "columns": real.width, "epsilon": eps, **sides})
    better = all(c["synthgen"][k] <= c["ungrouped_128"][k] for c in cases for k in ("tvd", "mean_gap"))
    return {
        "fits_per_case": fits,
        "table": "bench.small_tables.lab_panel: 10 (or 30) generated numeric columns, no schema declared",
        "baseline": "ungrouped_128: one group per bin in the edge marginals, 128 fine buckets (before)",
        "cases": cases,
        "goal": "mean_gap and tvd at or below the baseline's in every case",
        "goal_met": better,
    }
