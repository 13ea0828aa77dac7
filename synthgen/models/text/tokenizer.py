"""Tokenizer: bytes, optional word tokens, and public condition tokens.

Privacy: the 256 byte values and three special tokens are the same for every dataset; the
condition tokens come from category lists handed in by the caller, which must be public
(declared in the spec) or DP-discovered; the word tokens come from the caller too, and
under DP must be released by :func:`synthgen.models.text.vocabulary.dp_words` (charged to
the budget). A category value not on its list maps to that column's ``<other>`` token, so
a rare real value can never become a token of its own.

Layout of the ids::

    0..255            the byte values
    256 PAD, 257 BOS, 258 EOS
    259..             condition tokens: for each condition column, its categories then <other>
    then              word tokens, in the order given

A text is split into pieces (:func:`~synthgen.models.text.vocabulary.split_pieces`); a piece
on the word list is one token, any other piece is spelled in bytes. A training sequence is
``[cond_1, ..., cond_k, BOS, token_1, ..., token_m, EOS]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from synthgen.errors import ModelError
from synthgen.models.text.vocabulary import split_pieces

N_BYTES = 256
PAD = 256
BOS = 257
EOS = 258
N_SPECIAL = 3
#: Target id that the loss ignores (matches torch's CrossEntropyLoss default).
IGNORE = -100
OTHER = "<other>"


def truncate_utf8(data: bytes, max_length: int) -> tuple[bytes, bool]:
    """Keep the first ``max_length`` bytes of ``data``, cut back to a UTF-8 character boundary.

    Returns the kept bytes and whether anything was cut. A character whose encoding would
    straddle the limit is dropped whole, so the result never ends in a partial character.
    """
    if len(data) <= max_length:
        return data, False
    cut = max_length
    # Continuation bytes are 0b10xxxxxx: step back while the first dropped byte is one.
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut], True


def strip_partial_tail(data: bytes) -> bytes:
    """Drop an incomplete multi-byte character at the end of ``data`` (generation stopped mid-character)."""
    i = len(data) - 1
    while i >= 0 and (data[i] & 0xC0) == 0x80 and len(data) - i < 4:
        i -= 1
    if i < 0 or data[i] < 0xC0:
        return data
    need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
    return data if len(data) - i >= need else data[:i]


@dataclass
class InputStats:
    """Counts of what the tokenizer did to the input.

    These are exact counts over real rows (not DP): they belong in the restricted report,
    never in a shareable artifact.
    """

    rows: int = 0
    trained: int = 0
    empty_or_null: int = 0
    skipped_empty: int = 0
    truncated: int = 0
    invalid_utf8: int = 0
    condition_other: dict[str, int] = field(default_factory=dict)
    #: Bytes (+ EOS) scored per kept row, for per-byte perplexity whatever the tokens.
    scored_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "trained": self.trained,
            "empty_or_null": self.empty_or_null,
            "skipped_empty": self.skipped_empty,
            "truncated": self.truncated,
            "invalid_utf8": self.invalid_utf8,
            "condition_other": dict(self.condition_other),
        }


class TextTokenizer:
    """Byte vocabulary, optional word tokens, and prefix tokens for public categorical conditions.

    Args:
        condition_columns: the columns the text is conditioned on, in prefix order.
        categories: for each condition column, its public category list (the spec's
            ``categories`` or a DP-discovered list). Never pass a list read from raw data in
            DP mode: a rare value would become a token and leak.
        max_length: longest text in bytes (see :func:`truncate_utf8`).
        words: word tokens (pieces of two bytes or more). Under DP, only a list released by
            a DP mechanism; empty for a pure byte-level model.
    """

    def __init__(
        self,
        *,
        condition_columns: Sequence[str],
        categories: Mapping[str, Sequence[str]],
        max_length: int,
        words: Sequence[str] = (),
    ) -> None:
        self.condition_columns = list(condition_columns)
        self.max_length = max_length
        missing = [c for c in self.condition_columns if c not in categories]
        if missing:
            raise ModelError(
                f"text model: no category list for condition column(s) {', '.join(missing)}; "
                "declare them in the spec (columns.<name>.categories) or pass DP-discovered lists"
            )
        self.categories: dict[str, list[str]] = {}
        self._offsets: dict[str, int] = {}
        self._index: dict[str, dict[str, int]] = {}
        next_id = N_BYTES + N_SPECIAL
        for col in self.condition_columns:
            cats = [str(c) for c in dict.fromkeys(categories[col]) if str(c) != OTHER]
            self.categories[col] = cats
            self._offsets[col] = next_id
            self._index[col] = {c: next_id + i for i, c in enumerate(cats)}
            next_id += len(cats) + 1  # + <other>
        self.words = [w for w in dict.fromkeys(words) if len(w.encode("utf-8")) >= 2]
        self.word_start = next_id
        self._word_ids = {w: next_id + i for i, w in enumerate(self.words)}
        self._word_bytes = [w.encode("utf-8") for w in self.words]
        self.vocab_size = next_id + len(self.words)

    @property
    def prefix_length(self) -> int:
        """Tokens before the first byte: one per condition column, then BOS."""
        return len(self.condition_columns) + 1

    @property
    def sequence_length(self) -> int:
        """Longest training sequence: prefix, ``max_length`` bytes, EOS."""
        return self.prefix_length + self.max_length + 1

    def other_id(self, column: str) -> int:
        return self._offsets[column] + len(self.categories[column])

    def config(self) -> dict[str, object]:
        return {
            "condition_columns": self.condition_columns,
            "categories": self.categories,
            "max_length": self.max_length,
            "words": self.words,
        }

    # -- conditions --------------------------------------------------------------

    def encode_conditions(
        self, conditions: pl.DataFrame | None, n: int, stats: InputStats | None = None
    ) -> np.ndarray:
        """Map each row's condition values to prefix ids, shape ``(n, k + 1)`` ending in BOS.

        Values are compared as strings; nulls and values not on the public list become the
        column's ``<other>`` token.
        """
        k = len(self.condition_columns)
        out = np.full((n, k + 1), BOS, dtype=np.int64)
        if k == 0:
            return out
        if conditions is None:
            raise ModelError(
                f"text model: conditions for {', '.join(self.condition_columns)} are required "
                "(pass a frame with those columns)"
            )
        if conditions.height != n:
            raise ModelError(f"text model: {conditions.height} condition rows for {n} texts")
        absent = [c for c in self.condition_columns if c not in conditions.columns]
        if absent:
            raise ModelError(f"text model: condition column(s) missing from the frame: {', '.join(absent)}")
        for j, col in enumerate(self.condition_columns):
            index = self._index[col]
            other = self.other_id(col)
            values = conditions.get_column(col).cast(pl.String).to_list()
            ids = [index.get(v, other) if v is not None else other for v in values]
            out[:, j] = ids
            if stats is not None:
                stats.condition_other[col] = sum(1 for i in ids if i == other)
        return out

    # -- text --------------------------------------------------------------------

    @staticmethod
    def to_bytes(texts: pl.Series, stats: InputStats) -> list[bytes | None]:
        """Turn a String or Binary series into UTF-8 bytes; None marks a null or empty text.

        Binary values that are not valid UTF-8 are decoded with replacement (U+FFFD) and
        counted in ``stats.invalid_utf8``.
        """
        out: list[bytes | None] = []
        if texts.dtype == pl.Binary:
            for raw in texts.to_list():
                if not raw:
                    out.append(None)
                    continue
                try:
                    raw.decode("utf-8")
                    out.append(raw)
                except UnicodeDecodeError:
                    stats.invalid_utf8 += 1
                    out.append(raw.decode("utf-8", errors="replace").encode("utf-8"))
        elif texts.dtype in (pl.String, pl.Categorical, pl.Enum, pl.Null):
            # Polars strings are valid UTF-8 by construction.
            for s in texts.cast(pl.String).to_list():
                out.append(s.encode("utf-8") if s else None)
        else:
            raise ModelError(
                f"text model: column {texts.name!r} has dtype {texts.dtype}; expected text (String or Binary)"
            )
        stats.rows += len(out)
        stats.empty_or_null += sum(1 for b in out if b is None)
        return out

    def text_ids(self, body: bytes) -> list[int]:
        """Token ids of one (valid UTF-8) text: word tokens where a piece is on the list, else bytes."""
        if not self._word_ids:
            return list(body)
        ids: list[int] = []
        for piece in split_pieces(body.decode("utf-8")):
            word = self._word_ids.get(piece)
            if word is None:
                ids.extend(piece.encode("utf-8"))
            else:
                ids.append(word)
        return ids

    def encode_training(
        self,
        texts: pl.Series,
        conditions: pl.DataFrame | None,
        *,
        skip_empty: bool,
    ) -> tuple[np.ndarray, np.ndarray, InputStats]:
        """Build fixed-width training arrays ``(inputs, targets)`` of shape ``(n, S - 1)``.

        ``inputs`` is right-padded with PAD; ``targets`` holds the next token at each position
        and ``IGNORE`` where no loss is taken (condition prefix and padding). Truncated texts
        get no EOS: the model should not learn that they end there. ``stats.scored_bytes``
        gets, per kept row, the bytes plus EOS its targets cover (the unit of perplexity).
        """
        stats = InputStats()
        data = TextTokenizer.to_bytes(texts, stats)
        prefix = self.encode_conditions(conditions, len(data), stats)
        keep = [i for i, b in enumerate(data) if b is not None or not skip_empty]
        if skip_empty:
            stats.skipped_empty = len(data) - len(keep)
        seq = self.sequence_length
        tokens = np.full((len(keep), seq), PAD, dtype=np.int64)
        targets = np.full((len(keep), seq - 1), IGNORE, dtype=np.int64)
        p = self.prefix_length
        scored = np.zeros(len(keep), dtype=np.int64)
        for row, i in enumerate(keep):
            body, cut = truncate_utf8(data[i] or b"", self.max_length)
            stats.truncated += int(cut)
            ids = self.text_ids(body)
            m = len(ids)
            scored[row] = len(body) + (not cut)
            tokens[row, :p] = prefix[i]
            tokens[row, p : p + m] = ids
            end = p + m
            if not cut:
                tokens[row, end] = EOS
                end += 1
            # Loss on every byte and on EOS, predicted from the position before it.
            targets[row, p - 1 : end - 1] = tokens[row, p:end]
        stats.trained = len(keep)
        stats.scored_bytes = scored
        return tokens[:, :-1].copy(), targets, stats

    def decode(self, ids: Sequence[int], max_bytes: int | None = None) -> str:
        """Bytes and words up to the first EOS (special and condition ids are dropped), as text,
        cut to ``max_bytes`` at a character boundary when given."""
        buf = bytearray()
        for t in ids:
            if t == EOS:
                break
            if t < N_BYTES:
                buf.append(t)
            elif t >= self.word_start:
                buf.extend(self._word_bytes[t - self.word_start])
        data = strip_partial_tail(bytes(buf))
        if max_bytes is not None:
            data, _ = truncate_utf8(data, max_bytes)
        return data.decode("utf-8", errors="replace")
