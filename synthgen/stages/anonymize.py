"""The anonymize stage: remove direct identifiers with Presidio; the output stays in the REAL zone.

Mapped over the snapshot's parts: :func:`plan_anonymize` once, :func:`anonymize_part` per part
(a local process pool in the CLI, a mapped task in Airflow), :func:`merge_anonymized` once.
:func:`anonymize` does all three. See :mod:`synthgen.anonymize.parts` for why the output does
not depend on the number of workers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from synthgen.catalog import Dataset
from synthgen.errors import AnonymizeError
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
from synthgen.stages.ingest import snapshot_parts


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


def _plan(spec: PipelineSpec, ctx: Context, snapshot_id: str) -> _AnonPlan:
    """Everything the parts and the merge agree on: the output id, the parts, the settings."""
    snap = require(ctx, snapshot_id, "snapshot")
    schema = _with_declared_identifiers(schema_from_json(snap.schema_json), spec)
    settings = anonymize_settings(spec)
    secret = pipeline_secret(spec)
    # The config file's content, not only its path: an edited config must not reuse what an
    # earlier config made (catalogued output or a killed run's finished parts).
    from synthgen.anonymize.engine import load_config

    anon_id = "anon-" + settings_hash(
        snapshot_id,
        settings.model_dump(mode="json"),
        load_config(settings.config).digest,
        schema_to_json(schema),
        hashlib.sha256(secret).hexdigest(),
    )
    rel = f"anonymized/{spec.name}/{anon_id}"
    # The parts' working directory: keyed like the output, so a retry finds its finished parts.
    work = ctx.zones.real.resolve(f"anonymized/{spec.name}/parts-{anon_id}")
    return _AnonPlan(snap, schema, settings, secret, anon_id, rel, work, snapshot_parts(snap))


@dataclass(frozen=True)
class _AnonPlan:
    snap: Dataset
    schema: TableSchema
    settings: Any
    secret: bytes
    anon_id: str
    rel: str
    work: Path
    parts: list[Path]


def plan_anonymize(spec: PipelineSpec, ctx: Context, *, snapshot_id: str) -> int:
    """Decide the columns once and index the identifiers of the whole snapshot; returns the number
    of parts, each then anonymized by :func:`anonymize_part` (in any order, on any worker)."""
    p = _plan(spec, ctx, snapshot_id)
    if p.settings.enabled and reused(ctx, "anonymize", p.anon_id) is None:
        from synthgen.anonymize.parts import write_plan

        write_plan(p.work, p.parts, schema=p.schema, settings=p.settings, secret=p.secret)
    return len(p.parts)


def anonymize_part(spec: PipelineSpec, ctx: Context, *, snapshot_id: str, part_index: int) -> str:
    """Anonymize part ``part_index`` of the snapshot (written atomically, keyed by its index).

    Idempotent: a finished part is kept, a part killed midway left only a temporary directory.
    Returns the part's directory ('' when there is nothing to do: output exists, or anonymization is off).
    """
    p = _plan(spec, ctx, snapshot_id)
    if not 0 <= part_index < len(p.parts):
        raise AnonymizeError(f"snapshot {snapshot_id} has {len(p.parts)} parts; no part {part_index}")
    if not p.settings.enabled or reused(ctx, "anonymize", p.anon_id) is not None:
        return ""
    return str(_part_job(p.work, p.parts[part_index], part_index, p.settings, p.secret))


def _part_job(work: Path, part: Path, index: int, settings: Any, secret: bytes) -> Path:
    """One part, in this process or a spawned worker (plain arguments only)."""
    from synthgen.anonymize.parts import anonymize_part_file

    return anonymize_part_file(work, part, index, settings=settings, secret=secret)


def anonymize(spec: PipelineSpec, ctx: Context, *, snapshot_id: str, workers: int = 1) -> StageResult:
    """Remove direct identifiers (columns and PII in text) with Presidio. Output stays in the REAL zone.

    The output is still real data (anonymization is not DP), so it is restricted and lives
    beside its report and the leak index (keyed hashes of the identifier values seen, for
    scanning synthetic outputs later). The snapshot's parts run on ``workers`` local processes
    (spawned); the output is the same for any number of workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    p = _plan(spec, ctx, snapshot_id)
    if (prior := reused(ctx, "anonymize", p.anon_id)) is not None:
        return prior
    n = plan_anonymize(spec, ctx, snapshot_id=snapshot_id)
    ctx.report("anonymize", 0, p.snap.rows)
    if p.settings.enabled:
        _run_parts(p, ctx, min(workers, n))
    return merge_anonymized(spec, ctx, snapshot_id=snapshot_id)


def _run_parts(p: _AnonPlan, ctx: Context, workers: int) -> None:
    jobs = [(p.work, part, i, p.settings, p.secret) for i, part in enumerate(p.parts)]
    done = 0
    if workers <= 1:
        for job in jobs:
            _part_job(*job)
            done += 1
            ctx.report("anonymize", done / len(jobs) * (p.snap.rows or 0), p.snap.rows)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child would inherit this process's threads (polars, torch) mid-state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(_part_job, *job) for job in jobs]):
            fut.result()
            done += 1
            ctx.report("anonymize", done / len(jobs) * (p.snap.rows or 0), p.snap.rows)


def merge_anonymized(spec: PipelineSpec, ctx: Context, *, snapshot_id: str) -> StageResult:
    """Merge the anonymized parts into one dataset, one report and one leak index, and catalogue it."""
    p = _plan(spec, ctx, snapshot_id)
    if (prior := reused(ctx, "anonymize", p.anon_id)) is not None:
        return prior
    zone = ctx.zones.real
    with zone.atomic_dir(p.rel) as tmpdir:
        report = _anonymize_into(tmpdir, p)
        (tmpdir / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        rows = pl.scan_parquet(tmpdir / "data.parquet").select(pl.len()).collect().item()
        out_cols = set(pl.read_parquet_schema(tmpdir / "data.parquet"))
    path = zone.resolve(p.rel)
    kept = [c for c in p.schema.columns if c.name in out_cols and c.type != ColumnType.id]
    summary = _anonymize_summary(report)
    extra = {
        "report_path": str(path / "report.json"),
        "leak_index": str(path / "leak_index.parquet") if p.settings.enabled else None,
        "report_summary": summary,
        "summary": summary.get("lines", []),
    }
    ctx.catalog.add_dataset(
        Dataset(
            id=p.anon_id,
            name=spec.name,
            zone="real",
            kind="anonymized",
            format="parquet",
            path=str(path / "data.parquet"),
            rows=rows,
            schema_json=schema_to_json(TableSchema(columns=kept)),
            content_hash=file_sha256(path / "data.parquet"),
            classification="restricted",
            dp=None,
            tags={"ledger_source": source_key(spec)},
            extra=extra,
            created_by=ctx.user,
        ),
        parents=[snapshot_id],
    )
    shutil.rmtree(p.work, ignore_errors=True)  # catalogued: the parts are no longer needed
    ctx.report("anonymize", rows, rows)
    return StageResult("anonymize", p.anon_id, str(path / "data.parquet"), rows, extra=extra)


def _anonymize_into(tmpdir: Path, p: _AnonPlan) -> dict[str, Any]:
    """Write ``data.parquet`` (and the leak index) into ``tmpdir``; returns the restricted report."""
    if p.settings.enabled:
        from synthgen.anonymize.parts import merge_parts

        return merge_parts(p.work, len(p.parts), tmpdir, secret=p.secret)
    # Anonymization off: only columns typed `id` are dropped (they carry no signal to model).
    dropped = {c.name for c in p.schema.columns if c.type == ColumnType.id}
    pl.scan_parquet([str(f) for f in p.parts]).drop(sorted(dropped)).sink_parquet(tmpdir / "data.parquet")
    return {"enabled": False, "dropped": sorted(dropped)}


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
