"""Memorisation (canary exposure) and the report's text metrics, on small data."""

from __future__ import annotations

import math

import polars as pl
import pytest

from synthgen.models.text.canary import canary_exposure
from synthgen.models.text.metrics import distinct_n, text_metrics
from synthgen.models.text.model import DPTextModel

from ._data import CATEGORIES, make_notes, tiny_settings


@pytest.mark.slow
def test_canary_exposure_detects_memorisation_without_dp() -> None:
    texts, cond = make_notes(120, seed=2)
    result = canary_exposure(
        texts,
        cond,
        settings=tiny_settings(epochs=6, batch_size=32),
        epsilon=None,
        delta=None,
        dp=False,
        k=20,
        canary_format="code {secret}.",
        secret_digits=4,
        n_candidates=200,
        n_generate=40,
        device="cpu",
    )
    planted, control = result["with_canary"], result["without_canary"]
    assert planted["exposure"] >= control["exposure"] + 3
    assert planted["exposure"] > 0.8 * planted["max_exposure"]
    assert planted["completions_with_secret"] > 0
    assert control["completions_with_secret"] == 0


@pytest.mark.slow
def test_dp_model_does_not_reproduce_the_canary_more_than_without_it() -> None:
    texts, cond = make_notes(120, seed=4)
    result = canary_exposure(
        texts,
        cond,
        settings=tiny_settings(epochs=2, batch_size=32),
        epsilon=1.0,
        delta=1e-5,
        dp=True,
        categories={"dx": CATEGORIES},
        k=3,
        canary_format="code {secret}.",
        secret_digits=6,
        n_candidates=200,
        n_generate=40,
        device="cpu",
        accountant="rdp",
    )
    planted, control = result["with_canary"], result["without_canary"]
    assert planted["completions_with_secret"] <= control["completions_with_secret"]
    assert planted["generated_with_secret"] == 0
    assert 0 <= planted["exposure"] <= planted["max_exposure"]
    assert planted["spent_epsilon"] <= 1.0 and control["spent_epsilon"] <= 1.0


def test_distinct_n_counts_unique_ngrams() -> None:
    assert distinct_n(["a b a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n([""], 2) == 0.0


def test_text_metrics_compare_holdout_and_synthetic() -> None:
    texts, cond = make_notes(200, seed=5)
    model = DPTextModel(settings=tiny_settings(epochs=3), epsilon=None, delta=None, dp=False, device="cpu")
    model.fit(texts[:150], cond[:150])
    synthetic = model.generate(cond[150:], seed=0)
    m = text_metrics(texts[150:], synthetic, model, holdout_conditions=cond[150:])
    assert m["holdout_rows"] == 50 and m["synthetic_rows"] == 50
    assert 1.0 < m["perplexity"] < 263  # better than uniform over the vocabulary
    assert m["bits_per_byte"] == pytest.approx(math.log2(m["perplexity"]))
    assert 0 <= m["length_tvd"] <= 1 and 0 <= m["length_ks"] <= 1
    assert 0 < m["distinct_1"] <= 1 and 0 < m["real_distinct_2"] <= 1
    same = text_metrics(texts[150:], texts[150:], model, holdout_conditions=cond[150:])
    assert same["length_tvd"] == 0 and same["length_ks"] == 0
    assert same["length_real"] == same["length_synthetic"]


def test_text_metrics_count_empty_texts() -> None:
    texts, cond = make_notes(60, seed=6)
    model = DPTextModel(settings=tiny_settings(epochs=1), epsilon=None, delta=None, dp=False, device="cpu")
    model.fit(texts, cond)
    m = text_metrics(texts, pl.Series(["", "x"] * 30), model, holdout_conditions=cond)
    assert m["empty_share_synthetic"] == 0.5 and m["empty_share_real"] == 0.0
