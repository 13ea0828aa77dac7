"""Shared fixtures. Services come from environment variables with the CI machine's defaults;
a service that does not answer fails the test that needs it (it is never skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
    from synthgen.stages import Context

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


SYNTHGEN = Path(sys.executable).with_name("synthgen")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def run_synthgen(
    args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> CliResult:
    """Run the installed ``synthgen`` console script (the real entry point) in a subprocess.

    Exit codes are only trustworthy from the process itself: an in-process runner once hid a
    ``main()`` that dropped them. The environment is this process's (as monkeypatched), plus ``env``.
    """
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [str(SYNTHGEN), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def synthgen_cli() -> Callable[..., CliResult]:
    """:func:`run_synthgen` as a fixture: ``synthgen_cli(args, env=..., cwd=...) -> CliResult``."""
    return run_synthgen


@pytest.fixture
def cli() -> Callable[[list[str]], tuple[int, str, str]]:
    """Run the ``synthgen`` console script: ``cli(args) -> (exit code, stdout, stderr)``."""

    def run(args: list[str]) -> tuple[int, str, str]:
        r = run_synthgen(args)
        return r.code, r.out, r.err

    return run
