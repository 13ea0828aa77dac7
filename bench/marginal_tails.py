"""Marginals that look like the data on general tables, before and after, in one run (issue 13, point 2).

Two seeded generators hold the kinds of structure that break DP preprocessing on tables nobody
declared anything for (nothing here is real, and nothing is fitted to a real table's files):

- :func:`mixed_table`: 15 columns: zero-inflated heavy-tailed amounts (about 90% exact zeros, a
  log-normal tail up to a cap that is itself a spike, a few off-grid exact values each holding
  ~1%), a 40-value long-tail categorical (Zipf), a 16-value skewed categorical beside its integer
  code, an integer column with a big spike and round-number spikes, columns with no null beside
  columns with nulls, a binary target driven by several columns.
- :func:`wide_table`: 44 columns of the same kinds (amounts rounded to hundreds with round-number
  spikes, categoricals of 3-40 values, integer codes, floats, a few nullable columns, a target).

Each table is fitted through the model API with the schema inferred (a new user's run), by the
code before (``--baseline REV``, default ``main``: its ``synthgen`` package extracted by ``git
archive`` and imported in a subprocess) and by the working tree, same tables, same seeds, same run.
Figures per fit: mean 1-way TVD (numeric columns in the real deciles, as ``bench utility``), the
largest gap between real and synthetic zero share over the zero-inflated columns, the share of
the long-tail categorical's values holding >= 0.5% of real rows that the synthetic data keeps (each
at >= 0.1%), the synthetic ``other`` share of it, the largest null share of a column with none,
the synthetic share above the real 99th percentile of the heaviest amount (real: 1%), the share of
the exact spike values, and TSTR ROC AUC (HistGradientBoosting trained on synthetic, tested on a
held-out real split).

Run: ``python -m bench marginal_tails`` (``SYNTHGEN_BENCH_FITS``, default 2; ``--quick``: 1 fit;
``SYNTHGEN_BENCH_BASELINE``, the 'before' revision; ``SYNTHGEN_BENCH_TVAE=0`` skips the DP-TVAE job).
The result in ``bench/results/marginal_tails.json`` compares 6298cfd (before the Gaussian
preprocessing and the DP null counts) with the working tree. ``tail_share_above_real_q99`` reads 0
on both sides of both tables (the mixed table's real 99th percentile is its cap spike; the wide
table's top percent sits past the range DP finds at 10,000 rows): a known gap, kept visible.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark
from bench.utility import tstr, tvd_1way

ROOT = Path(__file__).resolve().parent.parent


def _zipf(rng: np.random.Generator, k: int, a: float, n: int, prefix: str) -> np.ndarray:
    p = 1.0 / np.arange(1, k + 1) ** a
    return np.array([f"{prefix}{i}" for i in range(k)])[rng.choice(k, size=n, p=p / p.sum())]


def _amount(
    rng: np.random.Generator, n: int, *, zero: float, mu: float, sigma: float, cap: int, spikes: list[int]
) -> np.ndarray:
    """Zero-inflated, log-normal tail capped at ``cap`` (the cap itself a spike), exact spikes."""
    v = np.minimum(np.round(rng.lognormal(mu, sigma, n)), cap)
    u = rng.random(n)
    v = np.where(u < zero, 0, v)
    edge = zero
    for s in spikes:
        v = np.where((u >= edge) & (u < edge + 0.01), s, v)
        edge += 0.01
    return v.astype(np.int64)


def mixed_table(n: int, *, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    age = np.clip(np.round(17 + rng.gamma(2.5, 8.0, n)), 17, 90).astype(np.int64)
    level = _zipf(rng, 16, 1.1, n, "lvl")
    level_num = np.array([int(s[3:]) + 1 for s in level])
    group = rng.choice(["g0", "g1", "g2", "g3", "g4"], size=n, p=[0.85, 0.09, 0.03, 0.02, 0.01])
    status = _zipf(rng, 7, 1.0, n, "st")
    job = _zipf(rng, 14, 0.6, n, "job")
    role = _zipf(rng, 6, 0.9, n, "role")
    flag = rng.choice(["a", "b"], size=n, p=[0.67, 0.33])
    origin = _zipf(rng, 40, 2.2, n, "c")
    weight = np.round(rng.lognormal(12.0, 0.5, n)).astype(np.int64)
    gain = _amount(rng, n, zero=0.91, mu=8.3, sigma=1.0, cap=99_999, spikes=[15_031, 7_712, 99_999])
    loss = _amount(rng, n, zero=0.95, mu=7.5, sigma=0.25, cap=4_356, spikes=[1_902])
    hours = np.clip(np.round(rng.normal(40, 12, n)), 1, 99).astype(np.int64)
    u = rng.random(n)
    hours = np.where(u < 0.45, 40, np.where(u < 0.55, 50, np.where(u < 0.6, 60, hours)))
    logit = (
        -2.2
        + 0.04 * (age - 38)
        + 0.18 * (level_num - 4)
        + 1.2 * (gain > 5000)
        + 0.8 * (loss > 1500)
        + 0.03 * (hours - 40)
        + 0.7 * (status == "st0")
        + 0.4 * (flag == "a")
    )
    target = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), ">T", "<=T")
    frame = pl.DataFrame(
        {
            "age": age,
            "sector": _zipf(rng, 8, 1.6, n, "sec"),
            "weight": weight,
            "level": level,
            "level_num": level_num,
            "status": status,
            "job": job,
            "role": role,
            "group": group,
            "flag": flag,
            "gain": gain,
            "loss": loss,
            "hours": hours,
            "origin": origin,
            "target": target,
        }
    )
    nulls = {"sector": 0.05, "job": 0.05, "origin": 0.02}
    return frame.with_columns(
        [
            pl.when(pl.Series(rng.random(n) < p)).then(None).otherwise(pl.col(c)).alias(c)
            for c, p in nulls.items()
        ]
    )


def wide_table(n: int, *, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    z = rng.normal(0, 1, n)
    for i in range(10):  # amounts: zeros, round hundreds, round-number spikes
        v = np.round(rng.lognormal(7.0 + 0.2 * i + 0.3 * z, 1.2, n) / 100) * 100
        u = rng.random(n)
        zero = 0.3 + 0.06 * i
        v = np.where(u < zero, 0, np.where(u < zero + 0.04, 1000, np.where(u < zero + 0.06, 5000, v)))
        cols[f"amt{i}"] = v.astype(np.int64)
    for i, k in enumerate([3, 5, 8, 12, 20, 25, 30, 40, 40, 15]):
        cols[f"cat{i}"] = _zipf(rng, k, 0.8 + 0.1 * i, n, f"k{i}_")
    for i, k in enumerate([2, 4, 6, 9, 12, 3, 7, 5]):
        p = rng.dirichlet(np.ones(k) * 0.7)
        cols[f"code{i}"] = rng.choice(np.arange(1, k + 1), size=n, p=p).astype(np.int64)
    for i in range(8):
        x = rng.normal(50 + 10 * i, 5 + 3 * i, n) + 4 * z if i % 2 else rng.lognormal(3 + 0.3 * i, 0.7, n)
        cols[f"x{i}"] = np.round(x, 2)
    for i in range(6):
        cols[f"b{i}"] = rng.choice(["yes", "no"], size=n, p=[0.2 + 0.1 * i, 0.8 - 0.1 * i])
    logit = -1.0 + 0.8 * z + 0.5 * (cols["cat3"] == "k3_0") + 0.3 * (cols["code2"] > 3)
    logit = logit + 0.6 * (cols["amt0"] > 0) - 0.4 * (cols["b1"] == "yes")
    cols["target"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), 1, 0).astype(np.int64)
    frame = pl.DataFrame(cols)
    nulls = {"x1": 0.1, "x4": 0.03, "cat5": 0.05, "amt3": 0.08}
    return frame.with_columns(
        [
            pl.when(pl.Series(rng.random(n) < p)).then(None).otherwise(pl.col(c)).alias(c)
            for c, p in nulls.items()
        ]
    )


#: What each table's figures look at: zero-inflated columns, the long-tail categorical, the heaviest
#: amount (tail), its exact spike values, the target and its positive value.
TABLES: dict[str, dict[str, Any]] = {
    "mixed": {
        "make": mixed_table,
        "zeros": ["gain", "loss"],
        "long_tail": "origin",
        "tail": "gain",
        "spikes": {"gain": [15_031, 7_712, 99_999], "hours": [40, 50, 60]},
        "target": ("target", ">T"),
    },
    "wide": {
        "make": wide_table,
        "zeros": [f"amt{i}" for i in range(10)],
        "long_tail": "cat8",
        "tail": "amt9",
        "spikes": {"amt0": [1000, 5000], "amt9": [1000, 5000]},
        "target": ("target", 1),
    },
}


# -- figures (the same code measures both sides) -----------------------------------------------


def figures(
    spec: dict[str, Any], real: pl.DataFrame, syn: pl.DataFrame, test: pl.DataFrame
) -> dict[str, float]:
    def share(s: pl.Series, v: Any) -> float:
        return float((s == v).fill_null(False).mean() or 0.0)

    lt = spec["long_tail"]
    vc = real[lt].drop_nulls().value_counts()
    heavy = [
        v for v, c in zip(vc[lt].to_list(), vc["count"].to_list(), strict=True) if c >= 0.005 * real.height
    ]
    kept = [v for v in heavy if share(syn[lt], v) >= 0.001]
    tail = spec["tail"]
    q99 = float(np.nanquantile(real[tail].cast(pl.Float64).to_numpy(), 0.99))
    nonnull = [c for c in real.columns if real[c].null_count() == 0]
    out = {
        "tvd_1way": tvd_1way(real, syn),
        "max_zero_share_gap": max(abs(share(syn[c], 0) - share(real[c], 0)) for c in spec["zeros"]),
        "long_tail_heavy_values_kept": len(kept) / len(heavy),
        "long_tail_other_share": share(syn[lt], "other"),
        "max_null_share_no_null_column": max(syn[c].null_count() / syn.height for c in nonnull),
        "tail_share_above_real_q99": float((syn[tail].cast(pl.Float64) > q99).fill_null(False).mean() or 0.0),
        "spike_share_gap": max(
            abs(share(syn[c], v) - share(real[c], v)) for c, vs in spec["spikes"].items() for v in vs
        ),
        "non_integer_share_of_integer_columns": max(
            float((syn[c].cast(pl.Float64) % 1 != 0).fill_null(False).mean() or 0.0)
            for c in real.columns
            if real[c].dtype.is_integer()
        ),
        "tstr_auc": tstr(syn, test, *spec["target"]),
    }
    return {k: round(v, 4) for k, v in out.items()}


def measure(table: str, kind: str, eps: float, rows: int, fits: int, epochs: int) -> list[dict[str, Any]]:
    """Fit ``fits`` times and return the figures (called in-process for both trees)."""
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.schema import TableSchema
    from synthgen.sources import infer_schema

    spec = TABLES[table]
    whole = spec["make"](rows + rows // 2, seed=11)
    real, test = whole.head(rows), whole.tail(rows // 2)
    schema = infer_schema(real)
    schema = TableSchema(columns=[c for c in schema.columns if c.type.value != "id"])
    out = []
    for seed in range(fits):
        extra: dict[str, Any] = {"epochs": epochs} if kind != "dp_mst" else {}
        m = make_synthesizer(
            kind,
            schema=schema,
            model=ModelSettings(kind=kind, seed=seed, **extra),
            privacy=PrivacySettings(epsilon=eps),
        )
        t0 = time.perf_counter()
        m.fit(real)
        syn = m.sample(rows, seed=seed)
        fig = figures(spec, real, syn, test)
        fig["fit_s"] = round(time.perf_counter() - t0, 2)
        assert m.privacy_record_ is not None
        fig["spent_epsilon"] = round(m.privacy_record_.spent_epsilon, 4)
        out.append(fig)
    return out


def _baseline_tree(rev: str) -> Path:
    """``rev``'s synthgen package in a temporary folder (the 'before' side)."""
    blob = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "synthgen"], check=True, capture_output=True
    ).stdout
    tmp = Path(tempfile.mkdtemp(prefix="marg-base-"))
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(tmp, filter="data")
    return tmp


def _run_side(tree: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    code = (
        "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "from bench.marginal_tails import measure; print(json.dumps(measure(**json.loads(sys.argv[3]))))"
    )
    env = dict(os.environ, PYTHONPATH="")
    res = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(ROOT), json.dumps(job)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}


@benchmark("marginal_tails")
def run(args: argparse.Namespace) -> dict[str, Any]:
    fits = 1 if args.quick else int(os.environ.get("SYNTHGEN_BENCH_FITS", "2"))
    rev = os.environ.get("SYNTHGEN_BENCH_BASELINE", "main")
    base = _baseline_tree(rev)
    jobs = [
        {"table": t, "kind": "dp_mst", "eps": e, "rows": 10_000, "fits": fits, "epochs": 0}
        for t in ("mixed", "wide")
        for e in (1.0, 3.0)
    ]
    if os.environ.get("SYNTHGEN_BENCH_TVAE", "1") == "1":
        jobs.append({"table": "mixed", "kind": "dp_tvae", "eps": 3.0, "rows": 10_000, "fits": 1, "epochs": 5})
    result: dict[str, Any] = {"baseline": rev, "fits": fits, "rows": 10_000, "runs": []}
    for job in jobs:
        before, after = _run_side(base, job), _run_side(ROOT, job)
        row = {**job, "before": _summary(before), "after": _summary(after)}
        print(json.dumps(row), flush=True)
        result["runs"].append(row)
    return result
