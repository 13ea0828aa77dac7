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
from synthgen.models.text.vocabulary import dp_words, exact_words, gaussian_sigma, split_pieces

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


def test_analytic_gaussian_sigma_is_the_smallest_that_meets_delta() -> None:
    sigma = gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=1.0)
    assert sigma == pytest.approx(3.7306, abs=1e-3)  # Balle & Wang (2018), Table 1 region
    # Scales with the sensitivity, and is below the classical sqrt(2 ln(1.25/delta)) / epsilon.
    assert gaussian_sigma(epsilon=1.0, delta=1e-5, sensitivity=4.0) == pytest.approx(4 * sigma, rel=1e-6)
    assert sigma < math.sqrt(2 * math.log(1.25 / 1e-5))
    with pytest.raises(PrivacyError, match="epsilon"):
        gaussian_sigma(epsilon=0.0, delta=1e-5, sensitivity=1.0)


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
        return [" ok", "heart"], {"sigma": 1.0, "threshold": 2.0}

    monkeypatch.setattr("synthgen.models.text.model.dp_words", spy)
    model = dp_text_model(tiny_settings(epochs=1), epsilon=2.0, accountant="prv").fit(texts, cond)
    assert model.tokenizer_.words == [" ok", "heart"]
    (call,) = calls
    assert call["epsilon"] == pytest.approx(0.6) and call["delta"] == pytest.approx(3e-6)
    vocab_entry = model.privacy_record_.entries[0]
    assert vocab_entry.step == "text_preprocessing" and vocab_entry.epsilon == pytest.approx(0.6)


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
