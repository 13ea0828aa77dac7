"""DP-CTGAN on Adult against ctgan's non-private CTGAN, same run, same batch size.

Figures:

* ``speed``: seconds per training epoch (median over epochs; setup excluded on both
  sides) of DP-CTGAN under DP (eps 3) and without DP, vs ``ctgan.CTGAN`` (its defaults:
  pac 10, gradient penalty, training-by-sampling) at the same batch size. Goal <= 1.5x.
* ``sampling``: rows per second of ``sample(n)`` to a frame, both sides (median of 5 calls each,
  timed in turns after a warm-up call). Goal >= 2x.
* ``utility``: the yardsticks of ``bench.dp_models`` (train-on-synthetic, test-on-real
  ROC AUC of HistGradientBoosting on one-hot categoricals, target ``income``; mean 1-way
  and 2-way marginal TVD) at eps 1 and 3 (delta 1e-5) and without DP, with category
  lists and bounds by DP discovery. The same classifier trained on the real rows is
  the reference.

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

import polars as pl

from bench.dp_models import NUMERIC, _schema, marginal_tvd, tstr_auc
from bench.harness import alternating_median_times, benchmark


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
    synth = DPCTGAN(schema=_schema(train, public=False), model=model, privacy=privacy).fit(
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
    ours_s, ctgan_s_sample = alternating_median_times(
        [lambda: ours_dp.sample(n, seed=0), lambda: ctgan_model.sample(n)]
    )
    ours_rate, ctgan_rate = n / ours_s, n / ctgan_s_sample
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
