"""Constructed tables with known structure, small enough for fast evaluation tests."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthgen.evaluate import EvaluateSettings, split_holdout


def make_people(n: int, seed: int) -> pl.DataFrame:
    """Strongly dependent columns: z follows x, group follows x, the label follows x and group."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    z = 3 * x + rng.normal(scale=0.1, size=n)
    group = np.where(x + rng.normal(scale=0.3, size=n) > 0, "high", "low")
    colour = rng.choice(["red", "green", "blue"], size=n)
    sex = rng.choice(["F", "M"], size=n, p=[0.4, 0.6])
    label = np.where(x + (group == "high") + rng.normal(scale=0.3, size=n) > 0.5, "yes", "no")
    age = rng.integers(18, 90, size=n)
    return pl.DataFrame(
        {"x": x, "z": z, "age": age, "group": group, "colour": colour, "sex": sex, "label": label}
    )


def shuffle_columns(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Each column permuted on its own: same marginals, no dependence between columns."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({c: frame[c].to_numpy()[rng.permutation(frame.height)] for c in frame.columns}).cast(
        dict(frame.schema)
    )


@pytest.fixture(scope="session")
def people() -> tuple[pl.DataFrame, pl.DataFrame]:
    return split_holdout(make_people(1000, seed=1), 0.2, key=b"tests-holdout-key-0")


@pytest.fixture
def fast() -> EvaluateSettings:
    return EvaluateSettings(target="label", sensitive=["sex"], plots=False)
