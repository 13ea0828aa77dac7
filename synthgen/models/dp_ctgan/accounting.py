"""DP-CTGAN's accounting: the epsilon of a whole history (count release + DP-SGD steps), the
noise multiplier calibrated over it, and the plan a fit follows."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Literal

from synthgen.errors import ModelError, PrivacyError

History = list[tuple[float, float, int]]


def history_epsilon(history: History, *, delta: float, accountant: str) -> float:
    """Epsilon of a composition of ``(noise_multiplier, sample_rate, steps)`` Gaussian releases."""
    from opacus.accountants.utils import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = list(history)
    with warnings.catch_warnings():
        # PRV logs a divide-by-zero for sample rate 1 (the count release) and RDP warns
        # when its best order is the largest it tries (it is then merely conservative).
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta=delta))


def calibrate_with_prior(
    *,
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    prior: History,
    accountant: str,
    tolerance: float = 0.01,
) -> float:
    """Smallest noise multiplier (to ``tolerance`` in epsilon) such that ``prior`` followed by
    ``steps`` DP-SGD steps at ``sample_rate`` spends at most ``target_epsilon``.

    Returns the upper end of the bisection bracket, whose epsilon was computed and
    is ``<= target_epsilon``: never an unchecked value.
    """

    def eps(sigma: float) -> float:
        return history_epsilon([*prior, (sigma, sample_rate, steps)], delta=delta, accountant=accountant)

    if not target_epsilon > 0:
        raise PrivacyError(f"training epsilon must be > 0, got {target_epsilon}; raise privacy.epsilon")
    if prior and history_epsilon(prior, delta=delta, accountant=accountant) >= target_epsilon:
        raise PrivacyError(
            f"training epsilon {target_epsilon:.4g} does not even cover the DP category counts; "
            "raise privacy.epsilon"
        )
    lo, hi = 0.0, 2.0
    eps_hi = eps(hi)
    while eps_hi > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e5:
            raise PrivacyError(
                f"no noise multiplier reaches epsilon {target_epsilon:.4g}; raise privacy.epsilon"
            )
        eps_hi = eps(hi)
    # Invariant: eps(hi) <= target < eps(lo).
    while target_epsilon - eps_hi > tolerance and hi - lo > 1e-3:
        mid = (lo + hi) / 2
        e = eps(mid)
        if e <= target_epsilon:
            hi, eps_hi = mid, e
        else:
            lo = mid
    return hi


@dataclass
class DPPlan:
    """The public figures of a DP-SGD run, fixed before any training row is read."""

    epsilon: float
    delta: float
    #: Poisson sampling rate of the loader (``batch_size / n_dp``).
    sample_rate: float
    #: Rate charged to the accountant: ``1/int(1/q) >= q``.
    accounted_rate: float
    #: Divisor of the noised gradient sum.
    expected_batch_size: int
    accountant: Literal["prv", "rdp"] = "prv"

    @classmethod
    def from_count(
        cls,
        *,
        epsilon: float,
        delta: float,
        batch_size: int,
        n_estimate: float,
        accountant: Literal["prv", "rdp"],
    ) -> DPPlan:
        """Plan from the DP row count ``n_estimate`` (never the exact count)."""
        if not epsilon > 0:
            raise PrivacyError(f"epsilon must be > 0 under DP, got {epsilon}; set privacy.epsilon > 0")
        if not 0 < delta < 1:
            raise PrivacyError(f"delta must be in (0, 1) under DP, got {delta}; fix privacy.delta")
        q = batch_size / n_estimate if n_estimate > 0 else math.inf
        if not 0 < q <= 1:
            raise ModelError(
                f"the data has about {max(int(n_estimate), 0)} rows, fewer than "
                f"model.batch_size={batch_size}: lower model.batch_size"
            )
        steps_per_epoch = int(1 / q)
        return cls(epsilon, delta, q, 1.0 / steps_per_epoch, max(1, round(q * n_estimate)), accountant)
