"""The DAG factory as Airflow's DagBag sees it: no import errors, the expected graph, params, assets.

One child process loads the DagBag (SQLite metadata DB, migrated once per session) and
reports what it found as JSON; each test checks one property of that report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_stack import DEMO_DAG, last_json, run_python

REPORT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator
import os

bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
module = sys.modules[[m for m in sys.modules if m.endswith("synthgen_dags")][0]]
heavy = sorted(m for m in ("torch", "opacus", "presidio_analyzer", "spacy", "sdv", "ctgan", "sklearn")
               if m in sys.modules)
dags = {}
for dag_id, dag in bag.dags.items():
    dags[dag_id] = {
        "tasks": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "mapped": sorted(t.task_id for t in dag.tasks if isinstance(t, MappedOperator)),
        "inlets": {t.task_id: [a.uri for a in t.inlets] for t in dag.tasks if t.inlets},
        "outlets": {t.task_id: [a.uri for a in t.outlets] for t in dag.tasks if t.outlets},
        "params": {k: v.schema for k, v in dag.params.items()},
        "schedule": getattr(dag.timetable, "expression", None) or type(dag.timetable).__name__,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "queues": {t.task_id: t.queue for t in dag.tasks},
    }
print(json.dumps({
    "import_errors": {str(k): v for k, v in bag.import_errors.items()},
    "dags": dags,
    "broken": module.BROKEN_SPECS,
    "heavy": heavy,
}))
"""


@pytest.fixture(scope="module")
def dagbag(sqlite_airflow: dict[str, str]) -> dict[str, Any]:
    proc = run_python(REPORT, sqlite_airflow, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = last_json(proc.stdout)
    report["log"] = proc.stdout + proc.stderr
    return report


def test_dag_file_imports_without_errors(dagbag: dict[str, Any]) -> None:
    assert dagbag["import_errors"] == {}


def test_one_dag_per_valid_spec(dagbag: dict[str, Any]) -> None:
    assert sorted(dagbag["dags"]) == [DEMO_DAG, "synthgen__nightly", "synthgen__warehouse"]


def test_broken_spec_disables_only_its_own_dag_and_is_logged(
    dagbag: dict[str, Any], test_pipelines: Path
) -> None:
    broken = str(test_pipelines / "broken.yaml")
    assert list(dagbag["broken"]) == [broken]
    assert "model.epochz: unknown key" in dagbag["broken"][broken]
    assert "synthgen__broken" not in dagbag["dags"]
    assert f"no DAG for {broken}" in dagbag["log"]


def test_stages_run_in_order_after_the_preflight_with_anonymize_mapped_over_parts_and_generate_over_shards(
    dagbag: dict[str, Any],
) -> None:
    dag = dagbag["dags"][DEMO_DAG]
    assert dag["tasks"] == {
        "preflight": ["ingest"],
        "ingest": ["plan_anonymize"],
        "plan_anonymize": ["anonymize"],
        "anonymize": ["merge_anonymized"],
        "merge_anonymized": ["train"],
        "train": ["generate"],
        "generate": ["evaluate"],
        "evaluate": ["publish"],
        "publish": [],
    }
    assert sorted(dag["mapped"]) == ["anonymize", "generate"]
    # Runs of one pipeline share its source's budget: never two at once.
    assert dag["max_active_runs"] == 1


def test_source_is_ingest_inlet_and_published_dataset_is_publish_outlet(dagbag: dict[str, Any]) -> None:
    dag = dagbag["dags"][DEMO_DAG]
    assert dag["inlets"] == {"ingest": ["synthgen://source/demo-patients"]}
    assert dag["outlets"] == {"publish": ["synthgen://synthetic/demo-patients-synthetic"]}


def test_schedule_comes_from_the_spec(dagbag: dict[str, Any]) -> None:
    assert dagbag["dags"]["synthgen__nightly"]["schedule"] == "0 3 * * *"
    assert dagbag["dags"][DEMO_DAG]["schedule"] == "NullTimetable"


def test_params_are_json_schema_with_bounds(dagbag: dict[str, Any]) -> None:
    params = dagbag["dags"][DEMO_DAG]["params"]
    assert set(params) == {"epsilon", "rows", "epochs"}
    assert params["epsilon"]["exclusiveMinimum"] == 0 and params["epsilon"]["maximum"] == 100
    assert params["rows"]["type"] == ["null", "integer"] and params["rows"]["minimum"] == 1
    assert params["epochs"]["minimum"] == 1 and params["epochs"]["maximum"] == 10_000
    # Only a SQL pipeline has credentials to look up.
    assert "source_conn_id" in dagbag["dags"]["synthgen__warehouse"]["params"]


def test_parsing_imports_no_training_or_nlp_library(dagbag: dict[str, Any]) -> None:
    assert dagbag["heavy"] == [], f"the DAG file pulled {dagbag['heavy']} in at parse time"


def test_gpu_pipelines_send_train_and_generate_to_the_gpu_queue(dagbag: dict[str, Any]) -> None:
    gpu = dagbag["dags"]["synthgen__nightly"]["queues"]  # model.device: cuda
    cpu = dagbag["dags"][DEMO_DAG]["queues"]  # model.device: auto
    assert gpu["train"] == gpu["generate"] == "gpu"
    assert gpu["ingest"] == cpu["train"] == cpu["generate"] == "default"
