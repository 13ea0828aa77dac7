from __future__ import annotations

import polars as pl

from synthgen.anonymize.detect import detect_columns, name_hint
from synthgen.anonymize.engine import get_analyzer
from synthgen.demo.data import DIRECT_IDENTIFIERS
from synthgen.schema import ColumnSchema, ColumnType, TableSchema


def _detect(frame: pl.DataFrame, schema: TableSchema | None = None):
    cfg, analyzer = get_analyzer()
    return detect_columns(
        frame, schema=schema, analyzer=analyzer, column_entities=cfg.column_entities, threshold=cfg.threshold
    )


def test_demo_flags_exactly_the_direct_identifiers_and_the_notes(demo):
    visits, _ = demo
    d = _detect(visits)
    flagged = {c: x.entity for c, x in d.items() if x.role == "identifier"}
    assert flagged == DIRECT_IDENTIFIERS
    assert [c for c, x in d.items() if x.role == "text"] == ["notes"]


def test_no_adult_column_is_flagged_numbers_included(adult):
    d = _detect(adult)
    assert {c for c, x in d.items() if x.role != "keep"} == set()
    for numeric in ("fnlwgt", "capital_gain", "capital_loss", "age"):
        assert d[numeric].source == "type"


def test_values_alone_flag_an_unnamed_identifier_column():
    emails = [f"user{i}.name{i}@example{i % 7}.com" for i in range(60)]
    ssns = [f"{100 + i:03d}-{10 + i % 80:02d}-{1000 + i * 37:04d}" for i in range(60)]
    frame = pl.DataFrame({"contact": emails, "ref": ssns, "grade": ["A", "B", "C"] * 20})
    d = _detect(frame)
    assert (d["contact"].role, d["contact"].entity, d["contact"].source) == (
        "identifier",
        "EMAIL_ADDRESS",
        "values",
    )
    assert d["grade"].role == "keep"


def test_spec_wins_over_names_and_values():
    frame = pl.DataFrame({"name": ["Widget", "Gadget"] * 30, "contact": ["x"] * 60, "phone": [1.5] * 60})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="name", type=ColumnType.categorical, pii="none"),
            ColumnSchema(name="contact", type=ColumnType.categorical, pii="email_address"),
            ColumnSchema(name="phone", type=ColumnType.numeric),
        ]
    )
    d = _detect(frame, schema)
    assert d["name"].role == "keep" and d["name"].source == "spec"
    assert (d["contact"].role, d["contact"].entity) == ("identifier", "EMAIL_ADDRESS")
    assert d["phone"].role == "keep"  # a float is never an identifier by its name


def test_name_hints():
    assert name_hint("patientEmail") == "EMAIL_ADDRESS"
    assert name_hint("home_phone") == "PHONE_NUMBER"
    assert name_hint("SSN") == "US_SSN"
    assert name_hint("name") == "PERSON"
    for col in ("file_name", "product_name", "native_country", "relationship", "zip", "email_opt_in"):
        assert name_hint(col) is None, col


def test_integer_phone_numbers_are_flagged_by_name():
    d = _detect(pl.DataFrame({"phone": [4155550100 + i for i in range(30)], "visits": list(range(30))}))
    assert d["phone"].role == "identifier" and d["visits"].role == "keep"
