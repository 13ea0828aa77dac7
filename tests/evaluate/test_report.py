"""The summary is JSON and the HTML is one self-contained page with every section."""

import json
import re

from synthgen.evaluate import EvaluateSettings, evaluate
from synthgen.evaluate.html import render

from .conftest import shuffle_columns


def _report(people, **kw):
    train, hold = people
    return evaluate(
        train=train,
        holdout=hold,
        synthetic=shuffle_columns(train, 2),
        schema=None,
        settings=EvaluateSettings(target="label", sensitive=["sex"]),
        privacy={"dp": True, "epsilon": 3.0, "delta": 1e-5},
        **kw,
    )


def test_html_report_is_self_contained_and_has_every_section_with_plots(people):
    r = _report(people, leaks={"real_values_found": 0, "per_column": {"email": 0}})
    html = render(r, title="people <test>")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower() and "@import" not in html and "url(" not in html
    for s in r.sections:
        assert f'id="{s.name}"' in html and s.title.replace("&", "&amp;") in html
    # marginals, heatmaps, ROC, shares, DCR histogram, attack ROC
    assert html.count('src="data:image/png;base64,') >= 6
    assert "people &lt;test&gt;" in html  # titles are escaped
    assert "RESTRICTED" in html


def test_summary_is_json_with_headline_statuses_and_sections(people):
    r = _report(people)
    s = json.loads(json.dumps(r.summary, allow_nan=False))
    assert s["classification"] == "restricted"
    assert set(s["sections"]) == {
        "schema",
        "fidelity",
        "correlation",
        "utility",
        "bias",
        "privacy",
        "leakage",
        "text",
    }
    assert s["status"]["leakage"] == "skipped"
    assert s["status"]["text"] == "skipped"
    for key in (
        "quality_score",
        "column_pair_trends",
        "tvd_1way_mean",
        "utility_tstr",
        "utility_trtr",
        "dcr_share",
        "attack_auc",
        "exact_match_rate",
        "epsilon",
        "delta",
    ):
        assert key in s["headline"], key
    assert all("png" not in json.dumps(sec) for sec in s["sections"].values())
    assert s["sections"]["fidelity"]["seconds"] >= 0


def test_progress_is_reported_per_section(people):
    calls = []
    train, hold = people
    evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(plots=False),
        progress=lambda stage, done, total, **info: calls.append((stage, done, total, info["section"])),
    )
    assert calls[0] == ("evaluate", 0, 8, "schema")
    assert calls[-1] == ("evaluate", 8, 8, "done")


def test_leaked_identifier_is_counted_alerted_and_rendered(people):
    train, hold = people
    leaks = {
        "real_values_found": 1,
        "per_column": {"email": 1, "name": 0},
        "text_scan": {"columns": ["notes"], "documents": 40, "entities": {"EMAIL_ADDRESS": 2}},
    }
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(plots=False),
        leaks=leaks,
    )
    leak = r.section("leakage")
    assert leak.status == "ok"
    assert r.headline["pii_values_found"] == 1
    assert leak.metrics["text_entities_found"] == 2 and leak.metrics["text_columns"] == "notes"
    assert any("1 real identifier value(s) leaked" in a for a in r.alerts)
    assert "EMAIL_ADDRESS" in render(r)


def test_clean_leak_scan_says_zero_found(people):
    train, hold = people
    r = evaluate(
        train=train,
        holdout=hold,
        synthetic=train,
        schema=None,
        settings=EvaluateSettings(plots=False),
        leaks={"per_column": {"email": 0, "phone": 0}},
    )
    leak = r.section("leakage")
    assert leak.metrics["real_values_found"] == 0 and not leak.alerts
    assert "No real identifier value" in leak.message
