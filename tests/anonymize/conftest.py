from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.demo.data import generate_patients

SECRET = b"test-secret-0123456789abcdef0123"
ADULT_SAMPLE = Path(__file__).parent / "data" / "adult_sample.csv"


@pytest.fixture(scope="session")
def demo() -> tuple[pl.DataFrame, pl.DataFrame]:
    return generate_patients(120, seed=11)


@pytest.fixture(scope="session")
def adult() -> pl.DataFrame:
    return pl.read_csv(ADULT_SAMPLE)


@pytest.fixture()
def settings() -> AnonymizeSettings:
    return AnonymizeSettings(default_operator="surrogate")
