"""The evaluate stage: the restricted report (HTML + JSON) comparing synthetic with real rows.

It reads real rows (the holdout, the training split, the leak index), so the report lives
in the REAL zone, restricted (P1, P9). The leak scan (P8) runs here.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from synthgen.catalog import Dataset
from synthgen.errors import SpecError
from synthgen.ids import file_sha256, settings_hash
from synthgen.spec import PipelineSpec
from synthgen.stages.anonymize import anonymize_settings
from synthgen.stages.context import Context, StageResult, pipeline_secret, require, reused, schema_from_json
from synthgen.zone_io import exists, join, local, read_frame, sibling


def _read_shards(ctx: Context, shard_ids: list[str]) -> pl.DataFrame:
    paths = [require(ctx, sid, "staging").path for sid in shard_ids]
    if not paths:
        raise SpecError("no generated shards to read; run `synthgen generate` first")
    return pl.concat([read_frame(ctx.zones, p) for p in paths], how="vertical_relaxed")


def _training_split(
    spec: PipelineSpec, ctx: Context, model: Dataset
) -> tuple[Dataset, pl.DataFrame, pl.DataFrame]:
    """The anonymized parent, and the same (train, holdout) split the model was trained with."""
    from synthgen.evaluate.holdout import holdout_key, split_holdout

    anon_id = next(p for p in ctx.catalog.parents(model.id))
    anon = require(ctx, anon_id, "anonymized")
    # The split the model was trained with (recorded at training time), not today's spec.
    fraction = float(model.extra.get("holdout_fraction", spec.evaluate.holdout))
    key = holdout_key(pipeline_secret(spec))
    train_frame, holdout = split_holdout(read_frame(ctx.zones, anon.path), fraction, key=key)
    return anon, train_frame, holdout


def _leak_scan(
    spec: PipelineSpec, ctx: Context, anon: Dataset, synthetic: pl.DataFrame
) -> dict[str, Any] | None:
    """Exact occurrences of real identifier values in the synthetic output (P8; expected 0),
    and a Presidio scan of its text columns. Counts only: the values never leave the scanner."""
    from synthgen.anonymize import LeakIndex, scan_pii
    from synthgen.schema import ColumnType

    result: dict[str, Any] = {}
    index_path = anon.extra.get("leak_index")
    if index_path and exists(ctx.zones, index_path):
        with local(ctx.zones, index_path) as index_file:
            index = LeakIndex.load(index_file, secret=pipeline_secret(spec))
        report = index.scan(synthetic)
        result["real_values_found"] = report.total
        result["per_column"] = {c: sum(v.values()) for c, v in report.by_column().items()}
        result["rows_scanned"] = report.rows_scanned
    schema = schema_from_json(anon.schema_json)
    text_cols = [c.name for c in schema.columns if c.type == ColumnType.text and c.name in synthetic.columns]
    if text_cols:
        docs = synthetic.select(text_cols).head(_TEXT_SCAN_ROWS)
        found = scan_pii(docs, config=anonymize_settings(spec).config, limit=_TEXT_SCAN_ROWS)
        entities: dict[str, int] = {}
        for per_col in found.values():
            for ent, n in per_col.items():
                entities[ent] = entities.get(ent, 0) + n
        result["text_scan"] = {"columns": text_cols, "documents": docs.height, "entities": entities}
    return result or None


def _text_metrics(
    spec: PipelineSpec,
    model: Dataset,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    ctx: Context | None = None,
) -> dict[str, Any] | None:
    """Perplexity on held-out real text, diversity and lengths, per synthesized text column,
    the quality gate's decision, and with ``evaluate.text_canary`` the canary exposure of a
    model configured like this one and trained on the synthetic text.

    A column the gate withheld (left out, or all null) has no synthetic text to describe: its
    entry holds the holdout perplexity and the gate only."""
    columns: dict[str, Any] = model.extra.get("text", {}).get("columns", {})
    if not columns:
        return None
    from synthgen.models.text import DPTextModel, canary_exposure, holdout_perplexity, text_metrics
    from synthgen.models.text.gate import text_outputs

    outputs = text_outputs(model.extra.get("text"))
    out: dict[str, Any] = {}
    for col, info in columns.items():
        if col not in holdout.columns:
            continue
        with local(ctx.zones if ctx else None, join(model.path, "text", col)) as model_dir:
            tm = DPTextModel.load(model_dir)
        conds = [c for c in info.get("condition_on") or [] if c in holdout.columns]
        sample = holdout.head(_TEXT_SCAN_ROWS)
        sample_conds = sample.select(conds) if conds else None
        published = outputs[col] == "generated" and col in synthetic.columns
        if published:
            out[col] = text_metrics(
                sample[col], synthetic[col].head(_TEXT_SCAN_ROWS), tm, holdout_conditions=sample_conds
            )
        else:
            out[col] = holdout_perplexity(sample[col], tm, holdout_conditions=sample_conds)
        if info.get("gate"):
            out[col]["gate"] = info["gate"]
        if spec.evaluate.text_canary and published:
            # Same settings, epsilon and delta as the released text model, but trained on the
            # synthetic text (DP output: post-processing, free) so no uncharged model sees real
            # text. The figures still go to the restricted report only.
            syn = synthetic.filter(pl.col(col).is_not_null())
            out[col]["canary"] = canary_exposure(
                syn[col],
                syn.select(conds) if conds else None,
                settings=tm.settings,
                epsilon=tm.privacy_record_.target_epsilon,
                delta=tm.privacy_record_.target_delta,
                dp=tm.dp,
                categories=tm.tokenizer_.categories,
                k=spec.evaluate.text_canary,
                seed=spec.evaluate.seed,
                device=spec.model.device,
                accountant=tm.accountant,
            )
    return out or None


#: Synthetic documents per text column given to the Presidio scan in the report.
_TEXT_SCAN_ROWS = 1_000


def evaluate(
    spec: PipelineSpec, ctx: Context, *, model_id: str, shard_ids: list[str], run_id: str
) -> StageResult:
    """Write the evaluation report (HTML + JSON) to the REAL zone, restricted: it compares with real rows."""
    from synthgen.evaluate import evaluate as evaluate_frames
    from synthgen.evaluate.html import render as render_report

    model = require(ctx, model_id, "model")
    report_id = "report-" + settings_hash(model_id, sorted(shard_ids), spec.evaluate.model_dump(mode="json"))
    if (prior := reused(ctx, "evaluate", report_id)) is not None:
        return prior
    anon, train_frame, holdout = _training_split(spec, ctx, model)
    synthetic = _read_shards(ctx, shard_ids)
    ctx.report("evaluate", 0, None, section="leak scan")
    leaks = _leak_scan(spec, ctx, anon, synthetic)
    privacy = {"dp": bool(model.dp), "epsilon": model.extra.get("epsilon"), "delta": model.extra.get("delta")}
    text = _text_metrics(spec, model, holdout, synthetic, ctx)
    result = evaluate_frames(
        text=text,
        train=train_frame,
        holdout=holdout,
        synthetic=synthetic,
        schema=schema_from_json(anon.schema_json),
        settings=spec.evaluate,
        privacy=privacy,
        leaks=leaks,
        progress=ctx.progress,
    )
    summary = result.summary
    headline = _headline(summary)
    rel = f"reports/{spec.name}/{report_id}"
    with ctx.zones.real.atomic_dir(rel) as d:
        (d / "report.html").write_text(render_report(result), encoding="utf-8")
        (d / "summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
        digest = file_sha256(d / "report.html")
    path = join(ctx.zones.real.uri(rel), "report.html")
    _catalogue(
        spec,
        ctx,
        report_id=report_id,
        path=path,
        digest=digest,
        summary=summary,
        headline=headline,
        ids=(model_id, run_id),
    )
    ctx.catalog.add_scores(report_id, headline)
    alerts = [str(a) for a in summary.get("alerts", [])]
    verdict = {k: summary[k] for k in ("verdict", "verdict_words", "look_first", "rows")}
    return StageResult("evaluate", report_id, path, extra={"headline": headline, "alerts": alerts, **verdict})


def _catalogue(
    spec: PipelineSpec,
    ctx: Context,
    *,
    report_id: str,
    path: str,
    digest: str,
    summary: dict[str, Any],
    headline: dict[str, float | None],
    ids: tuple[str, str],
) -> None:
    """The report's catalog row: restricted, in the REAL zone, with its headline and verdict."""
    model_id, run_id = ids
    ctx.catalog.add_dataset(
        Dataset(
            id=report_id,
            name=spec.synthetic_name,
            zone="real",
            kind="report",
            format="html",
            path=path,
            rows=None,
            schema_json={},
            content_hash=digest,
            classification="restricted",
            dp=False,
            tags={"run_id": run_id},
            extra={
                "headline": headline,
                "alerts": [str(a) for a in summary.get("alerts", [])],
                "verdict": summary["verdict"],
                "look_first": summary["look_first"],
                "summary_path": sibling(path, "summary.json"),
            },
            created_by=ctx.user,
        ),
        parents=[model_id],
    )


def _headline(summary: dict[str, Any]) -> dict[str, float | None]:
    """The numeric headline scores of an evaluation summary (what the catalog and manifest carry)."""
    head = summary.get("headline") or {}
    return {
        k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None)
        for k, v in head.items()
    }
