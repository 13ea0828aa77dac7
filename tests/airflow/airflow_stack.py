"""Helpers of the Airflow tests: environments, test pipelines, and a real Airflow stack.

Airflow reads its configuration once, at import, from ``AIRFLOW_HOME`` and ``AIRFLOW__*``
variables; every Airflow call here therefore runs in a child process with its own
environment, so the rest of the suite never sees an Airflow configuration.

The real-stack fixture (:func:`start_stack`) creates a fresh PostgreSQL database per
run, starts ``api-server``, ``scheduler`` and ``dag-processor`` (and a Celery worker)
each in its own session (``setsid``), and stops them by process group in a finalizer
that runs even when the test fails. PostgreSQL and Redis come from
``SYNTHGEN_TEST_PG_URL`` / ``SYNTHGEN_TEST_REDIS_URL``; when they do not answer the
tests fail with a message saying so (they are never skipped).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
SYNTHGEN = str(BIN / "synthgen")
PG_URL = os.environ.get("SYNTHGEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SYNTHGEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

DEMO_DAG = "synthgen__demo-patients"
#: Rows of sample data the test pipelines train on (small: the tests check wiring, not quality).
DEMO_ROWS = 400
#: Trigger-time parameters of every test run: tiny, so a whole run takes seconds.
TINY_CONF = {"epochs": 1, "rows": 150, "epsilon": 3.0}


def clean_env(**extra: str) -> dict[str, str]:
    """The parent environment without any Airflow or synthgen setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNTHGEN_", "_AIRFLOW"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # tldextract (Presidio's e-mail/URL recognizers) must not try the network.
    env["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"] = ""
    env.update(extra)
    return env


def airflow_env(
    home: Path, pipelines: Path, synthgen_home: Path, dags: Path = DAGS, **extra: str
) -> dict[str, str]:
    """Settings shared by every Airflow process of a test (see DESIGN.md section 4)."""
    return clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        # Retries on, as in production (docker-compose.yaml): bad input must still fail at once.
        AIRFLOW__CORE__DEFAULT_TASK_RETRIES="2",
        AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY="2",
        SYNTHGEN_PIPELINES=str(pipelines),
        SYNTHGEN_HOME=str(synthgen_home),
        **extra,
    )


def run_python(code: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this venv (its own Airflow configuration)."""
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True, timeout=timeout
    )


def last_json(stdout: str) -> Any:
    """The last line of ``stdout`` that parses as JSON (Airflow logs to stdout as well)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith(("{", "[")):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise AssertionError(f"no JSON result in the output:\n{stdout[-3000:]}")


# -- pipelines -------------------------------------------------------------------


def write_test_pipelines(folder: Path, extras: bool = True) -> Path:
    """The repo's demo spec sized for tests (small batches, one epoch), plus one broken spec.

    The source path stays ``${SYNTHGEN_HOME}/demo/patients.csv``, so each test decides
    whether the source exists (and with which budget history) through its own home.
    ``extras`` adds a scheduled CSV pipeline and a SQL pipeline (parse-time tests only:
    a real scheduler would start the scheduled one).
    """
    folder.mkdir(parents=True, exist_ok=True)
    demo = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    demo.setdefault("model", {}).update(batch_size=64, epochs=1)
    demo.setdefault("output", {})["rows"] = 150
    # Parts of 200 rows: anonymize maps over 2 parts of the 400-row source (DEMO_ROWS).
    demo.setdefault("ingest", {})["part_rows"] = 200
    # Public date ranges (free under DP): they keep the DP bins of a 400-row table tight.
    demo["columns"].setdefault("date_of_birth", {}).update(type="datetime", bounds=[-1893456000, 1262304000])
    demo["columns"].setdefault("admission_date", {}).update(type="datetime", bounds=[1577836800, 1798761600])
    # The demo is scheduled daily; the tests trigger their runs themselves.
    demo["schedule"] = None
    (folder / "demo.yaml").write_text(yaml.safe_dump(demo, sort_keys=False))
    # A typo'd key: this spec must disable only its own DAG.
    (folder / "broken.yaml").write_text(
        "name: broken\nsource: {kind: csv, path: x.csv}\nmodel: {epochz: 3}\n"
    )
    if extras:
        (folder / "nightly.yaml").write_text(
            "name: nightly\nsource: {kind: csv, path: nightly.csv}\n"
            "model: {device: cuda}\nschedule: '0 3 * * *'\n"
        )
        (folder / "warehouse.yaml").write_text(
            "name: warehouse\nsource: {kind: sql, url_env: WAREHOUSE_URL, table: visits}\n"
        )
    return folder


def write_demo_source(synthgen_home: Path, rows: int = DEMO_ROWS) -> Path:
    """The demo's sample data, where the demo spec looks for it."""
    from synthgen.demo import write_demo_csv

    csv, _truth = write_demo_csv(synthgen_home / "demo" / "patients.csv", n=rows, seed=1)
    return Path(csv)


def init_keys(env: dict[str, str], steward: str = "alice") -> None:
    """Create the role KEKs in the environment's synthgen home, as a data steward (a one-time set-up)."""
    proc = subprocess.run(
        [SYNTHGEN, "keys", "init", "--user", steward], env=env, cwd=str(REPO), capture_output=True, text=True
    )
    assert proc.returncode == 0, f"synthgen keys init failed: {proc.stdout}{proc.stderr}"


# -- the real stack ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_postgres() -> None:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
        with engine.connect() as c:
            c.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        where = make_url(PG_URL).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL does not answer at {where} ({str(exc).strip().splitlines()[0]}): the Airflow stack "
            "tests need it. Start PostgreSQL or set SYNTHGEN_TEST_PG_URL.",
            pytrace=False,
        )


def require_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=5).ping()
    except Exception as exc:
        pytest.fail(
            f"Redis does not answer at {url} ({exc}): the CeleryExecutor test needs it as its broker. "
            "Start Redis or set SYNTHGEN_TEST_REDIS_URL.",
            pytrace=False,
        )


@dataclass
class Stack:
    """A running Airflow stack on loopback, driven through REST API v2."""

    base_url: str
    env: dict[str, str]
    #: Environment for ``synthgen`` commands that read what the DAG wrote (home, catalog).
    synthgen_env: dict[str, str]
    logs: Path
    password: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    token: str = ""

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw)
            except json.JSONDecodeError:
                return exc.code, raw.decode(errors="replace")

    def login(self) -> None:
        status, body = self.request("POST", "/auth/token", {"username": "admin", "password": self.password})
        assert status in (200, 201), f"cannot get a JWT from /auth/token: {status} {body}"
        self.token = body["access_token"]

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                status, body = self.request("GET", "/api/v2/monitor/health", timeout=5)
                last = body
                if (
                    status == 200
                    and body["metadatabase"]["status"] == "healthy"
                    and body["scheduler"]["status"] == "healthy"
                    and (body.get("dag_processor") or {}).get("status", "healthy") == "healthy"
                ):
                    return
            except (OSError, KeyError, TypeError):
                pass
            time.sleep(1)
        raise AssertionError(
            f"the stack did not become healthy in {timeout:.0f} s: {last}\n{self.diagnostics()}"
        )

    def wait_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}")
            if status == 200:
                return body
            time.sleep(1)
        raise AssertionError(f"DAG {dag_id} did not appear in {timeout:.0f} s\n{self.diagnostics()}")

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> tuple[int, Any]:
        return self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            self.check_alive()
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            assert status == 200, body
            state = body["state"]
            if state in ("success", "failed"):
                return str(state)
            time.sleep(2)
        raise AssertionError(
            f"run {run_id} still {state} after {timeout:.0f} s; tasks: {self.task_states(dag_id, run_id)}\n"
            + self.diagnostics()
        )

    def wait_for_run(self, dag_id: str, timeout: float = 120) -> str:
        """The id of the first run of ``dag_id`` (for DAGs started by an asset event)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns")
            if status == 200 and body["dag_runs"]:
                return str(body["dag_runs"][0]["dag_run_id"])
            time.sleep(2)
        raise AssertionError(f"no run of {dag_id} within {timeout:.0f} s\n{self.diagnostics()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        assert status == 200, body
        out = {}
        for ti in body["task_instances"]:
            key = ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"
            out[key] = ti["state"]
        return out

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        status, body = self.request("GET", path)
        return json.dumps(body) if status == 200 else f"(no log: {status} {body})"

    def asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id})
        status, body = self.request("GET", f"/api/v2/assets/events?{query}")
        assert status == 200, body
        return list(body["asset_events"])

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow component(s) exited: {dead}\n{self.diagnostics()}")

    def diagnostics(self, lines: int = 25) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)


def _admin_engine() -> Any:
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def _create_database(name: str) -> str:
    with _admin_engine().connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _drop_database(name: str) -> None:
    engine = _admin_engine()
    with engine.connect() as c:
        c.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    engine.dispose()


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each component's process group, then SIGKILL what is left (the scheduler forks)."""
    for p in procs.values():
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 20
    for p in procs.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs.values():
        # Children may outlive the leader: kill the whole group whatever the leader did.
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait(timeout=10)


def _redis_db_url(base: str) -> str:
    """The broker URL on a random Redis database (1-15), so concurrent runs do not share queues."""
    parts = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{secrets.randbelow(15) + 1}"))


@contextmanager
def start_stack(
    tmp: Path, pipelines: Path, executor: str = "LocalExecutor", dags: Path = DAGS
) -> Iterator[Stack]:
    """A real Airflow stack on loopback: fresh PostgreSQL DBs, api-server, scheduler, dag-processor.

    With ``executor="CeleryExecutor"`` it adds a Redis broker and an ``airflow celery worker``
    that has its own AIRFLOW_HOME: it shares only the databases, the broker and the zones
    with the scheduler. Everything is stopped and dropped on exit, even after a failure.
    """
    require_postgres()
    broker = None
    if executor == "CeleryExecutor":
        require_redis(REDIS_URL)
        broker = _redis_db_url(REDIS_URL)
    tag = uuid.uuid4().hex[:10]
    meta_db, catalog_db = f"synthgen_af_{tag}", f"synthgen_afcat_{tag}"
    created: list[str] = []
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        meta_url = _create_database(meta_db)
        created.append(meta_db)
        catalog_url = _create_database(catalog_db)
        created.append(catalog_db)
        port = free_port()
        password = secrets.token_urlsafe(16)
        home = tmp / "airflow_home"
        home.mkdir()
        (home / "passwords.json").write_text(json.dumps({"admin": password}))
        synthgen_home = tmp / "synthgen_home"
        synthgen_home.mkdir()
        pg = make_url(meta_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        settings = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg,
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            # One secret for every component, >= 64 bytes (DESIGN.md section 4).
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "SYNTHGEN_CATALOG_URL": catalog_url,
        }
        if broker:
            settings |= {
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta_url,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            }
        env = airflow_env(home, pipelines, synthgen_home, dags, **settings)
        migrate = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=env, cwd=str(tmp), capture_output=True, text=True, timeout=300
        )
        assert migrate.returncode == 0, (
            f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}"
        )

        def spawn(name: str, args: list[str], proc_env: dict[str, str]) -> None:
            out = open(logs / f"{name}.log", "wb")  # the child keeps its own copy
            # start_new_session = setsid: the component and all its children form one group.
            procs[name] = subprocess.Popen(
                [AIRFLOW, *args],
                env=proc_env,
                cwd=str(tmp),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            out.close()

        spawn("api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"], env)
        spawn("scheduler", ["scheduler"], env)
        spawn("dag-processor", ["dag-processor"], env)
        if broker:
            worker_home = tmp / "worker_home"
            worker_home.mkdir()
            worker_env = dict(env, AIRFLOW_HOME=str(worker_home))
            worker_env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
            spawn(
                "celery-worker",
                ["celery", "worker", "--concurrency", "2", "--without-mingle", "--without-gossip"],
                worker_env,
            )
        stack = Stack(
            base_url=f"http://127.0.0.1:{port}",
            env=env,
            synthgen_env=clean_env(SYNTHGEN_HOME=str(synthgen_home), SYNTHGEN_CATALOG_URL=catalog_url),
            logs=logs,
            password=password,
            procs=procs,
        )
        stack.wait_healthy()
        stack.login()
        yield stack
    finally:
        _stop(procs)
        for name in created:
            _drop_database(name)
        if broker:
            import redis

            redis.Redis.from_url(broker, socket_connect_timeout=5).flushdb()
