"""The demo DAG on a real Airflow stack on loopback, driven through REST API v2.

PostgreSQL metadata DB (a fresh database per run), ``api-server``, ``scheduler`` and
``dag-processor``; with the CeleryExecutor also a Redis broker and a ``celery worker`` in
its own AIRFLOW_HOME, which shares only the databases, the broker and the zones with the
scheduler. After the run, ``synthgen read`` decrypts the published dataset for a user the
policy allows (exit 0) and refuses one it does not (exit 3).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from airflow_stack import (
    DAGS,
    DEMO_DAG,
    SYNTHGEN,
    TINY_CONF,
    Stack,
    init_keys,
    start_stack,
    write_demo_source,
    write_test_pipelines,
)

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

#: Users of policies/default.yaml: bob is an analyst (reads shareable DP data), dave an auditor.
ALLOWED, DENIED, STEWARD = "bob", "dave", "alice"


def synthgen(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNTHGEN, *args], env=stack.synthgen_env, capture_output=True, text=True, timeout=300
    )


def run_demo(stack: Stack) -> tuple[str, dict[str, str]]:
    """Trigger the demo DAG with tiny settings and wait for it; the run id and the task states."""
    home = Path(stack.synthgen_env["SYNTHGEN_HOME"])
    write_demo_source(home)
    init_keys(stack.synthgen_env, STEWARD)
    stack.wait_dag(DEMO_DAG)
    status, body = stack.trigger(DEMO_DAG, TINY_CONF)
    assert status == 200, body
    run_id = body["dag_run_id"]
    state = stack.wait_run(DEMO_DAG, run_id, timeout=420)
    tasks = stack.task_states(DEMO_DAG, run_id)
    if state != "success":
        failed = [t for t, s in tasks.items() if s == "failed"]
        logs = "\n".join(stack.task_log(DEMO_DAG, run_id, t.split("[")[0])[-3000:] for t in failed)
        raise AssertionError(f"run {state}: {tasks}\n{logs}\n{stack.diagnostics()}")
    return run_id, tasks


def check_published_and_readable(stack: Stack, run_id: str, tmp_path: Path) -> None:
    [event] = stack.asset_events(DEMO_DAG, run_id)
    assert event["uri"] == "synthgen://synthetic/demo-patients-synthetic"
    dataset_id = event["extra"]["dataset_id"]
    assert 0 < event["extra"]["epsilon"] <= TINY_CONF["epsilon"]

    allowed = synthgen(stack, "read", dataset_id, "--user", ALLOWED, "--out", str(tmp_path / "out.parquet"))
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (tmp_path / "out.parquet").stat().st_size > 0
    denied = synthgen(stack, "read", dataset_id, "--user", DENIED)
    assert denied.returncode == 3, denied.stdout + denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1  # one clear line


#: A downstream DAG that runs when the demo publishes: what "other DAGs can react" means.
CONSUMER = """
from datetime import datetime
from airflow.sdk import Asset, dag, task


@dag(schedule=[Asset("synthgen://synthetic/demo-patients-synthetic")], start_date=datetime(2024, 1, 1))
def synthetic_consumer():
    @task
    def received(triggering_asset_events=None):
        [event] = [e for events in triggering_asset_events.values() for e in events]
        return event.extra["dataset_id"]

    received()


synthetic_consumer()
"""


def test_demo_dag_on_local_executor_stack(tmp_path: Path) -> None:
    pipelines = write_test_pipelines(tmp_path / "pipelines", extras=False)
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(DAGS / "synthgen_dags.py", dags / "synthgen_dags.py")
    (dags / "consumer.py").write_text(CONSUMER)
    with start_stack(tmp_path / "stack", pipelines, executor="LocalExecutor", dags=dags) as stack:
        stack.wait_dag(DEMO_DAG)
        # pipelines/ also holds a broken spec: it is logged, not an import error of the file.
        status, errors = stack.request("GET", "/api/v2/importErrors")
        assert status == 200 and errors["total_entries"] == 0, errors
        assert stack.request("GET", "/api/v2/dags/synthgen__broken")[0] == 404
        # A bad value is refused when the run is triggered: nothing is created.
        status, body = stack.trigger(DEMO_DAG, {"epsilon": 0})
        assert status == 400, body
        assert "epsilon" in str(body)
        status, runs = stack.request("GET", f"/api/v2/dags/{DEMO_DAG}/dagRuns")
        assert status == 200 and runs["total_entries"] == 0

        run_id, tasks = run_demo(stack)
        assert set(tasks.values()) == {"success"}
        check_published_and_readable(stack, run_id, tmp_path)

        # The asset event started the consumer DAG, which saw the published dataset's id.
        [event] = stack.asset_events(DEMO_DAG, run_id)
        consumer_run = stack.wait_for_run("synthetic_consumer", timeout=120)
        assert stack.wait_run("synthetic_consumer", consumer_run, timeout=120) == "success"
        status, xcom = stack.request(
            "GET",
            f"/api/v2/dags/synthetic_consumer/dagRuns/{consumer_run}/taskInstances/received/xcomEntries/return_value",
        )
        assert status == 200, xcom
        assert xcom["value"] == event["extra"]["dataset_id"]


def test_demo_dag_on_celery_executor_stack(tmp_path: Path) -> None:
    pipelines = write_test_pipelines(tmp_path / "pipelines", extras=False)
    with start_stack(tmp_path / "stack", pipelines, executor="CeleryExecutor") as stack:
        run_id, tasks = run_demo(stack)
        assert set(tasks.values()) == {"success"}
        # Every task ran in the worker: its task logs are under the worker's own AIRFLOW_HOME.
        worker_logs = tmp_path / "stack" / "worker_home" / "logs"
        ran = {
            part.removeprefix("task_id=")
            for log in worker_logs.rglob("attempt=*.log")
            for part in log.parts
            if part.startswith("task_id=")
        }
        assert {"ingest", "anonymize", "merge_anonymized", "train", "generate", "evaluate", "publish"} <= ran
        # Anonymization was mapped over the snapshot's parts (400 rows, part_rows 200).
        assert sorted(t for t in tasks if t.startswith("anonymize[")) == ["anonymize[0]", "anonymize[1]"]
        scheduler_logs = tmp_path / "stack" / "airflow_home" / "logs"
        assert not list(scheduler_logs.rglob("attempt=*.log"))
        check_published_and_readable(stack, run_id, tmp_path)
