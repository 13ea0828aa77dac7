"""Fixtures for the text model tests."""

from __future__ import annotations

import polars as pl
import pytest

from ._data import make_notes


@pytest.fixture(scope="module")
def notes() -> tuple[pl.Series, pl.DataFrame]:
    return make_notes(300)
