"""Finding 2: a spec path expands SYNTHGEN_HOME and declared variables only, and messages show
the template, never an expanded value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]
SECRET = "s3cr3t-kek-material-0123456789"


def _spec(tmp_path: Path, source: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(f"name: visits\nsource: {source}\n")
    return p


@pytest.mark.parametrize(
    "var",
    [
        "SYNTHGEN_KEK_ANALYST",
        "DB_PASSWORD",
        "APP_SECRET",
        "GITHUB_TOKEN",
        "PGPASSWORD",
        "SYNTHGEN_CATALOG_URL",
        "DATABASE_URL",
        "WAREHOUSE_DSN",
        "AWS_ACCESS_KEY_ID",
        "SIGNING_KEY",
        "GCP_CREDENTIALS_FILE",
    ],
)
def test_a_secret_variable_never_expands_into_a_message(
    tmp_path: Path, home: Path, synthgen_cli: Cli, var: str
) -> None:
    spec = _spec(tmp_path, f"{{kind: csv, path: '/nonexistent/${{{var}}}'}}")
    for cmd in ("spec", "ingest"):
        args = ["spec", "validate", str(spec)] if cmd == "spec" else ["ingest", str(spec)]
        r = synthgen_cli(args, env={var: SECRET})
        assert r.code == 2, r.err
        assert SECRET not in r.err + r.out and var in r.err
        assert r.err.strip().count("\n") == 0


def test_a_listed_secret_variable_is_refused_at_validation(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    spec = _spec(tmp_path, "{kind: csv, path: '/d/${MY_TOKEN}/a.csv', path_vars: [MY_TOKEN]}")
    r = synthgen_cli(["spec", "validate", str(spec)], env={"MY_TOKEN": SECRET})
    assert r.code == 2 and "MY_TOKEN names a secret" in r.err and SECRET not in r.err


def test_a_credential_variable_cannot_be_a_path_variable(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    spec = _spec(
        tmp_path,
        "{kind: sql, url_env: WAREHOUSE_URL, table: t, path_vars: [WAREHOUSE_URL]}",
    )
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2 and "WAREHOUSE_URL" in r.err


def test_an_undeclared_variable_is_a_spec_error(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    spec = _spec(tmp_path, "{kind: csv, path: '${HOME}/a.csv'}")
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2 and "source.path_vars" in r.err and "${HOME}" in r.err


def test_a_declared_variable_expands_but_the_message_shows_the_template(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    spec = _spec(tmp_path, "{kind: csv, path: '${DATA_DIR}/a.csv', path_vars: [DATA_DIR]}")
    r = synthgen_cli(["ingest", str(spec)], env={"DATA_DIR": str(tmp_path / "data")})
    assert r.code == 0 and "ingested 2 rows" in r.out, r.err
    missing = _spec(tmp_path, "{kind: csv, path: '${DATA_DIR}/b.csv', path_vars: [DATA_DIR]}")
    r = synthgen_cli(["ingest", str(missing)], env={"DATA_DIR": "/opt/private-place"})
    assert r.code == 1 and "${DATA_DIR}/b.csv" in r.err and "private-place" not in r.err


def test_synthgen_home_still_expands(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    (home / "a.csv").write_text("x\n1\n2\n")
    spec = _spec(tmp_path, "{kind: csv, path: '${SYNTHGEN_HOME}/a.csv'}")
    r = synthgen_cli(["ingest", str(spec)])
    assert r.code == 0 and "ingested 2 rows" in r.out, r.err


@pytest.mark.parametrize("var", ["DATABASE_URL", "AWS_ACCESS_KEY_ID", "WAREHOUSE_DSN"])
def test_a_listed_url_key_or_dsn_variable_is_refused_at_validation(
    tmp_path: Path, home: Path, synthgen_cli: Cli, var: str
) -> None:
    spec = _spec(tmp_path, f"{{kind: csv, path: '/d/${{{var}}}/a.csv', path_vars: [{var}]}}")
    r = synthgen_cli(["spec", "validate", str(spec)], env={var: SECRET})
    assert r.code == 2 and f"{var} names a secret" in r.err and SECRET not in r.err


def test_a_value_holding_a_url_with_credentials_never_expands(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    """Its expansion would become the ledger key, which messages and ``budget show`` print."""
    spec = _spec(tmp_path, "{kind: csv, path: '${DATA_ROOT}/a.csv', path_vars: [DATA_ROOT]}")
    r = synthgen_cli(["ingest", str(spec)], env={"DATA_ROOT": f"postgresql://u:{SECRET}@db/x"})
    assert r.code == 2 and "DATA_ROOT" in r.err and "credentials" in r.err, r.err
    assert SECRET not in r.err + r.out and r.err.strip().count("\n") == 0
