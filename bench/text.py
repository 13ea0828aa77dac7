"""DP text model: training and generation throughput, DP-SGD vs the same model without DP.

Data: the demo's clinical notes (``synthgen.demo.data.generate_patients``), conditioned on
``diagnosis_category`` with the demo spec's public category list. Figures, for the same
model and settings in the same run:

* step time: short fits on equal chunks, alternating non-DP and DP (so machine load hits
  both alike), both with one word list released once by ``dp_words`` (so the two networks
  are identical); the median step time of each, and expected tokens per step / that time;
* a full fit of each (default epochs; 1 in --quick) on 90% of the notes, each taking its
  vocabulary its own way (DP release vs exact top words): wall time, per-byte perplexity
  on the 10% holdout, and the report's text metrics on generated notes; plus the same DP
  fit with ``vocabulary: bytes`` (bytes only), the previous design;
* generation: tokens per second sampling one note per holdout row.

Goal: DP step time <= 2x the non-private step time.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.harness import benchmark

EPSILON, DELTA = 0.9, 1e-5  # the demo's text share: 3.0 * (1 - 0.1) * 0.3 ~ 0.8-0.9


def _demo_notes(n: int) -> tuple[Any, Any, list[str]]:
    import polars as pl
    import yaml

    from synthgen.demo.data import generate_patients

    frame, _ = generate_patients(n, seed=0)
    spec = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "synthgen/demo/pipeline.yaml").read_text()
    )
    categories = spec["columns"]["diagnosis_category"]["categories"]
    return frame.get_column("notes"), frame.select(pl.col("diagnosis_category")), categories


def _timed_fit(model: Any, texts: Any, cond: Any) -> tuple[list[float], float]:
    """Fit, returning the step durations after the first (warm-up, calibration excluded) and wall time."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    model.fit(texts, cond, progress=lambda done, total, loss: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    return [b - a for a, b in itertools.pairwise(stamps)], wall


@benchmark("text")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from synthgen.models.text import DPTextModel, TextModelSettings, TextTokenizer, dp_words, text_metrics

    quick = bool(getattr(args, "quick", False))
    n = 2_000 if quick else 10_000
    texts, cond, categories = _demo_notes(n)
    split = int(0.9 * n)
    train_t, hold_t = texts[:split], texts[split:]
    train_c, hold_c = cond[:split], cond[split:]
    base = TextModelSettings(condition_on=["diagnosis_category"])
    share = base.vocabulary_share
    words, _ = dp_words(
        train_t.to_list(),
        epsilon=EPSILON * share,
        delta=DELTA * share,
        per_record=base.words_per_record,
        max_words=base.max_words,
    )
    tok = TextTokenizer(
        condition_columns=base.condition_on,
        categories={"diagnosis_category": categories},
        max_length=base.max_length,
        words=words,
    )
    _, targets, _ = tok.encode_training(train_t, train_c, skip_empty=False)
    mean_tokens = float((targets != -100).sum() / len(targets))  # tokens + EOS per text
    tokens_per_step = mean_tokens * base.batch_size

    def make(dp: bool, settings: TextModelSettings) -> Any:
        return DPTextModel(
            settings=settings,
            epsilon=EPSILON if dp else None,
            delta=DELTA if dp else None,
            dp=dp,
            device="cpu",
            categories={"diagnosis_category": categories},
        )

    # 1. Step time, alternating short fits on equal chunks.
    chunk = base.batch_size * (6 if quick else 10)
    rounds = 2 if quick else 3
    one_epoch = base.model_copy(update={"epochs": 1, "words": words})
    steps: dict[str, list[float]] = {"non_dp": [], "dp": []}
    for r in range(rounds):
        lo = (r * chunk) % max(split - chunk, 1)
        for label in ("non_dp", "dp"):
            durations, _ = _timed_fit(
                make(label == "dp", one_epoch), train_t[lo : lo + chunk], train_c[lo : lo + chunk]
            )
            steps[label].extend(durations)
    step_s = {k: statistics.median(v) for k, v in steps.items()}

    # 2. Full fits, holdout quality, generation throughput.
    full = base.model_copy(update={"epochs": 1}) if quick else base
    out: dict[str, Any] = {}
    for label in ("non_dp", "dp", "dp_bytes_only"):
        settings = full.model_copy(update={"vocabulary": "bytes"}) if label == "dp_bytes_only" else full
        model = make(label != "non_dp", settings)
        durations, wall = _timed_fit(model, train_t, train_c)
        t0 = time.perf_counter()
        synthetic = model.generate(hold_c, seed=0)
        gen_s = time.perf_counter() - t0
        gen_tokens = sum(len(model.tokenizer_.text_ids(t.encode("utf-8"))) + 1 for t in synthetic.to_list())
        metrics = text_metrics(hold_t, synthetic, model, holdout_conditions=hold_c)
        record = model.privacy_record_
        out[label] = {
            **(
                {
                    "train_step_s_median": round(step_s[label], 4),
                    "train_tokens_per_s": round(tokens_per_step / step_s[label], 1),
                }
                if label in step_s
                else {}
            ),
            "word_tokens": len(model.tokenizer_.words),
            "full_fit_wall_s": round(wall, 1),
            "full_fit_epochs": full.epochs,
            "generate_rows": len(synthetic),
            "generate_s": round(gen_s, 2),
            "generate_tokens_per_s": round(gen_tokens / gen_s, 1),
            "epsilon_spent": record.epsilon if record.dp else None,
            "privacy_entries": [e.mechanism for e in record.entries],
            "noise_multiplier": record.noise_multiplier,
            "steps": record.steps,
            "metrics": metrics,
            "samples": synthetic.head(5).to_list(),
        }
    ratio = step_s["dp"] / step_s["non_dp"]
    return {
        "data": f"synthgen.demo.data.generate_patients({n}, seed=0): notes | diagnosis_category",
        "train_texts": split,
        "holdout_texts": n - split,
        "mean_tokens_per_text": round(mean_tokens, 1),
        "mean_bytes_per_text": round(float(train_t.str.len_bytes().mean()), 1),
        "step_timing_words": len(words),
        "settings": base.model_dump(),
        "epsilon_target": EPSILON,
        "delta": DELTA,
        "torch_threads": torch.get_num_threads(),
        "load_avg_at_end": os.getloadavg(),
        "baseline": "non_dp: same model, settings and loop without clipping or noise (shuffled batches)",
        "dp_over_non_dp_step_time": round(ratio, 3),
        "goal_dp_step_time_at_most_2x": ratio <= 2.0,
        **out,
    }
