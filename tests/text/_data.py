"""Small, fast data and settings for the text model: a strong category -> phrase pattern."""

from __future__ import annotations

import random

import polars as pl

from synthgen.models.text.model import DPTextModel
from synthgen.models.text.settings import TextModelSettings

CATEGORIES = ["cardiac", "respiratory", "renal"]
PHRASES = {"cardiac": "heart", "respiratory": "lungs", "renal": "kidney"}


def make_notes(n: int, seed: int = 0) -> tuple[pl.Series, pl.DataFrame]:
    """Notes whose key word is fixed by the category, with a little free variation."""
    rng = random.Random(seed)
    cats = [rng.choice(CATEGORIES) for _ in range(n)]
    notes = [f"{PHRASES[c]} ok {rng.randint(1, 9)}." for c in cats]
    return pl.Series("notes", notes), pl.DataFrame({"dx": cats})


def tiny_settings(**overrides: object) -> TextModelSettings:
    base: dict[str, object] = {
        "condition_on": ["dx"],
        "epochs": 2,
        "max_length": 24,
        "batch_size": 64,
        "d_model": 32,
        "n_layers": 1,
        "n_heads": 2,
        "learning_rate": 1e-2,
        "generate_batch_size": 128,
    }
    base.update(overrides)
    return TextModelSettings.model_validate(base)


def dp_text_model(
    settings: TextModelSettings, *, epsilon: float, delta: float = 1e-5, accountant: str = "rdp"
) -> DPTextModel:
    """A DP text model conditioned on ``dx`` with its public category list, on the CPU."""
    return DPTextModel(
        settings=settings,
        epsilon=epsilon,
        delta=delta,
        device="cpu",
        categories={"dx": CATEGORIES},
        accountant=accountant,  # type: ignore[arg-type]
    )
