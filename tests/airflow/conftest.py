"""Fixtures of the Airflow tests (helpers live in airflow_stack.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from airflow_stack import AIRFLOW, REPO, airflow_env, write_test_pipelines


@pytest.fixture(scope="session")
def test_pipelines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo spec sized for tests, plus a broken and a scheduled spec."""
    return write_test_pipelines(tmp_path_factory.mktemp("pipelines"))


@pytest.fixture(scope="session")
def sqlite_airflow(tmp_path_factory: pytest.TempPathFactory, test_pipelines: Path) -> dict[str, str]:
    """An AIRFLOW_HOME with a migrated SQLite metadata DB; returns the environment to use it."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = airflow_env(home, test_pipelines, tmp_path_factory.mktemp("synthgen_home"))
    proc = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"airflow db migrate failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return env
