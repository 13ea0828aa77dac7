"""The holdout: real rows the synthesizer never sees.

Privacy metrics (DCR share, membership attack) compare synthetic rows with training
rows *and* with rows that were never trained on; without a holdout they have no
baseline. Utility is also tested on it (train on synthetic, test on real).

Each row's side is decided by a keyed hash of that row alone (P10): adding or removing
one source row changes the side of that row and of no other, so the training set of a
neighbouring source is a neighbouring training set and the DP-SGD ε carries over to the
source. A split drawn with ``rng.choice(n, n_hold)`` fails this: the exact ``n`` reshuffles
hundreds of existing rows when one row is added. The price is that the holdout's size is
binomial around ``fraction * n`` instead of exact.
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import polars as pl

from synthgen.errors import SpecError

_PERSON = b"synthgen/holdout"  # BLAKE2 personalisation: this hash means nothing elsewhere

#: Rows hashed per slice by :func:`holdout_mask` (memory: their canonical text, not the table's).
HASH_SLICE_ROWS = 100_000


def _canonical_value(name: str, dtype: pl.DataType) -> pl.Expr:
    """One column as text that depends on the value only, not on the column's storage type.

    Every number is written as a Float64 (an integer column that a neighbouring source
    stores as float must not re-hash every row); the length prefix keeps distinct rows
    from running together into the same bytes, and a null has no length.
    """
    col = pl.col(name)
    if dtype.is_numeric():
        text = col.cast(pl.Float64).cast(pl.String)
    elif dtype == pl.Binary:
        text = col.bin.encode("hex")
    elif dtype.is_nested():
        text = pl.struct(col).struct.json_encode()
    else:
        text = col.cast(pl.String)
    return (
        pl.when(col.is_null())
        .then(pl.lit("~"))
        .otherwise(pl.concat_str([text.str.len_bytes().cast(pl.String), pl.lit(":"), text]))
    )


def canonical_rows(frame: pl.DataFrame) -> pl.Series:
    """Each row's canonical text: its values, column by column in name order."""
    if not frame.columns:
        return pl.Series("row", [""] * frame.height, dtype=pl.String)
    exprs = [_canonical_value(n, frame.schema[n]) for n in sorted(frame.columns)]
    return frame.select(pl.concat_str(exprs, separator="|").alias("row")).to_series()


def holdout_mask(frame: pl.DataFrame, *, fraction: float, key: bytes) -> pl.Series:
    """``True`` for the rows of ``frame`` that go to the holdout.

    A row is held out when the keyed BLAKE2b hash of its canonical bytes, read as a number
    in ``[0, 1)``, is below ``fraction``. The decision reads that row and ``key`` only, so
    it is 1-stable (P10): a neighbouring frame (one row added or removed) changes at most
    that row's side. Identical rows fall on the same side.

    ``key`` (16 to 64 bytes) is the pipeline's secret holdout key: without it no one can
    tell which real rows were trained on. It must stay the same between training and the
    evaluation that recomputes the split.
    """
    if not 0 <= fraction < 1:
        raise SpecError(f"evaluate.holdout must be in [0, 1), got {fraction}")
    if not 16 <= len(key) <= 64:
        raise ValueError("holdout key must be 16 to 64 bytes")
    if frame.height == 0 or fraction == 0:
        return pl.Series("holdout", [False] * frame.height, dtype=pl.Boolean)
    threshold = np.uint64(min(int(fraction * 2**64), 2**64 - 1))
    # Slice by slice: the canonical text of every row at once, as Python strings, was the train
    # stage's peak (about 1.2 GB over the table itself at 5,000,000 rows). Each row's hash is its own.
    parts = []
    for part in frame.iter_slices(HASH_SLICE_ROWS):
        digests = b"".join(
            hashlib.blake2b(r.encode("utf-8"), key=key, digest_size=8, person=_PERSON).digest()
            for r in canonical_rows(part).to_list()
        )
        parts.append(np.frombuffer(digests, dtype=">u8") < threshold)
    return pl.Series("holdout", np.concatenate(parts))


def holdout_key(secret: bytes) -> bytes:
    """The holdout key derived from a pipeline secret (its own key: unrelated to surrogates)."""
    return hmac.new(secret, b"synthgen/holdout-key", hashlib.sha256).digest()


def split_holdout(frame: pl.DataFrame, fraction: float, *, key: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` into ``(train, holdout)`` by :func:`holdout_mask`.

    ``fraction`` is the expected share of rows held out, in ``[0, 1)``; 0 gives an empty
    holdout (with the same columns). Row order inside each part follows the input order.
    The sizes are not forced (a tiny table may get an empty holdout): forcing them would
    make one row's side depend on the others.
    """
    is_hold = holdout_mask(frame, fraction=fraction, key=key)
    return frame.filter(~is_hold), frame.filter(is_hold)
