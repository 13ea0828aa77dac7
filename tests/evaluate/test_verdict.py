"""The report's verdict: a collapsed table fails with the right findings, a faithful one passes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synthgen.evaluate import EvaluateSettings, evaluate, split_holdout
from synthgen.evaluate.html import render
from synthgen.evaluate.sections.base import SectionResult
from synthgen.evaluate.verdict import judge

from .browser import find_chromium, visit
from .conftest import make_people, shuffle_columns

PRIVACY = {"dp": True, "epsilon": 2.99412, "delta": 1.234567e-5}
LEAKS = {"real_values_found": 0, "per_column": {"customer_id": 0}}


def _with_ids(frame: pl.DataFrame) -> pl.DataFrame:
    # An identifier column the pipeline drops before training: absent from the synthetic rows on purpose.
    return frame.with_columns(customer_id=pl.format("C{}", pl.int_range(pl.len())))


@pytest.fixture(scope="module")
def real() -> tuple[pl.DataFrame, pl.DataFrame]:
    return split_holdout(_with_ids(make_people(3000, seed=1)), 0.2, key=b"tests-holdout-key-0")


def _evaluate(real, synthetic):
    train, hold = real
    return evaluate(
        train=train,
        holdout=hold,
        synthetic=synthetic,
        schema=None,
        settings=EvaluateSettings(target="label", plots=False),
        privacy=PRIVACY,
        leaks=LEAKS,
    )


@pytest.fixture(scope="module")
def good(real):
    # A fresh sample of the same process: same marginals and relationships, no copied rows.
    return _evaluate(real, make_people(2400, seed=7))


@pytest.fixture(scope="module")
def collapsed(real):
    train, _ = real
    syn = shuffle_columns(train.drop("customer_id"), 3)
    rng = np.random.default_rng(0)
    colour = np.where(rng.random(syn.height) < 0.95, "other", syn["colour"].to_numpy())
    return _evaluate(real, syn.with_columns(colour=pl.Series(colour)))


def test_faithful_synthetic_data_passes_every_judged_section(good):
    assert good.verdict == "pass", good.look_first
    assert good.look_first == []
    verdicts = {s.name: s.verdict for s in good.sections}
    assert verdicts["text"] == "n/a" and verdicts["bias"] == "n/a"  # not configured
    for name in ("schema", "fidelity", "correlation", "utility", "privacy", "leakage"):
        assert verdicts[name] == "pass", (name, good.section(name).findings)
    assert good.summary["verdict"] == "pass" and "fit for use" in good.summary["verdict_words"]


def test_collapsed_relationships_and_categories_fail_and_are_named_first(collapsed):
    assert collapsed.verdict == "fail"
    verdicts = {s.name: s.verdict for s in collapsed.sections}
    assert verdicts["correlation"] == "fail"
    assert verdicts["fidelity"] == "fail"
    assert verdicts["utility"] == "fail"
    look = collapsed.look_first
    assert any("x × z" in item and "synthetic" in item for item in look), look
    assert any("'colour' collapsed" in item for item in look), look
    assert any("TSTR" in item for item in look), look
    # The identifier column the pipeline dropped on purpose is no finding anywhere.
    assert not any("customer_id" in item for item in look), look
    assert collapsed.section("schema").verdict == "pass"
    # Failures come before warnings.
    levels = [lvl for s in collapsed.sections for lvl, _ in s.findings if lvl in ("fail", "warn")]
    assert levels and levels[0] == "fail"


def test_f1_of_zero_on_synthetic_training_is_a_failure():
    s = SectionResult(name="utility", title="ML utility")
    s.metrics.update({"hgb_trtr_f1": 0.71, "hgb_tstr_f1": 0.0, "hgb_ratio": 0.95})
    judge(s)
    assert s.verdict == "fail"
    assert any("F1 = 0" in text for level, text in s.findings if level == "fail")


def test_presidio_spans_with_no_real_value_found_are_explained_not_alarmed(real):
    train, hold = real
    leaks = {**LEAKS, "text_scan": {"columns": ["notes"], "documents": 40, "entities": {"PERSON": 12}}}
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(plots=False),
        leaks=leaks,
    )
    leak = r.section("leakage")
    assert leak.verdict == "pass" and not leak.alerts
    assert "none of them is a real identifier value" in leak.message


def test_html_shows_the_verdict_and_fixes_the_known_rendering_defects(collapsed):
    html = render(collapsed, title="demo")
    assert 'id="verdict" data-verdict="fail"' in html
    assert 'id="look-first"' in html and "collapsed" in html
    assert "ε (epsilon)" in html and "text-transform:uppercase" not in html
    assert "2.994" in html and "2.99412" not in html  # ε rounded in the card
    assert "ε = 2.99" in html and "δ = 1.2e-05" in html  # and in prose
    assert "{'" not in html  # no raw Python dict in a cell
    assert "<tbody></tbody>" not in html


def test_an_empty_table_reads_none(good):
    html = render(good)
    assert "<tbody></tbody>" not in html
    assert "Synthetic values never seen in the real data" in html and '<p class="none">none</p>' in html


def test_report_opens_in_headless_chromium_without_console_errors(collapsed, tmp_path: Path):
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("SYNTHGEN_REQUIRE_BROWSER"):
            pytest.fail(
                "chromium is required here (SYNTHGEN_REQUIRE_BROWSER): run scripts/install-browser.sh"
            )
        pytest.skip("no chromium on this machine: scripts/install-browser.sh installs Debian's package")
    pytest.importorskip("websockets")
    page = tmp_path / "report.html"
    page.write_text(render(collapsed, title="browser check"), encoding="utf-8")
    seen = visit(
        chromium,
        page,
        {
            "verdict": "document.querySelector('#verdict').dataset.verdict",
            "lit": "document.querySelectorAll('#verdict .light span.on').length",
            "look": "document.querySelectorAll('#look-first li').length",
            "badges": "document.querySelectorAll('section .verdict-badge').length",
            "sections": "document.querySelectorAll('section').length",
        },
    )
    assert seen.loaded and seen.errors == []
    assert seen.values["verdict"] == "fail" and seen.values["lit"] == 1
    assert seen.values["look"] >= 3
    assert seen.values["badges"] == seen.values["sections"] == len(collapsed.sections)


def test_browser_check_catches_a_console_error(tmp_path: Path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no chromium on this machine")
    pytest.importorskip("websockets")
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>undefinedCall()</script></body></html>")
    seen = visit(chromium, page, {"title": "document.title"})
    assert seen.loaded and seen.errors, "a thrown exception must be reported"
