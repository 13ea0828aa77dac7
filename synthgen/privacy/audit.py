"""Empirical privacy audit in one training run (Steinke, Nasr and Jagielski, NeurIPS 2023).

``m`` canary rows are each put into the training data with probability 1/2, by bits the
auditor draws from OS entropy and keeps secret. After one fit, a membership score per
canary is read from the synthetic output alone (how close its nearest synthetic row is),
and the auditor guesses "in" for the ``k_in`` highest scores and "out" for the ``k_out``
lowest, abstaining on the rest. If the fit is (ε, δ)-DP with respect to adding or removing
one row, the number of correct guesses among the ``r`` made is dominated by
``Binomial(r, e^ε / (1 + e^ε))`` up to a δ term (their Theorem 3.1 and Proposition 5.2),
so a count of correct guesses too high for that binomial rejects ε. The largest rejected ε
at the chosen confidence is an *empirical lower bound*: a sound DP fit keeps it below the
ε it claims, a fit that leaks shows it above.

The bound is only as strong as the attack: a low bound does not prove privacy. The
positive control (the same audit on a non-DP fit) must show a bound well above the DP
targets, or the audit has no power.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

#: Shares of the canaries guessed on by the default rules (the most confident ones).
_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: The largest ε the bound search reports (guesses that are all correct still bound ε finitely).
_EPS_CEILING = 50.0


def p_value(*, m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """Probability of ``v`` or more correct guesses out of ``r`` (``m`` canaries) under (ε, δ)-DP.

    The ε part is the binomial tail ``P[Binomial(r, q) >= v]`` with ``q = e^ε / (1 + e^ε)``
    (the accuracy of ε-randomised response). The δ part adds ``2 m δ`` times the largest
    ``P[v - i <= Binomial(r, q) < v] / i`` over ``i = 1..v``.
    """
    from scipy.stats import binom

    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if epsilon < 0 or not 0 <= delta <= 1:
        raise ValueError("need epsilon >= 0 and delta in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))
    alpha = 0.0
    if delta > 0 and v > 0:
        below = binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[X = v-1], P[X = v-2], ..., P[X = 0]
        alpha = float(np.max(np.cumsum(below) / np.arange(1, v + 1)))
    return min(1.0, tail + alpha * delta * 2 * m)


def epsilon_lower_bound(*, m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """The largest ε that ``v`` correct guesses out of ``r`` reject at ``confidence`` (0 when none)."""
    alpha = 1.0 - confidence

    def rejects(eps: float) -> bool:
        return p_value(m=m, r=r, v=v, epsilon=eps, delta=delta) < alpha

    if r == 0 or not rejects(0.0):
        return 0.0
    lo, hi = 0.0, _EPS_CEILING
    if rejects(hi):
        return hi
    for _ in range(60):  # p_value grows with ε: bisect the boundary
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejects(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class AuditBound:
    """One audit's outcome: the best of the guessing rules tried, at the stated confidence."""

    m: int
    included: int
    guesses: int
    correct: int
    k_in: int
    k_out: int
    epsilon_lower_bound: float
    confidence: float
    delta: float
    #: Guessing rules tried; each was tested at ``1 - (1 - confidence) / rules`` (Bonferroni),
    #: so the maximum over them holds at ``confidence``.
    rules: int


def guesses_from_scores(scores: np.ndarray, *, k_in: int, k_out: int, seed: int = 0) -> np.ndarray:
    """+1 for the ``k_in`` highest scores, -1 for the ``k_out`` lowest, 0 (abstain) elsewhere.

    Ties are broken by a random order that does not depend on the inclusion bits.
    """
    m = len(scores)
    if k_in + k_out > m:
        raise ValueError(f"k_in + k_out = {k_in + k_out} exceeds the {m} canaries")
    tiebreak = np.random.default_rng(seed).random(m)
    order = np.lexsort((tiebreak, scores))  # ascending score
    out = np.zeros(m, dtype=np.int64)
    if k_out:
        out[order[:k_out]] = -1
    if k_in:
        out[order[m - k_in :]] = 1
    return out


def audit_scores(
    scores: Sequence[float] | np.ndarray,
    included: Sequence[bool] | np.ndarray,
    *,
    delta: float,
    confidence: float = 0.95,
    rules: Sequence[tuple[int, int]] | None = None,
) -> AuditBound:
    """Turn membership scores (higher = more likely trained on) into an ε lower bound.

    ``rules`` are the ``(k_in, k_out)`` guessing rules to try (default: guess on the most
    confident 5%, 10%, 20%, ..., 90% and 100% of the canaries, split evenly between "in"
    and "out"). Fix them before looking at the scores: they are corrected for, not searched.
    """
    s = np.asarray(scores, dtype=float)
    bits = np.asarray(included, dtype=bool)
    m = len(s)
    if rules is None:
        rules = [(max(1, round(m * f / 2)), max(1, round(m * f / 2))) for f in _FRACTIONS]
        rules = [(a, min(b, m - a)) for a, b in dict.fromkeys(rules)]
    per_rule = 1.0 - (1.0 - confidence) / len(rules)
    truth = np.where(bits, 1, -1)
    best: AuditBound | None = None
    for k_in, k_out in rules:
        g = guesses_from_scores(s, k_in=k_in, k_out=k_out)
        r = int(np.count_nonzero(g))
        v = int(np.sum(g == truth))
        eps = epsilon_lower_bound(m=m, r=r, v=v, delta=delta, confidence=per_rule)
        if best is None or eps > best.epsilon_lower_bound:
            best = AuditBound(
                m=m,
                included=int(bits.sum()),
                guesses=r,
                correct=v,
                k_in=k_in,
                k_out=k_out,
                epsilon_lower_bound=eps,
                confidence=confidence,
                delta=delta,
                rules=len(rules),
            )
    assert best is not None
    return best


# -- the tabular canary audit --------------------------------------------------------------


def audit_table(n: int, m: int, *, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, Any]:
    """A public random base table of ``n`` rows, ``m`` outlier canaries, and their schema.

    The base rows are ordinary (ages 20-70, incomes near 40k, five tags); each canary is an
    outlier on every column at once: an age of 95-100, an income of 400k-500k and a tag of
    its own (``canary-i``). The schema declares every bound and category list, canaries'
    included, as public facts, so that the fit's DP preprocessing does not hide them: the
    audit tests the training mechanism, not the preprocessing's clipping.
    """
    from synthgen.schema import ColumnSchema, ColumnType, TableSchema

    rng = np.random.default_rng(seed)
    tags = [f"t{i}" for i in range(5)]
    base = pl.DataFrame(
        {
            "age": np.clip(rng.normal(45, 10, n), 20, 70).round(),
            "income": np.clip(rng.lognormal(math.log(40_000), 0.4, n), 5_000, 200_000),
            "tag": rng.choice(tags, n).tolist(),
            "flag": (rng.random(n) < 0.3).tolist(),
        }
    )
    canaries = pl.DataFrame(
        {
            "age": rng.uniform(95, 100, m).round(),
            "income": rng.uniform(400_000, 500_000, m),
            "tag": [f"canary-{i}" for i in range(m)],
            "flag": (rng.random(m) < 0.5).tolist(),
        }
    )
    schema = TableSchema(
        columns=[
            ColumnSchema(name="age", type=ColumnType.numeric, bounds=(0, 100), integer=True, nullable=False),
            ColumnSchema(name="income", type=ColumnType.numeric, bounds=(0, 500_000), nullable=False),
            ColumnSchema(
                name="tag",
                type=ColumnType.categorical,
                categories=tags + canaries["tag"].to_list(),
                nullable=False,
            ),
            ColumnSchema(name="flag", type=ColumnType.boolean, nullable=False),
        ]
    )
    return base, canaries, schema


def nearest_distance(canaries: pl.DataFrame, synthetic: pl.DataFrame, schema: Any) -> np.ndarray:
    """Each canary's distance to its nearest synthetic row (range-scaled L1 plus mismatches)."""
    total = np.zeros((canaries.height, synthetic.height))
    for col in schema.columns:
        a, b = canaries[col.name], synthetic[col.name]
        if col.bounds is not None:
            span = col.bounds[1] - col.bounds[0]
            x = a.cast(pl.Float64).to_numpy()[:, None]
            y = b.cast(pl.Float64).fill_null(float("nan")).to_numpy()[None, :]
            total += np.nan_to_num(np.abs(x - y) / span, nan=1.0)
        else:
            x = a.cast(pl.String).to_numpy()[:, None]
            y = b.cast(pl.String).to_numpy()[None, :]
            total += x != y
    return total.min(axis=1) if synthetic.height else np.full(canaries.height, np.inf)


@dataclass(frozen=True)
class AuditRun:
    kind: str
    dp: bool
    target_epsilon: float | None
    spent_epsilon: float | None
    bound: AuditBound
    train_rows: int
    synthetic_rows: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_canary_audit(
    kind: str,
    *,
    epsilon: float,
    dp: bool = True,
    n: int = 1000,
    m: int = 200,
    epochs: int = 30,
    synthetic_rows: int = 20_000,
    delta: float = 1e-5,
    confidence: float = 0.95,
    seed: int = 0,
    model_overrides: dict[str, Any] | None = None,
) -> AuditRun:
    """Audit one fit of the registered model ``kind`` (see :func:`make_synthesizer`).

    The inclusion bits come from :mod:`secrets`; ``seed`` fixes only the public base table,
    the canaries and the model's initialisation/sampling. ``delta`` is the δ the run
    targets and the δ the bound is stated at (for a non-DP control, the DP runs' δ).
    """
    from synthgen.models.base import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings

    base, canaries, schema = audit_table(n, m, seed=seed)
    bits = np.array([secrets.randbits(1) == 1 for _ in range(m)])
    train = pl.concat([base, canaries.filter(pl.Series(bits))]).sample(fraction=1.0, shuffle=True, seed=seed)
    settings = {"kind": kind, "epochs": epochs, "seed": seed, "device": "cpu"} | (model_overrides or {})
    model = ModelSettings.model_validate(settings)
    privacy = PrivacySettings(dp=dp, epsilon=epsilon, delta=delta)
    synth = make_synthesizer(kind, schema=schema, model=model, privacy=privacy).fit(train)
    synthetic = synth.sample(synthetic_rows, seed=seed + 1)
    scores = -nearest_distance(canaries, synthetic, schema)
    assert synth.privacy_record_ is not None
    spent, spent_delta = synth.privacy_record_.composed()
    # A DP fit is audited at the delta it claims; the control at the delta it is compared with.
    bound = audit_scores(scores, bits, delta=spent_delta if dp else delta, confidence=confidence)
    return AuditRun(
        kind=kind,
        dp=dp,
        target_epsilon=epsilon if dp else None,
        spent_epsilon=spent if dp else None,
        bound=bound,
        train_rows=train.height,
        synthetic_rows=synthetic.height,
    )
