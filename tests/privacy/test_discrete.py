"""The exact integer samplers: right distribution, integers only, never less noise than asked."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgen.privacy.discrete import (
    discrete_gaussian,
    discrete_laplace,
    laplace_tail,
    laplace_tail_level,
    sampled_epsilon,
)
from synthgen.privacy.mechanisms import laplace_count, noise_rng


def test_discrete_laplace_matches_its_probability_mass() -> None:
    eps = 1.0
    z = discrete_laplace(eps, 40_000, rng=np.random.default_rng(0))
    assert z.dtype == np.int64
    p = math.exp(-eps)
    for k in range(-3, 4):
        expected = (1 - p) / (1 + p) * p ** abs(k)
        assert abs(np.mean(z == k) - expected) < 0.01, k
    assert abs(z.var() - 2 * p / (1 - p) ** 2) < 0.1


def test_discrete_gaussian_has_the_requested_spread() -> None:
    z = discrete_gaussian(3.0, 20_000, rng=np.random.default_rng(1))
    assert z.dtype == np.int64
    assert abs(z.mean()) < 0.1 and abs(z.var() - 9.0) < 0.5
    # Symmetric around 0, and the mass at 0 is the largest.
    counts = {k: np.sum(z == k) for k in range(-2, 3)}
    assert counts[0] == max(counts.values())


def test_epsilon_is_rounded_down_so_the_noise_is_never_smaller() -> None:
    for eps in (0.1, 1 / 3, 2.718281828):
        assert eps - 2**-20 < sampled_epsilon(eps) <= eps
    with pytest.raises(ValueError, match="epsilon"):
        discrete_laplace(1e-9, 1, rng=np.random.default_rng(0))


def test_tail_level_bounds_the_integer_tail() -> None:
    for eps, prob in ((0.5, 1e-6), (1.0, 1e-3), (3.0, 0.05)):
        k = laplace_tail_level(eps, prob)
        assert laplace_tail(eps, k) <= prob
        # Not needlessly loose: one step earlier the tail is above it.
        assert laplace_tail(eps, math.ceil(k) - 1) > prob


def test_the_dp_row_count_is_an_integer() -> None:
    for _ in range(20):
        noisy, entry = laplace_count(1234, epsilon=0.5, rng=noise_rng())
        assert noisy == int(noisy)
    assert entry.mechanism == "laplace_count" and entry.epsilon == 0.5
