"""synthgen pipelines as Airflow DAGs: one DAG per pipeline spec.

Airflow parses this file only. For every ``*.yaml`` in ``SYNTHGEN_PIPELINES`` (default:
``pipelines/`` next to ``dags/``) it builds the DAG ``synthgen__<name>``::

    preflight -> ingest -> plan_anonymize -> anonymize (one mapped task per snapshot part)
           -> merge_anonymized -> train -> generate (one mapped task per shard) -> evaluate -> publish

``preflight`` runs the checks of ``synthgen run`` (:func:`synthgen.preflight.check`) before
any row is read: the source file, the zones, the policy's publish right, a key for every
output role and the source's remaining budget. A run that would stop later (at publish for
a missing key, at train for the budget) fails there at once, with the same one-line message
as the CLI, and nothing read, written or charged.

Each task calls the stage function of :mod:`synthgen.stages` that the CLI also calls;
this file holds no business logic. Only ids and paths travel over XCom. Heavy imports
(torch, Opacus, Presidio, spaCy) happen inside the tasks; the only synthgen module
imported at parse time is :mod:`synthgen.spec`, to validate each spec. Parse time is
measured by ``python -m bench dag_parse``.

Parameters (JSON-schema validated, so a bad value is refused when the run is
triggered): ``epsilon``, ``rows``, ``epochs`` override the spec for one run; ``null``
keeps the spec's value. SQL pipelines also take ``source_conn_id``.

Secrets stay out of specs and out of this file:

* a SQL source's credentials come from the Airflow Connection ``source_conn_id``
  (default ``synthgen_source_<name>``), exported to the task as the environment
  variable the spec names (``source.url_env`` gets the whole URL, ``source.password_env``
  the password); without that connection, from an Airflow Variable with the same name
  as the environment variable;
* role KEKs for the ``env`` key provider come from Variables ``SYNTHGEN_KEK_<ROLE>``
  (and ``SYNTHGEN_KEK_<ROLE>_VERSION``), read by the publish task (and by ``preflight``,
  which only checks that each output role has one);
* the pipeline master secret (surrogates, hashes, leak index) from the Variable
  ``SYNTHGEN_PIPELINE_SECRET``;
* where things live (``SYNTHGEN_HOME``, ``SYNTHGEN_CATALOG_URL``, zones, key provider)
  may come from the JSON Variable ``synthgen_config``.

Tasks act as the user ``synthgen-pipeline`` (the default policy's pipeline service user)
unless ``SYNTHGEN_USER`` is set.

A value already set in the worker's environment always wins (Docker/Kubernetes secrets).

A spec that does not validate disables its own DAG only: the error is logged by the DAG
processor, the file is recorded in :data:`BROKEN_SPECS`, and every other spec still
loads. A stage that fails on bad input (a :class:`synthgen.errors.SynthgenError`: missing
source, exhausted budget, ...) fails its task at once, without retries; anything else
(a lost database connection, an OOM-killed worker) is retried, which is safe because
every stage is idempotent.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param, dag, get_current_context, task

if TYPE_CHECKING:  # pragma: no cover - typing only; never imported at parse time
    from airflow.sdk import DAG

    from synthgen.spec import PipelineSpec

log = logging.getLogger(__name__)

#: Where pipeline specs are read from.
PIPELINES_DIR = Path(
    os.environ.get("SYNTHGEN_PIPELINES") or Path(__file__).resolve().parent.parent / "pipelines"
).absolute()
DAG_PREFIX = "synthgen__"
#: Upper bounds of the trigger-time parameters (a typo like epsilon=300 is refused, not run).
MAX_EPSILON = 100.0
MAX_EPOCHS = 10_000
#: Param name -> spec path it overrides.
OVERRIDES = {"epsilon": "privacy.epsilon", "rows": "output.rows", "epochs": "model.epochs"}
#: Settings a ``synthgen_config`` Variable may provide (never secrets: those have their own Variables).
CONFIG_KEYS = (
    "SYNTHGEN_HOME",
    "SYNTHGEN_CATALOG_URL",
    "SYNTHGEN_REAL_ZONE",
    "SYNTHGEN_SYNTHETIC_ZONE",
    "SYNTHGEN_KEY_PROVIDER",
    "SYNTHGEN_KEYS_DIR",
    "SYNTHGEN_POLICY_DIR",
    "SYNTHGEN_AUDIT_FILE",
    "SYNTHGEN_USER",
)
#: The master secret of surrogates, hashes and the leak index (every stage may need it).
PIPELINE_SECRET = "SYNTHGEN_PIPELINE_SECRET"
#: Celery queue of the train and generate tasks of pipelines whose spec asks for CUDA.
GPU_QUEUE = os.environ.get("SYNTHGEN_GPU_QUEUE", "gpu")
#: Who the tasks act as, for the policy and the audit log, unless SYNTHGEN_USER says otherwise.
PIPELINE_USER = "synthgen-pipeline"
_START = datetime(2024, 1, 1, tzinfo=timezone.utc)

#: Spec file -> why it has no DAG (filled at parse time; logged as well).
BROKEN_SPECS: dict[str, str] = {}


# -- what runs inside a task ---------------------------------------------------


def _overrides(params: Mapping[str, Any]) -> list[str]:
    """Trigger-time params as spec overrides (``privacy.epsilon=2``); ``None`` keeps the spec's value."""
    return [
        f"{path}={json.dumps(params[key])}" for key, path in OVERRIDES.items() if params.get(key) is not None
    ]


def _safe_run_id(run_id: str) -> str:
    """Airflow's run id (``manual__2026-01-01T00:00:00+00:00``) as a file- and id-safe token."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id).strip("_")


def _variable(key: str, *, json_value: bool = False) -> Any:
    from airflow.sdk import Variable

    return Variable.get(key, default=None, deserialize_json=json_value)


def _config_from_variables() -> dict[str, str]:
    """Settings from the optional JSON Variable ``synthgen_config`` (only :data:`CONFIG_KEYS`)."""
    raw = _variable("synthgen_config", json_value=True) or {}
    if not isinstance(raw, dict):
        raise ValueError("Airflow Variable synthgen_config must be a JSON object")
    unknown = sorted(set(raw) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"Airflow Variable synthgen_config: unknown keys {unknown}; allowed: {list(CONFIG_KEYS)}"
        )
    config = {k: str(v) for k, v in raw.items() if v is not None}
    if "@" in config.get("SYNTHGEN_CATALOG_URL", ""):  # a URL with credentials
        _masked({"SYNTHGEN_CATALOG_URL": config["SYNTHGEN_CATALOG_URL"]})
    return config


def _source_secrets(spec: PipelineSpec, params: Mapping[str, Any]) -> dict[str, str]:
    """The SQL source's credentials, as the environment variables its spec names.

    From the Connection ``source_conn_id`` if it exists, otherwise from Variables named
    like the environment variables. Values never pass through XCom, and are registered
    with Airflow's log masker.
    """
    src = spec.source
    wanted = [n for n in (src.url_env, src.password_env) if n and n not in os.environ]
    if src.kind != "sql" or not wanted:
        return {}
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    conn_id = params.get("source_conn_id") or default_conn_id(spec.name)
    out: dict[str, str] = {}
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        if params.get("source_conn_id"):  # asked for by name: its absence is an error
            raise
        conn = None
    if conn is not None:
        if src.url_env and src.url_env in wanted:
            out[src.url_env] = _sqlalchemy_url(conn)
        if src.password_env and src.password_env in wanted and conn.password:
            out[src.password_env] = conn.password
        _masked(out)
    return out | _variables([n for n in wanted if n not in out])


def _sqlalchemy_url(conn: Any) -> str:
    """An Airflow Connection as a SQLAlchemy URL (``postgres`` connections are ``postgresql`` there)."""
    from sqlalchemy.engine import URL

    extra = conn.extra_dejson
    if extra.get("sqlalchemy_url"):
        return str(extra["sqlalchemy_url"])
    if conn.conn_type == "sqlite":  # Airflow keeps the database file in `host`
        return URL.create("sqlite", database=conn.host).render_as_string(hide_password=False)
    driver = {"postgres": "postgresql", "mysql": "mysql+pymysql"}.get(conn.conn_type, conn.conn_type)
    url = URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)


def _masked(values: dict[str, str]) -> dict[str, str]:
    """Register secret values with Airflow's log masker (it masks only well-known key names itself)."""
    from airflow.sdk.log import mask_secret

    for name, value in values.items():
        mask_secret(value, name)
    return values


def _variables(names: list[str]) -> dict[str, str]:
    """Secrets from Airflow Variables of the same name, for those not already in the environment."""
    out: dict[str, str] = {}
    for name in names:
        if name not in os.environ and (value := _variable(name)) is not None:
            out[name] = str(value)
    return _masked(out)


def _kek_variables(spec: PipelineSpec) -> dict[str, str]:
    """Role KEKs for the ``env`` key provider, from Variables ``SYNTHGEN_KEK_<ROLE>[_VERSION]``."""
    if os.environ.get("SYNTHGEN_KEY_PROVIDER", "local") != "env":
        return {}
    names = []
    for role in spec.output.access.roles:
        var = "SYNTHGEN_KEK_" + role.upper().replace("-", "_")
        names += [var, var + "_VERSION"]
    return _variables(names)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set the variables not already set, for the duration of one stage (then restore)."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextmanager
def _stage(spec_file: str, secrets: str | None = None) -> Iterator[tuple[Any, PipelineSpec, Any, str]]:
    """What a stage task needs: the pipeline module, the spec with this run's overrides, a Context, run id.

    ``secrets`` is ``"source"`` (ingest) or ``"keys"`` (preflight, publish): each task receives
    only the secrets its own stage uses.
    """
    from airflow.sdk.exceptions import AirflowFailException

    context = get_current_context()
    params = context["params"]
    try:
        config = _config_from_variables()
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from exc
    # Tasks act as the pipeline's service user (the policy grants it train/generate/publish).
    config.setdefault("SYNTHGEN_USER", PIPELINE_USER)
    with _environment(config):
        from synthgen import stages
        from synthgen.errors import SynthgenError
        from synthgen.spec import load_spec

        try:
            spec = load_spec(spec_file, _overrides(params))
            extra = _variables([PIPELINE_SECRET])
            if secrets == "source":
                extra |= _source_secrets(spec, params)
            elif secrets == "keys":
                extra |= _kek_variables(spec)
            with _environment(extra):
                ctx = stages.Context.from_env()
                try:
                    yield stages, spec, ctx, _safe_run_id(context["run_id"])
                finally:
                    ctx.catalog.dispose()
        except SynthgenError as exc:
            # Bad input (spec, source, budget, policy): a retry cannot help, so fail now
            # with the stage's one-line message.
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


# -- the DAG -------------------------------------------------------------------


def default_conn_id(name: str) -> str:
    """The Connection a SQL pipeline reads its credentials from unless ``source_conn_id`` says otherwise."""
    return "synthgen_source_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def source_asset(spec: PipelineSpec) -> Asset:
    """The source, as the ingest task's inlet (a producer DAG can list it as an outlet)."""
    return Asset(f"synthgen://source/{spec.name}")


def published_asset(spec: PipelineSpec) -> Asset:
    """The published synthetic dataset; each event's extra holds the dataset id and the ε spent.

    Named by its URI alone, so a consumer DAG declares ``schedule=[Asset("synthgen://synthetic/<name>")]``
    and gets the same asset (Airflow keeps names and URIs unique).
    """
    return Asset(f"synthgen://synthetic/{spec.synthetic_name}")


def _params(spec: PipelineSpec) -> dict[str, Param]:
    params = {
        "epsilon": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=MAX_EPSILON,
            title="ε for this run",
            description=f"Target epsilon (0 < ε <= {MAX_EPSILON:g}); empty keeps the spec's "
            f"{spec.privacy.epsilon:g}. Charged to the source's budget (`synthgen budget show`).",
        ),
        "rows": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Synthetic rows",
            description="Rows to generate (>= 1); empty keeps the spec's "
            f"({spec.output.rows or '10,000, the default'}; never the source's row count).",
        ),
        "epochs": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=MAX_EPOCHS,
            title="Training epochs",
            description=f"1..{MAX_EPOCHS}; empty keeps the spec's {spec.model.epochs}.",
        ),
    }
    if spec.source.kind == "sql":
        params["source_conn_id"] = Param(
            None,
            type=["null", "string"],
            pattern=r"^[A-Za-z0-9_.-]{1,250}$",
            title="Source connection",
            description="Airflow Connection holding the source credentials; "
            f"empty: {default_conn_id(spec.name)}.",
        )
    return params


def build_dag(spec_file: Path, spec: PipelineSpec) -> DAG:
    """The DAG of one pipeline spec."""
    path = str(spec_file)
    inlet = source_asset(spec)
    outlet = published_asset(spec)
    # With the CeleryExecutor, GPU work goes to workers listening on the GPU queue; other
    # executors ignore queues. `auto` cannot be decided at parse time: default queue.
    on_gpu: dict[str, Any] = {"queue": GPU_QUEUE} if spec.model.device.startswith("cuda") else {}

    @dag(
        dag_id=DAG_PREFIX + spec.name,
        description=(spec.description or f"synthgen pipeline {spec.name}")[:200],
        schedule=spec.schedule,
        start_date=_START,
        catchup=False,
        # One run at a time per pipeline: runs share the source's privacy budget.
        max_active_runs=1,
        params=_params(spec),
        tags=["synthgen", f"source:{spec.source.kind}", f"model:{spec.model.kind}"],
        # Retries follow Airflow's [core] default_task_retries / default_task_retry_delay (the
        # compose file sets 2 and 60 s): safe, since every stage is idempotent.
        doc_md=f"synthgen pipeline `{spec.name}` from `{path}`; params and secrets: dags/synthgen_dags.py.",
    )
    def synthgen_pipeline() -> None:
        @task
        def preflight() -> None:
            """The checks of `synthgen run`, before any row is read (see synthgen.preflight)."""
            with _stage(path, secrets="keys") as (_pl, spec, ctx, _run):
                from synthgen.preflight import check

                check(spec, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)

        @task(inlets=[inlet])
        def ingest() -> dict[str, str]:
            with _stage(path, secrets="source") as (pl, spec, ctx, _run):
                r = pl.ingest(spec, ctx)
            return {"id": r.dataset_id, "path": r.path}

        @task
        def plan_anonymize(snapshot: dict[str, str]) -> list[dict[str, Any]]:
            """Decide the columns once; returns the anonymize jobs, one per snapshot part."""
            with _stage(path) as (pl, spec, ctx, _run):
                n_parts = pl.plan_anonymize(spec, ctx, snapshot_id=snapshot["id"])
            return [{"snapshot_id": snapshot["id"], "part": i} for i in range(n_parts)]

        @task(map_index_template="part {{ task.op_kwargs['part'] }}")
        def anonymize(snapshot_id: str, part: int) -> dict[str, Any]:
            with _stage(path) as (pl, spec, ctx, _run):
                pl.anonymize_part(spec, ctx, snapshot_id=snapshot_id, part_index=part)
            return {"snapshot_id": snapshot_id, "part": part}

        @task
        def merge_anonymized(parts: list[dict[str, Any]]) -> dict[str, str]:
            with _stage(path) as (pl, spec, ctx, _run):
                r = pl.merge_anonymized(spec, ctx, snapshot_id=parts[0]["snapshot_id"])
            return {"id": r.dataset_id, "path": r.path}

        @task(**on_gpu)
        def train(anonymized: dict[str, str]) -> list[dict[str, Any]]:
            """Train the model; returns the generate jobs, one per shard (model id and shard index)."""
            with _stage(path) as (pl, spec, ctx, run_id):
                r = pl.train(spec, ctx, anonymized_id=anonymized["id"], run_id=run_id)
                n_shards = pl.plan_shards(spec)
            return [{"model_id": r.dataset_id, "shard": i, "n_shards": n_shards} for i in range(n_shards)]

        @task(**on_gpu, map_index_template="shard {{ task.op_kwargs['shard'] }}")
        def generate(model_id: str, shard: int, n_shards: int) -> dict[str, str]:
            with _stage(path) as (pl, spec, ctx, run_id):
                r = pl.generate(spec, ctx, model_id=model_id, run_id=run_id, shard=shard, n_shards=n_shards)
            return {"model_id": model_id, "shard_id": r.dataset_id}

        @task
        def evaluate(shards: list[dict[str, str]]) -> dict[str, Any]:
            model_id = shards[0]["model_id"]
            shard_ids = [s["shard_id"] for s in shards]
            report_id = None
            with _stage(path) as (pl, spec, ctx, run_id):
                if spec.evaluate.enabled:
                    r = pl.evaluate(spec, ctx, model_id=model_id, shard_ids=shard_ids, run_id=run_id)
                    report_id = r.dataset_id
            return {"model_id": model_id, "shard_ids": shard_ids, "report_id": report_id}

        @task(outlets=[outlet])
        def publish(evaluated: dict[str, Any]) -> dict[str, str]:
            with _stage(path, secrets="keys") as (pl, spec, ctx, run_id):
                r = pl.publish(
                    spec,
                    ctx,
                    model_id=evaluated["model_id"],
                    shard_ids=list(evaluated["shard_ids"]),
                    run_id=run_id,
                    report_id=evaluated["report_id"],
                )
            # Consumers of the asset learn which dataset appeared and what it cost, without a catalog query.
            get_current_context()["outlet_events"][outlet].extra = {
                "dataset_id": r.dataset_id,
                "epsilon": r.extra.get("epsilon"),
                "name": r.extra.get("name", spec.synthetic_name),
                "rows": r.rows,
            }
            return {"id": r.dataset_id, "path": r.path}

        # TaskFlow calls return XComArgs at parse time; mypy sees the functions' runtime types.
        snapshot = ingest()
        preflight() >> snapshot
        parts = plan_anonymize(snapshot)  # type: ignore[arg-type]
        jobs = train(merge_anonymized(anonymize.expand_kwargs(parts)))  # type: ignore[arg-type]
        publish(evaluate(generate.expand_kwargs(jobs)))  # type: ignore[arg-type]

    return synthgen_pipeline()


def load_dags(folder: Path = PIPELINES_DIR) -> dict[str, DAG]:
    """One DAG per valid spec in ``folder``; a broken spec is logged and left out, the rest still load."""
    BROKEN_SPECS.clear()
    dags: dict[str, DAG] = {}
    if not folder.is_dir():
        log.warning("synthgen: pipeline folder %s does not exist (set SYNTHGEN_PIPELINES)", folder)
        return dags
    from synthgen.errors import SpecError
    from synthgen.spec import load_spec

    owner: dict[str, Path] = {}
    for spec_file in sorted(folder.glob("*.yaml")):
        try:
            spec = load_spec(spec_file)
            dag_id = DAG_PREFIX + spec.name
            if dag_id in owner:
                raise SpecError(f"{spec_file}: name {spec.name!r} is already used by {owner[dag_id]}")
            dags[dag_id] = build_dag(spec_file.resolve(), spec)
            owner[dag_id] = spec_file
        except Exception as exc:  # noqa: BLE001 - one bad spec must not take the others down
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            BROKEN_SPECS[str(spec_file)] = message
            log.error("synthgen: no DAG for %s: %s", spec_file, message)
    return dags


# Airflow collects DAG objects from the module's globals.
globals().update(load_dags())
