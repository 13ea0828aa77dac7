from __future__ import annotations

import socket

import polars as pl
import pytest

from synthgen.anonymize import anonymize_table, scan_pii
from synthgen.anonymize import engine as engine_mod
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.demo.data import DIRECT_IDENTIFIERS
from synthgen.errors import AnonymizeError

SECRET = b"test-secret-0123456789abcdef0123"


def test_anonymize_demo_replaces_identifiers_and_reports(demo, settings):
    visits, truth = demo
    res = anonymize_table(visits, schema=None, settings=settings, secret=SECRET)
    out = res.frame
    assert out is not None and out.height == visits.height and out.columns == visits.columns
    for col in DIRECT_IDENTIFIERS:
        assert not set(out[col].to_list()) & set(visits[col].to_list()), col
    # Non-identifier columns are untouched.
    for col in ("date_of_birth", "zip", "sex", "diagnosis_category", "length_of_stay", "total_charges"):
        assert out[col].equals(visits[col])
    rep = res.report
    assert rep["rows"] == visits.height and len(rep["config_hash"]) == 64
    assert rep["operators"]["email"] == "surrogate" and rep["operators"]["notes"] == "surrogate"
    assert rep["text"]["notes"]["entities"]["PERSON"] > 0 and rep["entities"]["US_SSN"] == visits.height
    # Every planted identifier is gone from the notes (Presidio plus known values).
    joined = truth.join(out.select("visit_id", "notes"), on="visit_id")
    left = [v for v, n in zip(joined["value"], joined["notes"]) if v in n and len(v) > 4]
    assert len(left) <= 0.02 * truth.height, left[:5]
    # And the leak scanner finds no real identifier in the anonymized output.
    assert res.leak_index.scan(out).total == 0
    assert res.leak_index.scan(visits).total > visits.height


def test_operators_per_column(demo):
    visits, _ = demo
    s = AnonymizeSettings(
        default_operator="drop",
        operators={"email": "hash", "ssn": "mask", "phone": "redact"},
        text_operator="tag",
    )
    res = anonymize_table(visits.head(20), schema=None, settings=s, secret=SECRET)
    out = res.frame
    assert out is not None
    assert "name" not in out.columns and "street_address" not in out.columns
    assert out["email"].str.len_chars().eq(32).all()
    assert out["ssn"].str.starts_with("***-**-").all()
    assert out["phone"].null_count() == 20
    assert out["notes"].str.contains("<").all()


def test_an_operator_named_for_a_column_makes_it_an_identifier(demo):
    visits, _ = demo
    s = AnonymizeSettings(operators={"zip": "mask"})
    res = anonymize_table(visits.head(10).drop("notes"), schema=None, settings=s, secret=SECRET)
    assert res.frame is not None and res.frame["zip"].str.contains(r"^\*+$").all()
    assert res.decisions["zip"].role == "identifier" and res.report["operators"]["zip"] == "mask"


def test_streaming_to_a_sink_matches_the_in_memory_result(demo, tmp_path):
    visits, _ = demo
    s = AnonymizeSettings(default_operator="surrogate", stream_rows=100)
    mem = anonymize_table(visits, schema=None, settings=s, secret=SECRET)
    src = tmp_path / "in.parquet"
    visits.write_parquet(src)
    sink = tmp_path / "out" / "anon.parquet"
    streamed = anonymize_table(pl.scan_parquet(src), schema=None, settings=s, secret=SECRET, sink=sink)
    assert streamed.frame is None and sink.exists() and not list(sink.parent.glob("*.tmp"))
    assert pl.read_parquet(sink).equals(mem.frame)
    assert streamed.report["rows"] == visits.height


def test_empty_table_gives_an_empty_anonymized_table(demo, tmp_path, settings):
    visits, _ = demo
    res = anonymize_table(
        visits.head(0), schema=None, settings=settings, secret=SECRET, sink=tmp_path / "e.parquet"
    )
    assert pl.read_parquet(tmp_path / "e.parquet").height == 0 and res.report["rows"] == 0


def test_unknown_column_in_settings_is_an_error(demo, settings):
    visits, _ = demo
    with pytest.raises(AnonymizeError, match="does not have"):
        anonymize_table(
            visits.head(5),
            schema=None,
            settings=settings.model_copy(update={"operators": {"nope": "drop"}}),
            secret=SECRET,
        )


def test_whole_anonymization_runs_with_sockets_blocked(demo, monkeypatch, settings, tmp_path):
    attempts: list[object] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    engine_mod._cached.cache_clear()  # build a fresh analyzer: spaCy model, recognizers, tldextract
    try:
        visits, _ = demo
        res = anonymize_table(
            visits.head(30), schema=None, settings=settings, secret=SECRET, sink=tmp_path / "o.parquet"
        )
        assert res.report["text"]["notes"]["entities"]["EMAIL_ADDRESS"] >= 1
        assert scan_pii(visits.head(10))["email"] == {"EMAIL_ADDRESS": 10}
    finally:
        engine_mod._cached.cache_clear()
    assert attempts == []


def test_scan_pii_counts_entities_per_column(demo, adult):
    visits, _ = demo
    found = scan_pii(visits.head(15))
    assert found["email"] == {"EMAIL_ADDRESS": 15}
    assert found["total_charges"] == {} and found["readmitted_30d"] == {}
    assert found["notes"].get("PERSON", 0) > 0
    adult_found = scan_pii(adult.head(50))
    assert adult_found["fnlwgt"] == {} and adult_found["capital_gain"] == {}
