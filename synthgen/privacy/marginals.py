"""DP mechanisms on marginals under zero-concentrated DP (zCDP): noisy histograms and selection.

Adjacency is add/remove one row (P3). A marginal over any set of columns is a
histogram in which each row adds 1 to exactly one cell, so its L2 (and L1)
sensitivity is 1:

- :func:`gaussian_marginal` adds discrete Gaussian noise of scale sigma to every cell of
  the full (public) domain, empty cells included: ``1 / (2 sigma^2)``-zCDP for integer
  counts (Canonne, Kamath and Steinke 2020), drawn exactly (no floating-point noise).
- :func:`exponential_choice` picks one candidate by the exponential mechanism
  with a score of sensitivity ``sensitivity``: ``epsilon^2 / 8``-zCDP
  (bounded-range analysis, Cesar and Rogers 2021).

zCDP composes by adding rho; the total is converted to (epsilon, delta) once, by
:func:`synthgen.privacy.accountant.zcdp_epsilon`. Noise comes from the caller's
``rng`` (:func:`synthgen.privacy.mechanisms.noise_rng`: OS entropy, never a spec
seed). The marginals' noise is exact integer sampling (:mod:`synthgen.privacy.discrete`);
the exponential mechanism's Gumbel draws are still IEEE floating point.
"""

from __future__ import annotations

import math

import numpy as np

from synthgen.errors import PrivacyError
from synthgen.privacy.discrete import discrete_gaussian


def gaussian_rho(sigma: float) -> float:
    """zCDP cost of one Gaussian-noised histogram of sensitivity 1."""
    return 1.0 / (2.0 * sigma * sigma)


def gaussian_sigma(rho: float) -> float:
    """Noise scale of one sensitivity-1 histogram that costs ``rho``."""
    if not (rho > 0 and math.isfinite(rho)):
        raise PrivacyError(f"a Gaussian marginal needs rho > 0, got {rho}")
    return math.sqrt(1.0 / (2.0 * rho))


def exponential_rho(epsilon: float) -> float:
    """zCDP cost of one exponential-mechanism choice at ``epsilon``."""
    return epsilon * epsilon / 8.0


def exponential_epsilon(rho: float) -> float:
    """Epsilon of one exponential-mechanism choice that costs ``rho``."""
    return math.sqrt(8.0 * rho)


def exact_marginal(codes: np.ndarray, cards: list[int]) -> np.ndarray:
    """Exact counts of the code columns ``codes`` ``(n, k)`` over the domain ``cards``. Raw: never release."""
    flat = np.ravel_multi_index(tuple(codes[:, j] for j in range(codes.shape[1])), tuple(cards))
    size = int(np.prod(cards))
    return np.bincount(flat, minlength=size).astype(np.float64).reshape(cards)


def gaussian_marginal(
    codes: np.ndarray, cards: list[int], *, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Counts over the public domain ``cards`` plus discrete Gaussian noise in every cell (see above)."""
    counts = exact_marginal(codes, cards)
    noise = discrete_gaussian(sigma, counts.size, rng=rng).reshape(counts.shape)
    return counts + noise.astype(np.float64)


def exponential_choice(
    scores: np.ndarray, *, epsilon: float, sensitivity: float, rng: np.random.Generator
) -> int:
    """Index drawn with probability proportional to ``exp(epsilon * score / (2 * sensitivity))``.

    Implemented as the Gumbel-max trick (same distribution). ``exponential_rho(epsilon)``-zCDP
    when each score changes by at most ``sensitivity`` between neighbouring data sets.
    """
    if len(scores) == 0:
        raise PrivacyError("the exponential mechanism needs at least one candidate")
    logits = epsilon * np.asarray(scores, dtype=np.float64) / (2.0 * sensitivity)
    return int(np.argmax(logits + rng.gumbel(size=logits.shape)))


def project_to_simplex(noisy: np.ndarray, total: float) -> np.ndarray:
    """The non-negative table with sum ``total`` closest to ``noisy`` in L2 (post-processing).

    Subtracts one constant and clips at 0 (Duchi et al. 2008): cells whose noisy count is
    below the noise level become exactly 0 instead of each keeping a positive bias, which
    would spread mass over the whole domain and wash out the relationships.
    """
    y = np.asarray(noisy, dtype=np.float64).ravel()
    total = max(float(total), 1e-9)
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - total
    idx = np.arange(1, len(u) + 1)
    cond = u - css / idx > 0
    k = int(idx[cond][-1]) if cond.any() else len(u)
    tau = css[k - 1] / k
    return np.maximum(y - tau, 0.0).reshape(np.shape(noisy))
