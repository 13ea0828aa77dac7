"""The DP clipped mean behind the text quality gate: its sensitivity, noise and ledger entry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synthgen.errors import PrivacyError
from synthgen.privacy.mechanisms import (
    MEAN_RESOLUTION,
    clipped_sensitivity,
    clipped_units,
    dp_clipped_mean,
    noise_rng,
)

UPPER = math.log(16.0)


def _neighbours(values: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Remove any one row, or add one row with an extreme, a negative, a NaN or an ordinary value."""
    out = [np.delete(values, i) for i in rng.choice(len(values), 20, replace=False)]
    for extra in (1e9, np.inf, -5.0, np.nan, 0.0, UPPER, UPPER - 1e-12, float(rng.uniform(0, 3))):
        out.append(np.insert(values, int(rng.integers(len(values) + 1)), extra))
    return out


def test_neighbouring_holdouts_move_the_clipped_sum_by_at_most_l_max() -> None:
    rng = np.random.default_rng(3)
    bound = clipped_sensitivity(UPPER)
    assert bound == math.floor(UPPER * MEAN_RESOLUTION)
    assert bound / MEAN_RESOLUTION <= UPPER  # at most L_max
    worst = 0
    for _ in range(30):
        # Losses as a bad and a good model give them, and values far outside the clip range.
        values = np.concatenate([rng.gamma(2.0, 1.2, 200), rng.normal(0, 10, 20), [np.nan, np.inf]])
        total = int(clipped_units(values, upper=UPPER).sum())
        for other in _neighbours(values, rng):
            moved = abs(int(clipped_units(other, upper=UPPER).sum()) - total)
            assert moved <= bound, moved
            worst = max(worst, moved)
    assert worst == bound  # attained by adding a value at or above the bound: the bound is tight


def test_every_row_term_lies_in_the_clip_range() -> None:
    units = clipped_units(np.array([-1.0, 0.0, 0.5, UPPER, 1e300, np.inf, -np.inf, np.nan]), upper=UPPER)
    assert units.min() >= 0 and units.max() <= clipped_sensitivity(UPPER)
    assert units.tolist()[:3] == [0, 0, 50]


def test_the_noisy_mean_centres_on_the_clipped_mean_with_the_stated_scales() -> None:
    rng = np.random.default_rng(0)
    values = np.minimum(rng.gamma(4.0, 0.5, 1000), 10.0)  # some above the bound
    exact_sum = clipped_units(values, upper=UPPER).sum() / MEAN_RESOLUTION
    draws = [dp_clipped_mean(values, upper=UPPER, epsilon=0.5, rng=rng)[0] for _ in range(400)]
    sums = np.array([d.noisy_sum for d in draws]) - exact_sum
    counts = np.array([d.noisy_count for d in draws]) - len(values)
    scale_sum, scale_count = draws[0].sum_scale, draws[0].count_scale
    assert scale_sum == pytest.approx(UPPER / 0.3, rel=1e-3) and scale_count == pytest.approx(1 / 0.2)
    # Laplace of scale b: mean 0, standard deviation b * sqrt(2) (400 draws: within ~15%).
    assert abs(sums.mean()) < 0.25 * scale_sum and abs(counts.mean()) < 0.25 * scale_count
    assert sums.std() == pytest.approx(scale_sum * math.sqrt(2), rel=0.2)
    assert counts.std() == pytest.approx(scale_count * math.sqrt(2), rel=0.2)
    assert np.all(counts == np.round(counts))  # integer noise on the count
    means = np.array([d.mean for d in draws])
    assert np.median(means) == pytest.approx(exact_sum / len(values), rel=0.02)
    assert exact_sum / len(values) < values.mean()  # clipping pulled the mean down


def test_the_entry_charges_the_whole_epsilon_as_an_evaluation_step() -> None:
    released, entry = dp_clipped_mean(
        np.ones(50), upper=UPPER, epsilon=0.04, rng=noise_rng(), mechanism="dp_text_gate", column="notes"
    )
    assert entry.step == "evaluation" and entry.mechanism == "dp_text_gate" and entry.column == "notes"
    assert entry.epsilon == 0.04 and entry.delta == 0.0
    assert released.noisy_sum != 50.0 or released.noisy_count != 50.0  # noise was added


def test_a_negative_noisy_count_gives_no_mean() -> None:
    rng = np.random.default_rng(1)
    seen_none = any(
        dp_clipped_mean(np.ones(1), upper=UPPER, epsilon=0.05, rng=rng)[0].mean is None for _ in range(50)
    )
    assert seen_none


@pytest.mark.parametrize("upper", [0.0, -1.0, math.inf])
def test_the_clip_bound_must_be_finite_and_positive(upper: float) -> None:
    with pytest.raises(PrivacyError, match="clipping bound"):
        dp_clipped_mean(np.ones(3), upper=upper, epsilon=1.0, rng=noise_rng())
