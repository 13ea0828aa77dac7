"""Bad input gets a clear message in the section concerned; the rest of the report is still produced."""

import json

import polars as pl

from synthgen.evaluate import EvaluateSettings, evaluate
from synthgen.evaluate.sections.base import Section, SectionResult
from synthgen.schema import ColumnSchema, ColumnType, TableSchema


def _statuses(result):
    return {s.name: s.status for s in result.sections}


def test_missing_target_names_the_column_and_the_fix(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="incme", plots=False),
    )
    u = r.section("utility")
    assert u.status == "error"
    assert "'incme' is not in the real data" in u.message and "evaluate.target" in u.message
    assert r.section("fidelity").status == "ok" and r.section("privacy").status == "ok"


def test_target_missing_from_synthetic_data_is_reported(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train.drop("label"),
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    assert r.section("utility").status == "error"
    assert "missing from the synthetic data" in r.section("utility").message


def test_constant_target_is_refused_with_a_clear_message(people):
    train, hold = people
    train = train.with_columns(pl.lit("yes").alias("label"))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    u = r.section("utility")
    assert u.status == "error" and "single value" in u.message
    assert r.section("fidelity").status == "ok"


def test_constant_synthetic_target_reports_trtr_and_explains_missing_tstr(people):
    train, hold = people
    syn = train.with_columns(pl.lit("no").alias("label"))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=syn,
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    u = r.section("utility")
    assert u.status == "ok"
    assert u.metrics["hgb_trtr_roc_auc"] > 0.8 and "hgb_tstr_roc_auc" not in u.metrics
    assert "TSTR not computed" in u.message


def test_no_target_skips_utility_and_bias_utility(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(sensitive=["sex"], plots=False),
    )
    assert r.section("utility").status == "skipped" and "evaluate.target" in r.section("utility").message
    bias = r.section("bias")
    assert bias.status == "ok" and "No per-subgroup utility" in bias.message


def test_no_numeric_columns_still_produces_every_section(people):
    train, hold = people
    cats = ["group", "colour", "sex", "label"]
    r = evaluate(
        train=train.select(cats),
        holdout=hold.select(cats),
        synthetic=train.select(cats),
        schema=None,
        settings=EvaluateSettings(target="label", sensitive=["sex"], plots=False),
    )
    st = _statuses(r)
    assert st == {
        "schema": "ok",
        "fidelity": "ok",
        "correlation": "ok",
        "utility": "ok",
        "bias": "ok",
        "privacy": "ok",
        "leakage": "skipped",
        "text": "skipped",
    }
    assert "No numeric columns" in r.section("correlation").message
    assert r.section("fidelity").metrics["quality_score"] == 1.0


def test_single_column_explains_undefined_pair_metrics(people):
    train, hold = people
    r = evaluate(
        train=train.select("x"),
        holdout=hold.select("x"),
        synthetic=train.select("x"),
        schema=None,
        settings=EvaluateSettings(target="x", plots=False),
    )
    fid = r.section("fidelity")
    assert fid.status == "ok" and "Only one compared column" in fid.message
    assert fid.metrics["column_pair_trends"] is None and fid.metrics["tvd_2way_mean"] is None
    assert fid.metrics["column_shapes"] == 1.0
    assert r.section("correlation").status == "skipped" and "at least two" in r.section("correlation").message
    assert r.section("utility").status == "error" and "no feature columns" in r.section("utility").message
    assert r.section("privacy").status == "ok"


def test_schema_mismatch_is_reported_and_shared_columns_are_still_compared(people):
    train, hold = people
    syn = (
        train.drop("colour")
        .with_columns(pl.col("age").cast(pl.String), pl.lit(1).alias("extra"), pl.col("x").cast(pl.String))
        .with_columns(
            pl.when(pl.col("z") > 0).then(pl.lit("n/a")).otherwise(pl.col("z").cast(pl.String)).alias("z")
        )
    )
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=syn,
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    schema = r.section("schema")
    assert schema.status == "error"
    assert "lacks real column(s): colour" in schema.message
    assert "extra" in schema.message
    assert "'age': real dtype Int64 but synthetic String" in schema.message
    assert r.headline["schema_matches"] is False
    # age and x parse as numbers and are still compared; z does not and is left out.
    fid = r.section("fidelity")
    assert fid.status == "ok"
    compared = {row[0] for row in fid.tables[0].rows}
    assert {"age", "x"} <= compared and "z" not in compared and "colour" not in compared
    assert r.section("utility").status == "ok" and r.section("privacy").status == "ok"


def test_declared_schema_types_columns_and_leaves_text_to_the_leak_scan(people):
    train, hold = people
    schema = TableSchema(
        columns=[
            ColumnSchema(name="x", type=ColumnType.numeric),
            ColumnSchema(name="z", type=ColumnType.numeric),
            ColumnSchema(name="age", type=ColumnType.categorical),
            ColumnSchema(name="group", type=ColumnType.text),
            ColumnSchema(name="colour", type=ColumnType.categorical),
            ColumnSchema(name="sex", type=ColumnType.categorical),
            ColumnSchema(name="label", type=ColumnType.boolean),
        ]
    )
    r = evaluate(
        train=train, holdout=hold, synthetic=train, schema=schema, settings=EvaluateSettings(plots=False)
    )
    s = r.section("schema")
    assert s.status == "ok" and "group (text column" in s.message
    rows = {row[0]: row for row in s.tables[0].rows}
    assert rows["age"][4] == "categorical" and rows["group"][4] == "not compared"


def test_empty_synthetic_table_gives_errors_not_a_crash(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train.clear(),
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    assert r.section("fidelity").status == "error" and "no rows" in r.section("fidelity").message
    assert r.section("privacy").status == "error"
    json.dumps(r.summary, allow_nan=False)


def test_empty_holdout_explains_the_missing_baseline(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold.clear(),
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    assert "evaluate.holdout" in r.section("privacy").message
    assert "evaluate.holdout" in r.section("utility").message
    assert r.section("fidelity").status == "ok"


def test_a_crashing_section_becomes_an_error_and_others_still_run(people):
    class Broken(Section):
        name = "broken"
        title = "Broken"

        def compute(self, ctx, out: SectionResult) -> None:
            raise RuntimeError("boom")

    from synthgen.evaluate.sections.schema import SchemaSection

    train, hold = people
    r = evaluate(
        train=train, holdout=hold, synthetic=train, schema=None, sections=[Broken(), SchemaSection()]
    )
    assert r.section("broken").status == "error" and r.section("broken").message == "RuntimeError: boom"
    assert r.section("schema").status == "ok"


def test_sensitive_attribute_not_in_data_is_named(people, fast):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=fast.model_copy(update={"sensitive": ["sex", "religion"]}),
    )
    bias = r.section("bias")
    assert bias.status == "ok" and "religion (not in the real data)" in bias.message


def test_infinite_and_nan_values_count_as_missing_in_every_section(people):
    # Regression: an inf in a real float column made the min-max scale infinite, so the
    # privacy section's distances were NaN and the section crashed.
    train, hold = people
    bad = [float("inf"), float("-inf"), float("nan")] + [0.0] * (train.height - 3)
    train = train.with_columns((pl.col("x") + pl.Series(bad)).alias("x"))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(target="label", plots=True),
    )
    assert all(s.status != "error" for s in r.sections), {s.name: s.message for s in r.sections}
    assert r.section("correlation").metrics["undefined_pairs"] == 0
    json.dumps(r.summary, allow_nan=False)


def test_an_undeclared_identifier_left_out_of_the_synthetic_data_is_no_schema_problem(people):
    train, hold = people
    ids = pl.Series("client id", range(100_001, 100_001 + train.height))
    train = train.with_columns(ids)
    hold = hold.with_columns(pl.Series("client id", range(1, 1 + hold.height)))
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train.drop("client id"),
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
    )
    schema = r.section("schema")
    assert "lacks" not in (schema.message or ""), schema.message
    assert "client id (id column: left out of the synthetic data on purpose)" in schema.message
    assert schema.status == "ok"
