"""The one-run audit: its bound is valid and has power; the benchmark's DP bounds stay within ε."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from synthgen.privacy.audit import (
    audit_scores,
    epsilon_lower_bound,
    guesses_from_scores,
    p_value,
    run_canary_audit,
)

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "privacy_audit.json"


def test_all_correct_guesses_bound_epsilon_by_the_binomial_tail() -> None:
    # r correct out of r at 95%: q^r = 0.05 for q = e^eps/(1+e^eps), with no delta.
    q = 0.05 ** (1 / 100)
    assert epsilon_lower_bound(m=100, r=100, v=100, delta=0.0) == pytest.approx(
        math.log(q / (1 - q)), abs=1e-6
    )
    # Half right is what a coin does: no evidence against any epsilon.
    assert epsilon_lower_bound(m=200, r=200, v=100, delta=1e-5) == 0.0
    # Delta only weakens the bound.
    assert epsilon_lower_bound(m=1000, r=100, v=100, delta=1e-4) < epsilon_lower_bound(
        m=1000, r=100, v=100, delta=0.0
    )


def test_p_value_grows_with_epsilon() -> None:
    ps = [p_value(m=500, r=200, v=170, epsilon=e, delta=1e-5) for e in (0.5, 1.0, 2.0, 4.0)]
    assert ps == sorted(ps) and ps[0] < 0.05 < ps[-1]


def test_the_bound_rarely_exceeds_the_epsilon_of_randomised_response() -> None:
    # eps-randomised response is exactly eps-DP per bit: the 95% bound may exceed eps at most
    # about 5% of the time (the test allows 10%).
    rng = np.random.default_rng(0)
    eps, m = 1.0, 400
    q = math.exp(eps) / (1 + math.exp(eps))
    over = 0
    for _ in range(100):
        bits = rng.random(m) < 0.5
        answers = np.where(rng.random(m) < q, bits, ~bits)
        scores = answers + rng.random(m) * 0.1  # the attacker's score: the released bit
        over += audit_scores(scores, bits, delta=0.0).epsilon_lower_bound > eps
    assert over <= 10


def test_guesses_take_the_most_confident_canaries() -> None:
    g = guesses_from_scores(np.array([0.1, 0.9, 0.5, 0.2, 0.8]), k_in=2, k_out=1)
    assert g.tolist() == [-1, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="exceeds"):
        guesses_from_scores(np.zeros(3), k_in=2, k_out=2)


def test_the_benchmarked_dp_bounds_never_exceed_the_claimed_epsilon() -> None:
    result = json.loads(RESULTS.read_text())["results"]
    runs = result["dp_runs"]
    assert {r["kind"] for r in runs} >= {"dp_tvae", "dp_ctgan"}
    assert {r["target_epsilon"] for r in runs} == {1.0, 3.0}
    for r in runs:
        assert r["bound"]["epsilon_lower_bound"] <= r["target_epsilon"], r["kind"]
        assert r["spent_epsilon"] <= r["target_epsilon"] + 1e-9
    # The positive control has power: a non-DP fit shows more than any DP claim allows.
    assert result["control"]["dp"] is False
    assert result["control"]["bound"]["epsilon_lower_bound"] > max(r["target_epsilon"] for r in runs)


@pytest.mark.slow
def test_a_reduced_audit_separates_the_non_dp_control_from_dp_tvae() -> None:
    sizes = {"n": 300, "m": 120, "epochs": 40, "synthetic_rows": 5_000, "model_overrides": {"batch_size": 32}}
    dp = run_canary_audit("dp_tvae", epsilon=1.0, dp=True, **sizes)
    control = run_canary_audit("dp_tvae", epsilon=1.0, dp=False, **sizes)
    assert dp.spent_epsilon is not None and dp.spent_epsilon <= 1.0 + 1e-9
    assert dp.bound.epsilon_lower_bound <= 1.0
    assert control.bound.epsilon_lower_bound > 1.0
