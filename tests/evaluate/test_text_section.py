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
