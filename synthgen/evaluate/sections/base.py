"""What every report section shares: its result, the context it reads, and how it fails.

A section is a small class with a ``name``, a ``title`` and ``compute(ctx, out)``. It
fills ``out`` (metrics, tables, figures, headline scores, alerts) and signals bad input
by raising :class:`SectionError` or :class:`SectionSkipped` with one clear line; the
runner turns those into ``status: error`` / ``status: skipped`` and carries on with the
other sections.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from synthgen.evaluate.alignment import AlignedData
from synthgen.evaluate.settings import EvaluateSettings

Status = Literal["ok", "skipped", "error"]
#: A section's verdict against the documented thresholds (see :mod:`synthgen.evaluate.verdict`).
Verdict = Literal["pass", "warn", "fail", "n/a"]


class SectionError(Exception):
    """The section cannot be computed for this input; the message says why and what to do."""


class SectionSkipped(Exception):
    """The section does not apply (not configured, nothing to compare)."""


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": self.columns,
            "rows": [[_jsonable(v) for v in r] for r in self.rows],
        }


@dataclass
class Figure:
    title: str
    #: PNG bytes, base64-encoded (embedded as a data: URI in the HTML report).
    png_base64: str
    caption: str = ""


@dataclass
class SectionResult:
    name: str
    title: str
    status: Status = "ok"
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    #: Findings a data owner should look at (high attack AUC, leaked identifiers, ...).
    alerts: list[str] = field(default_factory=list)
    #: Scores promoted to the report's headline (key -> value).
    headline: dict[str, Any] = field(default_factory=dict)
    #: JSON-able facts the verdict reads that are not single metrics (strongest pairs, ...).
    details: dict[str, Any] = field(default_factory=dict)
    #: Set by :func:`synthgen.evaluate.verdict.judge` after the section ran.
    verdict: Verdict = "n/a"
    #: Why the verdict is what it is: (level, sentence), worst first.
    findings: list[tuple[Verdict, str]] = field(default_factory=list)
    #: The section's weight in the overall verdict when it differs from ``verdict`` (set by
    #: ``judge``): a text column the quality gate withheld fails its section, not the whole run.
    overall: Verdict | None = None
    seconds: float = 0.0

    def note(self, text: str) -> None:
        """Append a sentence to the section message."""
        self.message = f"{self.message} {text}".strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (figures are left to the HTML report)."""
        return {
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "metrics": {k: _jsonable(v) for k, v in self.metrics.items()},
            "tables": [t.to_dict() for t in self.tables],
            "alerts": list(self.alerts),
            "verdict": self.verdict,
            "findings": [{"level": lvl, "text": text} for lvl, text in self.findings],
            "overall": self.overall,
            "details": _jsonable(self.details),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EvaluationContext:
    """Inputs of every section, and a place for one section to hand results to a later one."""

    data: AlignedData
    settings: EvaluateSettings
    privacy: dict[str, Any] | None = None
    leaks: dict[str, Any] | None = None
    shared: dict[str, Any] = field(default_factory=dict)


class Section(ABC):
    name: ClassVar[str]
    title: ClassVar[str]

    @abstractmethod
    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        """Fill ``out``; raise :class:`SectionError` / :class:`SectionSkipped` on bad input."""


def _jsonable(value: Any) -> Any:
    """Plain Python values for JSON: numpy scalars unwrapped, NaN/inf as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def rounded(value: float | None, digits: int = 4) -> float | None:
    """``value`` rounded for display and JSON; None for missing or non-finite."""
    if value is None:
        return None
    v = float(value)
    return round(v, digits) if math.isfinite(v) else None
