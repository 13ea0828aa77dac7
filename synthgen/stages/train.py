"""The train stage: reserve budget -> split holdout -> fit -> save -> catalogue and settle.

Order (P11): sweep what killed runs left, mark this run live, reserve its planned
(epsilon, delta) under the source's lock, and only then read the data. Every ledger write
goes through :mod:`synthgen.privacy.budget` (reserve, settle, settle_failed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from synthgen.catalog import Dataset, Lineage
from synthgen.errors import SpecError
from synthgen.evaluate.holdout import holdout_key, split_holdout
from synthgen.ids import settings_hash
from synthgen.orphans import running, sweep_train
from synthgen.privacy import budget as ledger
from synthgen.schema import ColumnType, TableSchema
from synthgen.source_identity import claims, source_key
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
from synthgen.zone_io import read_frame
from synthgen.zones import AnyZone

log = logging.getLogger(__name__)


def train(spec: PipelineSpec, ctx: Context, *, anonymized_id: str, run_id: str) -> StageResult:
    """Fit the spec's synthesizer (and text model) on the anonymized data, charging the ledger.

    Order (P11): sweep what killed runs left, mark this run live, reserve its planned
    (epsilon, delta) under the source's lock, and only then read the data. A kill at any
    later point leaves the reservation charged. A holdout of real rows is split off first and
    never reaches the model (it stays in the REAL zone, for evaluation only). The model
    artifact holds weights and JSON, never training rows. DP models live in the synthetic
    zone; a non-DP model is real-derived and stays in the REAL zone (P1, P7).
    """
    from synthgen.privacy.declared import require_declared_types

    anon = require(ctx, anonymized_id, "anonymized")
    check_source(spec, anon)
    require_declared_types(spec.privacy, spec.columns, schema_from_json(anon.schema_json))
    source = source_key(spec)
    model_id = _model_id(spec, anonymized_id, run_id)
    if (prior := reused(ctx, "train", model_id)) is not None:
        return prior
    sweep_train(spec, ctx)
    with running(ctx.zones.real, model_id):
        reservation = _reserve(spec, ctx, source=source, run_id=run_id, model_id=model_id)
        run = _Training(
            spec=spec.model_copy(update={"privacy": ledger.run_privacy(spec.privacy)}),
            ctx=ctx,
            anon=anon,
            model_id=model_id,
            run_id=run_id,
            source=source,
            reservation=reservation,
        )
        try:
            train_frame, holdout = _split_holdout(run)
            _fit(run, train_frame)
            mechanisms, text_info = _save(run, train_frame, holdout)
        except Exception as exc:
            _settle_failed(run, exc)
            raise
        _write_counts(run, train_rows=train_frame.height, holdout_rows=holdout.height)
        return _catalogue_and_settle(run, mechanisms, text_info)


@dataclass
class _Training:
    """One training run, filled in as its steps run (a failure is charged for what ran)."""

    spec: PipelineSpec  # with the run's resolved privacy settings
    ctx: Context
    anon: Dataset
    model_id: str
    run_id: str
    source: str
    reservation: Any
    budget: _TextBudget | None = None
    synth: Any = None
    schema: TableSchema = field(init=False)
    text_cols: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.schema = schema_from_json(self.anon.schema_json)
        self.text_cols = _text_columns(self.schema, self.spec)

    @property
    def holdout_rel(self) -> str:
        return f"holdout/{self.spec.name}/{self.model_id}.parquet"

    @property
    def rel(self) -> str:
        return f"models/{self.spec.name}/{self.model_id}"

    @property
    def zone(self) -> AnyZone:
        """DP models live in the synthetic zone; a non-DP model is real-derived (P1, P7)."""
        return self.ctx.zones.synthetic if self.synth.privacy_record_.dp else self.ctx.zones.real


def _model_id(spec: PipelineSpec, anonymized_id: str, run_id: str) -> str:
    return "model-" + settings_hash(
        anonymized_id,
        spec.model.model_dump(mode="json"),
        spec.privacy.model_dump(mode="json"),
        spec.evaluate.holdout,
        spec.evaluate.seed,
        run_id,
    )


def _reserve(spec: PipelineSpec, ctx: Context, *, source: str, run_id: str, model_id: str) -> Any:
    """Reserve the run's planned (epsilon, delta) under the source's lock (P6, P11), before any read."""
    detail = {"model_id": model_id, "pipeline": spec.name}
    return ledger.reserve(
        ctx.catalog,
        source=source,
        run_id=run_id,
        privacy=spec.privacy,
        detail=detail,
        location=claims(spec),
    )


def _split_holdout(run: _Training) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split off the holdout by keyed hash (P10: 1-stable); it stays in the REAL zone, never trained on."""
    frame = read_frame(run.ctx.zones, run.anon.path)
    train_frame, holdout = split_holdout(
        frame, run.spec.evaluate.holdout, key=holdout_key(pipeline_secret(run.spec))
    )
    with run.ctx.zones.real.atomic_path(run.holdout_rel) as tmp:
        holdout.write_parquet(tmp)
    return train_frame, holdout


def _fit(run: _Training, train_frame: pl.DataFrame) -> None:
    """Share the budget between the models, then fit the tabular synthesizer."""
    from synthgen.models.base import make_synthesizer

    spec, ctx = run.spec, run.ctx

    def on_epoch(p: Any) -> None:
        info = {"loss": p.loss} | ({"epsilon": p.epsilon} if p.epsilon is not None else {})
        ctx.report("train", p.epoch, p.epochs, **info)

    from synthgen.models.dp_input import dp_schema
    from synthgen.privacy.declared import declared_storage

    run.schema, train_frame = declared_storage(spec.privacy, spec.columns, run.schema, train_frame)
    if spec.privacy.dp:
        # The model's saved schema (config.json, its catalog row) is shareable: under DP every
        # column has a null token, so say so rather than carry whether the real rows held a null
        # (one all-null row flipped every flag).
        run.schema = dp_schema(run.schema)
    run.budget = _split_privacy(spec, train_frame, run.text_cols)
    run.synth = make_synthesizer(
        spec.model.kind, schema=run.schema, model=spec.model, privacy=run.budget.tabular
    )
    run.synth.fit(train_frame, progress=on_epoch)


def _save(
    run: _Training, train_frame: pl.DataFrame, holdout: pl.DataFrame
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Save the tabular model and train, gate and save the text models, in one atomic folder.

    Returns the DP mechanisms that ran (for the ledger) and the text models' summary.
    """
    record = run.synth.privacy_record_
    assert record is not None and run.budget is not None
    mechanisms = [m.model_dump() | {"accountant": record.accountant or "basic"} for m in record.mechanisms]
    text_info: dict[str, Any] = {}
    with run.zone.atomic_dir(run.rel) as tmpdir:
        run.synth.save(tmpdir / "tabular")
        if run.text_cols:
            text_info = _train_text(
                run.spec,
                run.ctx,
                run.synth,
                (train_frame, holdout),
                run.text_cols,
                run.budget,
                tmpdir / "text",
            )
            mechanisms += run.budget.mechanisms + text_info.pop("mechanisms")
        (tmpdir / "run.json").write_text(json.dumps({"run_id": run.run_id, "text_columns": run.text_cols}))
    return mechanisms, text_info


def _settle_failed(run: _Training, exc: BaseException) -> None:
    """Charge a failed run for what ran (an upper bound) and remove its holdout copy of real rows."""
    synth, budget = run.synth, run.budget
    released = getattr(synth, "released_epsilon_", 0.0)
    if budget is not None and budget.mechanisms:
        # The text budget's DP count ran; a failure after the tabular fit is in text training.
        fitted = getattr(synth, "privacy_record_", None) is not None
        released = (
            run.spec.privacy.epsilon if fitted else released + sum(m["epsilon"] for m in budget.mechanisms)
        )
    # Delta: the run's whole reserved delta once anything ran (an upper bound, as for epsilon).
    delta = run.reservation.delta if run.reservation is not None and released > 0 else 0.0
    ledger.settle_failed(run.ctx.catalog, run.reservation, epsilon=released, delta=delta, error=exc)
    run.ctx.zones.real.remove(run.holdout_rel)  # no model: its holdout would be an orphan copy of real rows


def _write_counts(run: _Training, *, train_rows: int, holdout_rows: int) -> None:
    # Exact counts are raw statistics of real rows: they go to the REAL zone beside the
    # holdout (restricted), never into the model's catalog entry.
    with run.ctx.zones.real.atomic_write(f"holdout/{run.spec.name}/{run.model_id}.counts.json", "w") as fh:
        json.dump(
            {
                "train_rows": train_rows,
                "holdout_rows": holdout_rows,
                "exact_duplicates": run.synth.duplicates_,
            },
            fh,
        )


def _catalogue_and_settle(
    run: _Training, mechanisms: list[dict[str, Any]], text_info: dict[str, Any]
) -> StageResult:
    """The model's catalog row, its ledger entries and the reservation's settling, in one transaction."""
    record = run.synth.privacy_record_
    zone, path = run.zone, run.zone.uri(run.rel)
    extra = _model_extra(run, mechanisms, text_info)
    ds = Dataset(
        id=run.model_id,
        name=run.spec.name,
        zone=zone.name,
        kind="model",
        format="synthgen-model",
        path=path,
        rows=None,
        schema_json=schema_to_json(run.schema),
        content_hash=settings_hash(run.model_id),
        classification="internal" if record.dp else "restricted",
        dp=record.dp,
        tags={},
        extra=extra,
        created_by=run.ctx.user,
    )
    # Ledger entries, the reservation's settling and the model's catalog row commit together:
    # a retry after a crash either finds all (and reuses the model) or none (and trains again,
    # the dead run's reservation still charged).
    try:
        ledger.settle(
            run.ctx.catalog,
            run.reservation,
            mechanisms=mechanisms if record.dp else [],
            detail={"model_id": run.model_id},
            rows=[ds, Lineage(child_id=run.model_id, parent_id=run.anon.id)],
        )
    except BaseException:
        zone.remove(run.rel)
        raise
    summary = {k: extra[k] for k in ("epsilon", "dp", "warnings", "model")}
    return StageResult("train", run.model_id, path, None, extra=summary)


def _model_extra(
    run: _Training, mechanisms: list[dict[str, Any]], text_info: dict[str, Any]
) -> dict[str, Any]:
    """The model's catalog ``extra``: DP totals, privacy record, holdout facts, warnings."""
    synth, spec = run.synth, run.spec
    record = synth.privacy_record_
    warnings = [
        f"column {c!r}: DP category discovery kept no value, so every synthetic value is 'other'; "
        f"give columns.{c}.categories (public, free) or raise privacy.preprocessing_share"
        for c in (synth.encoder_.all_other if synth.encoder_ is not None else [])
    ] + (synth.encoder_.collapsed if synth.encoder_ is not None else [])
    warnings += text_info.get("warnings", [])
    eps_total = sum(float(m["epsilon"]) for m in mechanisms)
    delta_total = sum(float(m.get("delta") or 0.0) for m in mechanisms)
    return {
        "dp": record.dp,
        "kind": (kind := getattr(synth, "chosen_kind", None) or spec.model.kind),
        "model": " ".join([kind, *(f"({c[1]})" for c in [getattr(synth, "choice_", None)] if c)]),
        "epsilon": eps_total if record.dp else None,
        "delta": delta_total if record.dp else None,
        "privacy_record": record.model_dump(mode="json"),
        "text": {k: v for k, v in text_info.items() if k != "warnings"},
        "holdout_path": run.ctx.zones.real.uri(run.holdout_rel),
        "holdout_fraction": spec.evaluate.holdout,
        "holdout_method": "keyed-hash",
        "ledger_source": run.source,
        "run_id": run.run_id,
        "warnings": warnings,
    }


# -- the budget split for text columns ----------------------------------------------


def _text_columns(schema: TableSchema, spec: PipelineSpec) -> list[str]:
    if not spec.model.text.enabled:
        return []
    return [c.name for c in schema.columns if c.type == ColumnType.text]


@dataclass
class _TextBudget:
    """How one run's (epsilon, delta) is shared between the tabular model and the text models."""

    tabular: Any  # PrivacySettings for the tabular synthesizer
    text_epsilon: float = 0.0  # per text column
    text_delta: float = 0.0  # per text column
    gate_epsilon: float = 0.0  # per text column: the quality gate on the holdout (0: no holdout)
    n_public: float | None = None  # DP row count, for the text models' sampling rate
    mechanisms: list[dict[str, Any]] = field(default_factory=list)


#: Share of the text budget spent on the DP row count that sets the run's delta.
TEXT_COUNT_SHARE = 0.05


def _split_privacy(spec: PipelineSpec, frame: pl.DataFrame, text_cols: list[str]) -> _TextBudget:
    """Split the run's budget so that, together, the models spend at most epsilon and delta.

    With text columns, a DP row count (Laplace, charged) fixes the run's delta
    ``<= 1/(10 n)`` from an upper bound of n; the tabular model gets ``1 - text_share``
    of epsilon and delta, each text column an equal part of the rest (sequential
    composition). Of the text share, ``GATE_SHARE`` goes to the text quality gates
    (:mod:`synthgen.models.text.gate`) when the spec holds rows out (``evaluate.holdout > 0``, a
    public setting). Without text columns the tabular model resolves delta itself.
    """
    from synthgen.models.text.gate import GATE_SHARE
    from synthgen.privacy.accountant import resolve_delta
    from synthgen.privacy.mechanisms import count_upper_bound, laplace_count, noise_rng

    privacy = spec.privacy
    if not (text_cols and privacy.dp):
        return _TextBudget(tabular=privacy, text_epsilon=1.0, text_delta=1e-6)
    share = privacy.text_share
    if share <= 0:
        raise SpecError(
            "privacy.text_share must be > 0 when a text column is modelled (or set model.text.enabled=false)"
        )
    text_eps = privacy.epsilon * share
    count_eps = text_eps * TEXT_COUNT_SHARE
    gate_eps = text_eps * GATE_SHARE if spec.evaluate.holdout > 0 else 0.0
    n_noisy, entry = laplace_count(frame.height, epsilon=count_eps, rng=noise_rng())
    delta = resolve_delta(privacy, count_upper_bound(n_noisy, count_eps))
    tabular = privacy.model_copy(
        update={"epsilon": privacy.epsilon * (1 - share), "delta": delta * (1 - share)}
    )
    return _TextBudget(
        tabular=tabular,
        text_epsilon=(text_eps - count_eps - gate_eps) / len(text_cols),
        text_delta=delta * share / len(text_cols),
        gate_epsilon=gate_eps / len(text_cols),
        n_public=max(n_noisy, 1.0),
        mechanisms=[entry.model_dump() | {"accountant": "basic", "column": None}],
    )


def _train_text(
    spec: PipelineSpec,
    ctx: Context,
    synth: Any,
    frames: tuple[pl.DataFrame, pl.DataFrame],
    text_cols: list[str],
    budget: _TextBudget,
    out: Path,
) -> dict[str, Any]:
    """Train one DP text model per text column, conditioned on the spec's categorical columns,
    and gate it on the held-out notes (its entry joins the model's privacy record)."""
    from synthgen.models.text import DPTextModel

    frame, holdout = frames
    record = synth.privacy_record_
    conds = [c for c in spec.model.text.condition_on if c in frame.columns]
    categories = _condition_categories(synth, conds)
    mechanisms: list[dict[str, Any]] = []
    columns: dict[str, Any] = {}
    warnings: list[str] = []
    for col in text_cols:
        model = DPTextModel(
            settings=spec.model.text,
            epsilon=budget.text_epsilon,
            delta=budget.text_delta,
            dp=record.dp,
            device=spec.model.device,
            categories=categories,
            seed=spec.model.seed,
            accountant=spec.privacy.accountant,
        )

        def on_step(done: int, total: int, loss: float, col: str = col) -> None:
            ctx.report(f"train text {col}", done, total, loss=loss)

        model.fit(
            frame[col], frame.select(conds) if conds else None, progress=on_step, n_public=budget.n_public
        )
        gate = _gate(spec, model, holdout, col, conds, budget)
        model.save(out / col)
        rec = model.privacy_record_.to_privacy_record(col)
        for entry, m in zip(model.privacy_record_.entries, rec.mechanisms, strict=True):
            mechanisms.append(m.model_dump() | {"accountant": entry.accountant})
        columns[col] = {
            "condition_on": conds,
            "epsilon": rec.spent_epsilon,
            "delta": rec.spent_delta,
            "gate": gate.to_dict(),
        }
        if not (gate.checked and gate.passed):
            log.warning("%s", gate.line())
            warnings.append(gate.line())
    return {"mechanisms": mechanisms, "columns": columns, "warnings": warnings}


def _gate(
    spec: PipelineSpec, model: Any, holdout: pl.DataFrame, col: str, conds: list[str], budget: _TextBudget
) -> Any:
    """The text quality gate of one fitted text model on the holdout's real notes (P10: the holdout
    is chosen row by row). Its DP entry is added to the model's privacy record, which is charged."""
    from synthgen.models.text.gate import quality_gate, unchecked
    from synthgen.privacy.mechanisms import noise_rng

    fallback = spec.model.text.fallback
    # Whether the gate runs depends on public settings only (never on how many rows were held out).
    if spec.evaluate.holdout <= 0 or (model.dp and budget.gate_epsilon <= 0):
        return unchecked(col, dp=model.dp, fallback=fallback)
    gate, entry = quality_gate(
        model,
        holdout[col],
        holdout.select(conds) if conds else None,
        column=col,
        fallback=fallback,
        epsilon=budget.gate_epsilon,
        rng=noise_rng(),
    )
    if entry is not None:
        model.privacy_record_.entries = [*model.privacy_record_.entries, entry]
    return gate


def _condition_categories(synth: Any, conds: list[str]) -> dict[str, list[str]]:
    """Category lists of the conditioning columns as the tabular encoder holds them: public (spec)
    or DP-discovered, never read from raw rows here."""
    codes = {c.name: c for c in (synth.encoder_.columns if synth.encoder_ is not None else [])}
    out: dict[str, list[str]] = {}
    for c in conds:
        code = codes.get(c)
        cats = getattr(code, "categories", None)
        if cats is None:
            cats = synth.schema[c].categories or []
        out[c] = [str(x) for x in cats]
    return out


# -- generate -------------------------------------------------------------------
