"""The publish stage: assemble the shards and encrypt them into the SYNTHETIC zone for the allowed roles."""

from __future__ import annotations

import polars as pl

from synthgen.ids import settings_hash
from synthgen.spec import PipelineSpec
from synthgen.stages.context import Context, StageResult, require, result_extra, reused
from synthgen.zone_io import local_all, remove


def publish(
    spec: PipelineSpec,
    ctx: Context,
    *,
    model_id: str,
    shard_ids: list[str],
    run_id: str,
    report_id: str | None = None,
) -> StageResult:
    """Assemble the shards, encrypt them into the SYNTHETIC zone for the allowed roles, catalogue, audit.

    Each text column is published as the text quality gate decided at training time (generated,
    left out or all null: ``model.text.fallback``), whatever the shards hold.
    The manifest carries public and DP-derived facts only (:mod:`synthgen.manifest`); the
    evaluation scores stay with the restricted report (``report_id`` is not read).
    The plaintext shards are removed once the encrypted dataset is in place.
    """
    from synthgen.access.publish import publish_dataset
    from synthgen.manifest import shareable_manifest
    from synthgen.models.text.gate import follow_gate, text_outputs

    model = require(ctx, model_id, "model")
    dataset_id = "syn-" + settings_hash(model_id, sorted(shard_ids), run_id)
    if (prior := reused(ctx, "publish", dataset_id)) is not None:
        return prior
    shards = [require(ctx, sid, "staging") for sid in shard_ids]
    zone = ctx.zones.synthetic if model.dp else ctx.zones.real
    anon_id = ctx.catalog.parents(model_id)[0]
    snapshot_ids = ctx.catalog.parents(anon_id)
    epsilon = model.extra.get("epsilon")
    with zone.staging(f"staging/{spec.name}/{run_id}", suffix=".parquet") as assembled:
        with local_all(ctx.zones, [s.path for s in shards]) as shard_files:  # spooled when on a store
            # The text quality gate's decision, applied again here: a withheld column never ships.
            frame = follow_gate(pl.scan_parquet(shard_files), text_outputs(model.extra.get("text")))
            frame.sink_parquet(assembled, compression="zstd")
        rows = pl.scan_parquet(assembled).select(pl.len()).collect().item()
        schema = {k: str(v) for k, v in pl.read_parquet_schema(assembled).items()}
        manifest = shareable_manifest(
            spec=spec,
            model_id=model_id,
            model_extra=model.extra,
            anonymized_id=anon_id,
            snapshot_ids=snapshot_ids,
            run_id=run_id,
            rows=rows,
            schema=schema,
        )
        ds = publish_dataset(
            plaintext_parquet=assembled,
            name=spec.synthetic_name,
            manifest=manifest,
            dp=bool(model.dp),
            classification=spec.output.access.classification,
            roles=spec.output.access.roles,
            tags=spec.output.access.tags,
            parents=[model_id],
            catalog=ctx.catalog,
            zones=ctx.zones,
            user=ctx.user,
            epsilon=epsilon,
            dataset_id=dataset_id,
        )
    for s in shards:
        remove(ctx.zones, s.path)
    return StageResult("publish", ds.id, ds.path, ds.rows, extra=result_extra("publish", ds))
