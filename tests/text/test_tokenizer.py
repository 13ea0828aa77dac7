"""Tokenizer: fixed vocabulary, public condition tokens, truncation rule, bad input."""

from __future__ import annotations

import polars as pl
import pytest

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.text.model import DPTextModel
from synthgen.models.text.tokenizer import (
    BOS,
    EOS,
    IGNORE,
    PAD,
    TextTokenizer,
    strip_partial_tail,
    truncate_utf8,
)

from ._data import CATEGORIES, tiny_settings


def _tok(max_length: int = 16) -> TextTokenizer:
    return TextTokenizer(condition_columns=["dx"], categories={"dx": CATEGORIES}, max_length=max_length)


def test_vocabulary_does_not_depend_on_training_text() -> None:
    a, b = _tok(), _tok()
    _, _, _ = a.encode_training(
        pl.Series(["zyzzyva quux"]), pl.DataFrame({"dx": ["renal"]}), skip_empty=False
    )
    _, _, _ = b.encode_training(pl.Series(["hello"]), pl.DataFrame({"dx": ["cardiac"]}), skip_empty=False)
    # 256 bytes + PAD/BOS/EOS + 3 public categories + <other>: nothing learned from text.
    assert a.vocab_size == b.vocab_size == 256 + 3 + len(CATEGORIES) + 1


def test_unlisted_and_null_condition_values_map_to_other_token() -> None:
    tok = _tok()
    ids = tok.encode_conditions(pl.DataFrame({"dx": ["renal", "rare-disease-x", None]}), 3)
    other = tok.other_id("dx")
    assert ids[1, 0] == other and ids[2, 0] == other
    assert ids[0, 0] != other
    assert (ids[:, 1] == BOS).all()


def test_dp_model_refuses_condition_column_without_public_categories(notes) -> None:
    texts, cond = notes
    model = DPTextModel(settings=tiny_settings(), epsilon=1.0, delta=1e-5, dp=True, device="cpu")
    with pytest.raises(PrivacyError, match="public category list"):
        model.fit(texts, cond)


def test_truncation_keeps_first_bytes_and_cuts_at_character_boundary() -> None:
    text = "ab" + "é" * 5  # é is 2 bytes: boundaries at 2, 4, 6, ...
    kept, cut = truncate_utf8(text.encode(), 5)
    assert cut and kept == "abé".encode() and kept.decode() == "abé"
    kept, cut = truncate_utf8(b"abc", 5)
    assert not cut and kept == b"abc"
    assert strip_partial_tail("aé".encode()[:-1]) == b"a"


def test_long_text_is_truncated_without_end_token_and_counted() -> None:
    tok = _tok(max_length=8)
    inputs, targets, stats = tok.encode_training(
        pl.Series(["x" * 50, "short"]), pl.DataFrame({"dx": ["renal", "renal"]}), skip_empty=False
    )
    assert stats.truncated == 1
    scored = targets[0][targets[0] != IGNORE].tolist()
    assert scored == [ord("x")] * 8  # first 8 bytes, no EOS
    scored_short = targets[1][targets[1] != IGNORE].tolist()
    assert scored_short == [*b"short", EOS]
    assert inputs.shape[1] == tok.sequence_length - 1


def test_empty_and_null_text_are_modelled_or_skipped_and_counted() -> None:
    tok = _tok()
    texts = pl.Series(["", None, "ok"], dtype=pl.String)
    cond = pl.DataFrame({"dx": ["renal"] * 3})
    inputs, targets, stats = tok.encode_training(texts, cond, skip_empty=False)
    assert stats.empty_or_null == 2 and len(inputs) == 3
    assert targets[0][targets[0] != IGNORE].tolist() == [EOS]  # modelled as the empty text
    inputs, _, stats = tok.encode_training(texts, cond, skip_empty=True)
    assert stats.skipped_empty == 2 and len(inputs) == 1 and stats.trained == 1


def test_non_utf8_bytes_are_replaced_and_counted() -> None:
    tok = _tok()
    texts = pl.Series([b"ok \xff\xfe end", b"fine"], dtype=pl.Binary)
    inputs, targets, stats = tok.encode_training(
        texts, pl.DataFrame({"dx": ["renal", "renal"]}), skip_empty=False
    )
    assert stats.invalid_utf8 == 1
    body = bytes(t for t in targets[0] if 0 <= t < 256)
    assert body.decode("utf-8") == "ok \ufffd\ufffd end"
    assert PAD in inputs[1].tolist()


def test_non_text_column_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="expected text"):
        _tok().encode_training(pl.Series([1, 2]), pl.DataFrame({"dx": ["renal", "renal"]}), skip_empty=False)
