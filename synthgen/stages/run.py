"""A whole run: every stage in order (the CLI's ``run`` and ``demo``; DAGs call the stages one by one)."""

from __future__ import annotations

import os
from typing import Any

from synthgen.catalog import Dataset
from synthgen.source_identity import source_key
from synthgen.spec import PipelineSpec
from synthgen.stages.anonymize import anonymize
from synthgen.stages.context import Context, StageResult, latest_required
from synthgen.stages.evaluate import evaluate
from synthgen.stages.generate import generate_all
from synthgen.stages.ingest import ingest
from synthgen.stages.publish import publish
from synthgen.stages.train import train
from synthgen.zone_io import exists


def new_run_id(prefix: str = "cli") -> str:
    from datetime import datetime, timezone

    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}"


def shards_of_run(ctx: Context, spec: PipelineSpec, run_id: str) -> list[str]:
    shards = [
        d
        for d in ctx.catalog.list_datasets(kind="staging")
        if d.name == spec.name and d.tags.get("run_id") == run_id and exists(ctx.zones, d.path)
    ]
    return [d.id for d in sorted(shards, key=lambda d: int(d.tags.get("shard", "0")))]


def latest_run(ctx: Context, spec: PipelineSpec, *, hint: str) -> tuple[Dataset, str, list[str]]:
    """The newest model of a pipeline, its run id, and that run's shards (generated if missing)."""
    model = latest_required(ctx, spec, "model", hint)
    run_id = model.extra.get("run_id") or model.id
    shard_ids = shards_of_run(ctx, spec, run_id)
    if not shard_ids:
        shard_ids = [r.dataset_id for r in generate_all(spec, ctx, model_id=model.id, run_id=run_id)]
    return model, run_id, shard_ids


def run_pipeline(
    spec: PipelineSpec, ctx: Context, *, run_id: str | None = None, workers: int = 1
) -> dict[str, Any]:
    """Every stage in order, as one run (the CLI's and the demo's path; DAGs call the stages one by one).

    ``workers``: local processes that anonymize the snapshot's parts.
    """
    from synthgen.orphans import run_alive

    run_id = run_id or new_run_id()
    # Held for the whole run: a run killed outright leaves its lock free, and the next sweep
    # removes its staging shards (synthgen.orphans).
    with run_alive(ctx.zones.real, spec.name, run_id):
        return _stages(spec, ctx, run_id, workers)


def _stages(spec: PipelineSpec, ctx: Context, run_id: str, workers: int) -> dict[str, Any]:
    results: dict[str, Any] = {"run_id": run_id}
    results["ingest"] = ctx.staged("ingest", ingest, spec, ctx)
    results["anonymize"] = ctx.staged(
        "anonymize", anonymize, spec, ctx, snapshot_id=results["ingest"].dataset_id, workers=workers
    )
    anonymized_id = results["anonymize"].dataset_id
    results["train"] = ctx.staged("train", train, spec, ctx, anonymized_id=anonymized_id, run_id=run_id)
    model_id = results["train"].dataset_id
    shards = ctx.staged("generate", generate_all, spec, ctx, model_id=model_id, run_id=run_id)
    results["generate"] = shards
    shard_ids = [s.dataset_id for s in shards]
    report_id = None
    if spec.evaluate.enabled:
        results["evaluate"] = ctx.staged(
            "evaluate", evaluate, spec, ctx, model_id=model_id, shard_ids=shard_ids, run_id=run_id
        )
        report_id = results["evaluate"].dataset_id
    results["publish"] = ctx.staged(
        "publish",
        publish,
        spec,
        ctx,
        model_id=model_id,
        shard_ids=shard_ids,
        run_id=run_id,
        report_id=report_id,
    )
    return results


# -- evaluate -------------------------------------------------------------------


def summarize(spec: PipelineSpec, ctx: Context, results: dict[str, Any]) -> dict[str, Any]:
    """The short summary the CLI prints after a whole run."""
    from synthgen.privacy.budget import standing

    pub: StageResult = results["publish"]
    train_r: StageResult = results["train"]
    model = ctx.catalog.get_dataset(train_r.dataset_id)
    source = (model.extra.get("ledger_source") if model else None) or source_key(spec)
    now = standing(ctx.catalog, source)
    out: dict[str, Any] = {
        "run": results["run_id"],
        "dataset": f"{pub.extra.get('name')} ({pub.dataset_id})",
        "rows": pub.rows,
        "dp": pub.extra.get("dp"),
        "model": train_r.extra.get("model", spec.model.kind),
        "epsilon (this run)": train_r.extra.get("epsilon"),
        "budget source": source,
        "epsilon charged (source)": now.charged_epsilon,
        "epsilon remaining": f"{now.remaining_epsilon:.4g} of cap {now.cap_epsilon:.4g}",
        "delta charged (source)": f"{now.charged_delta:.3g} of cap {now.cap_delta:.3g}",
    }
    ev = results.get("evaluate")
    if ev is not None:
        out.update({k: v for k, v in ev.extra.get("headline", {}).items()})
        out["report (restricted)"] = ev.path
        for i, alert in enumerate(ev.extra.get("alerts", []), 1):
            out[f"alert {i}"] = alert
    for i, warning in enumerate(train_r.extra.get("warnings", []), 1):
        out[f"warning {i}"] = warning
    out["encrypted dataset"] = pub.path
    return out
