"""DP-CTGAN on Adult against ctgan's non-private CTGAN, same run, same batch size.

Figures:

* ``speed``: seconds per training epoch (median over epochs; setup excluded on both
  sides) of DP-CTGAN under DP (eps 3) and without DP, vs ``ctgan.CTGAN`` (its defaults:
  pac 10, gradient penalty, training-by-sampling) at the same batch size. Goal <= 1.5x.
* ``sampling``: rows per second of ``sample(n)`` to a frame, both sides. Goal >= 2x.
* ``utility``: train-on-synthetic, test-on-real ROC AUC (HistGradientBoosting,
  one-hot categoricals, ``adult_test.csv``, target ``income``) at eps 1 and 3
  (delta 1e-5) and without DP, plus the mean 1-way and 2-way marginal total
  variation distance to ``adult_train.csv``. The same classifier trained on the real
  rows is the reference.

Run: ``python -m bench dp_ctgan`` (``--quick`` for a smoke run). The device comes from
``SYNTHGEN_BENCH_DEVICE`` (default ``cpu``); torch threads from ``SYNTHGEN_BENCH_THREADS``.
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

from bench.harness import benchmark, median_time

NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
TARGET = "income"


def _schema(frame: pl.DataFrame) -> Any:
    from synthgen.schema import ColumnSchema, ColumnType, TableSchema

    return TableSchema(
        columns=[
            ColumnSchema(
                name=c,
                type=ColumnType.numeric if c in NUMERIC else ColumnType.categorical,
                integer=c in NUMERIC,
            )
            for c in frame.columns
        ]
    )


def _label(frame: pl.DataFrame) -> np.ndarray:
    return (
        frame.get_column(TARGET).cast(pl.String).str.contains(">50K").fill_null(False).to_numpy().astype(int)
    )


def _features(frame: pl.DataFrame, columns: list[str] | None = None) -> tuple[Any, list[str]]:
    import pandas as pd

    pdf = frame.drop(TARGET).to_pandas()
    for c in pdf.columns:
        if c not in NUMERIC:
            pdf[c] = pdf[c].astype("string").fillna("<null>")
    x = pd.get_dummies(pdf, columns=[c for c in pdf.columns if c not in NUMERIC], dtype=float)
    if columns is not None:
        x = x.reindex(columns=columns, fill_value=0.0)
    return x, list(x.columns)


def tstr_auc(train: pl.DataFrame, test: pl.DataFrame, seed: int = 0) -> float | None:
    """ROC AUC on ``test`` of a HistGradientBoosting model trained on ``train`` (one-hot categoricals)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    y = _label(train)
    if len(set(y.tolist())) < 2:
        return None  # the synthetic data has one class only: no classifier can be trained
    x_test, cols = _features(test)
    x, _ = _features(train, cols)
    clf = HistGradientBoostingClassifier(random_state=seed).fit(x, y)
    return float(roc_auc_score(_label(test), clf.predict_proba(x_test)[:, 1]))


def _binned(real: pl.DataFrame, other: pl.DataFrame, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes per column: numeric columns in real-data deciles, categories as codes."""
    a_cols, b_cols = [], []
    for c in real.columns:
        if c in NUMERIC:
            edges = np.unique(
                np.quantile(real.get_column(c).drop_nulls().to_numpy(), np.linspace(0, 1, bins + 1))
            )
            inner = edges[1:-1]
            a = np.searchsorted(inner, real.get_column(c).fill_null(np.nan).to_numpy(), side="right")
            b = np.searchsorted(
                inner, other.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy(), side="right"
            )
        else:
            ra = real.get_column(c).cast(pl.String).fill_null("<null>").to_list()
            rb = other.get_column(c).cast(pl.String).fill_null("<null>").to_list()
            levels = {v: i for i, v in enumerate(sorted(set(ra) | set(rb)))}
            a = np.array([levels[v] for v in ra])
            b = np.array([levels[v] for v in rb])
        a_cols.append(a)
        b_cols.append(b)
    return np.stack(a_cols, 1), np.stack(b_cols, 1)


def marginal_tvd(real: pl.DataFrame, synth: pl.DataFrame) -> dict[str, float]:
    """Mean total variation distance of all 1-way and 2-way marginals (numeric columns in deciles)."""
    a, b = _binned(real, synth.select(real.columns))

    def tvd(x: np.ndarray, y: np.ndarray) -> float:
        keys_x, cx = np.unique(x, axis=0, return_counts=True)
        keys_y, cy = np.unique(y, axis=0, return_counts=True)
        px = {tuple(np.atleast_1d(k)): v / len(x) for k, v in zip(keys_x, cx, strict=True)}
        py = {tuple(np.atleast_1d(k)): v / len(y) for k, v in zip(keys_y, cy, strict=True)}
        return 0.5 * sum(abs(px.get(k, 0.0) - py.get(k, 0.0)) for k in set(px) | set(py))

    m = a.shape[1]
    one = [tvd(a[:, i], b[:, i]) for i in range(m)]
    two = [tvd(a[:, [i, j]], b[:, [i, j]]) for i, j in itertools.combinations(range(m), 2)]
    return {"tvd_1way": float(np.mean(one)), "tvd_2way": float(np.mean(two))}


def _fit_ours(
    train: pl.DataFrame, *, dp: bool, epsilon: float, epochs: int, batch: int, device: str
) -> tuple[Any, list[float], float]:
    """Fit DP-CTGAN; return (model, per-epoch seconds, total fit seconds)."""
    from synthgen.models.dp_ctgan import DPCTGAN
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings

    model = ModelSettings(kind="dp_ctgan", epochs=epochs, batch_size=batch, device=device)
    privacy = PrivacySettings(dp=dp, epsilon=epsilon, delta=1e-5)
    stamps: list[float] = []
    t0 = time.perf_counter()
    synth = DPCTGAN(schema=_schema(train), model=model, privacy=privacy).fit(
        train, progress=lambda _p: stamps.append(time.perf_counter())
    )
    total = time.perf_counter() - t0
    return synth, [b - a for a, b in itertools.pairwise(stamps)], total


def _ctgan_epoch_times(train: pl.DataFrame, *, epochs: int, batch: int) -> tuple[Any, list[float]]:
    """Fit ctgan's CTGAN, timing each epoch by wrapping its epoch iterator."""
    import ctgan.synthesizers.ctgan as ctgan_module

    stamps: list[float] = []
    original = ctgan_module.tqdm

    def timed(iterable: Any, **_kw: Any) -> Any:
        for item in iterable:
            stamps.append(time.perf_counter())
            yield item
        stamps.append(time.perf_counter())

    ctgan_module.tqdm = timed
    try:
        model = ctgan_module.CTGAN(epochs=epochs, batch_size=batch)
        discrete = [c for c in train.columns if c not in NUMERIC]
        model.fit(train.to_pandas(), discrete_columns=discrete)
    finally:
        ctgan_module.tqdm = original
    return model, [b - a for a, b in itertools.pairwise(stamps)]


@benchmark("dp_ctgan")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    threads = int(os.environ.get("SYNTHGEN_BENCH_THREADS", "0"))
    if threads:
        torch.set_num_threads(threads)
    device = os.environ.get("SYNTHGEN_BENCH_DEVICE", "cpu")
    data = Path(args.data)
    train = pl.read_csv(data / "adult_train.csv")
    test = pl.read_csv(data / "adult_test.csv")
    n = train.height
    quick = bool(args.quick)
    speed_batch = 500  # ctgan's default batch size, used on both sides
    speed_epochs = 2 if quick else 3
    # Utility settings (DP-tuned: few, large steps; see the module docstring of dp_ctgan).
    util_epochs = 5 if quick else int(os.environ.get("SYNTHGEN_BENCH_EPOCHS", "30"))
    util_batch = int(os.environ.get("SYNTHGEN_BENCH_BATCH", "1024"))

    out: dict[str, Any] = {"rows": n, "device": device, "torch_threads": torch.get_num_threads()}

    # -- speed ------------------------------------------------------------------------------
    ctgan_model, ctgan_epochs = _ctgan_epoch_times(train, epochs=speed_epochs, batch=speed_batch)
    ours_dp, dp_epochs, _ = _fit_ours(
        train, dp=True, epsilon=3.0, epochs=speed_epochs, batch=speed_batch, device=device
    )
    ours_plain, plain_epochs, _ = _fit_ours(
        train, dp=False, epsilon=3.0, epochs=speed_epochs, batch=speed_batch, device=device
    )
    ctgan_s = statistics.median(ctgan_epochs)
    out["speed"] = {
        "batch_size": speed_batch,
        "epochs_timed": speed_epochs,
        "ctgan_ctgan_s_per_epoch": ctgan_s,
        "dp_ctgan_dp_s_per_epoch": statistics.median(dp_epochs),
        "dp_ctgan_nodp_s_per_epoch": statistics.median(plain_epochs),
        "ratio_dp_vs_ctgan": statistics.median(dp_epochs) / ctgan_s,
        "goal_ratio_max": 1.5,
    }

    # -- sampling -----------------------------------------------------------------------------
    ours_rate = n / median_time(lambda: ours_dp.sample(n, seed=0))[0]
    ctgan_rate = n / median_time(lambda: ctgan_model.sample(n))[0]
    out["sampling"] = {
        "rows": n,
        "dp_ctgan_rows_per_s": ours_rate,
        "ctgan_rows_per_s": ctgan_rate,
        "ratio": ours_rate / ctgan_rate,
        "goal_ratio_min": 2.0,
    }
    del ours_plain

    # -- utility ------------------------------------------------------------------------------
    utility: dict[str, Any] = {
        "epochs": util_epochs,
        "batch_size": util_batch,
        "delta": 1e-5,
        "real_data_auc": tstr_auc(train, test),
        "bars": {"eps_1": 0.78, "eps_3": 0.82, "non_dp": 0.86},
    }
    for label, dp, eps in (("eps_1", True, 1.0), ("eps_3", True, 3.0), ("non_dp", False, 3.0)):
        synth, epoch_s, fit_s = _fit_ours(
            train, dp=dp, epsilon=eps, epochs=util_epochs, batch=util_batch, device=device
        )
        sample = synth.sample(n, seed=0)
        record = synth.privacy_record_
        utility[label] = {
            "auc": tstr_auc(sample, test),
            **marginal_tvd(train, sample),
            "fit_s": fit_s,
            "s_per_epoch": statistics.median(epoch_s) if epoch_s else None,
            "spent_epsilon": record.spent_epsilon if record is not None and record.dp else None,
            "noise_multiplier": record.noise_multiplier if record is not None else None,
        }
    out["utility"] = utility
    return out


if __name__ == "__main__":
    from bench.harness import main

    raise SystemExit(main(["dp_ctgan"]))
