from __future__ import annotations

import hashlib
import re

import polars as pl
import pytest

from synthgen.anonymize.operators import OperatorContext, make_operator
from synthgen.anonymize.surrogates import Surrogates, derive_key
from synthgen.errors import AnonymizeError

SECRET = b"test-secret-0123456789abcdef0123"


def ctx(secret: bytes = SECRET) -> OperatorContext:
    return OperatorContext(Surrogates(secret), derive_key(secret, "hash"))


def test_surrogates_are_consistent_within_a_key_and_differ_across_keys():
    a, b, other = Surrogates(SECRET), Surrogates(SECRET), Surrogates(b"another-secret-0123456789abcdef")
    for entity, value in [
        ("PERSON", "Maria Lopez"),
        ("EMAIL_ADDRESS", "m.lopez@gmail.com"),
        ("US_SSN", "123-45-6789"),
    ]:
        assert a(entity, value) == a(entity, value) == b(entity, value)
        assert a(entity, value) != value
        assert a(entity, value) != other(entity, value)
    # Case and spacing do not make a different person.
    assert a("PERSON", "Maria  LOPEZ") == a("PERSON", "maria lopez")


def test_surrogates_look_like_the_entity_they_replace():
    s = Surrogates(SECRET)
    assert len(s("PERSON", "Maria Lopez").split()) == 2
    assert len(s("PERSON", "Lopez").split()) == 1
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", s("EMAIL_ADDRESS", "m.lopez@gmail.com"))
    phone = s("PHONE_NUMBER", "(415) 362-1234")
    assert re.fullmatch(r"\(\d{3}\) \d{3}-\d{4}", phone) and phone != "(415) 362-1234"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", s("DATE_TIME", "2022-03-04"))
    assert s("DATE_TIME", "today") == "today"


def test_surrogates_avoid_values_marked_real():
    taken: set[str] = set()
    first = Surrogates(SECRET)("PERSON", "Maria Lopez")
    taken.add(first)
    again = Surrogates(SECRET, avoid=lambda v: v in taken)("PERSON", "Maria Lopez")
    assert again != first


def test_hash_is_keyed_consistent_and_not_a_plain_hash():
    h = make_operator("hash", ctx())
    other = make_operator("hash", ctx(b"another-secret-0123456789abcdef"))
    v = "123-45-6789"
    assert h.span(v, "US_SSN") == h.span(v, "US_SSN")
    assert h.span(v, "US_SSN") != other.span(v, "US_SSN")
    assert h.span(v, "US_SSN") != hashlib.sha256(v.encode()).hexdigest()[:32]
    assert len(h.span(v, "US_SSN")) == 32


def test_column_operators():
    col = pl.Series("ssn", ["123-45-6789", None, "123-45-6789", "987-65-4321"])
    assert make_operator("drop", ctx()).column(col, "US_SSN") is None
    red = make_operator("redact", ctx()).column(col, "US_SSN")
    assert red is not None and red.null_count() == 4
    masked = make_operator("mask", ctx()).column(col, "US_SSN")
    assert masked is not None and masked.to_list() == ["***-**-6789", None, "***-**-6789", "***-**-4321"]
    sur = make_operator("surrogate", ctx()).column(col, "US_SSN")
    assert sur is not None and sur[0] == sur[2] and sur[1] is None and sur[0] != col[0]
    hashed = make_operator("hash", ctx()).column(col, "US_SSN")
    assert hashed is not None and hashed[0] == hashed[2] != hashed[3]
    assert make_operator("tag", ctx()).span("x", "US_SSN") == "<US_SSN>"


def test_short_values_are_masked_completely():
    assert make_operator("mask", ctx()).span("Ann", "PERSON") == "***"


def test_unknown_operator_and_short_secret_are_errors():
    with pytest.raises(AnonymizeError, match="unknown anonymization operator"):
        make_operator("shred", ctx())
    with pytest.raises(AnonymizeError, match="at least 16 bytes"):
        Surrogates(b"short")
