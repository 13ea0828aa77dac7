"""The DP text quality gate: a readable model passes, an unreadable one fails, and what each
decision publishes. The mechanism's sensitivity is tested in tests/privacy/test_clipped_mean.py."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from synthgen.models.text.gate import (
    L_MAX,
    READABLE_PERPLEXITY,
    GateResult,
    follow_gate,
    note_losses,
    quality_gate,
    text_outputs,
    unchecked,
)
from synthgen.privacy.mechanisms import noise_rng

from ._data import dp_text_model, make_notes, tiny_settings

GATE_EPSILON = 0.5


@pytest.fixture(scope="module")
def holdout() -> tuple[pl.Series, pl.DataFrame]:
    return make_notes(300, seed=1)  # the same template, never trained on


@pytest.fixture(scope="module")
def readable():  # type: ignore[no-untyped-def]
    """Templated notes ("heart ok 3."), trained enough under DP to write them back."""
    texts, conds = make_notes(600, seed=0)
    settings = tiny_settings(epochs=3, vocabulary="bytes", learning_rate=2e-2)
    return dp_text_model(settings, epsilon=8.0).fit(texts, conds)


@pytest.fixture(scope="module")
def unreadable():  # type: ignore[no-untyped-def]
    """Barely trained: close to a uniform guess over bytes."""
    texts, conds = make_notes(300, seed=0)
    settings = tiny_settings(epochs=1, vocabulary="bytes", learning_rate=1e-4)
    return dp_text_model(settings, epsilon=1.0).fit(texts, conds)


def _gate(model, holdout, fallback="drop"):  # type: ignore[no-untyped-def]
    texts, conds = holdout
    return quality_gate(
        model, texts, conds, column="notes", fallback=fallback, epsilon=GATE_EPSILON, rng=noise_rng()
    )


def test_a_readable_text_model_passes_the_gate(readable, holdout) -> None:  # type: ignore[no-untyped-def]
    exact = math.exp(float(np.clip(note_losses(readable, *holdout), 0, L_MAX).mean()))
    assert exact < 2.0  # the model writes the template back
    gate, entry = _gate(readable, holdout)
    assert gate.checked and gate.passed and gate.dp, gate
    assert gate.perplexity is not None and gate.perplexity <= READABLE_PERPLEXITY
    assert gate.output == "generated" and "passed the readability bar" in gate.line()
    assert entry is not None and entry.step == "text_gate" and entry.epsilon == GATE_EPSILON
    assert entry.accountant == "basic" and entry.delta == 0.0


@pytest.mark.parametrize(
    ("fallback", "output", "words"),
    [
        ("drop", "dropped", "column left out"),
        ("empty", "nulls", "every value null"),
        ("model", "generated", "published anyway"),
    ],
)
def test_an_unreadable_text_model_fails_and_the_fallback_decides_the_column(  # type: ignore[no-untyped-def]
    unreadable, holdout, fallback, output, words
) -> None:
    gate, entry = _gate(unreadable, holdout, fallback)
    assert gate.checked and not gate.passed
    assert gate.perplexity is not None and gate.perplexity > READABLE_PERPLEXITY
    assert gate.output == output
    line = gate.line()
    assert line.startswith("notes: text model below the readability bar (DP perplexity ")
    assert (
        f"> {READABLE_PERPLEXITY:g}" in line and words in line and f"model.text.fallback: {fallback}" in line
    )
    assert entry is not None  # charged whatever the decision


def test_the_gate_stores_only_public_settings_and_the_dp_figure(readable, holdout) -> None:  # type: ignore[no-untyped-def]
    figures = {_gate(readable, holdout)[0].to_dict()["dp_perplexity_per_byte"] for _ in range(5)}
    assert len(figures) > 1  # fresh noise each time
    stored = _gate(readable, holdout)[0].to_dict()
    assert set(stored) == {
        "column",
        "dp",
        "checked",
        "passed",
        "dp_perplexity_per_byte",
        "threshold",
        "fallback",
        "epsilon",
        "l_max",
        "output",
    }
    assert stored["l_max"] == L_MAX and stored["threshold"] == READABLE_PERPLEXITY
    assert GateResult.from_dict(stored) == _replace_figure(stored)


def _replace_figure(stored):  # type: ignore[no-untyped-def]
    fields = {k: v for k, v in stored.items() if k not in ("dp_perplexity_per_byte", "output")}
    return GateResult(**fields, perplexity=stored["dp_perplexity_per_byte"])


def test_without_dp_the_exact_figure_decides_but_is_not_stored(holdout) -> None:  # type: ignore[no-untyped-def]
    from synthgen.models.text.model import DPTextModel

    texts, conds = make_notes(300, seed=0)
    model = DPTextModel(
        settings=tiny_settings(epochs=1, vocabulary="bytes", learning_rate=1e-4),
        epsilon=None,
        delta=None,
        dp=False,
        device="cpu",
        categories={"dx": ["cardiac", "respiratory", "renal"]},
    ).fit(texts, conds)
    gate, entry = _gate(model, holdout)
    assert entry is None and not gate.dp and not gate.passed and gate.epsilon == 0.0
    assert gate.to_dict()["dp_perplexity_per_byte"] is None  # exact, real-derived: never stored
    assert "perplexity (no DP)" in GateResult.from_dict(gate.to_dict()).line()


def test_no_holdout_means_no_gate_and_a_warning_line() -> None:
    gate = unchecked("notes", dp=True, fallback="drop")
    assert gate.output == "generated" and not gate.checked and gate.epsilon == 0.0
    assert "not checked" in gate.line()


def test_follow_gate_drops_or_nulls_only_the_withheld_columns() -> None:
    frame = pl.DataFrame({"a": [1, 2], "notes": ["x", "y"], "memo": ["p", "q"], "summary": ["s", "t"]})
    info = {
        "columns": {
            "notes": {"gate": {"output": "dropped"}},
            "memo": {"gate": {"output": "nulls"}},
            "summary": {"gate": {"output": "generated"}},
        }
    }
    out = follow_gate(frame, text_outputs(info))
    assert out.columns == ["a", "memo", "summary"] and out["memo"].null_count() == 2
    assert out["a"].to_list() == [1, 2] and out["summary"].to_list() == ["s", "t"]
    lazy = follow_gate(frame.lazy(), text_outputs(info)).collect()
    assert lazy.equals(out)
    assert text_outputs({"columns": {"notes": {}}}) == {"notes": "generated"}  # a model from before the gate
