"""The anonymize stage: remove direct identifiers with Presidio; the output stays in the REAL zone."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl

from synthgen.catalog import Dataset
from synthgen.ids import file_sha256, settings_hash
from synthgen.schema import ColumnType, TableSchema
from synthgen.source_identity import source_key
from synthgen.spec import PipelineSpec
from synthgen.stages.context import (
    Context,
    StageResult,
    pipeline_secret,
    require,
    reused,
    schema_from_json,
    schema_to_json,
)


def anonymize_settings(spec: PipelineSpec) -> Any:
    """The spec's anonymize section with per-column ``operator`` overrides merged in."""
    ops = dict(spec.anonymize.operators)
    for name, col in spec.columns.items():
        if col.operator is not None:
            ops.setdefault(name, col.operator)
    update: dict[str, Any] = {"operators": ops}
    if spec.anonymize.config and not Path(spec.anonymize.config).is_absolute():
        update["config"] = str(spec.base_dir / spec.anonymize.config)  # relative to the spec file
    return spec.anonymize.model_copy(update=update)


def _with_declared_identifiers(schema: TableSchema, spec: PipelineSpec) -> TableSchema:
    """A column the spec gives an ``operator`` is an identifier, whatever detection would say."""
    cols = []
    for c in schema.columns:
        o = spec.columns.get(c.name)
        if o is not None and o.operator is not None and c.pii is None:
            c = c.model_copy(update={"pii": "ID" if c.type.value == "id" else "QUASI_IDENTIFIER"})
        cols.append(c)
    return TableSchema(columns=cols)


def anonymize(spec: PipelineSpec, ctx: Context, *, snapshot_id: str) -> StageResult:
    """Remove direct identifiers (columns and PII in text) with Presidio. Output stays in the REAL zone.

    The output is still real data (anonymization is not DP), so it is restricted and lives
    beside its report and the leak index (keyed hashes of the identifier values seen, for
    scanning synthetic outputs later).
    """
    snap = require(ctx, snapshot_id, "snapshot")
    schema = _with_declared_identifiers(schema_from_json(snap.schema_json), spec)
    settings = anonymize_settings(spec)
    secret = pipeline_secret(spec)
    anon_id = "anon-" + settings_hash(
        snapshot_id,
        settings.model_dump(mode="json"),
        schema_to_json(schema),
        hashlib.sha256(secret).hexdigest(),
    )
    rel = f"anonymized/{spec.name}/{anon_id}"
    if (prior := reused(ctx, "anonymize", anon_id)) is not None:
        return prior

    ctx.report("anonymize", 0, snap.rows)
    zone = ctx.zones.real
    with zone.atomic_dir(rel) as tmpdir:
        report = _anonymize_into(tmpdir, snap, schema, settings, secret)
        (tmpdir / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        rows = pl.scan_parquet(tmpdir / "data.parquet").select(pl.len()).collect().item()
        out_cols = set(pl.read_parquet_schema(tmpdir / "data.parquet"))
    path = zone.resolve(rel)
    kept = [c for c in schema.columns if c.name in out_cols and c.type != ColumnType.id]
    out_schema = TableSchema(columns=kept)
    summary = _anonymize_summary(report)
    extra = {
        "report_path": str(path / "report.json"),
        "leak_index": str(path / "leak_index.parquet") if settings.enabled else None,
        "report_summary": summary,
        "summary": summary.get("lines", []),
    }
    ctx.catalog.add_dataset(
        Dataset(
            id=anon_id,
            name=spec.name,
            zone="real",
            kind="anonymized",
            format="parquet",
            path=str(path / "data.parquet"),
            rows=rows,
            schema_json=schema_to_json(out_schema),
            content_hash=file_sha256(path / "data.parquet"),
            classification="restricted",
            dp=None,
            tags={"ledger_source": source_key(spec)},
            extra=extra,
            created_by=ctx.user,
        ),
        parents=[snapshot_id],
    )
    ctx.report("anonymize", rows, rows)
    return StageResult("anonymize", anon_id, str(path / "data.parquet"), rows, extra=extra)


def _anonymize_into(
    tmpdir: Path, snap: Dataset, schema: TableSchema, settings: Any, secret: bytes
) -> dict[str, Any]:
    """Write ``data.parquet`` (and the leak index) into ``tmpdir``; returns the restricted report."""
    from synthgen.anonymize import anonymize_table

    if settings.enabled:
        result = anonymize_table(
            pl.scan_parquet(snap.path),
            schema=schema,
            settings=settings,
            secret=secret,
            sink=tmpdir / "data.parquet",
        )
        result.leak_index.save(tmpdir / "leak_index.parquet")
        report: dict[str, Any] = result.report
        dropped = {n for n, d in result.decisions.items() if d.role == "identifier" and d.operator == "drop"}
    else:
        # Anonymization off: only columns typed `id` are dropped (they carry no signal to model).
        dropped = {c.name for c in schema.columns if c.type == ColumnType.id}
        pl.scan_parquet(snap.path).drop(sorted(dropped)).sink_parquet(tmpdir / "data.parquet")
        report = {"enabled": False, "dropped": sorted(dropped)}
    return report


def _anonymize_summary(report: dict[str, Any]) -> dict[str, Any]:
    """What may travel in a shareable manifest: settings and column roles, no values, no counts."""
    cols = report.get("columns") or {}
    out: dict[str, Any] = {
        "config_hash": report.get("config_hash"),
        "identifier_columns": {
            n: c.get("operator")
            for n, c in cols.items()
            if isinstance(c, dict) and c.get("role") == "identifier"
        },
        "text_columns": [n for n, c in cols.items() if isinstance(c, dict) and c.get("role") == "text"],
        # Entity *types* only: exact counts of what the real text held are a non-DP statistic
        # and stay in the restricted report.json beside the anonymized data.
        "entity_types_replaced": sorted((report.get("entities") or {}).keys()),
    }
    lines = [f"{n}: {op}" for n, op in out["identifier_columns"].items()]
    lines += [f"{n}: PII spans replaced" for n in out["text_columns"]]
    out["lines"] = lines
    return out
