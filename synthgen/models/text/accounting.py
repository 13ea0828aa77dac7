"""Noise calibration and the privacy record the text model hands to the budget ledger.

The text model's only access to the training text under DP is DP-SGD: Poisson-sampled
batches (each record in a step with probability ``q``), per-record gradients clipped to
``max_grad_norm``, Gaussian noise ``noise_multiplier * max_grad_norm`` added to their sum.
The tokenizer reads nothing from the data (fixed byte vocabulary, public condition lists),
so preprocessing costs nothing and has no ledger entry. Adjacency is record-level: one text
(one row) is one record. If one person has several rows, the guarantee per person is
weaker (group privacy) unless the caller groups rows by person first.
"""

from __future__ import annotations

import math
from typing import Literal

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from pydantic import BaseModel, ConfigDict

from synthgen.errors import PrivacyError

AccountantName = Literal["prv", "rdp"]


class PrivacyEntry(BaseModel):
    """One charge to the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Literal["text_training", "text_preprocessing"]
    mechanism: str
    epsilon: float
    delta: float
    accountant: AccountantName


class TextPrivacyRecord(BaseModel):
    """What the text model spent, and the DP-SGD parameters that produced it.

    ``dp`` False means the model was trained without any privacy protection: ``entries`` is
    empty because no finite epsilon describes it, and its outputs must carry ``dp: false``.
    """

    model_config = ConfigDict(extra="forbid")

    dp: bool
    target_epsilon: float | None = None
    target_delta: float | None = None
    entries: list[PrivacyEntry] = []
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None
    steps: int = 0

    @property
    def epsilon(self) -> float:
        """Total epsilon charged by this model (sum over entries: basic composition)."""
        return sum(e.epsilon for e in self.entries)


def calibrate_noise(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantName,
) -> tuple[float, float]:
    """Smallest noise multiplier (Opacus's search) whose spent epsilon after ``steps`` is <= target.

    Returns ``(noise_multiplier, epsilon)``, the epsilon re-checked with a fresh accountant
    on exactly that history, so the caller never trains on a sigma that overspends.
    """
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise PrivacyError(f"text model: epsilon must be a positive number, got {target_epsilon}")
    if not 0 < target_delta < 1:
        raise PrivacyError(f"text model: delta must be in (0, 1), got {target_delta}")
    try:
        sigma = get_noise_multiplier(
            target_epsilon=target_epsilon,
            target_delta=target_delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    except ValueError as exc:
        raise PrivacyError(
            f"text model: epsilon {target_epsilon:g} is too small for {steps} steps ({exc}); "
            "raise the text share of epsilon or lower model.text.epochs"
        ) from None
    spent = spent_epsilon(
        noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=target_delta, accountant=accountant
    )
    if spent > target_epsilon:
        raise PrivacyError(
            f"text model: calibrated noise would spend epsilon {spent:.4f} > target {target_epsilon:g}"
        )
    return sigma, spent


def spent_epsilon(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: AccountantName
) -> float:
    """Epsilon of ``steps`` Poisson-subsampled Gaussian steps, by a fresh Opacus accountant."""
    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    return float(acc.get_epsilon(delta=delta))
