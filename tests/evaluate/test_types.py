"""Datetime, boolean, integer-coded and null-holding columns are compared, not dropped."""

from datetime import date, timedelta

import numpy as np
import polars as pl

from synthgen.evaluate import EvaluateSettings, evaluate, split_holdout


def _mixed(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    start = date(2020, 1, 1)
    x = rng.normal(size=n)
    return pl.DataFrame(
        {
            "when": [start + timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
            "flag": rng.random(n) < 0.3,
            "code": rng.integers(1, 4, n),
            "amount": np.where(rng.random(n) < 0.1, np.nan, x * 100),
            "kind": [
                None if r < 0.05 else ("a" if v > 0 else "b") for r, v in zip(rng.random(n), x, strict=True)
            ],
        }
    )


def test_mixed_types_are_all_compared_and_every_section_runs():
    train, hold = split_holdout(_mixed(600, 0), 0.25, key=b"tests-holdout-key-1")
    # A model may emit integer columns as floats: still compared as the same numeric column.
    syn = _mixed(450, 7).with_columns(pl.col("code").cast(pl.Float64))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=syn,
        schema=None,
        settings=EvaluateSettings(target="kind", sensitive=["flag"], plots=False),
    )
    statuses = {s.name: s.status for s in r.sections}
    assert statuses == {
        "schema": "ok",
        "fidelity": "ok",
        "correlation": "ok",
        "utility": "ok",
        "bias": "ok",
        "privacy": "ok",
        "leakage": "skipped",
        "text": "skipped",
    }
    shapes = {row[0]: row[2] for row in r.section("fidelity").tables[0].rows}
    assert set(shapes) == {"when", "flag", "code", "amount", "kind"}
    # Same generator: every marginal matches closely, the float codes included.
    assert min(shapes.values()) > 0.85
    assert r.section("utility").metrics["hgb_tstr_roc_auc"] > 0.9


def test_a_yes_no_column_declared_boolean_is_compared_with_the_generated_booleans():
    # The model reads "yes"/"no" of a column declared boolean as true/false and generates
    # Booleans; the report compared the real strings with them and saw every synthetic value
    # as unseen ("collapsed", verdict FAIL).
    from synthgen.schema import ColumnSchema, ColumnType, TableSchema

    rng = np.random.default_rng(3)
    n = 800
    flags = rng.random(n) < 0.3
    x = rng.normal(size=n)
    real = pl.DataFrame({"flag": ["yes" if f else "no" for f in flags], "amount": x + flags})
    syn = pl.DataFrame({"flag": rng.random(n) < 0.3, "amount": rng.normal(size=n) + (rng.random(n) < 0.3)})
    train, hold = split_holdout(real, 0.25, key=b"tests-holdout-key-1")
    flag = ColumnSchema(name="flag", type=ColumnType.boolean)
    schema = TableSchema(columns=[flag, ColumnSchema(name="amount", type=ColumnType.numeric)])
    r = evaluate(
        train=train, holdout=hold, synthetic=syn, schema=schema, settings=EvaluateSettings(plots=False)
    )
    assert r.section("schema").status == "ok", r.section("schema").message
    shapes = {row[0]: row[2] for row in r.section("fidelity").tables[0].rows}
    assert shapes["flag"] > 0.9, shapes
    assert not any("collapsed" in str(f) for f in r.section("fidelity").findings)
