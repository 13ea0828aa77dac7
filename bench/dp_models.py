"""DP-TVAE on Adult against ctgan's non-private TVAE, side by side in one run.

Figures:

* ``speed``: seconds per training epoch (median over epochs, setup excluded) of
  DP-TVAE under DP (eps 3) and without DP, vs ``ctgan.TVAE`` at the same batch
  size (its epochs are timed alone, without its BayesianGaussianMixture preprocessing).
  Goal: <= 1.5x.
* ``sampling``: rows per second of ``sample(n)`` to a frame, both sides: median of 5 calls each,
  timed in turns after a warm-up call. Goal: >= 2x.
* ``utility``: train on synthetic (made from ``adult_train.csv``), test on
  ``adult_test.csv``: HistGradientBoosting ROC AUC with one-hot categoricals, at
  eps 1 and 3 (delta 1e-5) and without DP, with the public Adult schema (category
  lists from ``adult.names``, bounds from domain knowledge), plus eps 3 and 1 with every
  category list and bound discovered by DP mechanisms, each also with the old fixed
  preprocessing share 0.1 as the baseline of today's default. Also the mean 1-way and
  2-way marginal total variation distance to ``adult_train.csv`` (numeric columns
  in 10 bins at the real data's deciles). The same classifier trained on the real
  rows is the reference.
* Other model kinds join the utility table with ``SYNTHGEN_BENCH_KINDS=dp_tvae,dp_ctgan``
  (each goes through ``synthgen.models.make_synthesizer``).

Run: ``python -m bench dp_models`` (``--quick`` for a smoke run). Device from
``SYNTHGEN_BENCH_DEVICE`` (default cpu), torch threads from ``SYNTHGEN_BENCH_THREADS``,
parts from ``SYNTHGEN_BENCH_PARTS`` (default ``speed,utility``; speed includes sampling).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import alternating_median_times, benchmark

NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
TARGET = "income"
#: Bounds from domain knowledge, not from the data: ages, weekly hours, the census top-code of
#: capital gains (99,999), education levels 1..16, and generous ranges for the weights and losses.
PUBLIC_BOUNDS: dict[str, tuple[float, float]] = {
    "age": (0, 120),
    "fnlwgt": (0, 2_000_000),
    "education_num": (1, 16),
    "capital_gain": (0, 100_000),
    "capital_loss": (0, 10_000),
    "hours_per_week": (0, 168),
}


def _names_categories(data: Path) -> dict[str, list[str]]:
    """Category lists from ``adult.names`` (public documentation of the dataset)."""
    cats: dict[str, list[str]] = {}
    for line in (data / "adult.names").read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("|") or ":" not in line:
            continue
        key, _, rest = line.partition(":")
        rest = rest.strip().rstrip(".")
        if rest.startswith("continuous") or not rest:
            continue
        cats[key.strip().replace("-", "_")] = [v.strip() for v in rest.split(",")]
    cats[TARGET] = ["<=50K", ">50K"]
    return cats


def _schema(frame: pl.DataFrame, data: Path | None = None, *, public: bool) -> Any:
    """Adult's schema: with ``public``, the category lists and bounds from the dataset's public
    documentation (``data/adult.names``); without, types only (lists and bounds by DP discovery)."""
    from synthgen.schema import ColumnSchema, ColumnType, TableSchema

    if public and data is None:
        raise ValueError("the public schema reads adult.names: pass the data directory")
    cats = _names_categories(data) if public and data is not None else {}
    cols = []
    for c in frame.columns:
        if c in NUMERIC:
            cols.append(
                ColumnSchema(
                    name=c,
                    type=ColumnType.numeric,
                    integer=True,
                    bounds=PUBLIC_BOUNDS[c] if public else None,
                )
            )
        else:
            cols.append(ColumnSchema(name=c, type=ColumnType.categorical, categories=cats.get(c)))
    return TableSchema(columns=cols)


# -- yardsticks ------------------------------------------------------------------------------


def _label(frame: pl.DataFrame) -> np.ndarray:
    return (
        frame.get_column(TARGET).cast(pl.String).str.contains(">50K").fill_null(False).to_numpy().astype(int)
    )


def tstr_auc(train: pl.DataFrame, test: pl.DataFrame) -> float:
    """HistGradientBoosting on one-hot categoricals, trained on ``train``, ROC AUC on ``test``."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    y = _label(train)
    if y.min() == y.max():
        return 0.5
    feats = [c for c in test.columns if c != TARGET]
    both = pl.concat(
        [
            train.select(feats).cast({c: pl.Float64 for c in NUMERIC}),
            test.select(feats).cast({c: pl.Float64 for c in NUMERIC}),
        ],
        how="vertical_relaxed",
    ).to_pandas()
    cats = [c for c in feats if c not in NUMERIC]
    x = pd.get_dummies(both, columns=cats, dummy_na=True).astype(float)
    xs, xt = x.iloc[: train.height], x.iloc[train.height :]
    model = HistGradientBoostingClassifier(random_state=0).fit(xs, y)
    return float(roc_auc_score(_label(test), model.predict_proba(xt)[:, 1]))


def marginal_tvd(real: pl.DataFrame, synth: pl.DataFrame) -> dict[str, float]:
    """Mean total variation distance of all 1-way and 2-way marginals (numerics in real deciles)."""

    def codes(frame: pl.DataFrame) -> np.ndarray:
        out = []
        for c in real.columns:
            if c in NUMERIC:
                edges = np.unique(np.quantile(real[c].drop_nulls().to_numpy(), np.linspace(0, 1, 11))[1:-1])
                v = frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
                k = np.searchsorted(edges, v, side="right")
                out.append(np.where(np.isnan(v), -1, k))
            else:
                s = frame[c].cast(pl.String).fill_null("<null>")
                lut = {
                    v: i
                    for i, v in enumerate(sorted(set(real[c].cast(pl.String).fill_null("<null>").to_list())))
                }
                out.append(np.array([lut.get(v, -2) for v in s.to_list()]))
        return np.stack(out, axis=1)

    a, b = codes(real), codes(synth)

    def tvd(x: np.ndarray, y: np.ndarray) -> float:
        kx, cx = np.unique(x, axis=0, return_counts=True)
        ky, cy = np.unique(y, axis=0, return_counts=True)
        px = {tuple(np.atleast_1d(k)): c / len(x) for k, c in zip(kx, cx, strict=True)}
        py = {tuple(np.atleast_1d(k)): c / len(y) for k, c in zip(ky, cy, strict=True)}
        return 0.5 * sum(abs(px.get(k, 0.0) - py.get(k, 0.0)) for k in set(px) | set(py))

    m = a.shape[1]
    one = [tvd(a[:, i], b[:, i]) for i in range(m)]
    two = [tvd(a[:, [i, j]], b[:, [i, j]]) for i, j in itertools.combinations(range(m), 2)]
    return {"tvd_1way": round(float(np.mean(one)), 4), "tvd_2way": round(float(np.mean(two)), 4)}


# -- runs ------------------------------------------------------------------------------------


def _fit(
    kind: str,
    train: pl.DataFrame,
    schema: Any,
    *,
    dp: bool,
    eps: float,
    epochs: int,
    batch: int,
    device: str,
    share: float | None = None,
) -> tuple[Any, list[float], float]:
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings

    model = ModelSettings(kind=kind, epochs=epochs, batch_size=batch, device=device)  # type: ignore[arg-type]
    privacy = PrivacySettings(dp=dp, epsilon=eps, delta=1e-5, preprocessing_share=share)
    synth = make_synthesizer(kind, schema=schema, model=model, privacy=privacy)
    stamps: list[float] = []
    t0 = time.perf_counter()
    synth.fit(train, progress=lambda _p: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    per_epoch = [b - a for a, b in itertools.pairwise(stamps)]
    return synth, per_epoch, total


@benchmark("dp_models")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("SYNTHGEN_BENCH_THREADS", str(torch.get_num_threads()))))
    device = os.environ.get("SYNTHGEN_BENCH_DEVICE", "cpu")
    kinds = os.environ.get("SYNTHGEN_BENCH_KINDS", "dp_tvae").split(",")
    data = Path(args.data)
    train = pl.read_csv(data / "adult_train.csv")
    test = pl.read_csv(data / "adult_test.csv")
    if args.quick:
        train = train.sample(6000, seed=0)
    epochs, batch = (4, 1024) if args.quick else (20, 4096)
    public = _schema(train, data, public=True)
    discovered = _schema(train, data, public=False)
    out: dict[str, Any] = {
        "rows_train": train.height,
        "rows_test": test.height,
        "device": device,
        "threads": torch.get_num_threads(),
        "dp_tvae_settings": {"epochs": epochs, "batch_size": batch, "delta": 1e-5},
        "reference": {"real_data_auc": round(tstr_auc(train, test), 4)},
    }

    parts = set(os.environ.get("SYNTHGEN_BENCH_PARTS", "speed,utility").split(","))
    if "speed" in parts:
        out.update(_speed(train, public, batch=batch, device=device, quick=args.quick))
    if "utility" in parts:
        out.update(
            _utility(
                train,
                test,
                public,
                discovered,
                kinds,
                epochs=epochs,
                batch=batch,
                device=device,
                quick=args.quick,
            )
        )
    return out


def _speed(train: pl.DataFrame, public: Any, *, batch: int, device: str, quick: bool) -> dict[str, Any]:
    """Training s/epoch and sampling rows/s: DP-TVAE (DP and not) vs ctgan's TVAE, same batch size."""
    from ctgan import TVAE

    out: dict[str, Any] = {}
    speed_epochs = 3 if quick else 5
    dp_model, dp_epochs, _ = _fit(
        "dp_tvae", train, public, dp=True, eps=3.0, epochs=speed_epochs, batch=batch, device=device
    )
    _, plain_epochs, _ = _fit(
        "dp_tvae", train, public, dp=False, eps=3.0, epochs=speed_epochs, batch=batch, device=device
    )
    # ctgan's fit starts with its BayesianGaussianMixture preprocessing; time its epochs alone by
    # stamping each turn of its epoch loop (ctgan iterates over tqdm(range(epochs))).
    import ctgan.synthesizers.tvae as ctgan_tvae_module

    stamps: list[float] = []
    original_tqdm = ctgan_tvae_module.tqdm

    def stamped(iterable: Any, *a: Any, **k: Any) -> Any:
        for item in original_tqdm(iterable, *a, **k):
            stamps.append(time.perf_counter())
            yield item
        stamps.append(time.perf_counter())

    ctgan_tvae_module.tqdm = stamped  # type: ignore[assignment]
    try:
        ctgan_tvae = TVAE(epochs=1 + speed_epochs, batch_size=batch, cuda=device != "cpu")
        ctgan_tvae.fit(train.to_pandas(), [c for c in train.columns if c not in NUMERIC])
    finally:
        ctgan_tvae_module.tqdm = original_tqdm
    # Skip the first epoch on both sides (warm-up).
    ctgan_epoch = statistics.median([b - a for a, b in itertools.pairwise(stamps[1:])])
    dp_epoch = statistics.median(dp_epochs) if dp_epochs else float("nan")
    out["speed"] = {
        "batch_size": batch,
        "dp_tvae_dp_s_per_epoch": round(dp_epoch, 3),
        "dp_tvae_nodp_s_per_epoch": round(statistics.median(plain_epochs), 3) if plain_epochs else None,
        "ctgan_tvae_s_per_epoch": round(ctgan_epoch, 3),
        "ratio_dp_vs_ctgan": round(dp_epoch / ctgan_epoch, 2),
        "goal": "<= 1.5",
    }
    n = train.height if quick else 32_561

    ours_s, theirs_s = alternating_median_times(
        [lambda: dp_model.sample(n, seed=0), lambda: ctgan_tvae.sample(n)]
    )
    ours, theirs = n / ours_s, n / theirs_s
    out["sampling"] = {
        "rows": n,
        "dp_tvae_rows_per_s": round(ours),
        "ctgan_tvae_rows_per_s": round(theirs),
        "ratio": round(ours / theirs, 2),
        "goal": ">= 2",
    }

    return out


def _utility(
    train: pl.DataFrame,
    test: pl.DataFrame,
    public: Any,
    discovered: Any,
    kinds: list[str],
    *,
    epochs: int,
    batch: int,
    device: str,
    quick: bool,
) -> dict[str, Any]:
    """TSTR AUC and marginal TVD at eps 1, 3 and without DP (public schema), and eps 3 and 1 with
    DP discovery; the ``_share_0.1`` rows are the baseline of the preprocessing share's default
    (0.1 before it grew with the columns that need DP; 0.3 for the discovery schema)."""
    out: dict[str, Any] = {}
    settings: list[tuple[str, bool, float, Any, float | None]] = [
        ("nodp", False, 3.0, public, None),
        ("eps3", True, 3.0, public, None),
        ("eps1", True, 1.0, public, None),
        ("eps3_dp_discovery", True, 3.0, discovered, None),
        ("eps3_dp_discovery_share_0.1", True, 3.0, discovered, 0.1),
        ("eps1_dp_discovery", True, 1.0, discovered, None),
        ("eps1_dp_discovery_share_0.1", True, 1.0, discovered, 0.1),
    ]
    if quick:
        settings = settings[:2]
    utility: dict[str, Any] = {}
    for kind in kinds:
        rows: dict[str, Any] = {}
        for label, dp, eps, schema, share in settings:
            synth, _, total = _fit(
                kind, train, schema, dp=dp, eps=eps, epochs=epochs, batch=batch, device=device, share=share
            )
            sample = synth.sample(train.height, seed=1)
            rec = synth.privacy_record_
            rows[label] = {
                "auc": round(tstr_auc(sample, test), 4),
                **marginal_tvd(train, sample),
                "fit_s": round(total, 1),
                "spent_epsilon": round(rec.spent_epsilon, 4) if rec.dp else None,
                "noise_multiplier": round(rec.noise_multiplier, 3) if rec.noise_multiplier else None,
                "preprocessing_epsilon": round(rec.preprocessing_epsilon, 4) if rec.dp else None,
            }
            print(kind, label, rows[label], flush=True)
        utility[kind] = rows
    out["utility"] = utility
    out["bars"] = {"eps3": ">= 0.82", "eps1": ">= 0.78", "nodp": ">= 0.86"}
    return out
