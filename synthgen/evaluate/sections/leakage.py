"""PII leakage: the anonymization leak scan over the synthetic output, rendered for the report.

The scan itself belongs to :mod:`synthgen.anonymize` (P8: defence in depth); the pipeline
passes its result in as a plain dict. Expected shape (extra keys are shown as they are)::

    {
        "real_values_found": 0,                      # real identifier values found in the output
        "per_column": {"email": 0, "name": 0},       # by real identifier column
        "text_scan": {                               # Presidio scan of synthetic text columns
            "columns": ["notes"], "documents": 500, "documents_with_pii": 3,
            "entities": {"PERSON": 2, "EMAIL_ADDRESS": 1},
        },
    }

Never put the found values themselves in the dict: counts are enough to act on, and
the report should not become a list of leaked identifiers.
"""

from __future__ import annotations

from typing import Any

from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Section,
    SectionError,
    SectionResult,
    SectionSkipped,
    Table,
)

_TOTAL_KEYS = ("real_values_found", "identifier_values_found", "found", "total")
_PER_COLUMN_KEYS = ("per_column", "columns")
_TEXT_KEYS = ("text_scan", "presidio")


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in d:
            return k, d[k]
    return None, None


class LeakageSection(Section):
    name = "leakage"
    title = "PII leakage"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        leaks = ctx.leaks
        if leaks is None:
            raise SectionSkipped(
                "no leak-scan result was passed in: run the anonymization leak scan on the output"
            )
        if not isinstance(leaks, dict):
            raise SectionError(f"leak-scan result must be a dict, got {type(leaks).__name__}")
        used: set[str] = set()
        col_key, per_column = _first(leaks, _PER_COLUMN_KEYS)
        if isinstance(per_column, dict):
            used.add(col_key or "")
            out.tables.append(
                Table(
                    "Real identifier values found, per column",
                    ["column", "values found"],
                    [[k, v] for k, v in sorted(per_column.items())],
                )
            )
        total_key, total = _first(leaks, _TOTAL_KEYS)
        if total_key is not None:
            used.add(total_key)
        elif isinstance(per_column, dict):
            total = sum(int(v) for v in per_column.values() if isinstance(v, int | float))
        found = None if total is None else int(total)
        out.metrics["real_values_found"] = found
        out.headline["pii_values_found"] = found

        text_key, text = _first(leaks, _TEXT_KEYS)
        if isinstance(text, dict):
            used.add(text_key or "")
            entities = text.get("entities")
            if isinstance(entities, dict):
                out.tables.append(
                    Table(
                        "Presidio scan of synthetic text: entities found",
                        ["entity", "count"],
                        [[k, v] for k, v in sorted(entities.items())],
                    )
                )
                out.metrics["text_entities_found"] = int(
                    sum(v for v in entities.values() if isinstance(v, int | float))
                )
            for k, v in text.items():
                if k != "entities" and isinstance(v, int | float | str | bool | type(None)):
                    out.metrics[f"text_{k}"] = v
                elif k == "columns" and isinstance(v, list):
                    out.metrics["text_columns"] = ", ".join(map(str, v))
        for k, v in leaks.items():
            if k in used:
                continue
            if isinstance(v, dict):
                out.tables.append(Table(k, ["key", "value"], [[kk, vv] for kk, vv in v.items()]))
            else:
                out.metrics[k] = v

        if found is None:
            out.message = "The leak scan result has no total of real identifier values found."
        elif found == 0:
            out.message = "No real identifier value was found in the synthetic output (expected: 0)."
        else:
            out.message = f"{found} real identifier value(s) found in the synthetic output (expected: 0)."
            out.alerts.append(f"{found} real identifier value(s) leaked into the synthetic output")
        if out.metrics.get("text_entities_found"):
            # Two different questions, answered side by side so that nobody has to guess which to believe.
            n = out.metrics["text_entities_found"]
            if found == 0:
                out.note(
                    f"Presidio flagged {n} span(s) in synthetic text that look like PII (names, places,"
                    " dates); none of them is a real identifier value: the leak scan, which compares with"
                    " every identifier value of the source, found 0. They are values the text model"
                    " invented from anonymized training text."
                )
            else:
                out.note(
                    f"Presidio flagged {n} PII-like span(s) in synthetic text; the leak scan found real"
                    " identifier values (above): look at those first."
                )
