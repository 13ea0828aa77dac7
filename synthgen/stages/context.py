"""What every stage shares: the :class:`Context`, the :class:`StageResult`, and catalogued results.

A stage reads its inputs by catalog id (:func:`require`) and, when its output id is
already catalogued with its files in place, returns that output instead of redoing the
work (:func:`reused`): retries are safe, and a retry never charges the budget twice.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from synthgen.catalog import Catalog, Dataset
from synthgen.errors import CatalogError, SpecError
from synthgen.schema import TableSchema
from synthgen.spec import PipelineSpec
from synthgen.zone_io import exists
from synthgen.zones import Zones

Progress = Callable[..., None]


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


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


def schema_to_json(schema: TableSchema) -> dict[str, Any]:
    return schema.model_dump(mode="json")


def schema_from_json(data: dict[str, Any]) -> TableSchema:
    return TableSchema.model_validate(data)


def pipeline_secret(spec: PipelineSpec) -> bytes:
    """The pipeline's HMAC key for surrogates, hashes and the leak index.

    Derived from a master secret: ``SYNTHGEN_PIPELINE_SECRET`` (>= 16 bytes), else a random
    key created once under ``<home>/keys/pipeline.secret`` (mode 0600). Each pipeline gets
    its own key (HMAC of the master and the pipeline name), so surrogates are consistent
    within a pipeline and unlinkable across pipelines.
    """
    from synthgen.crypto.platform import derive_key

    return derive_key("pipeline/" + spec.name)


# -- catalogued results -----------------------------------------------------------


def check_source(spec: PipelineSpec, ds: Dataset) -> None:
    """Refuse (exit 2) when ``ds`` (a snapshot or anonymized data) was read from other data than
    the source ``spec`` names now: its rows' epsilon is charged to the source they came from.

    Without this, ``train`` (or ``anonymize``) took the pipeline's latest data by name and charged
    the ledger of whatever ``source.*`` the spec said at the time: ``--set source.path=other.csv``
    trained on the real rows again with a fresh budget (red-team). The data's identities
    (:func:`~synthgen.source_identity.claims`: a file's real path and inode, a SQL table's
    canonical location) are compared, so a new ``source.id`` for the same data passes here and
    meets the key's binding instead; and a spec whose ledger key is the one the data was read
    under (a ``source.id`` that stayed while the file moved) passes too: it is charged to that
    ledger. Data catalogued before the identities were recorded carries none and is not checked.
    """
    from synthgen.source_identity import claims, source_key

    tags = ds.tags or {}
    recorded = tags.get("source_claims")
    if recorded is None or set(recorded) & set(claims(spec)):
        return
    if tags.get("ledger_source") is not None and tags["ledger_source"] == source_key(spec):
        return
    shown = tags.get("source") or recorded[0]
    raise SpecError(
        f"the {ds.kind} data {ds.id} of pipeline {spec.name} was read from {shown}, "
        "not from the source the spec names now: its epsilon is charged to the source its rows came from. "
        "Use the spec that names that source (a source.id names its ledger wherever the file is), "
        "or ingest the new one first (`synthgen run`)"
    )


def latest(ctx: Context, name: str, kind: str) -> Dataset | None:
    """The newest catalogued dataset of a pipeline and kind."""
    found = [d for d in ctx.catalog.list_datasets(kind=kind) if d.name == name]
    return found[-1] if found else None


def latest_required(ctx: Context, spec: PipelineSpec, kind: str, hint: str) -> Dataset:
    ds = latest(ctx, spec.name, kind)
    if ds is None:
        what = {"anonymized": "anonymized data", "model": "trained model"}.get(kind, kind)
        raise CatalogError(f"pipeline {spec.name} has no {what} yet; run `synthgen {hint}` first")
    return ds


def reused(ctx: Context, stage: str, dataset_id: str) -> StageResult | None:
    """The stage's earlier output, if ``dataset_id`` is catalogued and its files exist (idempotent reruns)."""
    ds = ctx.catalog.get_dataset(dataset_id)
    if ds is None or not exists(ctx.zones, ds.path):
        return None
    return StageResult(stage, ds.id, ds.path, ds.rows, reused=True, extra=result_extra(stage, ds))


def result_extra(stage: str, ds: Dataset) -> dict[str, Any]:
    """What a stage returns about its output: the same for a fresh and a reused output."""
    if stage == "publish":
        return {
            "name": ds.name,
            "epsilon": (ds.extra or {}).get("epsilon"),
            "dp": bool(ds.dp),
            "classification": ds.classification,
        }
    return dict(ds.extra or {})


def require(ctx: Context, dataset_id: str, kind: str) -> Dataset:
    """The catalogued input ``dataset_id`` of ``kind``, its files present, else a CatalogError."""
    ds = ctx.catalog.get_dataset(dataset_id)
    if ds is None or ds.kind != kind:
        raise CatalogError(f"no {kind} dataset {dataset_id} in the catalog; run the earlier stages first")
    if not exists(ctx.zones, ds.path):
        raise CatalogError(f"{kind} {dataset_id} is catalogued but its files are gone: {ds.path}")
    return ds
