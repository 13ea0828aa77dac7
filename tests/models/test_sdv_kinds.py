"""SDV kinds: non-DP (P7), registered by kind, and their pickled files are not loaded by default."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthgen.errors import ModelError
from synthgen.models import Synthesizer, make_synthesizer
from synthgen.models.settings import ModelSettings
from synthgen.privacy.settings import PrivacySettings


def test_sdv_gaussian_copula_records_dp_false_and_guards_its_pickle(
    small_frame, small_schema, tmp_path: Path
) -> None:
    s = make_synthesizer(
        "sdv_gaussian_copula", schema=small_schema, model=ModelSettings(), privacy=PrivacySettings()
    ).fit(small_frame)
    assert s.privacy_record_ is not None and s.privacy_record_.dp is False
    out = s.sample(200, seed=3)
    assert out.height == 200 and set(out.columns) == set(small_schema.names)
    assert out.equals(s.sample(200, seed=3))
    s.save(tmp_path / "m")
    with pytest.raises(ModelError, match="sdv_allow_pickle"):
        Synthesizer.load(tmp_path / "m")
    assert isinstance(small_frame, pl.DataFrame)


@pytest.mark.parametrize("kind", ["sdv_gaussian_copula", "sdv_tvae", "sdv_ctgan"])
def test_an_sdv_model_saved_and_loaded_samples_what_it_sampled_before(
    small_frame, small_schema, tmp_path: Path, kind: str
) -> None:
    # The generate stage loads the saved model: with SDV 2 (no class `load`) that failed.
    settings = ModelSettings(sdv_allow_pickle=True, epochs=1, batch_size=50)
    s = make_synthesizer(kind, schema=small_schema, model=settings, privacy=PrivacySettings()).fit(
        small_frame
    )
    s.save(tmp_path / "m")
    loaded = Synthesizer.load(tmp_path / "m")
    assert loaded.kind == kind
    assert loaded.sample(100, seed=5).equals(s.sample(100, seed=5))
