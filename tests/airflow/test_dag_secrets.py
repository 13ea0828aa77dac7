"""Secrets reach the stages from Airflow Connections and Variables, never from the spec or XCom.

The DAG module is imported in a child process whose environment defines Connections
(``AIRFLOW_CONN_*``) and Variables (``AIRFLOW_VAR_*``), as a secrets backend would.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow_stack import DAGS, last_json, run_python


def _run(env: dict[str, str], body: str) -> dict:
    code = (
        "import importlib.util, json, os\n"
        f"s = importlib.util.spec_from_file_location('synthgen_dags', {str(DAGS / 'synthgen_dags.py')!r})\n"
        "m = importlib.util.module_from_spec(s); s.loader.exec_module(m)\n"
        "from synthgen.spec import load_spec\n"
        "pipelines = os.environ['SYNTHGEN_PIPELINES']\n" + body
    )
    proc = run_python(code, env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return last_json(proc.stdout)


def test_sql_credentials_come_from_the_pipelines_connection(sqlite_airflow: dict[str, str]) -> None:
    env = dict(
        sqlite_airflow, AIRFLOW_CONN_SYNTHGEN_SOURCE_WAREHOUSE="postgres://reader:s3cret@db.example:5432/dw"
    )
    out = _run(env, "print(json.dumps(m._source_secrets(load_spec(pipelines + '/warehouse.yaml'), {})))")
    # Airflow's `postgres` connection type is SQLAlchemy's `postgresql`.
    assert out == {"WAREHOUSE_URL": "postgresql://reader:s3cret@db.example:5432/dw"}


def test_a_named_connection_overrides_the_default_and_must_exist(sqlite_airflow: dict[str, str]) -> None:
    env = dict(
        sqlite_airflow,
        AIRFLOW_CONN_DW_REPLICA=json.dumps({"conn_type": "sqlite", "host": "/data/dw.sqlite"}),
    )
    out = _run(
        env,
        "spec = load_spec(pipelines + '/warehouse.yaml')\n"
        "found = m._source_secrets(spec, {'source_conn_id': 'dw_replica'})\n"
        "try:\n"
        "    m._source_secrets(spec, {'source_conn_id': 'no_such_conn'}); missing = None\n"
        "except Exception as exc:\n"
        "    missing = str(exc)\n"
        "print(json.dumps({'found': found, 'missing': missing}))",
    )
    assert out["found"] == {"WAREHOUSE_URL": "sqlite:////data/dw.sqlite"}
    assert "no_such_conn" in out["missing"]


def test_without_a_connection_a_variable_named_like_the_env_var_is_used(
    sqlite_airflow: dict[str, str],
) -> None:
    env = dict(sqlite_airflow, AIRFLOW_VAR_WAREHOUSE_URL="postgresql://ro@warehouse/dw")
    out = _run(env, "print(json.dumps(m._source_secrets(load_spec(pipelines + '/warehouse.yaml'), {})))")
    assert out == {"WAREHOUSE_URL": "postgresql://ro@warehouse/dw"}


def test_the_worker_environment_wins_over_connections(sqlite_airflow: dict[str, str]) -> None:
    env = dict(
        sqlite_airflow,
        WAREHOUSE_URL="postgresql://from-env/dw",
        AIRFLOW_CONN_SYNTHGEN_SOURCE_WAREHOUSE="postgres://reader:s3cret@db.example:5432/dw",
    )
    out = _run(env, "print(json.dumps(m._source_secrets(load_spec(pipelines + '/warehouse.yaml'), {})))")
    assert out == {}  # nothing to add: the stage reads WAREHOUSE_URL from the environment


def test_keks_come_from_variables_for_the_env_key_provider_only(sqlite_airflow: dict[str, str]) -> None:
    kek = "A" * 43 + "="
    env = dict(
        sqlite_airflow, AIRFLOW_VAR_SYNTHGEN_KEK_ANALYST=kek, AIRFLOW_VAR_SYNTHGEN_KEK_ANALYST_VERSION="v7"
    )
    body = "print(json.dumps(m._kek_variables(load_spec(pipelines + '/demo.yaml'))))"
    assert _run(env, body) == {}  # local key provider: keys live under SYNTHGEN_KEYS_DIR
    out = _run(dict(env, SYNTHGEN_KEY_PROVIDER="env"), body)
    assert out == {"SYNTHGEN_KEK_ANALYST": kek, "SYNTHGEN_KEK_ANALYST_VERSION": "v7"}


def test_config_variable_accepts_only_known_settings(sqlite_airflow: dict[str, str], tmp_path: Path) -> None:
    good = {"SYNTHGEN_HOME": str(tmp_path), "SYNTHGEN_CATALOG_URL": "postgresql://cat/db"}
    out = _run(
        dict(sqlite_airflow, AIRFLOW_VAR_SYNTHGEN_CONFIG=json.dumps(good)),
        "print(json.dumps(m._config_from_variables()))",
    )
    assert out == good
    bad = dict(sqlite_airflow, AIRFLOW_VAR_SYNTHGEN_CONFIG=json.dumps({"SYNTHGEN_KEK_ANALYST": "x"}))
    out = _run(
        bad,
        "try:\n    m._config_from_variables(); print('{}')\n"
        "except ValueError as exc:\n    print(json.dumps({'error': str(exc)}))",
    )
    assert "unknown keys ['SYNTHGEN_KEK_ANALYST']" in out["error"]
