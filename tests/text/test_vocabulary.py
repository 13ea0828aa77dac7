"""Word vocabulary: lossless pieces, the DP release (Gaussian partition selection), word tokens."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from synthgen.errors import PrivacyError
from synthgen.models.text.sampling import START, state_masks
from synthgen.models.text.tokenizer import EOS, TextTokenizer
from synthgen.models.text.vocabulary import (
    _record_counts,
    dp_words,
    exact_words,
    noisy_counts,
    split_pieces,
    vocabulary_noise,
)
from synthgen.privacy.accountant import zcdp_epsilon
from synthgen.privacy.discrete import discrete_gaussian, sampled_variance

from ._data import CATEGORIES, dp_text_model, make_notes, tiny_settings


@pytest.mark.parametrize(
    "text",
    [
        "Mr. Peterson reports pain since 2 Mar 2022.",
        "  two  spaces\tand\ttabs\n\nnew lines ",
        "é ü — 日本語!?",
        "",
    ],
)
def test_pieces_join_back_to_the_text(text: str) -> None:
    assert "".join(split_pieces(text)) == text


def test_word_release_is_calibrated_at_the_variance_the_sampler_draws() -> None:
    noise = vocabulary_noise(epsilon=1.0, delta=1e-5, per_record=8)
    # The sampler rounds sigma^2 up; rho, epsilon and the threshold are read at that variance.
    assert noise.variance == sampled_variance(noise.sigma) >= noise.sigma**2
    assert noise.rho == pytest.approx(8 / (2 * noise.variance), rel=1e-12)
    assert noise.epsilon == pytest.approx(zcdp_epsilon(noise.rho, 0.5e-5), rel=1e-12)
    assert noise.epsilon <= 1.0 and noise.epsilon == pytest.approx(1.0, abs=1e-4)
    # A piece only one record holds passes with at most delta / (2 per_record) (sub-Gaussian tail).
    k = noise.threshold - 1.0
    assert math.exp(-(k**2) / (2 * noise.variance)) <= 1e-5 / 16 * (1 + 1e-9)
    with pytest.raises(PrivacyError, match="epsilon"):
        vocabulary_noise(epsilon=0.0, delta=1e-5, per_record=8)


def test_word_counts_take_integer_discrete_gaussian_noise() -> None:
    texts = [f"alpha beta w{i % 50}" for i in range(2000)]
    counts = _record_counts(texts, 4)
    noise = vocabulary_noise(epsilon=0.5, delta=1e-6, per_record=4).histogram
    draws = []
    for seed in range(40):
        keys, noisy = noisy_counts(counts, noise=noise, rng=np.random.default_rng(seed))
        assert noisy.dtype.kind == "i"  # whole counts: no floating-point low-order bits
        draws.append(noisy - np.array([counts[k] for k in keys]))
    spread = np.concatenate(draws)
    assert spread.std() == pytest.approx(noise.sigma, rel=0.1)
    assert abs(spread.mean()) < 0.1 * noise.sigma


def test_word_counts_are_the_exact_discrete_gaussian_sampler_draws() -> None:
    # Rounded floating-point normals are integers with the same spread too: only the exact
    # sampler (integer arithmetic, no low-order bits to read) is the mechanism charged.
    counts = _record_counts([f"alpha beta w{i % 30}" for i in range(500)], 4)
    noise = vocabulary_noise(epsilon=0.5, delta=1e-6, per_record=4)
    keys, noisy = noisy_counts(counts, noise=noise.histogram, rng=np.random.default_rng(7))
    exact = np.array([counts[k] for k in keys])
    expected = discrete_gaussian(noise.sigma, len(keys), rng=np.random.default_rng(7))
    assert np.array_equal(noisy - exact, expected)


def test_word_release_does_not_depend_on_the_order_of_the_records() -> None:
    # Integer noise ties often; the order (and the max_words cut) must come from the noisy
    # counts and the pieces alone, never from which record came first.
    texts = [" ".join(f"w{j}" for j in range(i % 7, i % 7 + 12)) for i in range(4000)]
    for seed in range(5):
        forward = dp_words(
            texts, epsilon=4.0, delta=1e-6, per_record=12, max_words=6, rng=np.random.default_rng(seed)
        )
        backward = dp_words(
            texts[::-1], epsilon=4.0, delta=1e-6, per_record=12, max_words=6, rng=np.random.default_rng(seed)
        )
        assert forward == backward


def test_dp_release_keeps_common_words_and_never_rare_ones() -> None:
    texts = [f"the patient is stable {'zyzzyva' if i < 5 else ''}" for i in range(3000)]
    for seed in range(20):
        words, params = dp_words(
            texts, epsilon=1.0, delta=1e-6, per_record=8, max_words=100, rng=np.random.default_rng(seed)
        )
        assert {" patient", " is", " stable"} <= set(words)
        assert " zyzzyva" not in words  # 5 records: far below the threshold
        assert params["threshold"] > 5 * params["sigma"]


def test_each_record_counts_at_most_its_first_distinct_words() -> None:
    # Every record repeats " alpha" and has 10 distinct later words; with per_record 2 only
    # "one" and " alpha" are counted (once per record), never the later words.
    texts = [f"one alpha alpha {' '.join(f'w{i}' for i in range(10))}" for _ in range(50)]
    assert exact_words(texts, per_record=2, max_words=100) == ["one", " alpha"]


def test_dp_model_takes_its_words_from_the_dp_release_and_charges_it(monkeypatch) -> None:
    texts, cond = make_notes(300, seed=5)
    calls: list[dict[str, float]] = []

    def spy(strings, **kwargs):
        calls.append(kwargs)
        params = {"sigma": 1.0, "rho": 0.1, "threshold": 2.0}
        return [" ok", "heart"], {**params, "epsilon": kwargs["epsilon"], "delta": kwargs["delta"]}

    monkeypatch.setattr("synthgen.models.text.model.dp_words", spy)
    model = dp_text_model(tiny_settings(epochs=1), epsilon=2.0, accountant="prv").fit(texts, cond)
    assert model.tokenizer_.words == [" ok", "heart"]
    (call,) = calls
    assert call["epsilon"] == pytest.approx(0.6) and call["delta"] == pytest.approx(3e-6)
    vocab_entry = model.privacy_record_.entries[0]
    assert vocab_entry.step == "text_preprocessing" and vocab_entry.epsilon == pytest.approx(0.6)


def test_dp_model_charges_the_word_release_as_its_sampler_drew_it() -> None:
    texts, cond = make_notes(300, seed=5)
    model = dp_text_model(tiny_settings(epochs=1), epsilon=2.0, accountant="prv").fit(texts, cond)
    entry = model.privacy_record_.entries[0]
    assert entry.step == "text_preprocessing" and "discrete Gaussian" in entry.mechanism
    share = tiny_settings().vocabulary_share
    noise = vocabulary_noise(
        epsilon=2.0 * share, delta=1e-5 * share, per_record=tiny_settings().words_per_record
    )
    assert f"sigma={noise.sigma:.2f}" in entry.mechanism
    assert entry.epsilon == noise.epsilon <= 2.0 * share and entry.delta == noise.delta
    assert model.privacy_record_.epsilon <= 2.0


def test_dp_model_never_makes_a_token_of_a_rare_word() -> None:
    texts, cond = make_notes(400, seed=6)
    rare = pl.Series("notes", ["heart ok 3. Kowalczyk"] * 3)
    texts = pl.concat([texts, rare])
    cond = pl.concat([cond, pl.DataFrame({"dx": ["cardiac"] * 3})])
    model = dp_text_model(tiny_settings(epochs=1), epsilon=8.0, accountant="prv").fit(texts, cond)
    assert " Kowalczyk" not in model.tokenizer_.words
    assert model.tokenizer_.words  # the common pieces did pass


def test_byte_vocabulary_has_no_words_and_no_preprocessing_charge() -> None:
    texts, cond = make_notes(200, seed=7)
    model = dp_text_model(tiny_settings(epochs=1, vocabulary="bytes"), epsilon=2.0, accountant="prv").fit(
        texts, cond
    )
    assert model.tokenizer_.words == []
    assert [e.step for e in model.privacy_record_.entries] == ["text_training"]


def test_word_tokens_encode_decode_round_trip_and_count_bytes() -> None:
    tok = TextTokenizer(
        condition_columns=["dx"], categories={"dx": CATEGORIES}, max_length=64, words=[" patient", "Dr"]
    )
    text = "Dr. Ng saw the patient today, é."
    ids = tok.text_ids(text.encode())
    assert tok.word_start in ids and tok.word_start + 1 in ids
    assert len(ids) < len(text.encode())
    assert tok.decode([*ids, EOS, 65]) == text
    _, targets, stats = tok.encode_training(
        pl.Series([text]), pl.DataFrame({"dx": ["renal"]}), skip_empty=False
    )
    assert stats.scored_bytes.tolist() == [len(text.encode()) + 1]  # bytes + EOS, whatever the tokens
    assert int((targets != -100).sum()) == len(ids) + 1
    # A decoded text is cut back to the byte limit (a word token is several bytes).
    assert tok.decode(ids, max_bytes=4) == "Dr. "


def test_word_tokens_may_only_start_at_a_character_boundary() -> None:
    masks = state_masks(300, torch.device("cpu"), word_start=280)
    assert masks[START, 280:].all()
    assert not masks[1:, 280:].any()


def test_a_public_word_list_is_used_as_given_and_charges_nothing(monkeypatch) -> None:
    texts, cond = make_notes(200, seed=8)

    def forbidden(*args, **kwargs):
        raise AssertionError("no release from the data when a public list is given")

    monkeypatch.setattr("synthgen.models.text.model.dp_words", forbidden)
    model = dp_text_model(tiny_settings(epochs=1, words=[" ok", "heart"]), epsilon=2.0, accountant="prv").fit(
        texts, cond
    )
    assert model.tokenizer_.words == [" ok", "heart"]
    assert [e.step for e in model.privacy_record_.entries] == ["text_training"]
    assert model.privacy_record_.epsilon <= 2.0


def test_a_public_word_list_with_an_empty_or_one_byte_word_is_a_spec_error() -> None:
    from synthgen.errors import SpecError
    from synthgen.spec import spec_from_dict

    base = {"name": "x", "source": {"kind": "csv", "path": "a.csv"}}
    for bad in ("", "a"):
        with pytest.raises(SpecError, match="shorter than two bytes") as info:
            spec_from_dict({**base, "model": {"text": {"words": [" ok", bad]}}})
        assert "\n" not in str(info.value)
