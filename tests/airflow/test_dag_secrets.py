"""Secrets reach the stages from Airflow Connections and Variables, never from the spec or XCom.

The DAG module is imported once, in a child process; each case sets Connections
(``AIRFLOW_CONN_*``) and Variables (``AIRFLOW_VAR_*``) in its environment, as a secrets
backend would provide them, and records what the task helpers hand to the stages.
"""

from __future__ import annotations

from typing import Any

import pytest
from airflow_stack import DAGS, last_json, run_python

KEK = "A" * 43 + "="
CASES = r"""
import importlib.util, json, os
s = importlib.util.spec_from_file_location("synthgen_dags", DAG_FILE)
m = importlib.util.module_from_spec(s); s.loader.exec_module(m)
from synthgen.spec import load_spec
pipelines = os.environ["SYNTHGEN_PIPELINES"]
warehouse = load_spec(pipelines + "/warehouse.yaml")
demo = load_spec(pipelines + "/demo.yaml")

def case(env, fn):
    os.environ.update(env)
    try:
        return fn()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for k in env:
            os.environ.pop(k)

out = {
    "default_conn": case(
        {"AIRFLOW_CONN_SYNTHGEN_SOURCE_WAREHOUSE": "postgres://reader:s3cret@db.example:5432/dw"},
        lambda: m._source_secrets(warehouse, {}),
    ),
    "named_conn": case(
        {"AIRFLOW_CONN_DW_REPLICA": json.dumps({"conn_type": "sqlite", "host": "/data/dw.sqlite"})},
        lambda: m._source_secrets(warehouse, {"source_conn_id": "dw_replica"}),
    ),
    "missing_named_conn": case({}, lambda: m._source_secrets(warehouse, {"source_conn_id": "no_such_conn"})),
    "variable": case(
        {"AIRFLOW_VAR_WAREHOUSE_URL": "postgresql://ro@warehouse/dw"},
        lambda: m._source_secrets(warehouse, {}),
    ),
    "env_wins": case(
        {"WAREHOUSE_URL": "postgresql://from-env/dw",
         "AIRFLOW_CONN_SYNTHGEN_SOURCE_WAREHOUSE": "postgres://reader:s3cret@db.example:5432/dw"},
        lambda: m._source_secrets(warehouse, {}),
    ),
    "kek_local": case(
        {"AIRFLOW_VAR_SYNTHGEN_KEK_ANALYST": KEK},
        lambda: m._kek_variables(demo),
    ),
    "kek_env": case(
        {"SYNTHGEN_KEY_PROVIDER": "env", "AIRFLOW_VAR_SYNTHGEN_KEK_ANALYST": KEK,
         "AIRFLOW_VAR_SYNTHGEN_KEK_ANALYST_VERSION": "v7"},
        lambda: m._kek_variables(demo),
    ),
    "pipeline_secret": case(
        {"AIRFLOW_VAR_SYNTHGEN_PIPELINE_SECRET": "0123456789abcdef0123"},
        lambda: m._variables([m.PIPELINE_SECRET]),
    ),
    "config": case(
        {"AIRFLOW_VAR_SYNTHGEN_CONFIG": json.dumps({"SYNTHGEN_HOME": "/srv/synthgen",
                                                   "SYNTHGEN_CATALOG_URL": "postgresql://cat/db"})},
        m._config_from_variables,
    ),
    "config_with_secret": case(
        {"AIRFLOW_VAR_SYNTHGEN_CONFIG": json.dumps({"SYNTHGEN_KEK_ANALYST": KEK})},
        m._config_from_variables,
    ),
    "overrides": m._overrides({"epsilon": 2.5, "rows": 1000, "epochs": None}),
}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def cases(sqlite_airflow: dict[str, str]) -> dict[str, Any]:
    code = f"DAG_FILE = {str(DAGS / 'synthgen_dags.py')!r}\nKEK = {KEK!r}\n" + CASES
    proc = run_python(code, sqlite_airflow, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return last_json(proc.stdout)  # type: ignore[no-any-return]


def test_sql_credentials_come_from_the_pipelines_default_connection(cases: dict[str, Any]) -> None:
    # Airflow's `postgres` connection type is SQLAlchemy's `postgresql`.
    assert cases["default_conn"] == {"WAREHOUSE_URL": "postgresql://reader:s3cret@db.example:5432/dw"}


def test_a_connection_named_at_trigger_time_is_used_and_must_exist(cases: dict[str, Any]) -> None:
    assert cases["named_conn"] == {"WAREHOUSE_URL": "sqlite:////data/dw.sqlite"}
    assert "no_such_conn" in cases["missing_named_conn"]["error"]


def test_without_a_connection_a_variable_named_like_the_env_var_is_used(cases: dict[str, Any]) -> None:
    assert cases["variable"] == {"WAREHOUSE_URL": "postgresql://ro@warehouse/dw"}


def test_the_worker_environment_wins_over_connections(cases: dict[str, Any]) -> None:
    assert cases["env_wins"] == {}  # nothing added: the stage reads WAREHOUSE_URL from the environment


def test_keks_come_from_variables_for_the_env_key_provider_only(cases: dict[str, Any]) -> None:
    assert cases["kek_local"] == {}  # the local provider keeps keys under SYNTHGEN_KEYS_DIR
    assert cases["kek_env"] == {"SYNTHGEN_KEK_ANALYST": KEK, "SYNTHGEN_KEK_ANALYST_VERSION": "v7"}


def test_pipeline_secret_comes_from_a_variable(cases: dict[str, Any]) -> None:
    assert cases["pipeline_secret"] == {"SYNTHGEN_PIPELINE_SECRET": "0123456789abcdef0123"}


def test_config_variable_accepts_only_known_settings(cases: dict[str, Any]) -> None:
    assert cases["config"] == {
        "SYNTHGEN_HOME": "/srv/synthgen",
        "SYNTHGEN_CATALOG_URL": "postgresql://cat/db",
    }
    assert "unknown keys ['SYNTHGEN_KEK_ANALYST']" in cases["config_with_secret"]["error"]


def test_params_become_spec_overrides_and_empty_keeps_the_spec(cases: dict[str, Any]) -> None:
    assert cases["overrides"] == ["privacy.epsilon=2.5", "output.rows=1000"]
