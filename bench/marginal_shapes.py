"""Marginals that look like the data, on tables nobody here tuned for (issue 13, point 2).

A new user's run: the seeded credit-like and hospital-like tables of :mod:`synthgen.demo.tables`
(3,000 rows each), types inferred (nothing declared), ``dp_mst`` at epsilon 2, several fits.
Figures per table, mean and range over the fits: identifier columns inferred (and so never
modelled), the share of synthetic 0/1 targets outside {0, 1}, of integer codes outside the real
codes, the largest null share of a column with no null, real null rates vs synthetic, the share of
exact zeros of a zero-heavy amount and of values in (0, 1) (zeros smeared into point masses).

No in-run baseline: most figures are defect counts whose right value is 0, the rest are compared
with the real table's (in the result). The same figures for the code before the fixes (main at
a1633c4, the same generators and fits) are in the README's "Marginals that look like the data".
``SYNTHGEN_BENCH_FITS`` (default 8).

Run: ``python -m bench marginal_shapes``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark


def _fit(real: pl.DataFrame, seed: int) -> tuple[pl.DataFrame, list[str]]:
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.schema import ColumnType, TableSchema
    from synthgen.sources import infer_schema

    schema = infer_schema(real)
    ids = [c.name for c in schema.columns if c.type == ColumnType.id]
    modelled = TableSchema(columns=[c for c in schema.columns if c.type != ColumnType.id])
    m = make_synthesizer(
        "dp_mst",
        schema=modelled,
        model=ModelSettings(kind="dp_mst"),
        privacy=PrivacySettings(epsilon=2.0),
    ).fit(real.drop(ids))
    return m.sample(real.height, seed=seed), ids


def _share(mask: pl.Series) -> float:
    return float(mask.mean() or 0.0)


def _figures(name: str, real: pl.DataFrame, syn: pl.DataFrame, ids: list[str]) -> dict[str, float]:
    nonnull = [c for c in syn.columns if real[c].null_count() == 0]
    out = {
        "identifier_columns_inferred": float(len(ids)),
        "max_null_share_of_a_column_without_nulls": max(syn[c].null_count() / syn.height for c in nonnull),
    }
    if name == "credit":
        out["default_outside_0_1"] = _share(~syn["default.next"].is_in([0, 1]))
        out["education_outside_real_codes"] = _share(~syn["EDUCATION"].is_in(real["EDUCATION"].unique()))
        out["income_null_share"] = syn["income"].null_count() / syn.height
        out["pay_amt1_zero_share"] = _share(syn["PAY_AMT1"] == 0)
        out["pay_amt1_share_in_0_1"] = _share((syn["PAY_AMT1"] > 0) & (syn["PAY_AMT1"] < 1))
    else:
        out["readmitted_outside_0_1"] = _share(~syn["readmitted"].is_in([0, 1]))
        out["admission_type_outside_real_codes"] = _share(
            ~syn["admission_type_id"].is_in(real["admission_type_id"].unique())
        )
        out["glucose_null_share"] = syn["glucose"].null_count() / syn.height
    return out


@benchmark("marginal_shapes")
def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthgen.demo.tables import credit_like, hospital_like

    fits = int(os.environ.get("SYNTHGEN_BENCH_FITS", "3" if args.quick else "8"))
    tables = {"credit": credit_like(3000, seed=1), "hospital": hospital_like(3000, seed=2)}
    result: dict[str, Any] = {"rows": 3000, "epsilon": 2.0, "kind": "dp_mst", "fits": fits}
    for name, real in tables.items():
        runs = [_figures(name, real, *_fit(real, seed)) for seed in range(fits)]
        if name == "credit":
            real_fig = {
                "income_null_share": real["income"].null_count() / real.height,
                "pay_amt1_zero_share": _share(real["PAY_AMT1"] == 0),
            }
        else:
            real_fig = {"glucose_null_share": real["glucose"].null_count() / real.height}
        result[name] = {
            "real": {k: round(v, 4) for k, v in real_fig.items()},
            "synthetic": {
                k: {
                    "mean": round(float(np.mean([r[k] for r in runs])), 4),
                    "min": round(float(np.min([r[k] for r in runs])), 4),
                    "max": round(float(np.max([r[k] for r in runs])), 4),
                }
                for k in runs[0]
            },
        }
        print(name, result[name])
    return result
