"""Run the report sections over real, holdout and synthetic rows.

The result compares synthetic data with real rows, so it is real-derived and *not* DP
(P1): store the HTML and the full summary in the real zone or under a restricted
classification, never beside the shareable dataset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from synthgen.evaluate.alignment import AlignedData, align
from synthgen.evaluate.sections import default_sections
from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Section,
    SectionError,
    SectionResult,
    SectionSkipped,
    Verdict,
    _jsonable,
)
from synthgen.evaluate.settings import EvaluateSettings
from synthgen.evaluate.verdict import judge, overall_words, withheld_text, worst
from synthgen.schema import TableSchema

log = logging.getLogger(__name__)

#: progress(stage, done, total, **info), the pipeline's progress signature.
Progress = Callable[..., None]

SUMMARY_VERSION = 2


@dataclass
class EvaluationResult:
    """All sections of one evaluation, with a verdict and a JSON summary.

    :func:`synthgen.evaluate.html.render` turns it into the HTML report.
    """

    sections: list[SectionResult]
    rows: dict[str, int]
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    seconds: float = 0.0

    def section(self, name: str) -> SectionResult:
        for s in self.sections:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def headline(self) -> dict[str, Any]:
        """The scores a data owner reads first, merged from every section (null when not computed)."""
        merged: dict[str, Any] = {}
        for s in self.sections:
            merged.update(s.headline)
        return {k: _jsonable(v) for k, v in merged.items()}

    @property
    def scores(self) -> dict[str, float]:
        """The numeric headline scores only (for the restricted report's catalog score rows).

        They are computed from real rows without noise, so they never reach the shareable
        manifest or a catalog field consumers can read (privacy contract P9).
        """
        return {
            k: float(v)
            for k, v in self.headline.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }

    @property
    def alerts(self) -> list[str]:
        return [f"{s.title}: {a}" for s in self.sections for a in s.alerts]

    @property
    def summary(self) -> dict[str, Any]:
        """JSON-able: headline scores, alerts, and every section's status, message, metrics and tables."""
        return {
            "version": SUMMARY_VERSION,
            "created": self.created,
            "classification": "restricted",
            "rows": dict(self.rows),
            "headline": self.headline,
            "alerts": self.alerts,
            "verdict": self.verdict,
            "verdict_words": self.verdict_words,
            "withheld_text": self.withheld_text,
            "look_first": self.look_first,
            "verdicts": {s.name: s.verdict for s in self.sections},
            "status": {s.name: s.status for s in self.sections},
            "seconds": round(self.seconds, 3),
            "sections": {s.name: s.to_dict() for s in self.sections},
        }

    @property
    def verdict(self) -> Verdict:
        """The worst section verdict: ``pass``, ``warn``, ``fail`` (``n/a`` when nothing was judged).

        A text column the quality gate withheld counts for its section only (``overall``):
        :attr:`verdict_words` says it was withheld.
        """
        return worst(s.verdict if s.overall is None else s.overall for s in self.sections)

    @property
    def withheld_text(self) -> dict[str, str]:
        """Text columns the quality gate withheld, and what was published instead."""
        return {c: w for s in self.sections if s.name == "text" for c, w in withheld_text(s).items()}

    @property
    def verdict_words(self) -> str:
        return overall_words(self.verdict, self.withheld_text)

    @property
    def look_first(self) -> list[str]:
        """Failures, then warnings, each naming its section: what a reader should check first."""
        found = [(lvl, f"{s.title}: {text}") for s in self.sections for lvl, text in s.findings]
        return [text for lvl, text in found if lvl == "fail"] + [text for lvl, text in found if lvl == "warn"]


def run_section(section: Section, ctx: EvaluationContext) -> SectionResult:
    """Run one section; bad input becomes ``status: error`` / ``skipped`` with its message."""
    out = SectionResult(name=section.name, title=section.title)
    t0 = time.perf_counter()
    try:
        section.compute(ctx, out)
    except SectionSkipped as exc:
        out.status, out.message = "skipped", str(exc)
    except SectionError as exc:
        out.status, out.message = "error", str(exc)
    except Exception as exc:
        log.exception("evaluation section %s failed", section.name)
        out.status, out.message = "error", f"{type(exc).__name__}: {exc}"
    out.seconds = time.perf_counter() - t0
    judge(out)
    return out


def evaluate(
    *,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: TableSchema | None,
    settings: EvaluateSettings | None = None,
    privacy: dict[str, Any] | None = None,
    leaks: dict[str, Any] | None = None,
    progress: Progress | None = None,
    sections: list[Section] | None = None,
    text: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Compare synthetic rows with the real rows they were made from, and with held-out rows.

    Args:
        train: real rows the synthesizer was trained on (after anonymization).
        holdout: real rows it never saw (see :func:`split_holdout`); the baseline of the
            privacy metrics and the test set of the utility metrics.
        synthetic: the generated rows.
        schema: column types (the pipeline's inferred or declared schema); columns not
            in it are typed from their dtype. Text and identifier columns are left to
            the leak scan.
        settings: the spec's ``evaluate`` section (target, sensitive attributes, caps).
        privacy: the ledger's view of this output: ``{"dp": bool, "epsilon": float,
            "delta": float}``; shown beside the empirical privacy metrics.
        leaks: the anonymization leak-scan result (see :mod:`.sections.leakage`).
        text: per text column, metrics of the synthetic text (see :mod:`.sections.text`).
        progress: called as ``progress("evaluate", done, total, section=name)``.

    Every section runs even when another fails; bad input (a missing or constant target,
    no numeric columns, a single column, a synthetic schema that differs from the real
    one) becomes a clear message in the section concerned. The result is real-derived:
    it is restricted data, not shareable.
    """
    settings = settings or EvaluateSettings()
    t0 = time.perf_counter()
    data: AlignedData = align(train=train, holdout=holdout, synthetic=synthetic, schema=schema)
    ctx = EvaluationContext(data=data, settings=settings, privacy=privacy, leaks=leaks)
    if text:
        ctx.shared["text_metrics"] = text
    todo = sections if sections is not None else default_sections()
    results = []
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=settings.threads):
        for i, section in enumerate(todo):
            if progress is not None:
                progress("evaluate", i, len(todo), section=section.name)
            results.append(run_section(section, ctx))
    if progress is not None:
        progress("evaluate", len(todo), len(todo), section="done")
    return EvaluationResult(
        sections=results,
        rows={"train": train.height, "holdout": holdout.height, "synthetic": synthetic.height},
        seconds=time.perf_counter() - t0,
    )
