from __future__ import annotations

import polars as pl

from synthgen.evaluate import evaluate


def test_text_metrics_passed_in_are_reported_with_headline_scores() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10, "c": ["a", "b"] * 20})
    metrics = {"notes": {"perplexity": 9.5, "distinct_2": 0.8, "length_tvd": 0.1, "lengths": {"mean": 40}}}
    r = evaluate(train=frame, holdout=frame, synthetic=frame, schema=None, text=metrics)
    section = r.section("text")
    assert section.status == "ok"
    assert r.headline["text_perplexity"] == 9.5
    rows = dict(tuple(row) for row in section.tables[0].rows)
    assert rows["lengths.mean"] == 40


def test_text_section_is_skipped_without_text_columns() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10})
    r = evaluate(train=frame, holdout=frame, synthetic=frame, schema=None)
    assert r.section("text").status == "skipped"


def _gate(passed: bool, output: str, dp_perplexity: float, fallback: str = "drop") -> dict[str, object]:
    return {
        "column": "notes",
        "dp": True,
        "checked": True,
        "passed": passed,
        "dp_perplexity_per_byte": dp_perplexity,
        "threshold": 3.5,
        "fallback": fallback,
        "epsilon": 0.045,
        "l_max": 2.77,
        "output": output,
    }


def _judged(gate: dict[str, object], perplexity: float):  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10, "c": ["a", "b"] * 20})
    text = {"notes": {"perplexity": perplexity, "gate": gate}}
    return evaluate(train=frame, holdout=frame, synthetic=frame, schema=None, text=text)


def test_a_failed_gate_with_the_notes_withheld_fails_the_text_section_but_not_the_run() -> None:
    r = _judged(_gate(False, "dropped", 9.1), 8.59)
    text = r.section("text")
    assert text.verdict == "fail" and text.overall == "n/a"
    assert r.verdict != "fail" and {s.verdict for s in r.sections if s.name != "text"} <= {
        "pass",
        "warn",
        "n/a",
    }
    assert r.withheld_text == {"notes": "left out of the dataset"}
    assert "notes were withheld" in r.verdict_words and "notes (left out of the dataset)" in r.verdict_words
    assert r.look_first[0].startswith("Synthetic text: text column 'notes': below the readability bar")
    assert (
        "DP perplexity 9.10 > 3.5" in r.look_first[0] and "exact holdout perplexity 8.59" in r.look_first[0]
    )
    assert r.summary["withheld_text"] == {"notes": "left out of the dataset"}


def test_notes_published_anyway_below_the_bar_fail_the_whole_run() -> None:
    r = _judged(_gate(False, "generated", 9.1, fallback="model"), 8.59)
    assert r.section("text").verdict == "fail" and r.section("text").overall is None
    assert r.verdict == "fail" and r.withheld_text == {}
    assert "published anyway" in r.look_first[0]


def test_notes_left_null_are_withheld_too() -> None:
    r = _judged(_gate(False, "nulls", 9.1, fallback="empty"), 8.59)
    assert r.withheld_text == {"notes": "published with every value null"} and r.verdict != "fail"


def test_a_passed_gate_never_fails_the_text_section() -> None:
    # The DP figure is noisy: an exact figure above the bar warns, since the notes were published.
    r = _judged(_gate(True, "generated", 3.3), 3.7)
    assert r.section("text").verdict == "warn"
    assert "the DP quality gate passed it (DP perplexity 3.30)" in r.section("text").findings[0][1]
    assert _judged(_gate(True, "generated", 1.9), 2.1).section("text").verdict == "pass"
    assert _judged(_gate(True, "generated", 2.9), 3.0).section("text").verdict == "warn"


def test_without_a_gate_the_exact_perplexity_decides_as_before() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 10})
    r = evaluate(
        train=frame, holdout=frame, synthetic=frame, schema=None, text={"notes": {"perplexity": 8.6}}
    )
    assert r.section("text").verdict == "fail" and r.verdict == "fail"
