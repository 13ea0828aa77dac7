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
from synthgen.errors import SourceError, SpecError
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
    #: Optional stage observer with ``start(stage)`` and ``end(stage, result, failed=)``.
    stages: Any = None

    @classmethod
    def from_env(cls, progress: Progress | None = None) -> Context:
        return cls(catalog=Catalog.from_env(), zones=Zones.from_env(), progress=progress)

    def report(self, stage: str, done: float, total: float | None = None, **info: Any) -> None:
        if self.progress is not None:
            self.progress(stage, done, total, **info)

    def staged(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one stage, telling :attr:`stages` (see :mod:`synthgen.stage_log`) when it starts and ends."""
        if self.stages is None:
            return fn(*args, **kwargs)
        self.stages.start(stage)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            self.stages.end(stage, failed=True)
            raise
        self.stages.end(stage, result)
        return result


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


def keyed_hash(key: bytes, *parts: Any) -> str:
    """:func:`settings_hash` under an HMAC key: for ids derived from real data bytes."""
    import hmac

    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()[:16]


def schema_to_json(schema: TableSchema) -> dict[str, Any]:
    return schema.model_dump(mode="json")


def schema_from_json(data: dict[str, Any]) -> TableSchema:
    return TableSchema.model_validate(data)


def source_key(spec: PipelineSpec) -> str:
    """The ledger's name for the spec's data source (P6: the budget is per source, not per pipeline).

    ``source.id`` when the spec gives one; else files are keyed by their resolved path, SQL
    sources by the redacted URL and the table (or a hash of the query), so renaming a
    pipeline does not reset its source's budget.
    """
    src = spec.source
    if src.id is not None:
        return f"id:{src.id}"
    if src.kind != "sql":
        return f"{src.kind}:{spec.source_path().resolve()}"
    from synthgen.sources.sql import SqlSource

    where = SqlSource(spec).describe().removeprefix("sql ")
    return f"sql:{where}" if src.table else f"sql:{where}#{settings_hash(src.query)}"


# -- ingest -------------------------------------------------------------------


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
        schema = _with_snapshot_nulls(schema, tmp)
        digest = file_sha256(tmp)
        # The id covers the schema too: the same data under changed overrides (bounds, types,
        # categories) is a new snapshot, or a re-run would keep the first run's schema.
        # Keyed (review F3): an unkeyed hash of the real Parquet reaches the shareable manifest's
        # lineage and would confirm any guess of the data; the same content and schema keep one id.
        dataset_id = f"snap-{keyed_hash(pipeline_secret(spec), digest, schema_to_json(schema))}"
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


# -- anonymize ------------------------------------------------------------------


def _anonymize_settings(spec: PipelineSpec) -> Any:
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
    from synthgen.anonymize import anonymize_table

    snap = _require(ctx, snapshot_id, "snapshot")
    schema = _with_declared_identifiers(schema_from_json(snap.schema_json), spec)
    settings = _anonymize_settings(spec)
    secret = pipeline_secret(spec)
    anon_id = "anon-" + settings_hash(
        snapshot_id,
        settings.model_dump(mode="json"),
        schema_to_json(schema),
        hashlib.sha256(secret).hexdigest(),
    )
    rel = f"anonymized/{spec.name}/{anon_id}"
    if (prior := _reused(ctx, "anonymize", anon_id)) is not None:
        return prior

    ctx.report("anonymize", 0, snap.rows)
    zone = ctx.zones.real
    with zone.atomic_dir(rel) as tmpdir:
        if settings.enabled:
            result = anonymize_table(
                pl.scan_parquet(snap.path),
                schema=schema,
                settings=settings,
                secret=secret,
                sink=tmpdir / "data.parquet",
            )
            result.leak_index.save(tmpdir / "leak_index.parquet")
            report = result.report
            dropped = {
                n for n, d in result.decisions.items() if d.role == "identifier" and d.operator == "drop"
            }
        else:
            # Anonymization off: only columns typed `id` are dropped (they carry no signal to model).
            from synthgen.schema import ColumnType

            dropped = {c.name for c in schema.columns if c.type == ColumnType.id}
            pl.scan_parquet(snap.path).drop(sorted(dropped)).sink_parquet(tmpdir / "data.parquet")
            report = {"enabled": False, "dropped": sorted(dropped)}
        (tmpdir / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
        rows = pl.scan_parquet(tmpdir / "data.parquet").select(pl.len()).collect().item()
        out_cols = set(pl.read_parquet_schema(tmpdir / "data.parquet"))
    path = zone.resolve(rel)
    from synthgen.schema import ColumnType

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


def latest(ctx: Context, name: str, kind: str) -> Dataset | None:
    """The newest catalogued dataset of a pipeline and kind."""
    found = [d for d in ctx.catalog.list_datasets(kind=kind) if d.name == name]
    return found[-1] if found else None


def _reused(ctx: Context, stage: str, dataset_id: str) -> StageResult | None:
    """The stage's earlier output, if ``dataset_id`` is catalogued and its files exist (idempotent reruns)."""
    ds = ctx.catalog.get_dataset(dataset_id)
    if ds is None or not Path(ds.path).exists():
        return None
    return StageResult(stage, ds.id, ds.path, ds.rows, reused=True, extra=_result_extra(stage, ds))


def _result_extra(stage: str, ds: Dataset) -> dict[str, Any]:
    """What a stage returns about its output: the same for a fresh and a reused output."""
    if stage == "publish":
        return {
            "name": ds.name,
            "epsilon": (ds.extra or {}).get("epsilon"),
            "dp": bool(ds.dp),
            "classification": ds.classification,
        }
    return dict(ds.extra or {})


def _require(ctx: Context, dataset_id: str, kind: str) -> Dataset:
    from synthgen.errors import CatalogError

    ds = ctx.catalog.get_dataset(dataset_id)
    if ds is None or ds.kind != kind:
        raise CatalogError(f"no {kind} dataset {dataset_id} in the catalog; run the earlier stages first")
    if not Path(ds.path).exists():
        raise CatalogError(f"{kind} {dataset_id} is catalogued but its files are gone: {ds.path}")
    return ds


# -- train ----------------------------------------------------------------------


def _text_columns(schema: TableSchema, spec: PipelineSpec) -> list[str]:
    from synthgen.schema import ColumnType

    if not spec.model.text.enabled:
        return []
    return [c.name for c in schema.columns if c.type == ColumnType.text]


@dataclass
class _TextBudget:
    """How one run's (epsilon, delta) is shared between the tabular model and the text models."""

    tabular: Any  # PrivacySettings for the tabular synthesizer
    text_epsilon: float = 0.0  # per text column
    text_delta: float = 0.0  # per text column
    n_public: float | None = None  # DP row count, for the text models' sampling rate
    mechanisms: list[dict[str, Any]] = field(default_factory=list)


#: Share of the text budget spent on the DP row count that sets the run's delta.
_COUNT_SHARE = 0.05


def _split_privacy(spec: PipelineSpec, frame: pl.DataFrame, text_cols: list[str]) -> _TextBudget:
    """Split the run's budget so that, together, the models spend at most epsilon and delta.

    With text columns, a DP row count (Laplace, charged) fixes the run's delta
    ``<= 1/(10 n)`` from an upper bound of n; the tabular model gets ``1 - text_share``
    of epsilon and delta, each text column an equal part of the rest (sequential
    composition). Without text columns the tabular model resolves delta itself.
    """
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
    count_eps = text_eps * _COUNT_SHARE
    n_noisy, entry = laplace_count(frame.height, epsilon=count_eps, rng=noise_rng())
    delta = resolve_delta(privacy, count_upper_bound(n_noisy, count_eps))
    tabular = privacy.model_copy(
        update={"epsilon": privacy.epsilon * (1 - share), "delta": delta * (1 - share)}
    )
    return _TextBudget(
        tabular=tabular,
        text_epsilon=(text_eps - count_eps) / len(text_cols),
        text_delta=delta * share / len(text_cols),
        n_public=max(n_noisy, 1.0),
        mechanisms=[entry.model_dump() | {"accountant": "basic", "column": None}],
    )


def train(spec: PipelineSpec, ctx: Context, *, anonymized_id: str, run_id: str) -> StageResult:
    """Fit the spec's synthesizer (and text model) on the anonymized data, charging the ledger.

    Order (P11): sweep what killed runs left, mark this run live, reserve its planned
    (epsilon, delta) under the source's lock, and only then read the data. A kill at any
    later point leaves the reservation charged. A holdout of real rows is split off first and
    never reaches the model (it stays in the REAL zone, for evaluation only). The model
    artifact holds weights and JSON, never training rows. DP models live in the synthetic
    zone; a non-DP model is real-derived and stays in the REAL zone (P1, P7).
    """
    from synthgen.orphans import running, sweep_train
    from synthgen.privacy import budget
    from synthgen.privacy.declared import require_declared_types
    from synthgen.source_identity import claims

    anon = _require(ctx, anonymized_id, "anonymized")
    require_declared_types(spec.privacy, spec.columns, schema_from_json(anon.schema_json))
    source = source_key(spec)
    model_id = "model-" + settings_hash(
        anonymized_id,
        spec.model.model_dump(mode="json"),
        spec.privacy.model_dump(mode="json"),
        spec.evaluate.holdout,
        spec.evaluate.seed,
        run_id,
    )
    if (prior := _reused(ctx, "train", model_id)) is not None:
        return prior
    sweep_train(spec, ctx)
    with running(ctx.zones.real, model_id):
        detail = {"model_id": model_id, "pipeline": spec.name}
        reservation = budget.reserve(
            ctx.catalog,
            source=source,
            run_id=run_id,
            privacy=spec.privacy,
            detail=detail,
            location=claims(spec),
        )
        spec = spec.model_copy(update={"privacy": budget.run_privacy(spec.privacy)})
        return _fit(
            spec, ctx, anon=anon, model_id=model_id, run_id=run_id, source=source, reservation=reservation
        )


def _fit(
    spec: PipelineSpec,
    ctx: Context,
    *,
    anon: Dataset,
    model_id: str,
    run_id: str,
    source: str,
    reservation: Any,
) -> StageResult:
    """The body of :func:`train` once its budget is reserved: split, fit, save, catalogue and settle."""
    from synthgen.evaluate.holdout import holdout_key, split_holdout
    from synthgen.models.base import make_synthesizer
    from synthgen.privacy import budget as ledger

    schema = schema_from_json(anon.schema_json)
    holdout_rel = f"holdout/{spec.name}/{model_id}.parquet"
    text_cols = _text_columns(schema, spec)
    budget: _TextBudget | None = None
    synth: Any = None

    def on_epoch(p: Any) -> None:
        info = {"loss": p.loss} | ({"epsilon": p.epsilon} if p.epsilon is not None else {})
        ctx.report("train", p.epoch, p.epochs, **info)

    rel = f"models/{spec.name}/{model_id}"
    try:
        frame = pl.read_parquet(anon.path)
        train_frame, holdout = split_holdout(
            frame, spec.evaluate.holdout, key=holdout_key(pipeline_secret(spec))
        )
        with ctx.zones.real.atomic_path(holdout_rel) as tmp:
            holdout.write_parquet(tmp)
        holdout_path = ctx.zones.real.resolve(holdout_rel)
        budget = _split_privacy(spec, train_frame, text_cols)
        synth = make_synthesizer(spec.model.kind, schema=schema, model=spec.model, privacy=budget.tabular)
        synth.fit(train_frame, progress=on_epoch)
        record = synth.privacy_record_
        assert record is not None
        mechanisms = [
            m.model_dump() | {"accountant": record.accountant or "basic"} for m in record.mechanisms
        ]
        text_info: dict[str, Any] = {}
        zone = ctx.zones.synthetic if record.dp else ctx.zones.real
        with zone.atomic_dir(rel) as tmpdir:
            synth.save(tmpdir / "tabular")
            if text_cols:
                text_info = _train_text(spec, ctx, synth, train_frame, text_cols, budget, tmpdir / "text")
                mechanisms += budget.mechanisms + text_info.pop("mechanisms")
            (tmpdir / "run.json").write_text(json.dumps({"run_id": run_id, "text_columns": text_cols}))
    except Exception as exc:
        released = getattr(synth, "released_epsilon_", 0.0)
        if budget is not None and budget.mechanisms:
            # The text budget's DP count ran; a failure after the tabular fit is in text training.
            fitted = getattr(synth, "privacy_record_", None) is not None
            released = (
                spec.privacy.epsilon if fitted else released + sum(m["epsilon"] for m in budget.mechanisms)
            )
        # Delta: the run's whole reserved delta once anything ran (an upper bound, as for epsilon).
        delta = reservation.delta if reservation is not None and released > 0 else 0.0
        ledger.settle_failed(ctx.catalog, reservation, epsilon=released, delta=delta, error=exc)
        ctx.zones.real.remove(holdout_rel)  # no model: its holdout would be an orphan copy of real rows
        raise
    path = zone.resolve(rel)
    # Exact counts are raw statistics of real rows: they go to the REAL zone beside the
    # holdout (restricted), never into the model's catalog entry.
    with ctx.zones.real.atomic_write(f"holdout/{spec.name}/{model_id}.counts.json", "w") as fh:
        json.dump(
            {
                "train_rows": train_frame.height,
                "holdout_rows": holdout.height,
                "exact_duplicates": synth.duplicates_,
            },
            fh,
        )

    warnings = [
        f"column {c!r}: DP category discovery kept no value, so every synthetic value is 'other'; "
        f"give columns.{c}.categories (public, free) or raise privacy.preprocessing_share"
        for c in (synth.encoder_.all_other if synth.encoder_ is not None else [])
    ] + (synth.encoder_.collapsed if synth.encoder_ is not None else [])
    eps_total = sum(float(m["epsilon"]) for m in mechanisms)
    delta_total = sum(float(m.get("delta") or 0.0) for m in mechanisms)
    extra = {
        "dp": record.dp,
        "kind": (kind := getattr(synth, "chosen_kind", None) or spec.model.kind),
        "model": " ".join([kind, *(f"({c[1]})" for c in [getattr(synth, "choice_", None)] if c)]),
        "epsilon": eps_total if record.dp else None,
        "delta": delta_total if record.dp else None,
        "privacy_record": record.model_dump(mode="json"),
        "text": text_info,
        "holdout_path": str(holdout_path),
        "holdout_fraction": spec.evaluate.holdout,
        "holdout_method": "keyed-hash",
        "ledger_source": source,
        "run_id": run_id,
        "warnings": warnings,
    }
    ds = Dataset(
        id=model_id,
        name=spec.name,
        zone=zone.name,
        kind="model",
        format="synthgen-model",
        path=str(path),
        rows=None,
        schema_json=schema_to_json(schema),
        content_hash=settings_hash(model_id),
        classification="internal" if record.dp else "restricted",
        dp=record.dp,
        tags={},
        extra=extra,
        created_by=ctx.user,
    )
    # Ledger entries, the reservation's settling and the model's catalog row commit together:
    # a retry after a crash either finds all (and reuses the model) or none (and trains again,
    # the dead run's reservation still charged).
    from synthgen.catalog import Lineage

    try:
        ledger.settle(
            ctx.catalog,
            reservation,
            mechanisms=mechanisms if record.dp else [],
            detail={"model_id": model_id},
            rows=[ds, Lineage(child_id=model_id, parent_id=anon.id)],
        )
    except BaseException:
        zone.remove(rel)
        raise
    return StageResult(
        "train",
        model_id,
        str(path),
        None,
        extra={"epsilon": extra["epsilon"], "dp": record.dp, "warnings": warnings, "model": extra["model"]},
    )


def _train_text(
    spec: PipelineSpec,
    ctx: Context,
    synth: Any,
    frame: pl.DataFrame,
    text_cols: list[str],
    budget: _TextBudget,
    out: Path,
) -> dict[str, Any]:
    """Train one DP text model per text column, conditioned on the spec's categorical columns."""
    from synthgen.models.text import DPTextModel

    record = synth.privacy_record_
    conds = [c for c in spec.model.text.condition_on if c in frame.columns]
    categories = _condition_categories(synth, conds)
    mechanisms: list[dict[str, Any]] = []
    columns: dict[str, Any] = {}
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
        model.save(out / col)
        rec = model.privacy_record_.to_privacy_record(col)
        for m in rec.mechanisms:
            mechanisms.append(m.model_dump() | {"accountant": rec.accountant or "basic"})
        columns[col] = {"condition_on": conds, "epsilon": rec.spent_epsilon, "delta": rec.spent_delta}
    return {"mechanisms": mechanisms, "columns": columns}


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
    model_ds = _require(ctx, model_id, "model")
    n = total_rows(spec, ctx, model_id)
    rows = n // n_shards + (1 if shard < n % n_shards else 0)
    seed = int(settings_hash(run_id, shard, spec.model.seed), 16) % (2**31)
    shard_id = f"shard-{settings_hash(model_id, run_id, shard, n_shards, n)}"
    zone = ctx.zones.synthetic if model_ds.dp else ctx.zones.real
    rel = f"staging/{spec.name}/{run_id}/{shard_id}.parquet"
    if (prior := _reused(ctx, "generate", shard_id)) is not None:
        return prior

    root = Path(model_ds.path)
    synth = Synthesizer.load(root / "tabular")
    text_cols: list[str] = model_ds.extra.get("text", {}).get("columns", {}) and list(
        model_ds.extra["text"]["columns"]
    )
    import pyarrow.parquet as pq

    with zone.atomic_path(rel) as tmp:
        writer: pq.ParquetWriter | None = None
        done = 0
        try:
            for i, batch in enumerate(synth.sample_batches(rows, seed=seed, batch_rows=50_000)):
                if text_cols:
                    batch = _fill_text(batch, root, model_ds.extra["text"]["columns"], seed + i)
                table = batch.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                done += batch.height
                ctx.report(f"generate shard {shard}", done, rows)
            if writer is None:
                synth.sample(0).write_parquet(tmp)
        finally:
            if writer is not None:
                writer.close()
    path = zone.resolve(rel)
    ctx.catalog.add_dataset(
        Dataset(
            id=shard_id,
            name=spec.name,
            zone=zone.name,
            kind="staging",
            format="parquet",
            path=str(path),
            rows=rows,
            schema_json={},
            content_hash=file_sha256(path),
            classification="internal",
            dp=model_ds.dp,
            tags={"run_id": run_id, "shard": str(shard)},
            extra={},
            created_by=ctx.user,
        ),
        parents=[model_id],
    )
    return StageResult("generate", shard_id, str(path), rows)


def _fill_text(batch: pl.DataFrame, root: Path, columns: dict[str, Any], seed: int) -> pl.DataFrame:
    from synthgen.models.text import DPTextModel

    for col, info in columns.items():
        model = DPTextModel.load(root / "text" / col)
        conds = info.get("condition_on") or []
        texts = model.generate(batch.select(conds) if conds else None, batch.height, seed=seed)
        batch = batch.with_columns(pl.Series(col, texts, dtype=pl.String))
    return batch


# -- secrets --------------------------------------------------------------------


def pipeline_secret(spec: PipelineSpec) -> bytes:
    """The pipeline's HMAC key for surrogates, hashes and the leak index.

    Derived from a master secret: ``SYNTHGEN_PIPELINE_SECRET`` (>= 16 bytes), else a random
    key created once under ``<home>/keys/pipeline.secret`` (mode 0600). Each pipeline gets
    its own key (HMAC of the master and the pipeline name), so surrogates are consistent
    within a pipeline and unlinkable across pipelines.
    """
    from synthgen.crypto.platform import derive_key

    return derive_key("pipeline/" + spec.name)


# -- whole runs (CLI) -----------------------------------------------------------


def new_run_id(prefix: str = "cli") -> str:
    from datetime import datetime, timezone

    return f"{prefix}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}"


def latest_required(ctx: Context, spec: PipelineSpec, kind: str, hint: str) -> Dataset:
    from synthgen.errors import CatalogError

    ds = latest(ctx, spec.name, kind)
    if ds is None:
        what = {"anonymized": "anonymized data", "model": "trained model"}.get(kind, kind)
        raise CatalogError(f"pipeline {spec.name} has no {what} yet; run `synthgen {hint}` first")
    return ds


def shards_of_run(ctx: Context, spec: PipelineSpec, run_id: str) -> list[str]:
    shards = [
        d
        for d in ctx.catalog.list_datasets(kind="staging")
        if d.name == spec.name and d.tags.get("run_id") == run_id and Path(d.path).exists()
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


def generate_all(spec: PipelineSpec, ctx: Context, *, model_id: str, run_id: str) -> list[StageResult]:
    n_shards = plan_shards(spec)
    return [
        generate(spec, ctx, model_id=model_id, run_id=run_id, shard=i, n_shards=n_shards)
        for i in range(n_shards)
    ]


def run_pipeline(spec: PipelineSpec, ctx: Context, *, run_id: str | None = None) -> dict[str, Any]:
    """Every stage in order, as one run (the CLI's and the demo's path; DAGs call the stages one by one)."""
    run_id = run_id or new_run_id()
    results: dict[str, Any] = {"run_id": run_id}
    results["ingest"] = ctx.staged("ingest", ingest, spec, ctx)
    results["anonymize"] = ctx.staged(
        "anonymize", anonymize, spec, ctx, snapshot_id=results["ingest"].dataset_id
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


def _read_shards(ctx: Context, shard_ids: list[str]) -> pl.DataFrame:
    paths = [_require(ctx, sid, "staging").path for sid in shard_ids]
    if not paths:
        raise SpecError("no generated shards to read; run `synthgen generate` first")
    return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")


def _training_split(
    spec: PipelineSpec, ctx: Context, model: Dataset
) -> tuple[Dataset, pl.DataFrame, pl.DataFrame]:
    """The anonymized parent, and the same (train, holdout) split the model was trained with."""
    from synthgen.evaluate.holdout import holdout_key, split_holdout

    anon_id = next(p for p in ctx.catalog.parents(model.id))
    anon = _require(ctx, anon_id, "anonymized")
    # The split the model was trained with (recorded at training time), not today's spec.
    fraction = float(model.extra.get("holdout_fraction", spec.evaluate.holdout))
    key = holdout_key(pipeline_secret(spec))
    train_frame, holdout = split_holdout(pl.read_parquet(anon.path), fraction, key=key)
    return anon, train_frame, holdout


def _leak_scan(spec: PipelineSpec, anon: Dataset, synthetic: pl.DataFrame) -> dict[str, Any] | None:
    """Exact occurrences of real identifier values in the synthetic output (P8; expected 0),
    and a Presidio scan of its text columns. Counts only: the values never leave the scanner."""
    from synthgen.anonymize import LeakIndex, scan_pii
    from synthgen.schema import ColumnType

    result: dict[str, Any] = {}
    index_path = anon.extra.get("leak_index")
    if index_path and Path(index_path).exists():
        report = LeakIndex.load(Path(index_path), secret=pipeline_secret(spec)).scan(synthetic)
        result["real_values_found"] = report.total
        result["per_column"] = {c: sum(v.values()) for c, v in report.by_column().items()}
        result["rows_scanned"] = report.rows_scanned
    schema = schema_from_json(anon.schema_json)
    text_cols = [c.name for c in schema.columns if c.type == ColumnType.text and c.name in synthetic.columns]
    if text_cols:
        docs = synthetic.select(text_cols).head(_TEXT_SCAN_ROWS)
        found = scan_pii(docs, config=_anonymize_settings(spec).config, limit=_TEXT_SCAN_ROWS)
        entities: dict[str, int] = {}
        for per_col in found.values():
            for ent, n in per_col.items():
                entities[ent] = entities.get(ent, 0) + n
        result["text_scan"] = {"columns": text_cols, "documents": docs.height, "entities": entities}
    return result or None


def _text_metrics(
    spec: PipelineSpec, model: Dataset, holdout: pl.DataFrame, synthetic: pl.DataFrame
) -> dict[str, Any] | None:
    """Perplexity on held-out real text, diversity and lengths, per synthesized text column,
    and with ``evaluate.text_canary`` the canary exposure of a model configured like this one
    and trained on the synthetic text."""
    columns: dict[str, Any] = model.extra.get("text", {}).get("columns", {})
    if not columns:
        return None
    from synthgen.models.text import DPTextModel, canary_exposure, text_metrics

    out: dict[str, Any] = {}
    for col, info in columns.items():
        if col not in holdout.columns or col not in synthetic.columns:
            continue
        tm = DPTextModel.load(Path(model.path) / "text" / col)
        conds = [c for c in info.get("condition_on") or [] if c in holdout.columns]
        sample = holdout.head(_TEXT_SCAN_ROWS)
        out[col] = text_metrics(
            sample[col],
            synthetic[col].head(_TEXT_SCAN_ROWS),
            tm,
            holdout_conditions=sample.select(conds) if conds else None,
        )
        if spec.evaluate.text_canary:
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

    model = _require(ctx, model_id, "model")
    report_id = "report-" + settings_hash(model_id, sorted(shard_ids), spec.evaluate.model_dump(mode="json"))
    if (prior := _reused(ctx, "evaluate", report_id)) is not None:
        return prior
    anon, train_frame, holdout = _training_split(spec, ctx, model)
    synthetic = _read_shards(ctx, shard_ids)
    ctx.report("evaluate", 0, None, section="leak scan")
    leaks = _leak_scan(spec, anon, synthetic)
    privacy = {"dp": bool(model.dp), "epsilon": model.extra.get("epsilon"), "delta": model.extra.get("delta")}
    text = _text_metrics(spec, model, holdout, synthetic)
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
    path = ctx.zones.real.resolve(rel) / "report.html"
    ctx.catalog.add_dataset(
        Dataset(
            id=report_id,
            name=spec.synthetic_name,
            zone="real",
            kind="report",
            format="html",
            path=str(path),
            rows=None,
            schema_json={},
            content_hash=file_sha256(path),
            classification="restricted",
            dp=False,
            tags={"run_id": run_id},
            extra={
                "headline": headline,
                "alerts": [str(a) for a in summary.get("alerts", [])],
                "verdict": summary["verdict"],
                "look_first": summary["look_first"],
                "summary_path": str(path.with_name("summary.json")),
            },
            created_by=ctx.user,
        ),
        parents=[model_id],
    )
    ctx.catalog.add_scores(report_id, headline)
    alerts = [str(a) for a in summary.get("alerts", [])]
    verdict = {k: summary[k] for k in ("verdict", "verdict_words", "look_first", "rows")}
    return StageResult(
        "evaluate", report_id, str(path), extra={"headline": headline, "alerts": alerts, **verdict}
    )


def _headline(summary: dict[str, Any]) -> dict[str, float | None]:
    """The numeric headline scores of an evaluation summary (what the catalog and manifest carry)."""
    head = summary.get("headline") or {}
    return {
        k: (float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None)
        for k, v in head.items()
    }


# -- publish --------------------------------------------------------------------


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

    The manifest carries public and DP-derived facts only (:mod:`synthgen.manifest`); the
    evaluation scores stay with the restricted report (``report_id`` is not read).
    The plaintext shards are removed once the encrypted dataset is in place.
    """
    from synthgen.access import publish_dataset
    from synthgen.manifest import shareable_manifest

    model = _require(ctx, model_id, "model")
    dataset_id = "syn-" + settings_hash(model_id, sorted(shard_ids), run_id)
    if (prior := _reused(ctx, "publish", dataset_id)) is not None:
        return prior
    shards = [_require(ctx, sid, "staging") for sid in shard_ids]
    zone = ctx.zones.synthetic if model.dp else ctx.zones.real
    anon_id = ctx.catalog.parents(model_id)[0]
    snapshot_ids = ctx.catalog.parents(anon_id)
    epsilon = model.extra.get("epsilon")
    with zone.staging(f"staging/{spec.name}/{run_id}", suffix=".parquet") as assembled:
        pl.scan_parquet([s.path for s in shards]).sink_parquet(assembled, compression="zstd")
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
        Path(s.path).unlink(missing_ok=True)
    return StageResult("publish", ds.id, ds.path, ds.rows, extra=_result_extra("publish", ds))


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
