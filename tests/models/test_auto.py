"""model.kind auto: chooses from the DP row count and public facts only, deterministically, paying once."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.models import Synthesizer, make_synthesizer
from synthgen.models import auto as auto_module
from synthgen.models.auto import choose_kind
from synthgen.models.settings import ModelSettings
from synthgen.privacy.record import MechanismEntry
from synthgen.privacy.settings import PrivacySettings


def test_the_default_kind_is_auto() -> None:
    assert ModelSettings().kind == "auto"


def test_choice_is_a_function_of_public_inputs() -> None:
    a = choose_kind(n_dp=8000.4, columns=8, epsilon=3.0, dp=True)
    assert a == choose_kind(n_dp=8000.4, columns=8, epsilon=3.0, dp=True)
    assert a[0] == "dp_mst" and "8000 rows (DP count)" in a[1]
    cut = auto_module.TVAE_MIN_ROWS
    assert choose_kind(n_dp=cut, columns=15, epsilon=1.0, dp=True)[0] == "dp_tvae"
    assert choose_kind(n_dp=cut - 1, columns=15, epsilon=1.0, dp=True)[0] == "dp_mst"


def test_auto_reads_only_the_dp_count_and_pays_it_once(
    small_frame, small_schema, monkeypatch, tmp_path: Path
) -> None:
    seen: list[float] = []

    def fixed_count(n: int, *, epsilon: float, rng: object) -> tuple[float, MechanismEntry]:
        seen.append(epsilon)
        entry = MechanismEntry(step="preprocessing", mechanism="laplace_count", epsilon=epsilon, delta=0.0)
        return 1234.0, entry  # not the true n (2000): the choice must follow the DP value

    monkeypatch.setattr(auto_module, "laplace_count", fixed_count)
    choices = []
    for _ in range(2):
        s = make_synthesizer(
            "auto", schema=small_schema, model=ModelSettings(), privacy=PrivacySettings(epsilon=2.0)
        ).fit(small_frame)
        choices.append(s.choice_)
        counts = [m for m in s.privacy_record_.mechanisms if m.mechanism == "laplace_count"]
        assert len(counts) == 1  # the chosen model reused auto's count
    assert choices[0] == choices[1] and "1234 rows (DP count)" in choices[0][1]
    assert len(seen) == 2
    rec = s.privacy_record_
    assert rec.spent_epsilon == pytest.approx(sum(m.epsilon for m in rec.mechanisms))
    assert rec.spent_epsilon <= 2.0 * (1 + 1e-9)
    s.save(tmp_path)
    loaded = Synthesizer.load(tmp_path)
    assert loaded.kind == s.chosen_kind
    assert loaded.sample(200, seed=1).equals(s.sample(200, seed=1))
