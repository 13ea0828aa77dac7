"""The budget through the installed ``synthgen`` console script: concurrent trains on a capped
source (SQLite and PostgreSQL catalogs), ``budget set-cap`` allowed/denied, a spec cap above the
source's, and a train killed mid-fit (its reservation stays charged; the next run sweeps it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from synthgen.catalog import AccessLog, Catalog

SYNTHGEN = str(Path(sys.executable).with_name("synthgen"))
REPO = Path(__file__).resolve().parents[2]
NAME = "budget-cli"
SPEC = f"""
name: {NAME}
source: {{kind: csv, path: data.csv}}
columns:
  age: {{type: numeric, bounds: [0, 100]}}
  group: {{type: categorical, categories: [a, b, c]}}
anonymize: {{enabled: false}}
privacy: {{epsilon: 4}}
model: {{kind: dp_tvae, epochs: 8, batch_size: 64}}
evaluate: {{enabled: false}}
"""


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A synthgen home with the data ingested (anonymize off), on SQLite or a fresh PostgreSQL catalog."""
    home = tmp_path_factory.mktemp(f"budget-{request.param}")
    rng = np.random.default_rng(0)
    pl.DataFrame({"age": rng.integers(18, 90, 1500), "group": rng.choice(["a", "b", "c"], 1500)}).write_csv(
        home / "data.csv"
    )
    (home / "spec.yaml").write_text(SPEC)
    e = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHGEN_")}
    e |= {
        "SYNTHGEN_HOME": str(home),
        "SYNTHGEN_POLICY_DIR": str(REPO / "policies"),
        "SYNTHGEN_PIPELINE_SECRET": "budget-test-secret-0123456789",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    db = None
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server_url")
        db = f"synthgen_budget_{uuid.uuid4().hex[:10]}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{db}"'))
        e["SYNTHGEN_CATALOG_URL"] = make_url(server).set(database=db).render_as_string(hide_password=False)
    else:
        e["SYNTHGEN_CATALOG_URL"] = f"sqlite:///{home / 'catalog.db'}"
    assert _sg(e, "anonymize", str(home / "spec.yaml")).returncode == 0
    yield e
    if db is not None:
        with admin.connect() as c:
            c.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": db}
            )
            c.execute(text(f'DROP DATABASE IF EXISTS "{db}"'))
        admin.dispose()


@pytest.fixture(autouse=True)
def _unbound(env: dict[str, str]) -> Iterator[None]:
    """Each test names the module's one data file under its own source.id: release the binding after."""
    yield
    from synthgen.catalog import BudgetSourceClaim

    cat = Catalog(env["SYNTHGEN_CATALOG_URL"])
    with cat.session() as s:
        s.query(BudgetSourceClaim).delete()
    cat.dispose()


def _sg(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNTHGEN, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["SYNTHGEN_HOME"]
    )


def _spec(env: dict[str, str]) -> str:
    return str(Path(env["SYNTHGEN_HOME"]) / "spec.yaml")


def _train(env: dict[str, str], source_id: str, *sets: str) -> subprocess.Popen[str]:
    args = [SYNTHGEN, "train", _spec(env), "--set", f"source.id={source_id}"]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=env["SYNTHGEN_HOME"]
    )


def _show(env: dict[str, str], source_id: str) -> dict:
    r = _sg(env, "budget", "show", f"id:{source_id}", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _one_line(stderr: str) -> bool:
    return stderr.strip().count("\n") == 0 and "Traceback" not in stderr


def test_two_concurrent_trains_at_epsilon_4_on_a_cap_of_6_cannot_both_spend(env: dict[str, str]) -> None:
    src = f"race-{uuid.uuid4().hex[:6]}"
    r = _sg(env, "budget", "set-cap", f"id:{src}", "6", "--user", "alice")
    assert r.returncode == 0 and "-> 6" in r.stdout, r.stderr
    runs = [_train(env, src), _train(env, src)]
    done = [(p.wait(600), *p.communicate()) for p in runs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 1], done
    _, _, refused = next(d for d in done if d[0] == 1)
    assert _one_line(refused) and "budget exhausted" in refused
    assert f"id:{src}" in refused and "cap 6" in refused and "budget_cap" not in refused
    ledger = _show(env, src)
    assert 0 < ledger["spent_epsilon"] <= 4.0 + 1e-9 and ledger["reserved_epsilon"] == 0.0
    assert ledger["cap"] == 6.0 and ledger["spent_epsilon"] + ledger["reserved_epsilon"] <= 6.0
    assert len({e["run_id"] for e in ledger["entries"]}) == 1  # the refused run charged nothing


def test_set_cap_needs_the_admin_action_and_is_audited(env: dict[str, str]) -> None:
    src = f"cap-{uuid.uuid4().hex[:6]}"
    for user in ("bob", "synthgen-pipeline", "mallory"):
        r = _sg(env, "budget", "set-cap", f"id:{src}", "1000", "--user", user)
        assert r.returncode == 3 and _one_line(r.stderr) and "denied" in r.stderr, (user, r.stderr)
    assert _show(env, src)["cap_set"] is False
    r = _sg(env, "budget", "set-cap", f"id:{src}", "2", "--delta", "1e-6", "--user", "alice")
    assert r.returncode == 0, r.stderr
    shown = _show(env, src)
    assert (shown["cap"], shown["cap_delta"], shown["cap_set"]) == (2.0, 1e-6, True)
    cat = Catalog(env["SYNTHGEN_CATALOG_URL"])
    with cat.session() as s:
        log = [
            (e.actor, e.decision)
            for e in s.scalars(select(AccessLog).where(AccessLog.resource == f"budget:id:{src}"))
        ]
    cat.dispose()
    assert log == [
        ("bob", "deny"),
        ("synthgen-pipeline", "deny"),
        ("mallory", "deny"),
        ("alice", "allow"),
        ("alice", "ok"),
    ]
    r = _sg(env, "budget", "set-cap", f"id:{src}", "0", "--user", "alice")
    assert r.returncode == 2 and _one_line(r.stderr)


def test_a_spec_cap_above_the_source_cap_is_refused_with_exit_2(env: dict[str, str]) -> None:
    src = f"spec-{uuid.uuid4().hex[:6]}"
    p = _train(env, src, "privacy.budget_cap=1000")
    code = p.wait(300)
    _, stderr = p.communicate()
    assert code == 2 and _one_line(stderr), stderr
    assert "may only lower" in stderr and f"id:{src}" in stderr and "(10)" in stderr
    shown = _show(env, src)
    assert shown["entries"] == [] and shown["reserved_epsilon"] == 0.0


def test_a_train_killed_mid_fit_stays_charged_and_the_next_run_sweeps_it(env: dict[str, str]) -> None:
    src = f"kill-{uuid.uuid4().hex[:6]}"
    holdouts = Path(env["SYNTHGEN_HOME"]) / "zones" / "real" / "holdout" / NAME
    before = set(holdouts.glob("*.parquet")) if holdouts.is_dir() else set()
    p = _train(env, src, "model.epochs=2000")
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if holdouts.is_dir() and set(holdouts.glob("*.parquet")) - before:
            break  # the holdout is split off: the reservation is taken and the fit starts now
        time.sleep(0.2)
    time.sleep(3)
    assert p.poll() is None, p.communicate()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    orphans = set(holdouts.glob("*.parquet")) - before
    assert len(orphans) == 1
    shown = _show(env, src)
    assert shown["reserved_epsilon"] == 4.0 and shown["entries"] == []
    assert [r["epsilon"] for r in shown["reservations"]] == [4.0]

    # The next run on the pipeline sweeps the orphan and turns the dead reservation into a
    # ledger entry (same amount); it is then refused: 4 charged + 7 > the default cap of 10.
    r = _sg(env, "train", _spec(env), "--set", f"source.id={src}", "--set", "privacy.epsilon=7")
    assert r.returncode == 1 and "budget exhausted" in r.stderr and _one_line(r.stderr), r.stderr
    assert not any(o.exists() for o in orphans)
    shown = _show(env, src)
    assert shown["reserved_epsilon"] == 0.0
    assert [(e["step"], e["epsilon"]) for e in shown["entries"]] == [("killed_run", 4.0)]
    cat = Catalog(env["SYNTHGEN_CATALOG_URL"])
    with cat.session() as s:
        sweeps = [e.detail for e in s.scalars(select(AccessLog).where(AccessLog.action == "sweep"))]
    cat.dispose()
    assert any(any(str(o.name) in x for x in d["removed"]) for d in sweeps for o in orphans)


def test_a_new_source_id_on_bound_data_is_refused_with_exit_2_until_an_admin_unbinds(
    env: dict[str, str],
) -> None:
    """F1: the data file is bound to the first key that reserved on it; another id cannot reset it."""
    from synthgen.privacy import budget
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.source_identity import claims
    from synthgen.spec import load_spec

    first, second = f"first-{uuid.uuid4().hex[:6]}", f"second-{uuid.uuid4().hex[:6]}"
    spec = load_spec(Path(_spec(env)), [f"source.id={first}"])
    cat = Catalog(env["SYNTHGEN_CATALOG_URL"])
    held = budget.reserve(
        cat,
        source=f"id:{first}",
        run_id="bind",
        privacy=PrivacySettings(epsilon=1),
        default_cap=(10.0, 1e-3),
        location=claims(spec),
    )
    budget.settle(cat, held, mechanisms=[{"step": "t", "mechanism": "m", "epsilon": 1.0}])
    cat.dispose()
    r = _sg(env, "train", _spec(env), "--set", f"source.id={second}")
    assert r.returncode == 2, r.stderr
    assert _one_line(r.stderr) and f"registered source id:{first}" in r.stderr, r.stderr
    assert _show(env, second)["entries"] == [] and _show(env, second)["reserved_epsilon"] == 0
    assert _sg(env, "budget", "unbind", f"id:{first}", "--user", "bob").returncode == 3
    r = _sg(env, "budget", "unbind", f"id:{first}", "--user", "alice")
    assert r.returncode == 0 and "2 data binding(s) removed" in r.stdout, r.stderr
    # The data is free now: a too-large run on the new id gets past the binding to the cap check.
    r = _sg(env, "train", _spec(env), "--set", f"source.id={second}", "--set", "privacy.epsilon=11")
    assert r.returncode == 1 and "privacy budget exhausted" in r.stderr, r.stderr
