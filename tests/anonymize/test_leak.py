from __future__ import annotations

import polars as pl
import pytest

from synthgen.anonymize.leak import LeakIndex
from synthgen.errors import AnonymizeError

SECRET = b"test-secret-0123456789abcdef0123"


def _index() -> LeakIndex:
    real = pl.DataFrame(
        {
            "name": ["Maria Lopez", "John Smith", None],
            "email": ["maria.lopez77@gmail.com", "jsmith@yahoo.com", "x@y.org"],
            "phone": ["(415) 362-1234", "212-555-0100", None],
        }
    )
    return LeakIndex.build(
        real, {"name": "PERSON", "email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER"}, secret=SECRET
    )


def test_scanner_finds_a_planted_email_and_a_planted_name_inside_text():
    idx = _index()
    synthetic = pl.DataFrame(
        {
            "notes": [
                "Patient stable, no complaints.",
                "Please write to MARIA.LOPEZ77@GMAIL.COM about the results.",
                "Seen with her brother john   smith today.",
                "Call 415.362.1234 tomorrow.",
            ],
            "age": [40, 51, 62, 33],
        }
    )
    rep = idx.scan(synthetic)
    assert rep.total == 3
    assert {(h.row, h.entity) for h in rep.hits} == {(1, "EMAIL_ADDRESS"), (2, "PERSON"), (3, "PHONE_NUMBER")}
    assert rep.by_column() == {"notes": {"EMAIL_ADDRESS": 1, "PERSON": 1, "PHONE_NUMBER": 1}}
    assert "hits" not in rep.to_dict() and rep.to_dict()["leaks"] == 3


def test_scanner_finds_whole_cells_and_reports_nothing_on_clean_data():
    idx = _index()
    assert idx.scan(pl.DataFrame({"who": ["Anna Berg", "john smith"]})).total == 1
    assert idx.scan(pl.DataFrame({"who": ["Anna Berg", "Smith"], "n": [1, 2]})).total == 0


def test_index_stores_hashes_only_and_round_trips(tmp_path):
    idx = _index()
    path = idx.save(tmp_path / "leak.parquet")
    raw = path.read_bytes()
    assert b"Lopez" not in raw and b"lopez" not in raw and b"gmail" not in raw
    back = LeakIndex.load(path, secret=SECRET)
    assert len(back) == len(idx) == 7
    assert back.contains("maria lopez") and not back.contains("maria")
    with pytest.raises(AnonymizeError, match="another pipeline secret"):
        LeakIndex.load(path, secret=b"another-secret-0123456789abcdef")


def test_find_spans_gives_character_offsets():
    idx = _index()
    text = "Ask John Smith, phone (415) 362-1234."
    spans = idx.find_spans(text)
    assert {(text[s:e], ent) for s, e, ent in spans} == {
        ("John Smith", "PERSON"),
        ("415) 362-1234", "PHONE_NUMBER"),
    }
