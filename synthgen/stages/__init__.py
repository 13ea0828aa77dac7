"""The pipeline's stages, one room each, shared by the CLI and the Airflow DAGs.

Each stage takes the spec and a :class:`Context`, reads its inputs by catalog id,
writes its outputs atomically into the right zone, catalogues them, and returns a
small :class:`StageResult` (ids and paths only, so it can travel over XCom). Every
stage is idempotent for the same inputs: its output id is derived from the input
ids and the settings, and an output that already exists is returned as is. Retries
are therefore safe, and a retry never charges the privacy budget twice.

Flow and ownership: docs/architecture.md.
"""

from synthgen.ids import file_sha256, keyed_hash, settings_hash
from synthgen.source_identity import source_key
from synthgen.stages.anonymize import anonymize, anonymize_part, merge_anonymized, plan_anonymize
from synthgen.stages.context import (
    Context,
    StageResult,
    latest,
    latest_required,
    pipeline_secret,
    schema_from_json,
    schema_to_json,
)
from synthgen.stages.evaluate import evaluate
from synthgen.stages.generate import generate, generate_all, plan_shards, total_rows
from synthgen.stages.ingest import ingest, snapshot_parts
from synthgen.stages.publish import publish
from synthgen.stages.run import latest_run, new_run_id, run_pipeline, shards_of_run, summarize
from synthgen.stages.train import train

__all__ = [
    "Context",
    "StageResult",
    "anonymize",
    "anonymize_part",
    "evaluate",
    "file_sha256",
    "generate",
    "generate_all",
    "ingest",
    "keyed_hash",
    "latest",
    "latest_required",
    "latest_run",
    "merge_anonymized",
    "new_run_id",
    "pipeline_secret",
    "plan_anonymize",
    "plan_shards",
    "publish",
    "run_pipeline",
    "schema_from_json",
    "schema_to_json",
    "settings_hash",
    "shards_of_run",
    "snapshot_parts",
    "source_key",
    "summarize",
    "total_rows",
    "train",
]
