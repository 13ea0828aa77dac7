"""Shared fixtures. Services come from environment variables with the CI machine's defaults;
a service that does not answer fails the test that needs it (it is never skipped)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("SYNTHGEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SYNTHGEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADULT = Path(
    os.environ.get("SYNTHGEN_ADULT_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "adult")
)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
        with engine.connect() as c:
            c.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL does not answer at {make_url(PG_URL).render_as_string(hide_password=True)}: "
            f"{exc}. Set SYNTHGEN_TEST_PG_URL or start PostgreSQL (README, Services)."
        )
    return PG_URL


@pytest.fixture(scope="session")
def pg_database(pg_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"synthgen_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated SYNTHGEN_HOME (zones, catalog, keys, audit) for one test."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("SYNTHGEN_HOME", str(h))
    for var in (
        "SYNTHGEN_CATALOG_URL",
        "SYNTHGEN_REAL_ZONE",
        "SYNTHGEN_SYNTHETIC_ZONE",
        "SYNTHGEN_SECRETS_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture
def ctx(home: Path):  # type: ignore[no-untyped-def]
    from synthgen.pipeline import Context

    c = Context.from_env()
    c.user = "tester"
    yield c
    c.catalog.dispose()


@pytest.fixture(scope="session")
def adult_dir() -> Path:
    assert (ADULT / "adult_train.csv").is_file(), (
        f"Adult data not found under {ADULT}; set SYNTHGEN_ADULT_DIR"
    )
    return ADULT


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run the ``synthgen`` CLI in-process: ``cli(args) -> (exit code, stdout, stderr)``."""
    from synthgen.cli import main

    def run(args: list[str]) -> tuple[int, str, str]:
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return run
