"""The ingest stage: snapshot the source into the REAL zone as Parquet parts, identified by its content."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from synthgen.catalog import Dataset
from synthgen.errors import SourceError
from synthgen.ids import file_sha256, keyed_hash
from synthgen.schema import TableSchema
from synthgen.source_identity import claims, source_key
from synthgen.sources import infer_schema, open_source, refuse_bad_column_names
from synthgen.spec import PipelineSpec
from synthgen.stages.context import Context, StageResult, pipeline_secret, schema_to_json
from synthgen.storage.parquet import split_parts
from synthgen.zone_io import is_remote, join


def _with_snapshot_nulls(schema: TableSchema, path: Path) -> TableSchema:
    """Nullability from the whole snapshot, not the inference sample: a null past the
    sample, or a NaN/inf (which the encoder reads as null), still makes a column nullable."""
    lf = pl.scan_parquet(path)
    exprs = []
    for name, dtype in lf.collect_schema().items():
        missing = pl.col(name).is_null()
        if dtype.is_float():
            missing = missing | ~pl.col(name).is_finite()
        exprs.append(missing.any().alias(name))
    seen = lf.select(exprs).collect().row(0, named=True) if exprs else {}
    return TableSchema(
        columns=[
            c.model_copy(update={"nullable": c.nullable or bool(seen.get(c.name))}) for c in schema.columns
        ]
    )


def ingest(spec: PipelineSpec, ctx: Context) -> StageResult:
    """Snapshot the source into the REAL zone as Parquet, identified by its content hash.

    The snapshot is a directory of parts ``part-NNNNN.parquet`` of at most ``ingest.part_rows``
    rows each (row order kept); anonymization maps over them (:func:`snapshot_parts`).

    Validates the source (exists, readable, non-empty, overrides name real columns)
    before anything is written; on any error nothing is left behind or catalogued. Two
    processes ingesting one pipeline take turns: the second reuses the first's snapshot.
    """
    from synthgen.orphans import one_at_a_time

    with one_at_a_time(ctx.zones.real, spec.name, "ingest"):
        return _ingest(spec, ctx)


def _ingest(spec: PipelineSpec, ctx: Context) -> StageResult:
    source = open_source(spec)
    ctx.report("ingest", 0, None, source=source.describe())
    sample = source.sample(10_000)
    # Before anything is written or read further: a NUL in a name made polars panic in
    # anonymize, and a repeated CSV name was silently renamed (<name>_duplicated_0).
    refuse_bad_column_names(source.header() or sample.columns, source.describe())
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
        schema = _with_snapshot_nulls(schema, tmp)
        digest = file_sha256(tmp)
        # The id covers the schema too: the same data under changed overrides (bounds, types,
        # categories) is a new snapshot, or a re-run would keep the first run's schema.
        # Keyed (review F3): an unkeyed hash of the real Parquet reaches the shareable manifest's
        # lineage and would confirm any guess of the data; the same content and schema keep one id.
        # The part size is in the id too: parts are the unit anonymization maps over.
        key = keyed_hash(pipeline_secret(spec), digest, schema_to_json(schema), spec.ingest.part_rows)
        dataset_id = f"snap-{key}"
        rel = f"snapshots/{spec.name}/{dataset_id}"
        existing = ctx.catalog.get_dataset(dataset_id)
        if existing is not None and zone.exists(rel):
            ctx.report("ingest", rows, rows)
            return StageResult("ingest", dataset_id, zone.uri(rel), rows, reused=True)
        # Parts of at most ingest.part_rows rows, in row order, published as one directory.
        with zone.atomic_dir(rel) as parts_dir:
            parts = split_parts(tmp, parts_dir, spec.ingest.part_rows)
        final = zone.uri(rel)
    try:
        ctx.catalog.add_dataset(
            Dataset(
                id=dataset_id,
                name=spec.name,
                zone="real",
                kind="snapshot",
                format="parquet",
                path=final,
                rows=rows,
                schema_json=schema_to_json(schema),
                content_hash=digest,
                classification="restricted",
                dp=None,
                tags={
                    "source": source.describe(),
                    "source_claims": claims(spec),
                    "ledger_source": source_key(spec),
                },
                extra={"parts": parts, "part_rows": spec.ingest.part_rows},
                created_by=ctx.user,
            )
        )
    except BaseException:
        zone.remove(rel)
        raise
    ctx.report("ingest", rows, rows)
    return StageResult("ingest", dataset_id, final, rows)


def snapshot_parts(snap: Dataset) -> list[Path] | list[str]:
    """The part files of a snapshot, in row order (a snapshot from before parts is one file).

    Local paths for a local zone; URLs for an object-store zone (always a folder of parts)."""
    if is_remote(snap.path):
        return [join(snap.path, n) for n in snap.extra["parts"]]
    path = Path(snap.path)
    if path.is_file():
        return [path]
    names = snap.extra.get("parts") or sorted(p.name for p in path.glob("part-*.parquet"))
    return [path / n for n in names]
