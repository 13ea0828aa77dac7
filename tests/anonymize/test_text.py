from __future__ import annotations

import polars as pl

from synthgen.anonymize import anonymize_table
from synthgen.anonymize.engine import get_analyzer
from synthgen.anonymize.leak import LeakIndex
from synthgen.anonymize.operators import OperatorContext, make_operator
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.anonymize.surrogates import Surrogates, derive_key
from synthgen.anonymize.text import TextAnonymizer
from synthgen.schema import ColumnSchema, ColumnType, TableSchema

SECRET = b"test-secret-0123456789abcdef0123"


def _texter(op: str = "surrogate", leak: LeakIndex | None = None) -> TextAnonymizer:
    cfg, analyzer = get_analyzer()
    ctx = OperatorContext(Surrogates(SECRET), derive_key(SECRET, "hash"))
    return TextAnonymizer(
        analyzer,
        operator=make_operator(op, ctx),
        entities=cfg.text_entities,
        threshold=cfg.threshold,
        leak_index=leak,
        leak_entities=cfg.leak_entities,
    )


DOCS = [
    "Maria Lopez was seen on March 3, 2022. Call her at (415) 362-1234.",
    "Her son Daniel Reyes drove in from Chicago; email daniel.reyes@gmail.com.",
    "Maria Lopez returned for follow-up.",
]


def test_surrogates_keep_text_natural_and_consistent_across_documents():
    out, stats = _texter().anonymize(pl.Series("notes", DOCS))
    texts = out.to_list()
    for planted in (
        "Maria Lopez",
        "(415) 362-1234",
        "Daniel Reyes",
        "daniel.reyes@gmail.com",
        "March 3, 2022",
    ):
        assert all(planted not in t for t in texts), planted
    assert "<" not in "".join(texts)
    # The same name gets the same surrogate in both documents.
    first_name = texts[0].split(" was seen")[0]
    assert texts[2].startswith(first_name) and len(first_name.split()) == 2
    assert stats.entities["PERSON"] >= 3 and stats.entities["EMAIL_ADDRESS"] == 1


def test_tag_operator_writes_entity_types():
    out, _ = _texter("tag").anonymize(pl.Series("notes", DOCS[:1]))
    assert out[0].startswith("<PERSON> was seen on <DATE_TIME>") and "<PHONE_NUMBER>" in out[0]


def test_bad_input_is_processed_or_counted_never_raises():
    long_doc = ("The patient rested quietly. " * 4_000) + "Contact: anna.berg@example.org"
    garbage = "".join(chr(c) for c in range(0, 32)) * 20 + "\ufffd" * 100
    col = pl.Series(
        "notes", [None, "", "   ", long_doc, garbage, "Der Patient Hans Müller wohnt in Berlin.", "ok"]
    )
    out, stats = _texter().anonymize(col)
    assert stats.docs == 7 and stats.empty == 3 and stats.long_split == 1 and stats.binary_dropped == 1
    assert out[4] is None  # garbage is dropped, not passed through
    assert len(long_doc) > 100_000 and "anna.berg@example.org" not in out[3]
    assert out[0] is None and out[1] == ""
    assert "Hans Müller" not in out[5]  # non-English text is still analysed (English model)


def test_non_string_values_in_a_text_column_are_cast_and_counted():
    out, stats = _texter().anonymize(pl.Series("notes", [12, None, 4155551234]))
    assert stats.non_string == 2 and out.dtype == pl.String


def test_text_values_known_from_identifier_columns_are_replaced_even_if_missed(settings):
    # spaCy's small model misses some names; the same name in the `name` column still catches it.
    frame = pl.DataFrame({"name": ["Zyx Qwerty"], "notes": ["zyx qwerty complained of pain."]})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="name", type=ColumnType.id, pii="PERSON"),
            ColumnSchema(name="notes", type=ColumnType.text),
        ]
    )
    res = anonymize_table(frame, schema=schema, settings=settings, secret=SECRET)
    assert res.frame is not None
    assert "qwerty" not in res.frame["notes"][0].lower()


def test_default_settings_tags_option():
    s = AnonymizeSettings(text_operator="tag")
    assert s.text_operator == "tag"


def test_repeated_documents_are_analysed_once_and_replaced_alike(monkeypatch):
    texter = _texter()
    calls: list[int] = []
    real = texter.analyze

    def counting(texts):
        calls.append(len(texts))
        return real(texts)

    monkeypatch.setattr(texter, "analyze", counting)
    doc = "Maria Lopez was seen on March 3, 2022."
    first, _ = texter.anonymize(pl.Series("notes", [doc, doc]))
    second, _ = texter.anonymize(pl.Series("notes", [doc]))
    assert calls == [1, 0]
    assert first[0] == first[1] == second[0] and "Maria Lopez" not in first[0]


def test_a_cache_smaller_than_the_batch_is_safe():
    cfg, analyzer = get_analyzer()
    ctx = OperatorContext(Surrogates(SECRET), derive_key(SECRET, "hash"))
    texter = TextAnonymizer(
        analyzer, operator=make_operator("tag", ctx), entities=cfg.text_entities, threshold=0.4, doc_cache=2
    )
    docs = [f"Call Anna Berg at 212-66{i}-0101." for i in range(5)]
    texter.anonymize(pl.Series("n", docs[:3]))
    out, _ = texter.anonymize(pl.Series("n", docs))
    assert all("<PHONE_NUMBER>" in t for t in out.to_list())
