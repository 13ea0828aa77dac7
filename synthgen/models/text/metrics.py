"""Quality figures for generated text, for the evaluation report.

These compare against real holdout text, so the figures are real-derived and not DP: they
belong in the restricted report, never in the shareable output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from scipy.stats import ks_2samp

if TYPE_CHECKING:
    from synthgen.models.text.model import DPTextModel

#: Length histogram bins: fixed fractions of the public max_length, never fitted to data.
N_LENGTH_BINS = 16


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n: unique word n-grams / all word n-grams (lower-cased, whitespace words)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = text.lower().split()
        for i in range(len(words) - n + 1):
            seen.add(tuple(words[i : i + n]))
            total += 1
    return len(seen) / total if total else 0.0


def _byte_lengths(texts: pl.Series, cap: int) -> np.ndarray:
    lengths = texts.cast(pl.String).fill_null("").str.len_bytes().to_numpy().astype(np.float64)
    return np.minimum(lengths, cap)


def _length_summary(lengths: np.ndarray) -> dict[str, float]:
    if len(lengths) == 0:
        return {"mean": float("nan"), "p10": float("nan"), "p50": float("nan"), "p90": float("nan")}
    q = np.quantile(lengths, [0.1, 0.5, 0.9])
    return {"mean": float(lengths.mean()), "p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])}


def holdout_perplexity(
    real_holdout: pl.Series, model: DPTextModel, *, holdout_conditions: pl.DataFrame | None = None
) -> dict[str, Any]:
    """Per-byte perplexity and bits per byte of ``model`` on real texts it did not train on.

    Byte-weighted: ``exp(total NLL / total scored bytes)``, bytes plus the end token. Exact,
    not DP: for the restricted report only (the quality gate releases a DP figure).
    """
    nll, count = model.score(real_holdout, holdout_conditions)
    total = int(count.sum())
    nats = float(nll.sum()) / total if total else float("nan")
    return {
        "holdout_rows": len(real_holdout),
        "perplexity": math.exp(nats) if math.isfinite(nats) else float("nan"),
        "bits_per_byte": nats / math.log(2) if math.isfinite(nats) else float("nan"),
    }


def text_metrics(
    real_holdout: pl.Series,
    synthetic: pl.Series,
    model: DPTextModel,
    *,
    holdout_conditions: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Perplexity on holdout text, diversity, and the length distribution against the real one.

    Args:
        real_holdout: real texts the model did not train on.
        synthetic: generated texts.
        model: the fitted text model (for perplexity).
        holdout_conditions: the holdout rows' condition columns, when the model is conditioned.

    Returns a JSON-able dict: ``perplexity`` (per byte) and ``bits_per_byte`` on the holdout,
    ``distinct_1``/``distinct_2`` for synthetic and real, byte-length summaries, the KS
    statistic of the two length samples and the total variation distance of their
    histograms (bins fixed from the public ``max_length``; real lengths are capped at it,
    as training truncates them). Also the share of empty texts in each.
    """
    scored = holdout_perplexity(real_holdout, model, holdout_conditions=holdout_conditions)
    cap = model.tokenizer_.max_length
    real_len = _byte_lengths(real_holdout, cap)
    syn_len = _byte_lengths(synthetic, cap)
    edges = np.linspace(0, cap, N_LENGTH_BINS + 1)
    edges[-1] = cap + 1  # the last bin includes max_length itself
    real_hist = np.histogram(real_len, bins=edges)[0] / max(len(real_len), 1)
    syn_hist = np.histogram(syn_len, bins=edges)[0] / max(len(syn_len), 1)
    real_texts = real_holdout.cast(pl.String).fill_null("").to_list()
    syn_texts = synthetic.cast(pl.String).fill_null("").to_list()
    ks = ks_2samp(real_len, syn_len) if len(real_len) and len(syn_len) else None
    return {
        **scored,
        "synthetic_rows": len(syn_texts),
        "distinct_1": distinct_n(syn_texts, 1),
        "distinct_2": distinct_n(syn_texts, 2),
        "real_distinct_1": distinct_n(real_texts, 1),
        "real_distinct_2": distinct_n(real_texts, 2),
        "length_real": _length_summary(real_len),
        "length_synthetic": _length_summary(syn_len),
        "length_ks": float(ks.statistic) if ks is not None else float("nan"),
        "length_tvd": float(0.5 * np.abs(real_hist - syn_hist).sum()),
        "empty_share_real": float(np.mean(real_len == 0)) if len(real_len) else float("nan"),
        "empty_share_synthetic": float(np.mean(syn_len == 0)) if len(syn_len) else float("nan"),
    }
