from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from synthgen.schema import ColumnSchema, TableSchema


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> object:
    """Small models train 4x faster on one thread when the 2 cores are shared (measured here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_frame() -> pl.DataFrame:
    """2,000 rows: ``y`` copies ``x`` 95% of the time, ``v`` depends on ``x``; some nulls."""
    rng = np.random.default_rng(7)
    n = 2000
    x = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2])
    flip = rng.random(n) < 0.05
    y = np.where(flip, rng.choice(["a", "b", "c"], size=n), x)
    v = np.where(x == "a", rng.normal(20, 2, n), rng.normal(60, 5, n)).round()
    age = pl.Series("age", v.astype(np.int64)).scatter(list(range(0, n, 50)), None)
    when = pl.datetime_range(
        pl.datetime(2020, 1, 1), pl.datetime(2020, 1, 1) + pl.duration(hours=n - 1), "1h", eager=True
    ).alias("when")
    return pl.DataFrame(
        [
            pl.Series("x", x),
            pl.Series("y", y),
            age,
            pl.Series("flag", rng.random(n) < 0.3),
            when,
            pl.Series("score", rng.random(n) * 10),
        ]
    )


@pytest.fixture(scope="module")
def small_schema() -> TableSchema:
    return TableSchema(
        columns=[
            ColumnSchema(name="x", type="categorical"),
            ColumnSchema(name="y", type="categorical", categories=["a", "b", "c"]),
            ColumnSchema(name="age", type="numeric", integer=True),
            ColumnSchema(name="flag", type="boolean"),
            ColumnSchema(name="when", type="datetime"),
            ColumnSchema(name="score", type="numeric", bounds=(0.0, 10.0)),
        ]
    )


_NUMBER = re.compile(rb"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def numbers_near(blob: bytes, value: float, *, tol: float = 1.0) -> list[bytes]:
    """Number tokens of a text artifact within ``tol`` of ``value``.

    A canary is looked for as a number, not as a digit substring: DP noise makes
    17-digit floats whose digits hold any 6-digit string by chance now and then.
    """
    return [t for t in _NUMBER.findall(blob) if abs(float(t) - value) < tol]
