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
2. every count gets discrete Gaussian noise (:mod:`synthgen.privacy.discrete`, integers sampled
   exactly: no floating-point draw whose low-order bits could tell the true count, Mironov
   2012) of variance ``sigma^2 = per_record / (2 rho)``, with ``rho`` the zCDP budget that
   converts to ``(epsilon, delta / 2)`` (:func:`synthgen.privacy.accountant.zcdp_rho`). The
   counts that two neighbouring data sets share are then ``rho``-zCDP (Canonne, Kamath and
   Steinke 2020: ``1/(2 sigma^2)`` per coordinate that moves by one, summed over the
   ``per_record`` coordinates one record moves);
3. a piece is released when its noisy count exceeds ``1 + k``, with ``k`` the discrete
   Gaussian's sub-Gaussian tail level at probability ``delta / (2 * per_record)``: a piece only
   one record holds passes with at most that probability. Adding one record can put at most
   ``per_record`` new pieces in play, so the threshold costs at most ``delta / 2``;
4. the released pieces are ordered by noisy count, ties by the piece itself, and cut to
   ``max_words`` (post-processing of the noisy counts alone: never of the records' order).

The sampler rounds ``sigma^2`` up (:func:`~synthgen.privacy.discrete.sampled_variance`); the
recorded ``sigma``, ``rho`` and ``epsilon`` and the threshold are those of the variance drawn,
so the spent epsilon is at most the one asked for. The release is ``(epsilon, delta)``-DP for
adding or removing one record. Rare words (a name, an identifier Presidio missed) need hundreds
of records holding them to pass the threshold; the threshold is reported with the entry.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from synthgen.errors import PrivacyError
from synthgen.privacy.accountant import zcdp_epsilon, zcdp_rho
from synthgen.privacy.discrete import sampled_variance
from synthgen.privacy.mechanisms import HistogramNoise, noise_rng

#: A word or a run of punctuation, each with an optional leading space; else one whitespace char.
_PIECE = re.compile(r" ?\w+| ?[^\w\s]+|\s", re.UNICODE)


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


@dataclass(frozen=True)
class VocabularyNoise:
    """The noise of the word release and what it costs, at the variance the sampler draws with.

    ``sigma`` is the scale asked of the discrete Gaussian sampler and ``variance`` the one it
    draws with (``sigma^2`` rounded up to a multiple of 2^-20); ``rho`` is the zCDP cost of that
    variance over one record's ``per_record`` counts, ``epsilon`` that cost at ``delta / 2`` (at
    most the epsilon asked for), ``threshold`` the level a noisy count must exceed (read at
    ``variance``), and ``delta`` the whole release's (conversion plus threshold).
    """

    sigma: float
    variance: float
    rho: float
    epsilon: float
    delta: float
    threshold: float

    @property
    def histogram(self) -> HistogramNoise:
        """The same noise as the preprocessing histograms draw it (one unit per count)."""
        return HistogramNoise(epsilon=self.epsilon, sigma=self.sigma, delta=self.delta)

    def as_params(self) -> dict[str, float]:
        return asdict(self)


def vocabulary_noise(*, epsilon: float, delta: float, per_record: int) -> VocabularyNoise:
    """Calibrate the word release to ``(epsilon, delta)`` (points 2 and 3 of the module docstring)."""
    if not (epsilon > 0 and math.isfinite(epsilon)) or not 0 < delta < 1 or per_record < 1:
        raise PrivacyError(
            f"word vocabulary: need epsilon > 0, 0 < delta < 1 and per_record >= 1, "
            f"got {epsilon}, {delta}, {per_record}"
        )
    sigma = math.sqrt(per_record / (2.0 * zcdp_rho(epsilon, delta / 2)))
    variance = sampled_variance(sigma)
    rho = per_record / (2.0 * variance)
    level = HistogramNoise(epsilon=epsilon, sigma=sigma).tail_level(delta / (2 * per_record))
    return VocabularyNoise(
        sigma=sigma,
        variance=variance,
        rho=rho,
        epsilon=zcdp_epsilon(rho, delta / 2),
        delta=delta,
        threshold=1.0 + level,
    )


def noisy_counts(
    counts: Counter[str], *, noise: HistogramNoise, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """The pieces, sorted (no record order reaches the noise), and their counts plus ``noise``:
    integers. Raw counts in, DP counts out."""
    keys = sorted(counts)
    exact = np.fromiter((counts[k] for k in keys), dtype=np.int64, count=len(keys))
    return keys, exact + noise.draw(len(keys), rng)


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

    Returns the words (most frequent first) and the mechanism's parameters (``sigma``,
    ``variance``, ``rho``, the ``epsilon`` and ``delta`` spent, ``threshold``: see
    :class:`VocabularyNoise`), which are public.
    The noise comes from OS entropy unless ``rng`` is given (tests only).
    """
    noise = vocabulary_noise(epsilon=epsilon, delta=delta, per_record=per_record)
    counts = _record_counts(texts, per_record)
    keys, noisy = noisy_counts(counts, noise=noise.histogram, rng=rng or noise_rng())
    # keys are sorted, so a stable sort on the noisy count breaks ties by the piece.
    order = np.argsort(-noisy, kind="stable")
    words = [keys[i] for i in order if noisy[i] > noise.threshold][:max_words]
    return words, noise.as_params()


def exact_words(texts: Iterable[str | None], *, per_record: int, max_words: int) -> list[str]:
    """Without DP: the ``max_words`` pieces held by the most records (at least two). Not private."""
    counts = _record_counts(texts, per_record)
    return [w for w, c in counts.most_common(max_words) if c >= 2]
