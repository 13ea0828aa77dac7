"""The DP text-quality gate: is the text model good enough for its notes to be published?

At a small dataset or epsilon the DP text model writes strings that look like notes and are
not ("She lives with Dr woecmer Sashemmhit, at Radkenzelsu."). Publishing them as synthetic
notes without a word would mislead every recipient, so the train stage measures the model
right after training, on the real notes of the evaluation holdout (never trained on), and
decides what the published dataset carries (``model.text.fallback``).

The figure is a DP one, so that the decision, and the figure itself, may travel with the
shareable dataset (P9):

* each held-out note's loss is its negative log-likelihood per byte (nats; its bytes plus
  the end token, as the report's perplexity), clipped to ``[0, L_MAX]``;
* :func:`synthgen.privacy.mechanisms.dp_clipped_mean` releases the clipped sum and the count
  of held-out notes with discrete Laplace noise (``epsilon``-DP in total: adding or removing
  one source row changes at most one held-out note, because the holdout is chosen row by row
  by keyed hash (P10), so the sum moves by at most ``L_MAX`` and the count by 1);
* the DP perplexity per byte is ``exp(noisy sum / noisy count)``; the gate passes when it is
  at most the report's fail threshold (:data:`READABLE_PERPLEXITY`, 3.5 per byte).

The exact held-out perplexity, computed in the evaluate stage, stays in the restricted report.
The gate's epsilon (:data:`GATE_SHARE` of the run's text budget) composes with the text
model's own by addition, and is reserved and charged with the run like every other mechanism.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import polars as pl

from synthgen.models.text.accounting import PrivacyEntry

if TYPE_CHECKING:
    from synthgen.models.text.model import DPTextModel

#: Clipping bound of one note's loss, in nats per byte: ln 16 (perplexity 16 per byte, 4 bits
#: a byte, four times the fail threshold). A public constant: it bounds the sensitivity. A
#: note scored worse counts as 16; it fails the bar either way. On the demo's unreadable model
#: every held-out note scored between 1.6 and 2.9 nats per byte.
L_MAX = math.log(16.0)
#: Share of the run's text budget (``privacy.epsilon * privacy.text_share``) spent on the gate,
#: split evenly between the text columns. At the demo's epsilon 3 it is 0.09: on the demo's
#: 973 held-out notes, 90% of DP figures fell within -17% / +23% of the exact clipped one,
#: and a model 30% above the bar passed 0.4% of the time, one 30% below failed 0.5% (2,000
#: draws each). At 5% (0.045) those were -30% / +51%, 5.7% and 5.5%.
GATE_SHARE = 0.10
#: Share of the gate's epsilon on the clipped sum; the rest goes to the count of notes.
SUM_SHARE = 0.6
#: The readability bar, per byte: the report's text fail threshold too
#: (:class:`synthgen.evaluate.verdict.Thresholds`, docs/report-verdict.md).
READABLE_PERPLEXITY = 3.5

Fallback = Literal["drop", "empty", "model"]
#: What the published dataset carries in the column: the model's text, nothing, or nulls.
Output = Literal["generated", "dropped", "nulls"]

_OUTPUT: dict[str, Output] = {"drop": "dropped", "empty": "nulls", "model": "generated"}


@dataclass(frozen=True)
class GateResult:
    """The gate's decision for one text column. Every field is public or DP-derived.

    ``perplexity`` is the DP figure (the exact clipped one without DP, where nothing is
    shareable anyway); None when the gate did not run (no holdout) or when the noisy count
    of held-out notes was below 1 (too few to judge: the gate then fails).
    """

    column: str
    dp: bool
    checked: bool
    passed: bool
    perplexity: float | None
    threshold: float
    fallback: Fallback
    epsilon: float
    l_max: float = L_MAX

    @property
    def output(self) -> Output:
        """What the published column holds: the model's text when it passed (or was not checked)."""
        return "generated" if self.passed or not self.checked else _OUTPUT[self.fallback]

    def line(self) -> str:
        """One plain line for the run's warnings and summary."""
        col, setting = self.column, f"model.text.fallback: {self.fallback}"
        figure = "DP perplexity" if self.dp else "perplexity (no DP)"
        if not self.checked:
            return (
                f"{col}: text model not checked against the readability bar (no held-out rows: "
                "evaluate.holdout is 0); its text is published unchecked"
            )
        shown = f" {self.perplexity:.2f}" if self.perplexity is not None else ""
        if self.passed:
            return f"{col}: text model passed the readability bar ({figure}{shown} <= {self.threshold:g})"
        if self.perplexity is None and self.dp:
            why = "too few held-out notes to measure it"
        else:
            why = f"{figure}{shown} > {self.threshold:g}"
        what = {
            "dropped": "column left out",
            "nulls": "column kept, every value null",
            "generated": "its unreadable text published anyway",
        }[self.output]
        return f"{col}: text model below the readability bar ({why}); {what} ({setting})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the model's catalog entry and the shareable manifest.

        Only a DP figure is kept: without DP the figure is exact, computed on real rows (P9),
        and is left out (the decision stays).
        """
        out = asdict(self)
        figure = out.pop("perplexity")
        out["dp_perplexity_per_byte"] = figure if self.dp else None
        out["output"] = self.output
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """The inverse of :meth:`to_dict` (without DP, the figure is None)."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**fields, perplexity=data.get("dp_perplexity_per_byte"))


def unchecked(column: str, *, dp: bool, fallback: Fallback) -> GateResult:
    """The gate of a run without held-out rows: nothing to measure, nothing charged."""
    return GateResult(column, dp, False, True, None, READABLE_PERPLEXITY, fallback, 0.0)


def note_losses(model: DPTextModel, texts: pl.Series, conditions: pl.DataFrame | None) -> np.ndarray:
    """Each note's negative log-likelihood per byte (nats), as the model scores it."""
    nll, nbytes = model.score(texts, conditions)
    return np.asarray(nll, dtype=np.float64) / np.maximum(np.asarray(nbytes, dtype=np.float64), 1.0)


def quality_gate(
    model: DPTextModel,
    texts: pl.Series,
    conditions: pl.DataFrame | None,
    *,
    column: str,
    fallback: Fallback,
    epsilon: float,
    rng: np.random.Generator,
    threshold: float = READABLE_PERPLEXITY,
) -> tuple[GateResult, PrivacyEntry | None]:
    """Score ``model`` on held-out real ``texts`` and decide (module docstring).

    Under DP (``model.dp``) the mean note loss is released by
    :func:`~synthgen.privacy.mechanisms.dp_clipped_mean` at ``epsilon`` (noise from ``rng``,
    which must be :func:`~synthgen.privacy.mechanisms.noise_rng`), and the returned entry must
    be charged. ``texts`` must be the holdout (a 1-stable selection, P10) and disjoint from the
    training rows; otherwise the sensitivity argument does not hold. Without DP the exact
    clipped mean decides and nothing is charged (entry None).
    """
    from synthgen.privacy.mechanisms import dp_clipped_mean

    losses = note_losses(model, texts, conditions)
    entry: PrivacyEntry | None = None
    if model.dp:
        released, _ = dp_clipped_mean(losses, upper=L_MAX, epsilon=epsilon, rng=rng, sum_share=SUM_SHARE)
        mean = released.mean
        entry = PrivacyEntry(
            step="text_gate",
            mechanism=f"text quality gate: DP mean of held-out note losses (discrete Laplace, clipped to "
            f"[0, {L_MAX:.3f}] nats/byte, sum scale {released.sum_scale:.1f}, count scale "
            f"{released.count_scale:.1f})",
            epsilon=epsilon,
            delta=0.0,
            accountant="basic",
        )
    else:
        mean = float(np.clip(losses, 0.0, L_MAX).mean()) if len(losses) else None
    # The noisy mean may fall outside [0, L_MAX]; clamping is post-processing.
    perplexity = None if mean is None else math.exp(min(max(mean, 0.0), L_MAX))
    passed = perplexity is not None and perplexity <= threshold
    result = GateResult(
        column, model.dp, True, passed, perplexity, threshold, fallback, epsilon if model.dp else 0.0
    )
    return result, entry


def text_outputs(text_info: Mapping[str, Any] | None) -> dict[str, Output]:
    """Per text column of a model's catalog entry (``extra["text"]``), what its published column holds.

    A model trained before the gate existed has no decision: its text is generated, as then.
    """
    columns = (text_info or {}).get("columns") or {}
    return {col: (info.get("gate") or {}).get("output", "generated") for col, info in columns.items()}


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def follow_gate(frame: FrameT, outputs: Mapping[str, Output]) -> FrameT:
    """``frame`` with each withheld text column dropped or set to nulls, as the gate decided.

    Nothing else changes: the other columns, the row count and the order stay as they are.
    """
    names = frame.collect_schema().names()
    frame = frame.drop([c for c, o in outputs.items() if o == "dropped" and c in names])
    nulls = [pl.lit(None, dtype=pl.String).alias(c) for c, o in outputs.items() if o == "nulls"]
    return frame.with_columns(nulls) if nulls else frame
