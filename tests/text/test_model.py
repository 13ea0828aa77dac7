"""DP training, accounting, generation, persistence and reproducibility of the text model."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from opacus.data_loader import DPDataLoader
from opacus.optimizers import DPOptimizer
from opacus.utils.uniform_sampler import UniformWithReplacementSampler

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.text.accounting import calibrate_noise
from synthgen.models.text.model import DPTextModel

from ._data import CATEGORIES, PHRASES, dp_text_model, make_notes, tiny_settings

EPS, DELTA = 3.0, 1e-5


@pytest.fixture(scope="module")
def trained(notes):
    """One DP fit shared by the tests below, with the loader and optimizer it trained with."""
    texts, cond = notes
    seen: dict[str, object] = {}
    original = DPTextModel._loop

    def spy(self, net, optimizer, loader, total, progress, **kwargs):
        seen.update(optimizer=optimizer, loader=loader, total=total)
        return original(self, net, optimizer, loader, total, progress, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(DPTextModel, "_loop", spy)
    try:
        model = dp_text_model(tiny_settings(), epsilon=EPS, delta=DELTA).fit(texts, cond)
    finally:
        mp.undo()
    return model, seen


def test_dp_training_uses_poisson_sampling_and_the_calibrated_noise(trained) -> None:
    model, seen = trained
    loader, optimizer = seen["loader"], seen["optimizer"]
    assert isinstance(loader, DPDataLoader)
    assert isinstance(loader.batch_sampler, UniformWithReplacementSampler)
    assert loader.batch_sampler.sample_rate == pytest.approx(64 / 300)
    assert isinstance(optimizer, DPOptimizer)
    record = model.privacy_record_
    assert optimizer.noise_multiplier == record.noise_multiplier > 0
    assert optimizer.max_grad_norm == 1.0
    assert record.steps == seen["total"] == 2 * len(loader)


def test_dp_training_spends_at_most_the_target_and_records_it(trained) -> None:
    model, _ = trained
    record = model.privacy_record_
    assert record.dp and record.row_count_source == "exact"
    vocab, training = record.entries
    share = model.settings.vocabulary_share
    assert vocab.step == "text_preprocessing" and "partition selection" in vocab.mechanism
    assert vocab.epsilon == pytest.approx(EPS * share) and vocab.delta == pytest.approx(DELTA * share)
    assert training.step == "text_training" and training.accountant == "rdp"
    assert 0 < training.epsilon <= EPS * (1 - share) + 1e-12
    assert training.delta == pytest.approx(DELTA * (1 - share))
    assert record.epsilon <= EPS and record.delta <= DELTA * (1 + 1e-12)
    ledger = record.to_privacy_record("notes")
    assert ledger.spent_epsilon == pytest.approx(vocab.epsilon + training.epsilon)
    assert [m.step for m in ledger.mechanisms] == ["preprocessing", "training"]
    assert {m.column for m in ledger.mechanisms} == {"notes"}


def test_public_row_count_sets_the_sampling_rate(notes) -> None:
    texts, cond = notes
    model = dp_text_model(tiny_settings(epochs=1), epsilon=EPS, delta=DELTA).fit(texts, cond, n_public=500)
    record = model.privacy_record_
    assert record.row_count_source == "public"
    assert record.sample_rate == pytest.approx(1 / int(500 / 64))  # charged 1/int(1/q) >= q
    assert record.expected_batch_size == 64 and record.epsilon <= EPS


def test_empty_poisson_batches_still_take_noisy_steps() -> None:
    texts, cond = make_notes(10, seed=3)
    steps: list[int] = []
    model = dp_text_model(tiny_settings(batch_size=1, epochs=1), epsilon=EPS, delta=DELTA).fit(
        texts, cond, progress=lambda done, total, loss: steps.append(done)
    )
    assert steps == list(range(1, 11))  # q = 0.1: ten steps, empty batches included
    assert all(torch.isfinite(p).all() for p in model.network_.parameters())


def test_invalid_budget_is_refused_before_training(notes) -> None:
    with pytest.raises(PrivacyError, match="epsilon"):
        calibrate_noise(target_epsilon=0.0, target_delta=1e-5, sample_rate=0.5, steps=10, accountant="rdp")
    with pytest.raises(PrivacyError, match="delta"):
        calibrate_noise(target_epsilon=1.0, target_delta=1.0, sample_rate=0.5, steps=10, accountant="rdp")
    with pytest.raises(PrivacyError, match="epsilon and delta"):
        DPTextModel(settings=tiny_settings(), epsilon=None, delta=None, dp=True)


def test_prv_calibration_keeps_spent_epsilon_under_target() -> None:
    sigma, spent = calibrate_noise(
        target_epsilon=1.0, target_delta=1e-5, sample_rate=0.0256, steps=117, accountant="prv"
    )
    assert sigma > 0 and 0.9 < spent <= 1.0


def test_save_load_round_trip_gives_the_same_model(trained, tmp_path) -> None:
    model, _ = trained
    model.save(tmp_path / "m")
    loaded = DPTextModel.load(tmp_path / "m", device="cpu")
    cond = pl.DataFrame({"dx": ["renal", "cardiac", "unknown"] * 4})
    assert loaded.generate(cond, seed=5).to_list() == model.generate(cond, seed=5).to_list()
    texts = pl.Series(["heart ok 3.", "kidney ok 1."])
    c2 = pl.DataFrame({"dx": ["cardiac", "renal"]})
    np.testing.assert_allclose(loaded.score(texts, c2)[0], model.score(texts, c2)[0], rtol=1e-6)
    assert loaded.privacy_record_ == model.privacy_record_
    # The artifact holds weights and public config only: no training text, no counts over it.
    config = (tmp_path / "m" / "config.json").read_text()
    assert "ok 3." not in config and "empty_or_null" not in config
    torch.load(tmp_path / "m" / "weights.pt", weights_only=True)


def test_load_rejects_a_foreign_directory(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"format": "other"}')
    with pytest.raises(ModelError, match="not a"):
        DPTextModel.load(tmp_path)


def test_generation_is_reproducible_with_a_seed(trained) -> None:
    model, _ = trained
    cond = pl.DataFrame({"dx": CATEGORIES * 10})
    a = model.generate(cond, seed=7).to_list()
    assert a == model.generate(cond, seed=7).to_list()
    assert a != model.generate(cond, seed=8).to_list()


def test_non_dp_training_is_reproducible_with_a_seed(notes) -> None:
    texts, cond = notes
    settings = tiny_settings(epochs=1)
    states = [
        DPTextModel(settings=settings, epsilon=None, delta=None, dp=False, device="cpu", seed=11)
        .fit(texts, cond)
        .network_.state_dict()
        for _ in range(2)
    ]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_non_dp_model_says_so_and_charges_nothing(notes) -> None:
    texts, cond = notes
    model = DPTextModel(settings=tiny_settings(epochs=1), epsilon=None, delta=None, dp=False, device="cpu")
    model.fit(texts, cond)  # without DP, categories may come from the data
    assert not model.privacy_record_.dp and model.privacy_record_.entries == []
    assert model.tokenizer_.categories["dx"] == sorted(CATEGORIES)
    assert not model.privacy_record_.to_privacy_record("notes").dp


def test_generate_checks_its_arguments_and_caps_length(trained) -> None:
    model, _ = trained
    with pytest.raises(ModelError, match="rows"):
        model.generate(pl.DataFrame({"dx": ["renal"] * 3}), 5)
    with pytest.raises(ModelError, match="conditions"):
        model.generate(None, 3)
    out = model.generate(pl.DataFrame({"dx": ["renal"] * 20}), seed=1, max_length=6, temperature=2.0)
    assert len(out) == 20 and (out.str.len_bytes() <= 6).all()


def test_generated_text_is_valid_utf8_without_replacement_characters() -> None:
    texts = pl.Series(["café é ü ok"] * 60 + ["naïve ñ"] * 60)
    settings = tiny_settings(condition_on=[], epochs=10, batch_size=32, max_length=16)
    model = DPTextModel(settings=settings, epsilon=None, delta=None, dp=False, device="cpu").fit(texts)
    out = model.generate(None, 50, seed=0)
    assert not out.str.contains("\ufffd", literal=True).any()
    assert out.str.contains("é|ü|ï|ñ").mean() > 0.5  # learned multi-byte characters come out whole


@pytest.mark.slow
def test_conditioning_makes_text_follow_the_category_at_large_epsilon() -> None:
    texts, cond = make_notes(600, seed=1)
    model = dp_text_model(tiny_settings(epochs=4), epsilon=50.0, delta=DELTA).fit(texts, cond)
    rows = pl.DataFrame({"dx": [c for c in CATEGORIES for _ in range(40)]})
    out = model.generate(rows, seed=0, temperature=0.5)
    follows = [t.startswith(PHRASES[c]) for t, c in zip(out.to_list(), rows["dx"].to_list())]
    assert np.mean(follows) >= 0.8
    assert math.isfinite(model.privacy_record_.epsilon) and model.privacy_record_.epsilon <= 50.0


def test_ghost_clipping_mode_trains_under_the_same_budget(notes) -> None:
    texts, cond = notes
    model = dp_text_model(tiny_settings(epochs=1, grad_sample_mode="ghost"), epsilon=EPS, delta=DELTA).fit(
        texts, cond
    )
    assert 0 < model.privacy_record_.epsilon <= EPS
    assert all(math.isfinite(v) for v in model.loss_history_)


def test_loading_the_spec_section_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, synthgen.models.text.settings; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
