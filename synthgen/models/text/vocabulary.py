"""Word vocabulary for the text model, chosen by a DP mechanism (or exactly, without DP).

Text is split into *pieces*: a word or a run of punctuation, each with the single space in
front of it, and every other whitespace character on its own (:func:`split_pieces`; the
pieces always join back to the text). A piece on the vocabulary is one token; any other
piece is spelled with byte tokens, so every text stays representable and no vocabulary
choice can lose data.

Under DP the vocabulary is released by Gaussian partition selection (the "DP set union"
of Gopi et al., 2020), charged to the text model's budget:

1. each record contributes the first ``per_record`` distinct pieces of two bytes or more
   (its own text only, so one record changes at most ``per_record`` counts by one: L2
   sensitivity ``sqrt(per_record)``);
2. every count gets Gaussian noise of standard deviation ``sigma``, set by the analytic
   Gaussian mechanism (Balle and Wang, 2018) for ``(epsilon, delta / 2)``;
3. a piece is released when its noisy count exceeds ``1 + sigma * z``, with ``z`` such that
   a piece only one record holds passes with probability at most ``delta / (2 * per_record)``.
   Adding one record can put at most ``per_record`` new pieces in play, so the threshold
   costs at most ``delta / 2``;
4. the released pieces are ordered by noisy count and cut to ``max_words`` (post-processing).

The release is ``(epsilon, delta)``-DP for adding or removing one record. Rare words (a
name, an identifier Presidio missed) need hundreds of records holding them to pass the
threshold; the threshold is reported with the entry.
"""

from __future__ import annotations

import math
import re
import secrets
from collections import Counter
from collections.abc import Iterable
from statistics import NormalDist

import numpy as np

from synthgen.errors import PrivacyError

#: A word or a run of punctuation, each with an optional leading space; else one whitespace char.
_PIECE = re.compile(r" ?\w+| ?[^\w\s]+|\s", re.UNICODE)
_NORMAL = NormalDist()


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into pieces that join back to it exactly."""
    return _PIECE.findall(text)


def _record_pieces(text: str, per_record: int) -> list[str]:
    """The first ``per_record`` distinct multi-byte pieces of one record (its whole contribution)."""
    seen: dict[str, None] = {}
    for piece in split_pieces(text):
        if len(piece.encode("utf-8")) >= 2 and piece not in seen:
            seen[piece] = None
            if len(seen) == per_record:
                break
    return list(seen)


def _record_counts(texts: Iterable[str | None], per_record: int) -> Counter[str]:
    """How many records hold each piece (each record counts its first ``per_record`` pieces once)."""
    counts: Counter[str] = Counter()
    for text in texts:
        if text:
            counts.update(_record_pieces(text, per_record))
    return counts


def gaussian_sigma(*, epsilon: float, delta: float, sensitivity: float) -> float:
    """Smallest noise std of the Gaussian mechanism that is ``(epsilon, delta)``-DP (analytic, exact).

    Balle and Wang (2018), Theorem 8: the mechanism is (eps, delta)-DP iff
    ``Phi(D/(2s) - eps*s/D) - exp(eps) * Phi(-D/(2s) - eps*s/D) <= delta``; the left side falls
    as ``s`` grows, so a bisection finds the smallest ``s``.
    """
    if not (epsilon > 0 and math.isfinite(epsilon)) or not 0 < delta < 1:
        raise PrivacyError(f"word vocabulary: need epsilon > 0 and 0 < delta < 1, got {epsilon}, {delta}")

    def achieved(s: float) -> float:
        a, b = sensitivity / (2 * s), epsilon * s / sensitivity
        return _NORMAL.cdf(a - b) - math.exp(epsilon) * _NORMAL.cdf(-a - b)

    lo, hi = 1e-6 * sensitivity, sensitivity
    while achieved(hi) > delta:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if achieved(mid) > delta else (lo, mid)
    return hi


def dp_words(
    texts: Iterable[str | None],
    *,
    epsilon: float,
    delta: float,
    per_record: int,
    max_words: int,
    rng: np.random.Generator | None = None,
) -> tuple[list[str], dict[str, float]]:
    """Release a word vocabulary by Gaussian partition selection (see the module docstring).

    Returns the words (most frequent first) and the mechanism's parameters (sigma, threshold),
    which are public. The noise comes from OS entropy unless ``rng`` is given (tests only).
    """
    sigma = gaussian_sigma(epsilon=epsilon, delta=delta / 2, sensitivity=math.sqrt(per_record))
    threshold = 1.0 + sigma * _NORMAL.inv_cdf(1.0 - delta / (2 * per_record))
    counts = _record_counts(texts, per_record)
    rng = rng or np.random.default_rng(secrets.randbits(128))
    keys = list(counts)
    noisy = np.fromiter((counts[k] for k in keys), dtype=np.float64, count=len(keys))
    noisy += rng.normal(0.0, sigma, size=len(keys))
    order = np.argsort(-noisy, kind="stable")
    words = [keys[i] for i in order if noisy[i] > threshold][:max_words]
    return words, {"sigma": sigma, "threshold": threshold}


def exact_words(texts: Iterable[str | None], *, per_record: int, max_words: int) -> list[str]:
    """Without DP: the ``max_words`` pieces held by the most records (at least two). Not private."""
    counts = _record_counts(texts, per_record)
    return [w for w, c in counts.most_common(max_words) if c >= 2]
