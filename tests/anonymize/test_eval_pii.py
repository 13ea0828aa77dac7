"""``synthgen eval-pii``: figures on a committed labelled file, and every bad input named by line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthgen.anonymize.devset import generate, templates_for
from synthgen.anonymize.evaluate import read_labelled, score

SMALL = Path(__file__).parent / "data" / "eval_small.jsonl"
SYNTHGEN = str(Path(sys.executable).with_name("synthgen"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SYNTHGEN, *args], capture_output=True, text=True, timeout=300)


def test_score_counts_non_space_characters_and_any_type_for_recall() -> None:
    text = "Ann Lee at 12 Oak St"
    gold = [[(0, 7, "PERSON"), (11, 20, "STREET_ADDRESS")]]
    # The name is found as LOCATION (still replaced: counts for recall), "at" is a false positive.
    pred = [[(0, 7, "LOCATION"), (8, 10, "PERSON"), (11, 16, "STREET_ADDRESS")]]
    s = score([text], gold, pred)
    assert s["by_type"]["PERSON"]["recall"] == 1.0
    assert s["by_type"]["PERSON"]["recall_same_type"] == 0.0
    assert s["by_type"]["PERSON"]["precision"] == 0.0
    assert s["by_type"]["STREET_ADDRESS"]["recall"] == round(4 / 7, 4)  # "12Oak" of "12OakSt"
    assert s["direct_identifiers"]["gold_chars"] == 13
    assert s["direct_identifiers"]["recall"] == round((6 + 4) / 13, 4)
    assert s["direct_identifiers"]["precision"] == round(4 / 6, 4)
    assert s["all"]["precision"] == round(10 / 12, 4)


def test_eval_pii_on_the_committed_file_gives_the_expected_figures(tmp_path: Path) -> None:
    pred = tmp_path / "pred.jsonl"
    r = _run("eval-pii", str(SMALL), "--json", "--predictions", str(pred))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["docs"] == 4
    # e-mail (21 chars) and SSN (9 non-space chars... 11 with dashes) found, "zqxv" (4) missed.
    assert res["direct_identifiers"] == {
        "precision": 1.0, "recall": round(32 / 36, 4), "gold_chars": 36, "predicted_chars": 32,
    }  # fmt: skip
    assert res["by_type"]["EMAIL_ADDRESS"]["recall"] == 1.0
    assert res["by_type"]["US_SSN"]["recall"] == 1.0
    assert res["by_type"]["PERSON"]["recall"] == 0.0
    lines = pred.read_text().splitlines()
    assert len(lines) == 4
    got = [json.loads(x) for x in lines]
    src = [json.loads(x) for x in SMALL.read_text().splitlines()]
    assert [g["text"] for g in got] == [s["text"] for s in src]
    assert got[0]["spans"] == [{"start": 9, "end": 30, "type": "EMAIL_ADDRESS"}]
    assert got[3]["spans"] == []


def test_eval_pii_prints_a_table_with_direct_identifiers() -> None:
    r = _run("eval-pii", str(SMALL))
    assert r.returncode == 0, r.stderr
    assert "direct identifiers" in r.stdout and "EMAIL_ADDRESS" in r.stdout


GOOD = '{"text": "Call Ann", "spans": [{"start": 5, "end": 8, "type": "PERSON"}]}'


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ("{not json", "line 2: invalid JSON"),
        ('{"text": "abc", "spans": [{"start": 1, "end": 9, "type": "PERSON"}]}', "line 2: span 0 offsets"),
        ('{"text": "abc", "spans": [{"start": -1, "end": 2, "type": "PERSON"}]}', "outside the text"),
        (
            '{"text": "abcdef", "spans": [{"start": 0, "end": 4, "type": "PERSON"},'
            ' {"start": 3, "end": 5, "type": "LOCATION"}]}',
            "line 2: gold spans [0, 4) and [3, 5) overlap",
        ),
        (
            '{"text": "abc", "spans": [{"start": 0, "end": 2, "type": "SHOE_SIZE"}]}',
            "unknown type 'SHOE_SIZE'",
        ),
        ('["text"]', 'line 2: expected an object with a string "text"'),
        ("", "line 2: invalid JSON"),
    ],
)
def test_eval_pii_rejects_bad_lines_with_exit_2_and_writes_nothing(
    tmp_path: Path, second_line: str, message: str
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(GOOD + "\n" + second_line + "\n" + GOOD + "\n")
    pred = tmp_path / "pred.jsonl"
    r = _run("eval-pii", str(src), "--predictions", str(pred))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not pred.exists() and list(tmp_path.iterdir()) == [src]


def test_eval_pii_rejects_an_empty_or_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = _run("eval-pii", str(empty))
    assert r.returncode == 2 and "empty" in r.stderr
    r = _run("eval-pii", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 2 and "not found" in r.stderr


def test_devset_is_seeded_valid_and_split(tmp_path: Path) -> None:
    a, b = list(generate(80, split="dev")), list(generate(80, split="dev"))
    assert a == b
    assert a != list(generate(80, split="test"))
    known = {s["type"] for r in a + list(generate(80, split="test")) for s in r["spans"]}
    assert {"PERSON", "STREET_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE"} <= known
    p = tmp_path / "dev.jsonl"  # read_labelled checks offsets and overlaps
    p.write_text("\n".join(json.dumps(r) for r in a) + "\n")
    texts, _ = read_labelled(p, known)
    assert len(texts) == 80 and all(t for t in texts)
    assert len(templates_for("dev")) < len(templates_for("test"))


def test_lines_break_at_newlines_only_not_at_unicode_line_separators(tmp_path: Path) -> None:
    f = tmp_path / "u.jsonl"
    rows = [
        {"text": "Call Jo\u2028at home\u0085now", "spans": [{"start": 5, "end": 7, "type": "PERSON"}]},
        {"text": "plain", "spans": []},
    ]
    f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    texts, gold = read_labelled(f, {"PERSON"})
    assert texts == [r["text"] for r in rows] and len(gold[0]) == 1 and gold[1] == []
