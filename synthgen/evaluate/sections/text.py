"""Synthetic text columns: perplexity on held-out real text, diversity, lengths (issue 8).

The metrics need the fitted text model, so the pipeline computes them (with
:func:`synthgen.models.text.text_metrics`) and passes them in as ``text``:
``{column: {"perplexity": ..., "distinct_1": ..., ..., "gate": {...}}}``. Kept out of this
package so that evaluation never imports torch. ``gate`` is the text quality gate's decision
at training time (:mod:`synthgen.models.text.gate`): its DP perplexity, whether it passed and
what the published column holds; a column it withheld has no synthetic-text metrics.
"""

from __future__ import annotations

from typing import Any

from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Section,
    SectionResult,
    SectionSkipped,
    Table,
    rounded,
)


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, int | float | str | bool) or value is None:
        out[prefix] = value


class TextSection(Section):
    name = "text"
    title = "Synthetic text"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        text = ctx.shared.get("text_metrics")
        if not text:
            raise SectionSkipped("no text column was synthesized")
        gates: dict[str, Any] = {}
        for column, metrics in text.items():
            if isinstance(metrics.get("gate"), dict):
                gates[column] = metrics["gate"]
            rows: dict[str, Any] = {}
            _flat("", metrics, rows)
            table = [[k, rounded(v) if isinstance(v, float) else v] for k, v in sorted(rows.items())]
            out.tables.append(Table(f"Text column {column}", ["metric", "value"], table))
            canary = metrics.get("canary") or {}
            flat = {
                **{k: metrics.get(k) for k in ("perplexity", "distinct_2", "length_tvd")},
                "canary_exposure": (canary.get("with_canary") or {}).get("exposure"),
                "canary_exposure_without": (canary.get("without_canary") or {}).get("exposure"),
            }
            for key, value in flat.items():
                if isinstance(value, int | float):
                    out.headline[f"text_{key}" if len(text) == 1 else f"{column}_{key}"] = value
            for key in ("perplexity", "bits_per_byte", "distinct_2", "real_distinct_2", "length_tvd"):
                if isinstance(metrics.get(key), int | float):
                    out.metrics[f"{column}.{key}"] = rounded(metrics[key])
        out.details["gates"] = gates
        out.details["withheld"] = sorted(
            c for c, g in gates.items() if g.get("output", "generated") != "generated"
        )
        if out.details["withheld"]:
            out.note(
                "Withheld by the text quality gate (no synthetic text published): "
                + ", ".join(out.details["withheld"])
                + "."
            )
        out.note(
            "Quality gate: at training time, the text model's DP perplexity per byte on the held-out notes "
            "(each note's loss clipped, noised with the Laplace mechanism and charged to the budget) is "
            "compared with the readability bar; when it is above, the column is left out, left null or "
            "published anyway as model.text.fallback says."
        )
        out.note(
            "Perplexity is per byte on held-out real text (lower is better); distinct-n is the share of "
            "unique n-grams (diversity); length TVD compares byte-length histograms. Canary exposure "
            "(with evaluate.text_canary): bits by which a secret planted k times ranks above random "
            "secrets under a model trained like this one; compare with the model trained without it."
        )
