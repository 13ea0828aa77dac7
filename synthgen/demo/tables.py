"""Seeded generators of the tables people share (credit, hospital), for tests and benchmarks.

Both are pure functions of ``(n, seed)`` and hold the column shapes that break naive DP
synthesizers: a 0/1 target, small integer codes (with rare codes), skewed amounts with exact
zeros and negatives, columns with no null next to columns with a known null rate, and an
identifier column of unique integers whose name a new user would not declare.

- :func:`credit_like`: a credit-card default table (client id, limit, sex 1/2, education codes
  1-4 with rare 0, 5, 6, marriage 1-3 with rare 0, age, repayment status -2..8, bill and
  payment amounts, income with 6% nulls, default 0/1 driven by the repayment status).
- :func:`hospital_like`: inpatient stays ("ID", age, sex F/M, admission type codes 1-8,
  length of stay, lab procedures, charges driven by diagnosis and stay, glucose with 30%
  nulls, insurance with 3% nulls, readmitted 0/1).

Nothing here is real: every value comes from a ``numpy`` generator seeded with ``seed``.
"""

from __future__ import annotations

import numpy as np
import polars as pl

__all__ = ["credit_like", "hospital_like"]


def _pick(rng: np.random.Generator, values: list[int], p: list[float], n: int) -> np.ndarray:
    prob = np.asarray(p, dtype=np.float64)
    return rng.choice(np.asarray(values), size=n, p=prob / prob.sum())


def credit_like(n: int = 3000, *, seed: int = 0) -> pl.DataFrame:
    """A credit-card default table of ``n`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    sex = _pick(rng, [1, 2], [0.4, 0.6], n)
    education = _pick(rng, [0, 1, 2, 3, 4, 5, 6], [0.001, 0.35, 0.47, 0.16, 0.004, 0.01, 0.002], n)
    marriage = _pick(rng, [0, 1, 2, 3], [0.002, 0.455, 0.532, 0.011], n)
    age = np.clip(np.round(21 + rng.gamma(3.0, 5.0, n) + 3 * (marriage == 1)), 21, 79).astype(np.int64)
    limit = np.clip(np.round(rng.lognormal(11.8, 0.8, n) / 10_000) * 10_000, 10_000, 1_000_000)
    risk = rng.normal(0, 1, n) - limit / 400_000
    pay_0 = np.clip(np.round(risk * 1.2), -2, 8).astype(np.int64)
    pay_2 = np.clip(pay_0 + _pick(rng, [-1, 0, 1], [0.15, 0.7, 0.15], n), -2, 8).astype(np.int64)
    used = np.clip(rng.beta(1.2, 2.0, n) + 0.1 * (pay_0 > 0), 0, 1.2)
    bill_1 = np.round(limit * used * (rng.random(n) > 0.07), 0)
    bill_1 = np.where(rng.random(n) < 0.02, -np.round(rng.exponential(800, n)), bill_1)
    bill_2 = np.round(bill_1 * rng.normal(0.97, 0.08, n), 0)
    paid_any = rng.random(n) > 0.18 + 0.2 * (pay_0 > 0)
    pay_amt_1 = np.where(paid_any, np.round(np.abs(bill_2) * rng.beta(0.6, 6.0, n)), 0.0)
    pay_amt_2 = np.where(rng.random(n) > 0.2, np.round(rng.lognormal(7.5, 1.3, n)), 0.0)
    logit = -1.6 + 0.9 * np.maximum(pay_0, 0) + 0.25 * (pay_0 == -2) - limit / 800_000
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    income = np.round(rng.lognormal(10.5, 0.6, n) + limit * 0.1, 2)
    income_s = pl.Series("income", income).scatter(np.flatnonzero(rng.random(n) < 0.06).tolist(), None)
    ids = rng.permutation(np.arange(100_001, 100_001 + n))
    return pl.DataFrame(
        [
            pl.Series("client id", ids),
            pl.Series("LIMIT_BAL", limit),
            pl.Series("SEX", sex),
            pl.Series("EDUCATION", education),
            pl.Series("MARRIAGE", marriage),
            pl.Series("AGE", age),
            pl.Series("PAY_0", pay_0),
            pl.Series("PAY_2", pay_2),
            pl.Series("BILL_AMT1", bill_1),
            pl.Series("BILL_AMT2", bill_2),
            pl.Series("PAY_AMT1", pay_amt_1),
            pl.Series("PAY_AMT2", pay_amt_2),
            income_s,
            pl.Series("default.next", default),
        ]
    )


def hospital_like(n: int = 3000, *, seed: int = 0) -> pl.DataFrame:
    """An inpatient-stay table of ``n`` rows (see the module docstring)."""
    rng = np.random.default_rng(seed)
    diagnosis = rng.choice(
        ["circulatory", "respiratory", "digestive", "diabetes", "injury", "musculoskeletal", "other"],
        size=n,
        p=[0.3, 0.14, 0.09, 0.08, 0.07, 0.05, 0.27],
    )
    severity = {"circulatory": 1.3, "respiratory": 1.1, "digestive": 0.9, "diabetes": 1.0}
    sev = np.array([severity.get(d, 0.8) for d in diagnosis])
    age = np.clip(np.round(rng.normal(64, 15, n)), 18, 99).astype(np.int64)
    sex = rng.choice(["F", "M"], size=n, p=[0.53, 0.47])
    admission_p = [0.53, 0.18, 0.19, 0.001, 0.05, 0.05, 0.001, 0.01]
    admission_type = _pick(rng, [1, 2, 3, 4, 5, 6, 7, 8], admission_p, n)
    los = np.clip(np.round(rng.gamma(1.6 * sev, 2.6, n)) + 1, 1, 30).astype(np.int64)
    labs = np.clip(np.round(rng.normal(43, 19, n) + 2 * los), 1, 132).astype(np.int64)
    charges = np.round(rng.lognormal(8.6, 0.5, n) * los * sev, 2)
    glucose = np.round(rng.normal(110 + 60 * (diagnosis == "diabetes"), 25, n), 1)
    glucose_s = pl.Series("glucose", glucose).scatter(np.flatnonzero(rng.random(n) < 0.3).tolist(), None)
    insurance = rng.choice(["medicare", "private", "medicaid", "self-pay"], size=n, p=[0.5, 0.3, 0.15, 0.05])
    insurance_s = pl.Series("insurance", insurance).scatter(
        np.flatnonzero(rng.random(n) < 0.03).tolist(), None
    )
    logit = -2.3 + 0.08 * los + 0.4 * (diagnosis == "circulatory") + 0.01 * (age - 64)
    readmitted = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pl.DataFrame(
        [
            pl.Series("ID", rng.permutation(np.arange(1, n + 1))),
            pl.Series("age", age),
            pl.Series("sex", sex),
            pl.Series("admission_type_id", admission_type),
            pl.Series("diagnosis", diagnosis),
            pl.Series("length_of_stay", los),
            pl.Series("num_lab_procedures", labs),
            pl.Series("total_charges", charges),
            glucose_s,
            insurance_s,
            pl.Series("readmitted", readmitted),
        ]
    )
