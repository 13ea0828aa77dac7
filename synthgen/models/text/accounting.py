"""Noise calibration and the privacy record the text model hands to the budget ledger.

The text model reads the training text under DP through two mechanisms, each a ledger
entry: the word vocabulary (Gaussian partition selection, ``text_preprocessing``; none with
``vocabulary: bytes``) and DP-SGD (``text_training``); the pipeline's quality gate then reads
the held-out text once (``text_gate``, :mod:`synthgen.models.text.gate`) and adds its entry to
the same record. DP-SGD: Poisson-sampled batches (each record
in a step with probability ``q``), per-record gradients clipped to ``max_grad_norm``,
Gaussian noise ``noise_multiplier * max_grad_norm`` added to their sum. Condition tokens
come from public or DP-discovered category lists. Adjacency is record-level: one text
(one row) is one record. If one person has several rows, the guarantee per person is
weaker (group privacy) unless the caller groups rows by person first.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from synthgen.errors import PrivacyError
from synthgen.privacy import accountant as accountant_glue
from synthgen.privacy.record import MechanismEntry, PrivacyRecord

AccountantName = Literal["prv", "rdp"]


class PrivacyEntry(BaseModel):
    """One charge to the ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Literal["text_training", "text_preprocessing", "text_gate"]
    mechanism: str
    epsilon: float
    delta: float
    #: prv | rdp for DP-SGD and the word release; basic for the gate's pure-DP Laplace noise.
    accountant: Literal["prv", "rdp", "basic"]


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
    expected_batch_size: int | None = None
    steps: int = 0
    epochs: int = 0
    #: "public" when the caller passed a DP or public row count; "exact" when the sampling
    #: rate came from the exact number of training texts (standard Opacus practice, but the
    #: count itself is then not protected).
    row_count_source: Literal["public", "exact"] | None = None

    @property
    def epsilon(self) -> float:
        """Total epsilon charged by this model (sum over entries: basic composition)."""
        return sum(e.epsilon for e in self.entries)

    @property
    def delta(self) -> float:
        return sum(e.delta for e in self.entries)

    def to_privacy_record(self, column: str) -> PrivacyRecord:
        """The same facts as a :class:`synthgen.privacy.record.PrivacyRecord` (the ledger's type)."""
        if not self.dp:
            return PrivacyRecord(dp=False, adjacency="none (no DP guarantee)")
        return PrivacyRecord(
            dp=True,
            target_epsilon=self.target_epsilon,
            target_delta=self.target_delta,
            spent_epsilon=self.epsilon,
            spent_delta=self.delta,
            accountant=self.entries[0].accountant if self.entries else None,
            noise_multiplier=self.noise_multiplier,
            sample_rate=self.sample_rate,
            expected_batch_size=self.expected_batch_size,
            steps=self.steps,
            epochs=self.epochs,
            max_grad_norm=self.max_grad_norm,
            row_count_source=self.row_count_source,
            adjacency="add/remove one row (one text with its condition values)",
            mechanisms=[
                MechanismEntry(
                    step=_LEDGER_STEP[e.step],
                    # Short ledger names (the catalog column holds 120 characters); the full
                    # description stays in the model's own record.
                    mechanism=_LEDGER_NAME[e.step],
                    column=column,
                    epsilon=e.epsilon,
                    delta=e.delta,
                )
                for e in self.entries
            ],
        )


_LEDGER_STEP: dict[str, Literal["preprocessing", "training", "evaluation"]] = {
    "text_preprocessing": "preprocessing",
    "text_training": "training",
    "text_gate": "evaluation",
}
_LEDGER_NAME = {
    "text_preprocessing": "dp_word_vocabulary",
    "text_training": "dp_sgd_text",
    "text_gate": "dp_text_gate",
}


def calibrate_noise(
    *,
    target_epsilon: float,
    target_delta: float,
    sample_rate: float,
    steps: int,
    accountant: AccountantName,
) -> tuple[float, float]:
    """Smallest noise multiplier whose spent epsilon after ``steps`` is <= target.

    Uses :mod:`synthgen.privacy.accountant` (Opacus's binary search) and re-checks the result
    with a fresh accountant on exactly that history, so training never starts on a sigma
    that would overspend. Returns ``(noise_multiplier, epsilon)``.
    """
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise PrivacyError(f"text model: epsilon must be a positive number, got {target_epsilon}")
    if not 0 < target_delta < 1:
        raise PrivacyError(f"text model: delta must be in (0, 1), got {target_delta}")
    try:
        sigma = accountant_glue.calibrate_noise(
            epsilon=target_epsilon,
            delta=target_delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=accountant,
        )
    except PrivacyError as exc:
        raise PrivacyError(
            f"text model: {exc}; raise the text share of epsilon or lower model.text.epochs"
        ) from None
    spent = accountant_glue.spent_epsilon(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps=steps,
        delta=target_delta,
        accountant=accountant,
    )
    if spent > target_epsilon:
        raise PrivacyError(
            f"text model: calibrated noise would spend epsilon {spent:.4f} > target {target_epsilon:g}"
        )
    return sigma, spent
