"""The shareable manifest: what travels, unencrypted, in a published dataset's header.

Anyone who holds the file reads the manifest without a key (``synthgen inspect``), so it
carries only facts that are public or DP-derived (privacy contract P9):

* the privacy guarantee: ``dp``, ε and δ spent, the accountant, the adjacency, the
  mechanisms charged (their names and steps, from the model's privacy record);
* the model kind, the synthetic row count (a spec setting) and the synthetic file's schema;
* lineage ids, access tags, and the anonymization *settings* the spec declares (columns the
  spec names as identifiers with their operator, columns the spec types as text, the text
  operator, the settings hash);
* per text column, the text quality gate's decision (:mod:`synthgen.models.text.gate`): its
  DP perplexity per byte, the bar, passed or not, and what the column holds (generated, left
  out, all null), so a recipient knows why a text column is missing or empty.

What is computed on real rows without noise stays out: evaluation scores (TRTR, exact-match
rate, DCR, attack AUC, TVDs, quality, bias gaps, text perplexity and canary exposure), exact
real row counts, the PII entity types Presidio found in the real text, and identifier
columns that detection chose from a sample of values. Those live in the restricted report
and in catalog fields only stewards and auditors see (:mod:`synthgen.disclosure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthgen.errors import PrivacyError

#: Manifest keys (at any depth) that name real-derived figures; a manifest holding one is refused.
REAL_DERIVED_KEYS = frozenset(
    {
        "scores",
        "headline",
        "evaluation",
        "report",
        "trtr",
        "tstr",
        "exact_match",
        "exact_match_rate",
        "dcr",
        "attack_auc",
        "tvd",
        "quality",
        "quality_score",
        "bias",
        "perplexity",
        "canary_exposure",
        "real_rows",
        "source_rows",
        "training_rows",
        "entity_types_replaced",
        "entities_replaced",
        "entities",
    }
)


def _offending(value: Any, where: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            path = f"{where}.{k}" if where else str(k)
            if str(k).lower() in REAL_DERIVED_KEYS:
                found.append(path)
            found += _offending(v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _offending(v, f"{where}[{i}]")
    return found


def check_shareable(manifest: Mapping[str, Any]) -> None:
    """Refuse a manifest that carries a key naming a real-derived figure (see module doc).

    A guard for callers of :func:`synthgen.access.publish.publish_dataset`; it cannot tell a
    renamed figure, so build manifests with :func:`shareable_manifest`.
    """
    bad = _offending(manifest)
    if bad:
        raise PrivacyError(
            f"the manifest would carry real-derived figures ({', '.join(bad[:5])}); they belong in the "
            "restricted report, not in the shareable header"
        )


def privacy_section(model_extra: Mapping[str, Any]) -> dict[str, Any]:
    """The privacy guarantee of a fitted model, from its catalog record (all DP outputs or settings)."""
    record = model_extra.get("privacy_record") or {}
    mechanisms = [
        {"step": m.get("step"), "mechanism": m.get("mechanism"), "column": m.get("column")}
        for m in record.get("mechanisms", [])
        if isinstance(m, Mapping)
    ]
    for col, info in (model_extra.get("text") or {}).get("columns", {}).items():
        mechanisms.append({"step": "training", "mechanism": "dp_sgd_text", "column": col})
        gate = info.get("gate") or {}
        if gate.get("dp") and gate.get("epsilon"):
            mechanisms.append({"step": "evaluation", "mechanism": "dp_text_gate", "column": col})
    return {
        "dp": bool(model_extra.get("dp")),
        "epsilon": model_extra.get("epsilon"),
        "delta": model_extra.get("delta"),
        "accountant": record.get("accountant"),
        "adjacency": record.get("adjacency"),
        "mechanisms": mechanisms,
        "model": model_extra.get("kind"),
    }


_GATE_KEYS = (
    "dp",
    "checked",
    "passed",
    "dp_perplexity_per_byte",
    "threshold",
    "fallback",
    "output",
    "epsilon",
)


def text_section(model_extra: Mapping[str, Any]) -> dict[str, Any]:
    """Per text column, the quality gate's decision: what the column holds and why (DP or public).

    The figure is the gate's DP perplexity, None without DP (an exact figure is restricted).
    """
    out: dict[str, Any] = {}
    for col, info in (model_extra.get("text") or {}).get("columns", {}).items():
        gate = info.get("gate")
        if isinstance(gate, Mapping):
            shown = {k: gate.get(k) for k in _GATE_KEYS}
            if not gate.get("dp"):
                shown["dp_perplexity_per_byte"] = None
            out[col] = {"quality_gate": shown}
    return out


def anonymization_section(spec: Any) -> dict[str, Any]:
    """What the spec declares about anonymization (public configuration, no detection results)."""
    from synthgen.ids import settings_hash

    declared = {name: col.operator for name, col in sorted(spec.columns.items()) if col.operator is not None}
    declared.update({k: v for k, v in sorted(spec.anonymize.operators.items())})
    text = sorted(
        {n for n, c in spec.columns.items() if getattr(c.type, "value", c.type) == "text"}
        | set(spec.anonymize.text_columns)
    )
    return {
        "enabled": spec.anonymize.enabled,
        "settings_hash": settings_hash(spec.anonymize.model_dump(mode="json")),
        "declared_identifier_columns": declared,
        "declared_text_columns": text,
        "text_operator": spec.anonymize.text_operator,
        "lines": [f"{n}: {op}" for n, op in declared.items()]
        + [f"{n}: PII spans replaced ({spec.anonymize.text_operator})" for n in text],
    }


def shareable_manifest(
    *,
    spec: Any,
    model_id: str,
    model_extra: Mapping[str, Any],
    anonymized_id: str,
    snapshot_ids: list[str],
    run_id: str,
    rows: int,
    schema: dict[str, str],
) -> dict[str, Any]:
    """The manifest :func:`synthgen.stages.publish.publish` hands to ``publish_dataset``.

    ``rows`` is the synthetic row count (``output.rows``); ``schema`` the synthetic file's.
    """
    manifest = {
        "schema": schema,
        "rows": rows,
        "lineage": {
            "model": model_id,
            "anonymized": anonymized_id,
            "snapshots": snapshot_ids,
            "run_id": run_id,
        },
        "privacy": privacy_section(model_extra),
        "anonymization": anonymization_section(spec),
        "tags": spec.output.access.tags,
    }
    text = text_section(model_extra)
    if text:
        manifest["text"] = text
    check_shareable(manifest)
    return manifest
