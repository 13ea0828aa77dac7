"""The pipeline stages: one function per stage, shared by the CLI and the Airflow DAGs.

Each stage takes the spec and a :class:`Context`, reads its inputs by catalog id,
writes its outputs atomically into the right zone, catalogues them, and returns a
small :class:`StageResult` (ids and paths only, so it can travel over XCom). Every
stage is idempotent for the same inputs: its output id is derived from the input
ids and the settings, and an output that already exists is returned as is. Retries
are therefore safe, and a retry never charges the privacy budget twice.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from synthgen.catalog import Catalog, Dataset
from synthgen.errors import SourceError
from synthgen.schema import TableSchema
from synthgen.sources import infer_schema, open_source
from synthgen.spec import PipelineSpec
from synthgen.zones import Zones

Progress = Callable[..., None]


@dataclass
class Context:
    """What every stage needs besides the spec: where to store, where to record, who acts."""

    catalog: Catalog
    zones: Zones
    user: str = field(default_factory=lambda: os.environ.get("SYNTHGEN_USER") or _login())
    #: Optional progress callback: progress(stage, done, total, **info).
    progress: Progress | None = None

    @classmethod
    def from_env(cls, progress: Progress | None = None) -> Context:
        return cls(catalog=Catalog.from_env(), zones=Zones.from_env(), progress=progress)

    def report(self, stage: str, done: float, total: float | None = None, **info: Any) -> None:
        if self.progress is not None:
            self.progress(stage, done, total, **info)


@dataclass
class StageResult:
    stage: str
    dataset_id: str
    path: str
    rows: int | None = None
    reused: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def settings_hash(*parts: Any) -> str:
    """Stable short hash of JSON-able settings and ids (for idempotent output ids)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def schema_to_json(schema: TableSchema) -> dict[str, Any]:
    return schema.model_dump(mode="json")


def schema_from_json(data: dict[str, Any]) -> TableSchema:
    return TableSchema.model_validate(data)


# -- ingest -------------------------------------------------------------------


def ingest(spec: PipelineSpec, ctx: Context) -> StageResult:
    """Snapshot the source into the REAL zone as Parquet, identified by its content hash.

    Validates the source (exists, readable, non-empty, overrides name real columns)
    before anything is written; on any error nothing is left behind or catalogued.
    """
    source = open_source(spec)
    ctx.report("ingest", 0, None, source=source.describe())
    sample = source.sample(10_000)
    text_cols = list(spec.anonymize.text_columns)
    if spec.source.kind == "jsonl":
        text_cols.append(spec.source.text_field)
    schema = infer_schema(sample, spec.columns, text_cols)  # unknown override columns fail here
    if sample.width == 0:
        raise SourceError(f"{source.describe()}: no columns")

    zone = ctx.zones.real
    with zone.staging(f"snapshots/{spec.name}", suffix=".parquet") as tmp:
        source.sink_parquet(tmp)
        rows = pl.scan_parquet(tmp).select(pl.len()).collect().item()
        if rows == 0:
            raise SourceError(f"{source.describe()}: the table is empty (0 rows)")
        digest = file_sha256(tmp)
        dataset_id = f"snap-{digest[:20]}"
        rel = f"snapshots/{spec.name}/{dataset_id}.parquet"
        existing = ctx.catalog.get_dataset(dataset_id)
        if existing is not None and zone.exists(rel):
            ctx.report("ingest", rows, rows)
            return StageResult("ingest", dataset_id, str(zone.resolve(rel)), rows, reused=True)
        final = zone.commit(tmp, rel)
    try:
        ctx.catalog.add_dataset(
            Dataset(
                id=dataset_id,
                name=spec.name,
                zone="real",
                kind="snapshot",
                format="parquet",
                path=str(final),
                rows=rows,
                schema_json=schema_to_json(schema),
                content_hash=digest,
                classification="restricted",
                dp=None,
                tags={"source": source.describe()},
                extra={},
                created_by=ctx.user,
            )
        )
    except BaseException:
        final.unlink(missing_ok=True)
        raise
    ctx.report("ingest", rows, rows)
    return StageResult("ingest", dataset_id, str(final), rows)


def latest(ctx: Context, name: str, kind: str) -> Dataset | None:
    """The newest catalogued dataset of a pipeline and kind."""
    found = [d for d in ctx.catalog.list_datasets(kind=kind) if d.name == name]
    return found[-1] if found else None
