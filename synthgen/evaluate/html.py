"""Render an :class:`~synthgen.evaluate.evaluation.EvaluationResult` as one self-contained HTML page.

The page comes from the Jinja2 template ``templates/report.html.j2`` with autoescaping on,
so every value is HTML-escaped. Inline CSS, plots as ``data:image/png;base64`` URIs, no
scripts, fonts or links to anything outside the file: the report must open on an
air-gapped machine and must not call home when a data steward opens it.

This module takes the result and never the other way round: :mod:`.evaluation` does not
import it, so computing a report needs no template engine.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, StrictUndefined

from synthgen.evaluate.sections.base import _jsonable

if TYPE_CHECKING:
    from synthgen.evaluate.evaluation import EvaluationResult

#: Headline cards: (key, label, hint).
CARDS = [
    ("quality_score", "Quality score", "SDMetrics, 1 = best"),
    ("column_shapes", "Column shapes", "1 = same marginals"),
    ("column_pair_trends", "Pair trends", "1 = same correlations"),
    ("tvd_1way_mean", "1-way TVD", "mean, 0 = best"),
    ("tvd_2way_mean", "2-way TVD", "mean, 0 = best"),
    ("corr_diff_mean", "Correlation diff", "mean |Δ|, 0 = best"),
    ("utility_tstr", "TSTR", "train synthetic, test real"),
    ("utility_trtr", "TRTR", "train real, test real"),
    ("dcr_share", "DCR share", "≈0.5 = no memorisation"),
    ("attack_auc", "Attack AUC", "≈0.5 = chance"),
    ("exact_match_rate", "Exact matches", "share of synthetic rows"),
    ("epsilon", "ε (epsilon)", "DP budget of this output"),
    ("delta", "δ (delta)", ""),
    ("pii_values_found", "PII values found", "goal: 0"),
]

_STATUS_WORDS = {"ok": "computed", "skipped": "skipped", "error": "could not be computed"}


def fmt(value: Any) -> str:
    """A value as a reader wants it: numbers rounded, dicts and lists spelled out, missing as a dash."""
    value = _jsonable(value)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "none"
    return str(value)


def _number_like(value: Any) -> bool:
    value = _jsonable(value)
    return isinstance(value, int | float) and not isinstance(value, bool)


@cache
def _environment() -> Environment:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=False)
    env.filters["fmt"] = fmt
    env.filters["css"] = lambda verdict: "na" if verdict == "n/a" else verdict
    env.tests["number_like"] = _number_like
    return env


def _template(name: str) -> str:
    return (files("synthgen.evaluate") / "templates" / name).read_text(encoding="utf-8")


def render(result: EvaluationResult, *, title: str = "Synthetic data evaluation") -> str:
    """The report page for ``result``: verdict light, "look at these first", then every section."""
    dp = result.headline.get("dp")
    if dp is True:
        dp_line = "trained with differential privacy"
    elif dp is False:
        dp_line = "trained WITHOUT differential privacy"
    else:
        dp_line = "DP status unknown"
    template = _environment().from_string(_template("report.html.j2"))
    return template.render(
        title=title,
        css=_template("report.css"),
        result=result,
        rows={"train": 0, "holdout": 0, "synthetic": 0, **result.rows},
        headline=result.headline,
        cards=CARDS,
        dp_line=dp_line,
        status_words=_STATUS_WORDS,
    )
