"""Whole runs of the demo DAG with ``dag.test()`` (SQLite metadata DB, tasks in one process).

Each test gives the run its own SYNTHGEN_HOME, so it decides whether the source exists
and what the source's privacy ledger already holds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import (
    DEMO_DAG,
    DEMO_ROWS,
    REPO,
    TINY_CONF,
    clean_env,
    init_keys,
    last_json,
    write_demo_source,
)

pytestmark = pytest.mark.slow

SCRIPT = str(Path(__file__).with_name("dag_test_run.py"))


def dag_test(env: dict[str, str], home: Path, conf: Any, timeout: float = 600) -> dict[str, Any]:
    """Run the demo DAG once in a child process; the result plus everything it logged."""
    proc = subprocess.run(
        [sys.executable, SCRIPT, DEMO_DAG, json.dumps(conf)],
        env=dict(env, SYNTHGEN_HOME=str(home)),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"dag.test crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = last_json(proc.stdout)
    result["log"] = proc.stdout + proc.stderr
    return result


#: What an id or a path looks like (catalog ids are ``<kind>-<hex>``).
ID_OR_PATH = re.compile(r"[a-z]+-[0-9a-f]{8,}|/[\w./-]+")


#: XCom keys whose value may be an integer: part and shard numbers, never a row count.
INT_XCOM_KEYS = {"part", "shard", "n_shards"}


def keyed_leaves(value: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar inside a JSON value with the dict key it sits under (``key`` at the top)."""
    if isinstance(value, str) and value[:1] in "[{":
        value = json.loads(value)
    if isinstance(value, dict):
        for k, v in value.items():
            yield from keyed_leaves(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from keyed_leaves(v, key)
    else:
        yield key, value


def catalog_datasets(home: Path) -> list[Any]:
    from synthgen.catalog import Catalog

    db = home / "catalog.db"
    if not db.exists():
        return []
    catalog = Catalog(f"sqlite:///{db}")
    try:
        return catalog.list_datasets()
    finally:
        catalog.dispose()


def published(home: Path) -> list[Any]:
    return [d for d in catalog_datasets(home) if d.zone == "synthetic" and d.kind == "synthetic"]


BAD_CONFS = [
    {"epsilon": 0},
    {"epsilon": -1},
    {"epsilon": 101},
    {"epsilon": "three"},
    {"epochs": 0},
    {"epochs": 10_001},
    {"rows": 0},
    {"rows": 2.5},
]


def test_out_of_range_params_are_rejected_at_trigger_time(
    sqlite_airflow: dict[str, str], tmp_path: Path
) -> None:
    result = dag_test(sqlite_airflow, tmp_path, BAD_CONFS, timeout=300)
    for conf, message in zip(BAD_CONFS, result["rejected"]):
        assert message is not None, f"{conf} was accepted"
        assert "Invalid input for param" in message, message
    assert catalog_datasets(tmp_path) == []  # no task ran


def test_demo_dag_runs_end_to_end_and_publishes_an_asset_event(
    sqlite_airflow: dict[str, str], tmp_path: Path
) -> None:
    write_demo_source(tmp_path)
    init_keys(clean_env(SYNTHGEN_HOME=str(tmp_path)))
    result = dag_test(sqlite_airflow, tmp_path, TINY_CONF)
    assert result["state"] == "success", f"{result['tasks']}\n{result['log'][-4000:]}"
    tasks = result["tasks"]
    assert {k for k, v in tasks.items() if v == "success"} == set(tasks)
    assert any(k.startswith("generate[") for k in tasks)
    assert sum(k.startswith("anonymize[") for k in tasks) == 2  # 400 rows in parts of 200

    [dataset] = published(tmp_path)
    [event] = result["events"]
    assert event["uri"] == "synthgen://synthetic/demo-patients-synthetic"
    assert event["extra"]["dataset_id"] == dataset.id
    assert 0 < event["extra"]["epsilon"] <= TINY_CONF["epsilon"]
    # Consumers read the event (P9): the ε charged and the synthetic row count, a run setting,
    # never a real row count (the source has DEMO_ROWS) or a score from the restricted report.
    assert set(event["extra"]) == {"dataset_id", "epsilon", "name", "rows"}
    assert event["extra"]["rows"] == TINY_CONF["rows"] == dataset.rows != DEMO_ROWS
    # XCom carries ids, paths and part/shard numbers only: never data, counts, scores or secrets.
    assert result["xcoms"]
    for xcom in result["xcoms"]:
        for key, leaf in keyed_leaves(xcom["value"], xcom["key"]):
            if isinstance(leaf, int):
                assert key in INT_XCOM_KEYS, (xcom["task_id"], key, leaf)
            else:
                assert ID_OR_PATH.fullmatch(leaf), (xcom["task_id"], key, leaf)
    # Synthetic output lands in the synthetic zone only (P1).
    assert Path(dataset.path).resolve().is_relative_to((tmp_path / "zones" / "synthetic").resolve())


def nothing_read_or_charged(home: Path) -> None:
    """No dataset catalogued (no snapshot: no row read), no ledger entry or reservation, no real file."""
    from sqlalchemy import select

    from synthgen.catalog import BudgetEntry, BudgetReservation, Catalog

    assert catalog_datasets(home) == []
    db = home / "catalog.db"
    if db.exists():
        catalog = Catalog(f"sqlite:///{db}")
        try:
            with catalog.session() as s:
                assert s.scalars(select(BudgetEntry)).all() == []
                assert s.scalars(select(BudgetReservation)).all() == []
        finally:
            catalog.dispose()
    real = home / "zones" / "real"
    assert not real.exists() or not any(p.is_file() for p in real.rglob("*.parquet"))


def test_missing_source_fails_the_preflight_at_once_and_publishes_nothing(
    sqlite_airflow: dict[str, str], tmp_path: Path
) -> None:
    result = dag_test(sqlite_airflow, tmp_path, TINY_CONF)  # no patients.csv under this home
    assert result["state"] == "failed"
    assert result["tasks"]["preflight"] == "failed"
    assert result["tasks"]["ingest"] == result["tasks"]["publish"] == "upstream_failed"
    assert result["tries"]["preflight"] == 1  # bad input is not retried
    assert "source file not found" in result["log"]
    assert result["events"] == []
    assert published(tmp_path) == []


def test_missing_role_key_fails_the_preflight_before_any_row_is_read_and_names_who_fixes_it(
    sqlite_airflow: dict[str, str], tmp_path: Path
) -> None:
    write_demo_source(tmp_path)  # the source is there; no `synthgen keys init` was run
    result = dag_test(sqlite_airflow, tmp_path, TINY_CONF)
    assert result["state"] == "failed"
    assert result["tasks"]["preflight"] == "failed"
    assert result["tasks"]["ingest"] == "upstream_failed"
    assert result["tries"]["preflight"] == 1
    # The CLI's one line: which role, which command, and who may run it.
    assert re.search(
        r"pre-flight: no key-encryption key for output roles? analyst.*; a data steward \(alice.*\) "
        r"must run `synthgen keys init` first \(nothing was read or charged\)",
        result["log"],
    ), result["log"][-3000:]
    assert result["events"] == []
    nothing_read_or_charged(tmp_path)


def test_exhausted_budget_fails_the_preflight_with_the_ledger_message_and_reads_nothing(
    sqlite_airflow: dict[str, str], tmp_path: Path
) -> None:
    from synthgen.catalog import BudgetEntry, Catalog
    from synthgen.source_identity import source_key
    from synthgen.spec import load_spec

    csv = write_demo_source(tmp_path)
    init_keys(clean_env(SYNTHGEN_HOME=str(tmp_path)))  # so the budget is the first check to fail
    # Earlier runs already spent 9.5 of the demo's cap of 10; this run asks for 3.
    spec = load_spec(Path(sqlite_airflow["SYNTHGEN_PIPELINES"]) / "demo.yaml")
    spec.source.path = str(csv)
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    with catalog.session() as s:  # a settled ledger entry, as synthgen.privacy.budget writes it
        s.add(
            BudgetEntry(
                source=source_key(spec),
                run_id="earlier",
                step="training",
                mechanism="dp-sgd",
                epsilon=9.5,
                delta=1e-6,
                accountant="prv",
                detail={},
            )
        )
    catalog.dispose()

    result = dag_test(sqlite_airflow, tmp_path, TINY_CONF)
    assert result["state"] == "failed"
    assert result["tasks"]["preflight"] == "failed"
    assert result["tasks"]["ingest"] == result["tasks"]["publish"] == "upstream_failed"
    assert result["tries"]["preflight"] == 1
    assert "BudgetError: pre-flight: privacy budget exhausted for source" in result["log"]
    assert catalog_datasets(tmp_path) == []  # no snapshot: ingest never ran
    assert result["events"] == []
    assert published(tmp_path) == []
