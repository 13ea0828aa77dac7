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
from collections.abc import Iterator
from contextlib import contextmanager
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
    check_source,
    pipeline_secret,
    require,
    reused,
    schema_from_json,
    schema_to_json,
)
from synthgen.stages.ingest import snapshot_parts
from synthgen.zone_io import join, local, local_all
from synthgen.zones import Zone, Zones


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


def _source_tags(ctx: Context, snapshot_id: str) -> dict[str, Any]:
    """The snapshot's record of where its rows came from, carried to the anonymized data."""
    snap = ctx.catalog.get_dataset(snapshot_id)
    tags = (snap.tags or {}) if snap is not None else {}
    return {k: tags[k] for k in ("source", "source_claims") if k in tags}  # its ledger_source: the spec's


def _plan(spec: PipelineSpec, ctx: Context, snapshot_id: str) -> _AnonPlan:
    """Everything the parts and the merge agree on: the output id, the parts, the settings."""
    snap = require(ctx, snapshot_id, "snapshot")
    check_source(spec, snap)
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
    work_rel = f"anonymized/{spec.name}/parts-{anon_id}"
    real = ctx.zones.real
    work = real.resolve(work_rel) if isinstance(real, Zone) else work_rel
    return _AnonPlan(snap, schema, settings, secret, anon_id, rel, work, snapshot_parts(snap))


@dataclass(frozen=True)
class _AnonPlan:
    snap: Dataset
    schema: TableSchema
    settings: Any
    secret: bytes
    anon_id: str
    rel: str
    #: The parts' working folder: a local path, or a key of an object-store real zone.
    work: Path | str
    parts: list[Path] | list[str]


def plan_anonymize(spec: PipelineSpec, ctx: Context, *, snapshot_id: str) -> int:
    """Decide the columns once and index the identifiers of the whole snapshot; returns the number
    of parts, each then anonymized by :func:`anonymize_part` (in any order, on any worker)."""
    p = _plan(spec, ctx, snapshot_id)
    if p.settings.enabled and reused(ctx, "anonymize", p.anon_id) is None:
        from synthgen.anonymize.parts import PLAN_FILE, PLAN_INDEX, write_plan

        real = ctx.zones.real
        if isinstance(p.work, Path):
            write_plan(p.work, p.parts, schema=p.schema, settings=p.settings, secret=p.secret)
        elif not isinstance(real, Zone) and not real.exists(f"{p.work}/{PLAN_FILE}"):
            with local_all(ctx.zones, p.parts) as parts, real.scratch() as work:
                write_plan(work, parts, schema=p.schema, settings=p.settings, secret=p.secret)
                # The plan file last: a plan file means the index beside it is complete.
                real.upload([(work / n, f"{p.work}/{n}") for n in (PLAN_INDEX, PLAN_FILE)])
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
    if isinstance(p.work, str):
        return _object_part(ctx, p, part_index)
    return str(_part_job(p.work, p.parts[part_index], part_index, p.settings, p.secret))


def _part_job(work: Path, part: Path | str, index: int, settings: Any, secret: bytes) -> Path:
    """One part, in this process or a spawned worker (plain arguments only)."""
    from synthgen.anonymize.parts import anonymize_part_file

    return anonymize_part_file(work, part, index, settings=settings, secret=secret)


def _object_part(ctx: Context, p: _AnonPlan, index: int) -> str:
    """One part of a snapshot in an object-store real zone (see :func:`_object_part_job`)."""
    assert isinstance(p.work, str)
    return _object_part_in(ctx.zones, p.work, p.parts[index], index, p.settings, p.secret)


def _object_part_in(
    zones: Zones, work_rel: str, part: Path | str, index: int, settings: Any, secret: bytes
) -> str:
    """The plan and the part are fetched into the spool, the part is anonymized there and
    uploaded, its ``report.json`` last (a part with a report is complete; a worker killed midway
    left nothing under the part's keys, only a spool folder that the sweep removes)."""
    from synthgen.anonymize.parts import PLAN_FILE, PLAN_INDEX, part_name

    real = zones.real
    assert not isinstance(real, Zone)
    final = f"{work_rel}/{part_name(index)}"
    if real.exists(f"{final}/report.json"):
        return real.uri(final)
    with real.scratch() as work, local(zones, part) as part_file:
        for name in (PLAN_FILE, PLAN_INDEX):
            with real.open(f"{work_rel}/{name}") as src, open(work / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        done = _part_job(work, part_file, index, settings, secret)
        names = ["data.parquet", "leak_index.parquet", "report.json"]
        real.upload([(done / n, f"{final}/{n}") for n in names])
    return real.uri(final)


def _object_part_job(
    roots: tuple[str, str], work_rel: str, part: str, index: int, settings: Any, secret: bytes
) -> str:
    """:func:`_object_part_in` in a spawned worker: it opens the zones itself (plain arguments only)."""
    return _object_part_in(Zones.from_roots(*roots), work_rel, part, index, settings, secret)


@contextmanager
def _local_work(ctx: Context, p: _AnonPlan) -> Iterator[Path]:
    """The parts' working folder as a local path (a spooled copy for an object-store zone)."""
    if isinstance(p.work, Path):
        yield p.work
        return
    real = ctx.zones.real
    assert not isinstance(real, Zone)
    with real.fetch(p.work) as work:
        yield work


def anonymize(spec: PipelineSpec, ctx: Context, *, snapshot_id: str, workers: int = 1) -> StageResult:
    """Remove direct identifiers (columns and PII in text) with Presidio. Output stays in the REAL zone.

    The output is still real data (anonymization is not DP), so it is restricted and lives
    beside its report and the leak index (keyed hashes of the identifier values seen, for
    scanning synthetic outputs later). The snapshot's parts run on ``workers`` local processes
    (spawned); the output is the same for any number of workers.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    from synthgen.orphans import one_at_a_time

    # Two runs of one pipeline would share the parts' folder and output id: they take turns,
    # and the second reuses the first's output.
    with one_at_a_time(ctx.zones.real, spec.name, "anonymize"):
        return _anonymize(spec, ctx, snapshot_id, workers)


def _anonymize(spec: PipelineSpec, ctx: Context, snapshot_id: str, workers: int) -> StageResult:
    p = _plan(spec, ctx, snapshot_id)
    if (prior := reused(ctx, "anonymize", p.anon_id)) is not None:
        return prior
    n = plan_anonymize(spec, ctx, snapshot_id=snapshot_id)
    ctx.report("anonymize", 0, p.snap.rows)
    if p.settings.enabled:
        _run_parts(p, ctx, min(workers, n))
    return merge_anonymized(spec, ctx, snapshot_id=snapshot_id)


def _run_parts(p: _AnonPlan, ctx: Context, workers: int) -> None:
    job_fn: Any = _part_job
    jobs: list[tuple[Any, ...]]
    if isinstance(p.work, str):  # an object-store zone: each part fetches and uploads its own files
        roots = (str(ctx.zones.real.root), str(ctx.zones.synthetic.root))
        job_fn = _object_part_job
        jobs = [(roots, p.work, str(part), i, p.settings, p.secret) for i, part in enumerate(p.parts)]
    else:
        jobs = [(p.work, part, i, p.settings, p.secret) for i, part in enumerate(p.parts)]
    done = 0
    if workers <= 1:
        for i in range(len(jobs)):
            if isinstance(p.work, str):
                _object_part(ctx, p, i)  # this process's zones: no second opening
            else:
                _part_job(*jobs[i])
            done += 1
            ctx.report("anonymize", done / len(jobs) * (p.snap.rows or 0), p.snap.rows)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn, not fork: a forked child would inherit this process's threads (polars, torch) mid-state.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for fut in as_completed([pool.submit(job_fn, *job) for job in jobs]):
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
        report = _anonymize_into(tmpdir, p, ctx)
        (tmpdir / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        rows = pl.scan_parquet(tmpdir / "data.parquet").select(pl.len()).collect().item()
        out_cols = set(pl.read_parquet_schema(tmpdir / "data.parquet"))
        digest = file_sha256(tmpdir / "data.parquet")
    path = zone.uri(p.rel)
    kept = [c for c in p.schema.columns if c.name in out_cols and c.type != ColumnType.id]
    summary = _anonymize_summary(report)
    extra = {
        "report_path": join(path, "report.json"),
        "leak_index": join(path, "leak_index.parquet") if p.settings.enabled else None,
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
            path=join(path, "data.parquet"),
            rows=rows,
            schema_json=schema_to_json(TableSchema(columns=kept)),
            content_hash=digest,
            classification="restricted",
            dp=None,
            tags={"ledger_source": source_key(spec), **_source_tags(ctx, snapshot_id)},
            extra=extra,
            created_by=ctx.user,
        ),
        parents=[snapshot_id],
    )
    # catalogued: the parts are no longer needed
    if isinstance(p.work, Path):
        shutil.rmtree(p.work, ignore_errors=True)
    else:
        zone.remove(p.work)
    ctx.report("anonymize", rows, rows)
    return StageResult("anonymize", p.anon_id, join(path, "data.parquet"), rows, extra=extra)


def _anonymize_into(tmpdir: Path, p: _AnonPlan, ctx: Context) -> dict[str, Any]:
    """Write ``data.parquet`` (and the leak index) into ``tmpdir``; returns the restricted report."""
    if p.settings.enabled:
        from synthgen.anonymize.parts import merge_parts

        with _local_work(ctx, p) as work:
            return merge_parts(work, len(p.parts), tmpdir, secret=p.secret)
    # Anonymization off: only columns typed `id` are dropped (they carry no signal to model).
    dropped = {c.name for c in p.schema.columns if c.type == ColumnType.id}
    with local_all(ctx.zones, p.parts) as parts:
        pl.scan_parquet([str(f) for f in parts]).drop(sorted(dropped)).sink_parquet(tmpdir / "data.parquet")
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
