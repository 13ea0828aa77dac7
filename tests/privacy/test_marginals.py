"""zCDP units: the conversion to (epsilon, delta), Gaussian marginals, the exponential mechanism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgen.privacy.accountant import zcdp_epsilon, zcdp_rho
from synthgen.privacy.marginals import (
    exponential_choice,
    gaussian_marginal,
    gaussian_rho,
    gaussian_sigma,
    project_to_simplex,
)


@pytest.mark.parametrize(("rho", "delta"), [(0.01, 1e-5), (0.15, 1e-6), (1.0, 1e-9)])
def test_zcdp_conversion_is_never_looser_than_the_classic_bound(rho: float, delta: float) -> None:
    classic = rho + 2 * math.sqrt(rho * math.log(1 / delta))
    eps = zcdp_epsilon(rho, delta)
    assert 0 < eps <= classic
    assert eps > rho  # never below the divergence bound itself


def test_zcdp_rho_inverts_the_conversion_from_below() -> None:
    for eps, delta in [(0.7, 3e-6), (2.4, 1e-5), (10.0, 1e-7)]:
        rho = zcdp_rho(eps, delta)
        assert zcdp_epsilon(rho, delta) <= eps
        assert zcdp_epsilon(rho * 1.001, delta) > eps * (1 - 1e-4)


def test_gaussian_marginal_noise_matches_its_scale_in_every_cell_even_empty_ones() -> None:
    rng = np.random.default_rng(0)
    codes = np.zeros((100, 2), dtype=np.int64)  # all rows in cell (0, 0)
    sigma = gaussian_sigma(0.02)
    assert gaussian_rho(sigma) == pytest.approx(0.02)
    draws = np.stack([gaussian_marginal(codes, [3, 4], sigma=sigma, rng=rng) for _ in range(400)])
    assert draws[:, 0, 0].mean() == pytest.approx(100, abs=4 * sigma / 20)
    empty = draws[:, 1:, :].ravel()
    assert abs(empty.mean()) < 4 * sigma / math.sqrt(len(empty))
    assert empty.std() == pytest.approx(sigma, rel=0.05)


def test_exponential_choice_follows_its_distribution() -> None:
    rng = np.random.default_rng(1)
    scores = np.array([0.0, 2.0])
    picks = [exponential_choice(scores, epsilon=1.0, sensitivity=1.0, rng=rng) for _ in range(4000)]
    p1 = math.exp(1.0) / (1 + math.exp(1.0))  # exp(eps * score / 2)
    assert np.mean(picks) == pytest.approx(p1, abs=0.03)


def test_simplex_projection_is_non_negative_sums_to_the_total_and_zeroes_noise() -> None:
    out = project_to_simplex(np.array([[50.0, -3.0], [2.0, 51.0]]), 100.0)
    assert out.min() >= 0 and out.sum() == pytest.approx(100.0)
    assert out[0, 1] == 0.0
