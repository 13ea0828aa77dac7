"""Integer-valued noise, sampled exactly: discrete Laplace and discrete Gaussian.

Counts and histograms take integer noise, so a released count is an integer and its
distribution is exactly the one the privacy proof assumes. Floating-point Laplace noise
is not: its low-order bits can reveal the true value (Mironov, CCS 2012). The samplers
follow Canonne, Kamath and Steinke ("The Discrete Gaussian for Differential Privacy",
NeurIPS 2020, Algorithms 1-3) and use only integer arithmetic and exact uniform integer
draws; no floating-point number enters a decision.

- Discrete Laplace with parameter ε: ``P[Z = z] ∝ exp(-ε |z|)``. For a sensitivity-1
  integer query it is ε-DP, as the continuous Laplace of scale ``1/ε`` is.
- Discrete Gaussian with variance parameter σ²: ``P[Z = z] ∝ exp(-z² / (2σ²))``. For a
  sensitivity-1 integer query it is ``1/(2σ²)``-zCDP, as the continuous one is.

ε is rounded *down* and σ² *up* to a dyadic rational before sampling, so the noise drawn
is never smaller than asked for. Uniform integers come from the caller's generator (the
mechanisms pass :func:`~synthgen.privacy.mechanisms.noise_rng`, seeded from OS entropy).
"""

from __future__ import annotations

import math

import numpy as np

#: Denominator of the dyadic rationals ε and σ² are rounded to (a change of at most 2^-20).
_DENOMINATOR = 1 << 20


class _Uniform:
    """Exact uniform integers in ``[0, d)`` for any ``d >= 1``, by rejection over random bytes.

    Bytes are drawn from the generator in blocks (one call per draw costs more than the
    sampling itself) and used once each.
    """

    _BLOCK = 1 << 14

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf = b""
        self._pos = 0

    def _take(self, n: int) -> int:
        if self._pos + n > len(self._buf):
            self._buf, self._pos = self._rng.bytes(max(self._BLOCK, n)), 0
        x = int.from_bytes(self._buf[self._pos : self._pos + n], "big")
        self._pos += n
        return x

    def below(self, d: int) -> int:
        if d == 1:
            return 0
        bits = (d - 1).bit_length()
        nbytes = (bits + 7) // 8
        while True:
            x = self._take(nbytes) >> (8 * nbytes - bits)
            if x < d:
                return x


def _bernoulli_exp_at_most_one(n: int, d: int, u: _Uniform) -> bool:
    """Bernoulli(exp(-n/d)) for ``0 <= n <= d`` (CKS Algorithm 1, first part)."""
    k = 1
    while u.below(d * k) < n:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def _bernoulli_exp(n: int, d: int, u: _Uniform) -> bool:
    """Bernoulli(exp(-n/d)) for any ``n >= 0``: one exp(-1) trial per whole unit of n/d."""
    while n > d:
        if not _bernoulli_exp_at_most_one(1, 1, u):
            return False
        n -= d
    return _bernoulli_exp_at_most_one(n, d, u)


def _laplace_one(s: int, t: int, u: _Uniform) -> int:
    """One draw of ``P[z] ∝ exp(-|z| s/t)`` (CKS Algorithm 2)."""
    while True:
        low = u.below(t)
        if not _bernoulli_exp(low, t, u):
            continue
        high = 0
        while _bernoulli_exp_at_most_one(1, 1, u):
            high += 1
        y = (low + t * high) // s
        negative = u.below(2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def _gaussian_one(a: int, b: int, u: _Uniform) -> int:
    """One draw of ``P[z] ∝ exp(-z² / (2σ²))`` with ``σ² = a/b`` (CKS Algorithm 3)."""
    t = math.isqrt(a // b) + 1  # floor(sigma) + 1
    while True:
        y = _laplace_one(1, t, u)
        # exp(-(|y| - σ²/t)² / (2σ²)) = exp(-(|y| t b - a)² / (2 a b t²))
        if _bernoulli_exp((abs(y) * t * b - a) ** 2, 2 * a * b * t * t, u):
            return y


def sampled_epsilon(epsilon: float) -> float:
    """The ε' the discrete Laplace sampler draws with: ε rounded down to a multiple of 2^-20."""
    if not (math.isfinite(epsilon) and epsilon * _DENOMINATOR >= 1):
        raise ValueError(f"discrete Laplace needs a finite epsilon >= 2^-20, got {epsilon}")
    return math.floor(epsilon * _DENOMINATOR) / _DENOMINATOR


def discrete_laplace(epsilon: float, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """``size`` integers with ``P[z] ∝ exp(-ε' |z|)``, ``ε' = sampled_epsilon(ε) <= ε``."""
    s = round(sampled_epsilon(epsilon) * _DENOMINATOR)
    u = _Uniform(rng)
    return np.array([_laplace_one(s, _DENOMINATOR, u) for _ in range(size)], dtype=np.int64)


def sampled_variance(sigma: float) -> float:
    """The σ'² the discrete Gaussian sampler draws with: σ² rounded up to a multiple of 2^-20.

    A tail read for its noise (a threshold's delta) must use σ'², not σ²: the noise drawn is
    slightly wider than asked for, and so is its tail.
    """
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"discrete Gaussian needs a finite sigma > 0, got {sigma}")
    return math.ceil(sigma * sigma * _DENOMINATOR) / _DENOMINATOR


def discrete_gaussian(sigma: float, size: int, *, rng: np.random.Generator) -> np.ndarray:
    """``size`` integers with ``P[z] ∝ exp(-z² / (2σ'²))``, ``σ'² = sampled_variance(σ) >= σ²``."""
    a = round(sampled_variance(sigma) * _DENOMINATOR)
    u = _Uniform(rng)
    return np.array([_gaussian_one(a, _DENOMINATOR, u) for _ in range(size)], dtype=np.int64)


def laplace_tail(epsilon: float, k: float) -> float:
    """``P[Z >= k]`` for discrete Laplace noise Z and ``k > 0`` (the same for ``P[Z <= -k]``).

    ``P[Z >= j] = e^{-ε j} / (1 + e^{-ε})`` at integers ``j >= 1``; a real ``k`` is rounded up.
    ε is the one asked of :func:`discrete_laplace` (the tail is read at its ``sampled_epsilon``).
    """
    epsilon = sampled_epsilon(epsilon)
    return math.exp(-epsilon * math.ceil(k)) / (1.0 + math.exp(-epsilon))


def laplace_tail_level(epsilon: float, probability: float) -> float:
    """The smallest real ``k`` with ``P[Z >= k] <= probability`` for discrete Laplace noise Z.

    The continuous formula ``ln(1/(2p))/ε`` is slightly too small for integer noise
    (its tail at an integer is ``e^{-ε k}/(1 + e^{-ε})``, more than ``e^{-ε k}/2``).
    """
    epsilon = sampled_epsilon(epsilon)
    return math.log(1.0 / ((1.0 + math.exp(-epsilon)) * probability)) / epsilon
