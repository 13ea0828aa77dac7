"""The generate stage: sample synthetic rows from a trained model, shard by shard, in bounded memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from synthgen.catalog import Dataset
from synthgen.errors import SpecError
from synthgen.ids import file_sha256, settings_hash
from synthgen.spec import PipelineSpec
from synthgen.stages.context import Context, StageResult, require, reused
from synthgen.zone_io import local


def total_rows(spec: PipelineSpec, ctx: Context, model_id: str) -> int:
    return int(spec.output.rows or 10_000)


def plan_shards(spec: PipelineSpec, rows: int | None = None) -> int:
    n = rows or spec.output.rows or 10_000
    return max(1, -(-n // spec.output.shard_rows))


def generate(
    spec: PipelineSpec, ctx: Context, *, model_id: str, run_id: str, shard: int = 0, n_shards: int = 1
) -> StageResult:
    """Sample one shard of the synthetic rows (bounded memory) into the synthetic zone's staging area.

    Rows are split evenly over shards; shard ``i`` uses a seed derived from the run and ``i``,
    so a retried shard produces the same rows.
    """
    from synthgen.models.base import Synthesizer

    if not 0 <= shard < n_shards:
        raise SpecError(f"shard {shard} is outside 0..{n_shards - 1}")
    model_ds = require(ctx, model_id, "model")
    n = total_rows(spec, ctx, model_id)
    rows = n // n_shards + (1 if shard < n % n_shards else 0)
    seed = int(settings_hash(run_id, shard, spec.model.seed), 16) % (2**31)
    shard_id = f"shard-{settings_hash(model_id, run_id, shard, n_shards, n)}"
    zone = ctx.zones.synthetic if model_ds.dp else ctx.zones.real
    rel = f"staging/{spec.name}/{run_id}/{shard_id}.parquet"
    if (prior := reused(ctx, "generate", shard_id)) is not None:
        return prior

    text: dict[str, Any] | None = model_ds.extra.get("text", {}).get("columns", {}) or None
    # A model in an object-store zone is fetched into the spool (torch loads from paths).
    with local(ctx.zones, model_ds.path) as root, zone.atomic_path(rel) as tmp:
        synth = Synthesizer.load(root / "tabular")
        _write_shard(
            tmp, synth, rows, seed, text=text, root=root, report=ctx.report, stage=f"generate shard {shard}"
        )
        digest = file_sha256(tmp)
    path = zone.uri(rel)
    ctx.catalog.add_dataset(
        Dataset(
            id=shard_id,
            name=spec.name,
            zone=zone.name,
            kind="staging",
            format="parquet",
            path=path,
            rows=rows,
            schema_json={},
            content_hash=digest,
            classification="internal",
            dp=model_ds.dp,
            tags={"run_id": run_id, "shard": str(shard)},
            extra={},
            created_by=ctx.user,
        ),
        parents=[model_id],
    )
    return StageResult("generate", shard_id, path, rows)


def _write_shard(
    tmp: Path,
    synth: Any,
    rows: int,
    seed: int,
    *,
    text: dict[str, Any] | None,
    root: Path,
    report: Any,
    stage: str,
) -> None:
    """Stream ``rows`` sampled rows (text columns filled in) into one Parquet file, batch by batch."""
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    done = 0
    try:
        for i, batch in enumerate(synth.sample_batches(rows, seed=seed, batch_rows=50_000)):
            if text:
                batch = _fill_text(batch, root, text, seed + i)
            table = batch.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            done += batch.height
            report(stage, done, rows)
        if writer is None:
            synth.sample(0).write_parquet(tmp)
    finally:
        if writer is not None:
            writer.close()


def _fill_text(batch: pl.DataFrame, root: Path, columns: dict[str, Any], seed: int) -> pl.DataFrame:
    """Generate each text column the quality gate lets through; drop or null the others."""
    from synthgen.models.text.gate import follow_gate, text_outputs

    outputs = text_outputs({"columns": columns})
    for col, info in columns.items():
        if outputs[col] != "generated":
            continue  # withheld by the gate: not generated at all
        from synthgen.models.text import DPTextModel

        model = DPTextModel.load(root / "text" / col)
        conds = info.get("condition_on") or []
        texts = model.generate(batch.select(conds) if conds else None, batch.height, seed=seed)
        batch = batch.with_columns(pl.Series(col, texts, dtype=pl.String))
    return follow_gate(batch, outputs)


# -- secrets --------------------------------------------------------------------


def generate_all(spec: PipelineSpec, ctx: Context, *, model_id: str, run_id: str) -> list[StageResult]:
    n_shards = plan_shards(spec)
    return [
        generate(spec, ctx, model_id=model_id, run_id=run_id, shard=i, n_shards=n_shards)
        for i in range(n_shards)
    ]
