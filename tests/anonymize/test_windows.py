"""Long documents are analysed in overlapping windows: an identifier on a window's edge is
still found whole (spaCy refuses a text over nlp.max_length, so long cells must be split)."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from synthgen.anonymize.engine import get_analyzer
from synthgen.anonymize.operators import OperatorContext, make_operator
from synthgen.anonymize.surrogates import Surrogates, derive_key
from synthgen.anonymize.text import TextAnonymizer
from synthgen.anonymize.windows import windows

SECRET = b"test-secret-0123456789abcdef0123"


@pytest.mark.parametrize("size", [8, 100, 1_000, 100_000])
@pytest.mark.parametrize("gap", ["", " ", "\t"])
def test_windows_cover_the_text_and_every_short_span_lies_whole_in_one(size: int, gap: str) -> None:
    text = gap.join(f"w{i}" * (i % 7 + 1) for i in range(3 * size // 2 + 50))
    pieces = list(windows(text, size))
    assert all(len(p) <= size and text[o : o + len(p)] == p for o, p in pieces)
    assert pieces[0][0] == 0 and pieces[-1][0] + len(pieces[-1][1]) == len(text)
    assert all(b[0] <= a[0] + len(a[1]) for a, b in itertools.pairwise(pieces))  # no gap
    span = max(1, min(size // 8, 2_000) // 2)
    for start in range(0, len(text) - span, max(1, len(text) // 500)):
        assert any(o <= start and start + span <= o + len(p) for o, p in pieces), start


def test_a_window_smaller_than_eight_characters_is_refused() -> None:
    with pytest.raises(ValueError):
        list(windows("abc", 4))


def test_emails_on_window_edges_are_replaced_whole() -> None:
    # Tabs, not spaces: no whitespace the windows may cut at, so window edges fall at exact
    # offsets and, without overlap, cut some addresses in two (each half then goes unnoticed).
    cfg, analyzer = get_analyzer()
    texter = TextAnonymizer(
        analyzer,
        operator=make_operator("tag", OperatorContext(Surrogates(SECRET), derive_key(SECRET, "hash"))),
        entities=cfg.text_entities,
        threshold=cfg.threshold,
        max_doc_chars=1_000,
    )
    emails = [f"patient.number{i}@example.com" for i in range(120)]
    doc = "".join(f"note\twritten\tby\t{e}\ttoday\t" for e in emails)
    assert len(doc) > 5_000
    out, stats = texter.anonymize(pl.Series("notes", [doc]))
    assert stats.long_split == 1
    left = re.findall(r"number\d+@|@example\.com", out[0])
    assert left == [], left[:5]
    assert out[0].count("<EMAIL_ADDRESS>") == len(emails)


@pytest.mark.slow
def test_a_note_over_a_million_characters_is_anonymized_in_windows(
    tmp_path: Path, home: Path, synthgen_cli: Callable[..., Any]
) -> None:
    filler = "the patient reported mild symptoms and was advised to rest at home. "
    parts = [filler * 200, "Patient John Smith wrote from john.smith@example.com today. "]
    body = "".join(parts)
    # One identifier pair straddles 1,000,000 (spaCy's nlp.max_length), others sit elsewhere.
    pad = (filler * (1_000_000 // len(filler)))[: 1_000_000 - len(body) - 30]
    note = body + pad + "Patient Maria Lopez wrote maria.lopez@example.org today. " + filler * 1_500
    at = note.index("maria.lopez")
    assert len(note) > 1_100_000 and at < 1_000_000 < note.index("today", at)
    data = tmp_path / "d.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["grp", "note"])
        w.writerows(
            [["a", f"Short note {i} about rest and fluids, a visit planned next week."] for i in range(20)]
        )
        w.writerow(["b", note])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: visits\nsource: {kind: csv, path: d.csv}\n"
        "columns:\n  note: {type: text}\nprivacy: {dp: false}\n"
    )
    # Was: spaCy's E088 ("Text of length 1111979 exceeds maximum of 1000000"), exit 1.
    r = synthgen_cli(["anonymize", str(spec)], env={"SYNTHGEN_USER": "alice"}, timeout=900)
    assert r.code == 0, r.err[-2000:]
    (out,) = (home / "zones" / "real" / "anonymized").rglob("data.parquet")
    text = "\n".join(pl.read_parquet(out)["note"].to_list())
    assert len(text) > 1_100_000
    for raw in ("John Smith", "john.smith@example.com", "Maria Lopez", "maria.lopez@example.org"):
        assert raw not in text, raw
