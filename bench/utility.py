"""Utility of the synthetic data: relationships between columns, ML utility, marginals, fit time.

Side by side in one run, the marginal-based kind (``dp_mst``) against DP-TVAE (the shipped
default before ``auto``), on:

* the demo table (``synthgen.demo.data.generate_patients``: 10,000 visits, seed 0; the first
  8,000 train, the last 2,000 are the real test rows), its 8 tabular columns with the demo
  spec's public category lists and bounds, at epsilon 1 and 3, and at 2.1 (the tabular share
  of epsilon 3 when ``make demo`` also trains the text model). Figures: the association of
  every pair (Cramer's V for two categoricals, the correlation ratio for categorical x
  numeric, |Pearson r| for two numerics; booleans are categorical, dates numeric), real vs
  synthetic, the four strongest real pairs and the mean gap over all 28; TSTR (HistGradient-
  Boosting trained on 8,000 synthetic rows, ROC AUC on the real test rows) vs TRTR (trained on
  the real training rows) for ``readmitted_30d``; mean 1-way TVD; fit seconds.
* Adult (``adult_train.csv`` / ``adult_test.csv``) with no schema declared (types inferred as a
  new user gets them), at epsilon 1 and 3: TSTR ROC AUC for ``income``, mean 1-way and 2-way
  TVD, capital_gain's share of zeros, fit seconds.

Bars (issue 13): demo's four strongest pairs within 0.15, mean gap <= 0.05, TSTR >= 0.9 TRTR;
Adult TSTR >= 0.88 at epsilon 1 and >= 0.90 at epsilon 3, 1-way TVD <= 0.03.

Run: ``python -m bench utility`` (``--quick``: 2,000 demo rows, epsilon 3 only, DP-TVAE 3 epochs).
``SYNTHGEN_BENCH_KINDS`` (default ``dp_mst,dp_tvae``) and ``SYNTHGEN_BENCH_TABLES`` (``demo,adult``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark

DEMO_TARGET = "readmitted_30d"
DEMO_COLUMNS = [
    "sex",
    "insurance",
    "diagnosis_category",
    "length_of_stay",
    "total_charges",
    "readmitted_30d",
    "date_of_birth",
    "admission_date",
]


def _demo_schema() -> Any:
    """The demo spec's declarations for its tabular columns (public lists and bounds)."""
    from synthgen.schema import ColumnSchema, TableSchema

    diag = "cardiac respiratory orthopedic neurological gastrointestinal infectious oncology"
    diag += " maternity psychiatric"
    return TableSchema(
        columns=[
            ColumnSchema(name="sex", type="categorical", categories=["F", "M"], nullable=False),
            ColumnSchema(
                name="insurance",
                type="categorical",
                categories=["medicare", "medicaid", "private", "self-pay"],
                nullable=False,
            ),
            ColumnSchema(
                name="diagnosis_category", type="categorical", categories=diag.split(), nullable=False
            ),
            ColumnSchema(name="length_of_stay", type="numeric", bounds=(0, 60), integer=True, nullable=False),
            ColumnSchema(name="total_charges", type="numeric", bounds=(0, 250_000), nullable=False),
            ColumnSchema(name="readmitted_30d", type="boolean", nullable=False),
            ColumnSchema(name="date_of_birth", type="datetime", nullable=False),
            ColumnSchema(name="admission_date", type="datetime", nullable=False),
        ]
    )


# -- yardsticks ------------------------------------------------------------------------------


def _is_categorical(s: pl.Series) -> bool:
    return s.dtype in (pl.String, pl.Boolean, pl.Categorical)


def _numeric(s: pl.Series) -> np.ndarray:
    if s.dtype in (pl.Date, pl.Datetime):
        s = s.cast(pl.Datetime("us")).dt.epoch("s")
    return s.cast(pl.Float64).to_numpy()


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)
    n = table.sum()
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1.0)).sum())
    k = min(table.shape) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 else 0.0


def _eta(groups: np.ndarray, y: np.ndarray) -> float:
    _, g = np.unique(groups, return_inverse=True)
    total = ((y - y.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    sums = np.bincount(g, weights=y)
    counts = np.bincount(g)
    means = sums / np.maximum(counts, 1)
    between = (counts * (means - y.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def association(frame: pl.DataFrame, a: str, b: str) -> float:
    """Cramer's V, correlation ratio or |Pearson r| of one pair (rows with a null dropped)."""
    f = frame.select(a, b).drop_nulls()
    sa, sb = f[a], f[b]
    if f.height < 3:
        return 0.0
    if _is_categorical(sa) and _is_categorical(sb):
        return _cramers_v(sa.cast(pl.String).to_numpy(), sb.cast(pl.String).to_numpy())
    if _is_categorical(sa) or _is_categorical(sb):
        cat, num = (sa, sb) if _is_categorical(sa) else (sb, sa)
        return _eta(cat.cast(pl.String).to_numpy(), _numeric(num))
    x, y = _numeric(sa), _numeric(sb)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(abs(np.corrcoef(x, y)[0, 1]))


def associations(real: pl.DataFrame, synth: pl.DataFrame) -> dict[str, Any]:
    pairs = list(itertools.combinations(real.columns, 2))
    rows = [
        {"pair": f"{a} x {b}", "real": association(real, a, b), "synth": association(synth, a, b)}
        for a, b in pairs
    ]
    rows.sort(key=lambda r: -r["real"])
    gaps = [abs(r["real"] - r["synth"]) for r in rows]
    top4 = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows[:4]]
    return {
        "top4": top4,
        "top4_within_0.15": all(abs(r["real"] - r["synth"]) <= 0.15 for r in rows[:4]),
        "mean_gap": round(float(np.mean(gaps)), 4),
        "pairs": len(rows),
    }


def _features(frame: pl.DataFrame, target: str) -> pl.DataFrame:
    out = []
    for c in frame.columns:
        if c == target:
            continue
        s = frame[c]
        out.append(s.cast(pl.String) if _is_categorical(s) else pl.Series(c, _numeric(s)))
    return pl.DataFrame(out)


def tstr(train: pl.DataFrame, test: pl.DataFrame, target: str, positive: Any) -> float:
    """HistGradientBoosting (one-hot categoricals) trained on ``train``, ROC AUC on ``test``."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    def label(f: pl.DataFrame) -> np.ndarray:
        s = f[target]
        if s.dtype == pl.Boolean:
            return s.fill_null(False).to_numpy().astype(int)
        return (s.cast(pl.String) == positive).fill_null(False).to_numpy().astype(int)

    y = label(train)
    if y.min() == y.max():
        return 0.5
    both = pl.concat([_features(train, target), _features(test, target)], how="vertical_relaxed").to_pandas()
    cats = [c for c in both.columns if both[c].dtype == object]
    x = pd.get_dummies(both, columns=cats, dummy_na=True).astype(float)
    model = HistGradientBoostingClassifier(random_state=0).fit(x.iloc[: train.height], y)
    return float(roc_auc_score(label(test), model.predict_proba(x.iloc[train.height :])[:, 1]))


def tvd_1way(real: pl.DataFrame, synth: pl.DataFrame) -> float:
    """Mean 1-way total variation distance; numeric columns in the real data's deciles."""
    out = []
    for c in real.columns:
        r, s = real[c], synth[c]
        if _is_categorical(r):
            a = r.cast(pl.String).fill_null("<null>").value_counts()
            b = s.cast(pl.String).fill_null("<null>").value_counts()
            pa = dict(zip(a[c].to_list(), (a["count"] / real.height).to_list(), strict=True))
            pb = dict(zip(b[c].to_list(), (b["count"] / synth.height).to_list(), strict=True))
        else:
            rv, sv = _numeric(r), _numeric(s)
            edges = np.unique(np.nanquantile(rv, np.linspace(0, 1, 11))[1:-1])

            def hist(v: np.ndarray, edges: np.ndarray = edges) -> dict[int, float]:
                k = np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right"))
                keys, counts = np.unique(k, return_counts=True)
                return dict(zip(keys.tolist(), (counts / len(v)).tolist(), strict=True))

            pa, pb = hist(rv), hist(sv)
        out.append(0.5 * sum(abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in set(pa) | set(pb)))
    return round(float(np.mean(out)), 4)


# -- runs ------------------------------------------------------------------------------------


def _fit_sample(
    kind: str, train: pl.DataFrame, schema: Any, *, eps: float, quick: bool
) -> tuple[pl.DataFrame, float, Any]:
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings

    extra: dict[str, Any] = {"epochs": 3} if quick and kind == "dp_tvae" else {}
    model = ModelSettings(kind=kind, device="cpu", **extra)  # type: ignore[arg-type]
    synth = make_synthesizer(kind, schema=schema, model=model, privacy=PrivacySettings(epsilon=eps))
    t0 = time.perf_counter()
    synth.fit(train)
    fit_s = time.perf_counter() - t0
    out = synth.sample(train.height, seed=0)
    return out, fit_s, synth.privacy_record_


def _demo(kinds: list[str], *, quick: bool) -> dict[str, Any]:
    from synthgen.demo.data import generate_patients

    n = 2_500 if quick else 10_000
    real, _ = generate_patients(n, seed=0)
    real = real.select(DEMO_COLUMNS)
    cut = int(n * 0.8)
    train, test = real.head(cut), real.tail(n - cut)
    schema = _demo_schema()
    out: dict[str, Any] = {
        "rows": {"train": train.height, "test": test.height},
        "trtr_auc": round(tstr(train, test, DEMO_TARGET, True), 4),
        "real": associations(train, train)["top4"],
        "runs": [],
    }
    for eps in [3.0] if quick else [1.0, 2.1, 3.0]:
        for kind in kinds:
            synth, fit_s, rec = _fit_sample(kind, train, schema, eps=eps, quick=quick)
            auc = tstr(synth, test, DEMO_TARGET, True)
            row = {
                "kind": kind,
                "epsilon": eps,
                "spent_epsilon": round(rec.spent_epsilon, 4),
                "fit_s": round(fit_s, 2),
                **associations(train, synth),
                "tstr_auc": round(auc, 4),
                "tstr_over_trtr": round(auc / out["trtr_auc"], 3),
                "tvd_1way": tvd_1way(train, synth),
            }
            out["runs"].append(row)
            print(f"demo eps={eps} {kind}: gap {row['mean_gap']} tstr {row['tstr_auc']} fit {row['fit_s']} s")
    return out


def _adult(kinds: list[str], data: Path, *, quick: bool) -> dict[str, Any]:
    from bench.dp_models import marginal_tvd
    from synthgen.sources import infer_schema

    train = pl.read_csv(data / "adult_train.csv")
    test = pl.read_csv(data / "adult_test.csv")
    if quick:
        train = train.head(8_000)
    schema = infer_schema(train.head(10_000))  # nothing declared: what a new user gets
    zeros_real = float((train["capital_gain"] == 0).mean())
    out: dict[str, Any] = {
        "rows": {"train": train.height, "test": test.height},
        "inferred_types": {c.name: c.type.value for c in schema.columns},
        "trtr_auc": round(tstr(train, test, "income", ">50K"), 4),
        "capital_gain_zero_share_real": round(zeros_real, 4),
        "runs": [],
    }
    for eps in [3.0] if quick else [1.0, 3.0]:
        for kind in kinds:
            synth, fit_s, rec = _fit_sample(kind, train, schema, eps=eps, quick=quick)
            zeros = float((synth["capital_gain"] == 0).mean() or 0.0)
            row = {
                "kind": kind,
                "epsilon": eps,
                "spent_epsilon": round(rec.spent_epsilon, 4),
                "fit_s": round(fit_s, 2),
                "tstr_auc": round(tstr(synth, test, "income", ">50K"), 4),
                "tvd_1way": tvd_1way(train, synth),
                "tvd_2way": marginal_tvd(train, synth)["tvd_2way"],
                "capital_gain_zero_share": round(zeros, 4),
                "capital_gain_max": float(synth["capital_gain"].max() or 0),
                "other_share": {
                    c: round(float((synth[c] == "other").mean() or 0.0), 4)
                    for c in synth.columns
                    if synth[c].dtype == pl.String and (synth[c] == "other").any()
                },
            }
            out["runs"].append(row)
            print(
                f"adult eps={eps} {kind}: tstr {row['tstr_auc']} tvd1 {row['tvd_1way']} fit {row['fit_s']} s"
            )
    return out


@benchmark("utility")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHGEN_BENCH_THREADS", "2")))
    kinds = os.environ.get("SYNTHGEN_BENCH_KINDS", "dp_mst,dp_tvae").split(",")
    tables = os.environ.get("SYNTHGEN_BENCH_TABLES", "demo,adult").split(",")
    baseline = (
        "dp_tvae (the previous default kind), same run"
        if "dp_tvae" in kinds
        else f"none in this run (SYNTHGEN_BENCH_KINDS={','.join(kinds)})"
    )
    result: dict[str, Any] = {"kinds": kinds, "baseline": baseline}
    if "demo" in tables:
        result["demo"] = _demo(kinds, quick=args.quick)
    if "adult" in tables:
        result["adult"] = _adult(kinds, Path(args.data), quick=args.quick)
    return result
