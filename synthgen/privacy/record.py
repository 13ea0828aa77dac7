"""The privacy record a fitted model carries: what was promised, what was spent, by which mechanism.

The lead's budget ledger charges each entry of :attr:`PrivacyRecord.mechanisms`.
Entries compose by basic sequential composition (epsilons add, deltas add),
which is valid for any mix of mechanisms and never under-states the cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MechanismEntry(BaseModel):
    """One DP release charged to the budget: a preprocessing mechanism, DP-SGD training, or a DP
    evaluation of a trained model on held-out rows (the text quality gate)."""

    model_config = ConfigDict(extra="forbid")

    step: Literal["preprocessing", "training", "evaluation"]
    #: laplace_count | dp_quantiles | dp_categories | dp_counts | dp_sgd | ... (a short name:
    #: the ledger's column holds 120 characters).
    mechanism: str = Field(max_length=120)
    #: Column the mechanism read, when it read one column.
    column: str | None = None
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0, lt=1)


def compose(entries: Iterable[MechanismEntry]) -> tuple[float, float]:
    """Basic sequential composition: (sum of epsilons, sum of deltas)."""
    eps = 0.0
    delta = 0.0
    for e in entries:
        eps += e.epsilon
        delta += e.delta
    return eps, delta


class PrivacyRecord(BaseModel):
    """What a fitted synthesizer spent. ``dp=False`` records carry no guarantee at all (P7)."""

    model_config = ConfigDict(extra="forbid")

    dp: bool
    target_epsilon: float | None = None
    target_delta: float | None = None
    spent_epsilon: float = 0.0
    spent_delta: float = 0.0
    #: prv | rdp (DP-SGD accountant); None when there was no DP-SGD.
    accountant: str | None = None
    noise_multiplier: float | None = None
    #: Poisson sampling rate used by the accountant (>= the rate actually used).
    sample_rate: float | None = None
    expected_batch_size: int | None = None
    steps: int | None = None
    epochs: int | None = None
    max_grad_norm: float | None = None
    #: How ``n`` entered the accounting (a DP count, never the exact count).
    row_count_source: str | None = None
    #: Adjacency of the guarantee: one row = one person unless an entity key is named.
    adjacency: str = "add/remove one row"
    mechanisms: list[MechanismEntry] = []

    def composed(self) -> tuple[float, float]:
        return compose(self.mechanisms)

    @property
    def preprocessing_epsilon(self) -> float:
        return compose(m for m in self.mechanisms if m.step == "preprocessing")[0]

    @property
    def training_epsilon(self) -> float:
        return compose(m for m in self.mechanisms if m.step == "training")[0]


def non_dp_record() -> PrivacyRecord:
    """Record for a model trained without DP (P7): ``dp`` is False, nothing is claimed."""
    return PrivacyRecord(dp=False, adjacency="none (no DP guarantee)")
