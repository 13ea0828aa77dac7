"""The budget module (P6, P11): reservations under a per-source lock, settling, caps, orphans."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthgen.catalog import Catalog
from synthgen.errors import AccessDenied, BudgetError, SpecError
from synthgen.privacy import budget
from synthgen.privacy.settings import PrivacySettings

REPO = Path(__file__).resolve().parents[2]
CAP = (6.0, 1e-3)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def catalog(url: str) -> Iterator[Catalog]:
    cat = Catalog(url)
    yield cat
    cat.dispose()


def _source(tmp_path: Path) -> str:
    return f"csv:{tmp_path}/data.csv"  # unique per test, also on the shared PostgreSQL database


def _reserve_until_refused(url: str, source: str, start_at: float, out: mp.Queue) -> None:
    """One competing process: from the common start, reserve epsilon 0.05 at a time until refused."""
    cat = Catalog(url)
    reserved = 0
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        for i in range(10_000):
            budget.reserve(
                cat,
                source=source,
                run_id=f"run-{mp.current_process().pid}-{i}",
                privacy=PrivacySettings(epsilon=0.05, delta=1e-8),
                default_cap=CAP,
            )
            reserved += 1
    except BudgetError as exc:
        out.put((reserved, str(exc)))
    except Exception as exc:  # reported to the test, which fails on it
        out.put((reserved, f"error: {type(exc).__name__}: {exc}"))
    finally:
        cat.dispose()


def test_concurrent_processes_cannot_reserve_past_the_cap(url: str, catalog: Catalog, tmp_path: Path) -> None:
    """Four processes race for a cap of 6 in steps of 0.05: together they get exactly 120 steps."""
    source = _source(tmp_path)
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    start_at = time.time() + 10  # spawned interpreters import synthgen first
    procs = [
        ctx.Process(target=_reserve_until_refused, args=(url, source, start_at, results)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(30)
    assert not [m for _, m in outcomes if m.startswith("error")], outcomes
    assert all(source in m and "cap 6" in m for _, m in outcomes)
    assert sum(n for n, _ in outcomes) == 120, outcomes
    now = budget.standing(catalog, source)
    assert now.reserved_epsilon == pytest.approx(6.0) and now.charged_epsilon <= 6.0 + 1e-9


def test_settle_charges_the_spent_amount_and_closes_the_reservation(catalog: Catalog, tmp_path: Path) -> None:
    source = _source(tmp_path)
    r = budget.reserve(
        catalog, source=source, run_id="r1", privacy=PrivacySettings(epsilon=4), default_cap=CAP
    )
    assert r is not None and (r.epsilon, r.delta) == (4.0, budget.RUN_DELTA_CEILING)
    mechanisms = [
        {"step": "preprocessing", "mechanism": "laplace_count", "epsilon": 0.4, "delta": 0.0},
        {"step": "training", "mechanism": "dp_sgd", "epsilon": 3.1, "delta": 5e-5, "accountant": "prv"},
    ]
    budget.settle(catalog, r, mechanisms=mechanisms, detail={"model_id": "m"})
    now = budget.standing(catalog, source)
    assert (now.reserved_epsilon, now.spent_epsilon) == (0.0, pytest.approx(3.5))
    assert now.spent_delta == pytest.approx(5e-5)
    assert [e.detail for e in catalog.ledger(source)] == [{"model_id": "m"}] * 2
    with pytest.raises(BudgetError, match="already settled"):
        budget.settle(catalog, r, mechanisms=mechanisms)
    assert budget.standing(catalog, source).spent_epsilon == pytest.approx(3.5)  # not charged twice


def test_a_refused_run_charges_nothing_and_names_source_spent_and_cap(
    catalog: Catalog, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    budget.reserve(catalog, source=source, run_id="r1", privacy=PrivacySettings(epsilon=4), default_cap=CAP)
    before = budget.standing(catalog, source)
    with pytest.raises(BudgetError) as info:
        budget.reserve(
            catalog, source=source, run_id="r2", privacy=PrivacySettings(epsilon=3), default_cap=CAP
        )
    msg = str(info.value)
    assert source in msg and "reserved 4" in msg and "cap 6" in msg and "\n" not in msg
    assert "budget_cap" not in msg  # never suggests raising the cap through the spec
    assert budget.standing(catalog, source) == before


def test_a_spec_cap_may_only_lower_the_source_cap(catalog: Catalog, tmp_path: Path) -> None:
    source = _source(tmp_path)
    with pytest.raises(SpecError, match="may only lower"):
        budget.reserve(
            catalog,
            source=source,
            run_id="r1",
            privacy=PrivacySettings(epsilon=1, budget_cap=1000),
            default_cap=CAP,
        )
    assert budget.standing(catalog, source).charged_epsilon == 0.0
    with pytest.raises(BudgetError, match="cap 2"):
        budget.reserve(
            catalog,
            source=source,
            run_id="r2",
            privacy=PrivacySettings(epsilon=3, budget_cap=2),
            default_cap=CAP,
        )
    assert budget.reserve(
        catalog, source=source, run_id="r3", privacy=PrivacySettings(epsilon=2, budget_cap=2), default_cap=CAP
    )


def test_delta_is_capped_too(catalog: Catalog, tmp_path: Path) -> None:
    source = _source(tmp_path)
    p = PrivacySettings(epsilon=0.5, delta=4e-4)
    budget.reserve(catalog, source=source, run_id="r1", privacy=p, default_cap=CAP)
    budget.reserve(catalog, source=source, run_id="r2", privacy=p, default_cap=CAP)
    with pytest.raises(BudgetError, match=r"delta cap 0\.001"):
        budget.reserve(catalog, source=source, run_id="r3", privacy=p, default_cap=CAP)


def test_the_first_run_pins_the_source_cap_from_the_default(catalog: Catalog, tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert not budget.standing(catalog, source).cap_set
    budget.reserve(catalog, source=source, run_id="r1", privacy=PrivacySettings(epsilon=1), default_cap=CAP)
    # A later, larger default does not raise the cap the source already has.
    now = budget.standing(catalog, source, default_cap=(100.0, 0.5))
    assert now.cap_set and (now.cap_epsilon, now.cap_delta) == CAP


def test_an_unsettled_reservation_stays_charged_and_a_failed_run_pays_its_upper_bound(
    catalog: Catalog, tmp_path: Path
) -> None:
    source = _source(tmp_path)
    killed = budget.reserve(
        catalog, source=source, run_id="k", privacy=PrivacySettings(epsilon=2), default_cap=CAP
    )
    assert killed is not None
    failed = budget.reserve(
        catalog, source=source, run_id="f", privacy=PrivacySettings(epsilon=2), default_cap=CAP
    )
    budget.settle_failed(catalog, failed, epsilon=0.6, delta=failed.delta, error=ValueError("x"))  # type: ignore[union-attr]
    entry = [e for e in catalog.ledger(source) if e.run_id == "f"]
    assert [(e.step, e.epsilon, e.delta) for e in entry] == [("failed_run", 0.6, budget.RUN_DELTA_CEILING)]
    now = budget.standing(catalog, source)
    assert now.reserved_epsilon == pytest.approx(2.0) and now.charged_epsilon == pytest.approx(2.6)
    budget.charge_killed(catalog, killed.id, reason="test")
    after = budget.standing(catalog, source)
    assert after.reserved_epsilon == 0.0 and after.charged_epsilon == pytest.approx(2.6)
    assert [e.step for e in catalog.ledger(source)] == ["failed_run", "killed_run"]


def test_without_dp_nothing_is_reserved(catalog: Catalog, tmp_path: Path) -> None:
    source = _source(tmp_path)
    assert budget.reserve(catalog, source=source, run_id="r", privacy=PrivacySettings(dp=False)) is None
    assert not budget.standing(catalog, source).cap_set


def test_run_privacy_holds_an_unset_delta_to_the_reserved_ceiling() -> None:
    from synthgen.privacy.accountant import resolve_delta

    p = budget.run_privacy(PrivacySettings(epsilon=1))
    assert resolve_delta(p, 10) == budget.RUN_DELTA_CEILING  # 1/(10 n) would be 0.01
    assert resolve_delta(p, 1e6) == pytest.approx(1e-7)  # the rule still applies below the ceiling
    assert budget.run_privacy(PrivacySettings(epsilon=1, delta=1e-6)).delta == 1e-6


def test_set_cap_needs_admin_and_is_audited(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy import select

    from synthgen.catalog import AccessLog

    monkeypatch.setenv("SYNTHGEN_POLICY_DIR", str(REPO / "policies"))
    cat = Catalog.from_env()
    with pytest.raises(AccessDenied, match="admin"):
        budget.set_cap(cat, "id:s", epsilon=50, delta=None, user="bob")
    assert not budget.standing(cat, "id:s").cap_set
    before, after = budget.set_cap(cat, "id:s", epsilon=3, delta=1e-5, user="alice")
    assert (before.cap_epsilon, after.cap_epsilon, after.cap_delta) == (10.0, 3.0, 1e-5)
    with cat.session() as s:
        log = [(e.actor, e.action, e.decision) for e in s.scalars(select(AccessLog).order_by(AccessLog.seq))]
    assert log == [
        ("bob", "admin", "deny"),
        ("alice", "admin", "allow"),
        ("alice", "budget.set-cap", "ok"),
    ]
    with pytest.raises(SpecError):
        budget.set_cap(cat, "id:s", epsilon=float("inf"), delta=None, user="alice")
    cat.dispose()


def test_the_policy_gives_the_default_cap(tmp_path: Path) -> None:
    from synthgen.policy import Policy

    assert Policy.load([REPO / "policies"]).budget.epsilon_cap == 10.0
    extra = tmp_path / "tight.yaml"
    extra.write_text("version: 1\nbudget: {epsilon_cap: 4, delta_cap: 1.0e-6}\n")
    p = Policy.load([REPO / "policies" / "default.yaml", extra])
    assert (p.budget.epsilon_cap, p.budget.delta_cap) == (4.0, 1e-6)  # the tightest wins


# -- F1: a source is bound to its data on the first reservation ---------------------------------


def _spec(path: Path | str, **source: object) -> object:
    from synthgen.spec import PipelineSpec

    src = {"kind": "csv", "path": str(path), **source}
    return PipelineSpec.model_validate({"name": "p", "source": src, "privacy": {"epsilon": 1}})


def _try(cat: Catalog, spec: object, run: str) -> str:
    from synthgen.source_identity import claims, source_key

    key = source_key(spec)  # type: ignore[arg-type]
    held = budget.standing(cat, key).charged_epsilon
    try:
        budget.reserve(
            cat,
            source=key,
            run_id=run,
            privacy=PrivacySettings(epsilon=4),
            default_cap=(10.0, 1e-3),
            location=claims(spec),
        )
    except SpecError as exc:
        assert budget.standing(cat, key).charged_epsilon == held  # refused before anything was held
        return f"refused: {exc}"
    return "ok"


def test_a_new_id_or_another_spelling_of_bound_data_cannot_start_a_fresh_budget(
    catalog: Catalog, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(data)
    os.link(data, tmp_path / "hard.csv")
    first = f"csv:{data.resolve()}"
    assert _try(catalog, _spec(data), "r0") == "ok"
    for i, spec in enumerate(
        [
            _spec(data, id="hospital"),
            _spec(data, id="hospital2"),
            _spec(tmp_path / "link.csv", id="x"),
            _spec(tmp_path / "hard.csv"),  # a hardlink: another path, the same inode
            _spec(tmp_path / "sub" / ".." / "data.csv", id="y"),
        ]
    ):
        outcome = _try(catalog, spec, f"r{i + 1}")
        assert outcome.startswith("refused") and f"registered source {first};" in outcome, outcome
        assert "\n" not in outcome and "unbind" in outcome
    assert _try(catalog, _spec(data), "again") == "ok"  # the bound key itself still runs
    assert budget.standing(catalog, first).charged_epsilon == pytest.approx(8.0)


def test_a_bound_id_pointed_at_other_data_is_refused_until_an_admin_unbinds_it(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHGEN_POLICY_DIR", str(REPO / "policies"))
    cat = Catalog.from_env()
    (home / "a.csv").write_text("a\n1\n")
    (home / "b.csv").write_text("a\n2\n")
    assert _try(cat, _spec(home / "a.csv", id="ward"), "r0") == "ok"
    outcome = _try(cat, _spec(home / "b.csv", id="ward"), "r1")
    assert outcome.startswith("refused: source id:ward is registered for other data"), outcome
    with pytest.raises(AccessDenied, match="admin"):
        budget.unbind(cat, "id:ward", user="bob")
    assert _try(cat, _spec(home / "b.csv", id="ward"), "r2").startswith("refused")
    assert len(budget.unbind(cat, "id:ward", user="alice")) == 2  # its path and its inode
    assert _try(cat, _spec(home / "b.csv", id="ward"), "r3") == "ok"
    with cat.session() as s:
        from sqlalchemy import select

        from synthgen.catalog import AccessLog

        log = [(e.actor, e.action, e.decision) for e in s.scalars(select(AccessLog).order_by(AccessLog.seq))]
    assert log == [("bob", "admin", "deny"), ("alice", "admin", "allow"), ("alice", "budget.unbind", "ok")]
    cat.dispose()


def test_sql_locations_ignore_user_driver_default_port_and_query_whitespace() -> None:
    from synthgen.source_identity import claims
    from synthgen.spec import PipelineSpec

    def sql(url: str, **src: str) -> list[str]:
        spec = PipelineSpec.model_validate(
            {"name": "p", "source": {"kind": "sql", "url": url, **src}, "privacy": {"epsilon": 1}}
        )
        return claims(spec)

    a = sql("postgresql://alice@DB.example:5432/h", table="visits")
    assert a == sql("postgresql+psycopg://bob@db.example/h", table="visits")
    assert a != sql("postgresql://alice@db.example/h", table="other")
    assert "alice" not in str(a)
    q = sql("postgresql://db.example/h", query="SELECT a, b\n  FROM visits;")
    assert q == sql("postgresql://u@db.example/h", query="SELECT a, b FROM visits")


def _sql_identity(
    url: str, monkeypatch: pytest.MonkeyPatch | None = None, **src: str
) -> tuple[str, list[str]]:
    from synthgen.source_identity import claims, source_key
    from synthgen.spec import PipelineSpec

    spec = PipelineSpec.model_validate(
        {"name": "p", "source": {"kind": "sql", "url": url, **src}, "privacy": {"epsilon": 1}}
    )
    return source_key(spec), claims(spec)


def test_every_spelling_of_one_postgresql_table_names_one_ledger_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red-team: each spelling below was a fresh budget on the same rows."""
    for var in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    canonical = _sql_identity("postgresql://localhost:5432/clinic", table="patients")
    # An already-normalised spelling keeps the key (and claim) it had before normalisation.
    assert canonical == (
        "sql:table patients at postgresql://localhost:5432/clinic",
        ["sql:postgresql://localhost:5432/clinic#table:patients"],
    )
    spellings = [
        ("postgresql://localhost/clinic", "patients"),  # default port omitted
        ("postgresql://127.0.0.1:5432/clinic", "patients"),
        ("postgresql://127.0.1.1/clinic", "patients"),  # any 127/8 address
        ("postgresql://[::1]:5432/clinic", "patients"),
        ("postgresql://[0:0:0:0:0:0:0:1]/clinic", "patients"),
        ("postgresql://[::ffff:127.0.0.1]/clinic", "patients"),
        ("postgresql://LocalHost./clinic", "patients"),
        ("postgresql:///clinic", "patients"),  # no host: the local server's Unix socket
        ("postgresql:///clinic?host=/var/run/postgresql", "patients"),
        ("postgresql://elsewhere/clinic?host=127.0.0.1", "patients"),  # ?host= is where libpq goes
        ("postgresql://localhost/other?dbname=clinic", "patients"),  # ?dbname= overrides the path
        ("postgresql://localhost/clinic", "public.patients"),  # the default schema
        ("postgresql://localhost/clinic", "PUBLIC.Patients"),  # letter case
        ("postgresql://localhost/clinic", "  patients "),  # stray spaces
        ("postgresql://localhost/clinic  ", "patients"),
        ("postgresql+psycopg://localhost/clinic", "patients"),  # driver suffix
        ("postgres+psycopg2://localhost/clinic", "patients"),
        ("postgresql://alice@localhost/clinic", "patients"),  # the user is not the data
        ("postgresql://bob@127.0.0.1/clinic", "patients"),
        ("postgresql://localhost/clinic?sslmode=require&connect_timeout=3", "patients"),
        ("postgresql://localhost/clinic?connect_timeout=3&sslmode=require", "patients"),  # option order
        ("postgresql://localhost/clinic?options=-csearch_path%3Dpublic", "patients"),
    ]
    for url, table in spellings:
        key, bound = _sql_identity(url, table=table)
        assert (key, bound[0]) == (canonical[0], canonical[1][0]), (url, table)
    # A query that reads the table whole is the table (red-team: its own fresh budget).
    for query in ("SELECT * FROM patients", "select *\n from public.patients;", 'SELECT * FROM "Patients" '):
        key, bound = _sql_identity("postgresql://localhost/clinic", query=query)
        assert (key, bound[0]) == (canonical[0], canonical[1][0]), query
    some = _sql_identity("postgresql://localhost/clinic", query="SELECT * FROM patients WHERE age > 3")
    assert some[0] != canonical[0]
    # libpq's defaults fill what a URL leaves out.
    monkeypatch.setenv("PGDATABASE", "clinic")
    assert _sql_identity("postgresql://localhost", table="patients")[0] == canonical[0]
    monkeypatch.setenv("PGHOST", "db.example")
    assert _sql_identity("postgresql:///clinic", table="patients")[0] == (
        "sql:table patients at postgresql://db.example:5432/clinic"
    )


def test_other_postgresql_tables_databases_hosts_and_ports_keep_their_own_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGOPTIONS"):
        monkeypatch.delenv(var, raising=False)
    others = [
        ("postgresql://localhost/clinic", "patients"),
        ("postgresql://localhost/clinic", "visits"),
        ("postgresql://localhost/clinic", "archive.patients"),
        ("postgresql://localhost/clinic?options=-c%20search_path%3Darchive", "visits"),
        ("postgresql://localhost/other", "patients"),
        ("postgresql://localhost/Clinic", "patients"),  # database names are exact in PostgreSQL
        ("postgresql://localhost:5433/clinic", "patients"),
        ("postgresql://db.example/clinic", "patients"),
        ("postgresql://10.0.0.7/clinic", "patients"),
        ("postgresql://[2001:db8::7]/clinic", "patients"),
        ("mysql://localhost/clinic", "patients"),
    ]
    keys = [_sql_identity(url, table=table)[0] for url, table in others]
    assert len(set(keys)) == len(keys), keys
    # The search path chooses the schema: `visits` under search_path=archive is archive.visits.
    by_path = _sql_identity(
        "postgresql://localhost/clinic?options=-c%20search_path%3Darchive", table="visits"
    )
    explicit = _sql_identity("postgresql://localhost/clinic", table="archive.visits")
    assert (by_path[0], by_path[1][0]) == (explicit[0], explicit[1][0])
    # A multi-host URL claims each endpoint, so either host alone is the same data.
    multi = _sql_identity("postgresql://x/clinic?host=db1.example,db2.example&port=5432,6432", table="t")[1]
    single = _sql_identity("postgresql://db2.example:6432/clinic", table="t")[1]
    assert set(single) < set(multi) and "sql:postgresql://db1.example:5432/clinic#table:t" in multi


def test_data_bound_under_a_key_from_before_canonical_locations_is_not_a_fresh_budget(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger key written by the old rule (user and spelling kept) still owns its data."""
    from synthgen.source_identity import claims
    from synthgen.spec import PipelineSpec

    monkeypatch.delenv("PGHOST", raising=False)
    spec = PipelineSpec.model_validate(
        {
            "name": "p",
            "source": {
                "kind": "sql",
                "url": "postgresql://alice@127.0.0.1/clinic",
                "table": "public.Patients",
            },
            "privacy": {"epsilon": 1},
        }
    )
    old_key = "sql:table public.Patients at postgresql://alice@127.0.0.1/clinic"
    old_claim = "sql:postgresql://127.0.0.1:5432/clinic#table:public.Patients"  # what the old rule bound
    assert old_claim in claims(spec)  # type: ignore[arg-type]
    held = budget.reserve(
        catalog, source=old_key, run_id="old", privacy=PrivacySettings(epsilon=4), location=[old_claim]
    )
    assert held is not None
    outcome = _try(catalog, spec, "new")
    assert outcome.startswith("refused") and f"registered source {old_key};" in outcome, outcome


def test_sqlite_and_mysql_spellings_of_one_table_name_one_key(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    db.touch()
    (tmp_path / "link.db").symlink_to(db)
    key = _sql_identity(f"sqlite:///{db}", table="visits")[0]
    assert key == f"sql:table visits at sqlite:///{db.resolve()}"
    for url, table in [
        (f"sqlite+pysqlite:///{tmp_path / 'link.db'}", "visits"),
        (f"sqlite:///{db}", "main.Visits"),
    ]:
        assert _sql_identity(url, table=table)[0] == key, (url, table)
    assert _sql_identity(f"sqlite:///{db}", table="temp.visits")[0] != key
    mysql = _sql_identity("mysql://u@db.example/clinic", table="patients")[0]
    assert mysql == _sql_identity("mysql+pymysql://v@DB.example:3306/CLINIC", table="Patients")[0]
    assert mysql == _sql_identity("mysql://u@db.example/other", table="clinic.patients")[0]  # db.table


@pytest.mark.postgres
def test_the_lock_holds_under_a_repeatable_read_database_default(pg_database: str, tmp_path: Path) -> None:
    """F5: with default_transaction_isolation = repeatable read, racing runs still stop at the cap."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(pg_database).database
    admin = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'"))
    admin.dispose()
    probe = create_engine(pg_database)
    with probe.connect() as c:
        assert c.execute(text("SHOW default_transaction_isolation")).scalar() == "repeatable read"
    probe.dispose()
    test_concurrent_processes_cannot_reserve_past_the_cap(pg_database, Catalog(pg_database), tmp_path)


def test_a_sql_ledger_key_never_carries_a_password_or_url_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """F8: the key is printed by refusals and ``budget show``."""
    from synthgen.source_identity import source_key
    from synthgen.spec import PipelineSpec

    monkeypatch.setenv("WH_URL", "postgresql://u:hunter2pw@db/h?sslpassword=optsecret&sslmode=require")
    spec = PipelineSpec.model_validate(
        {"name": "p", "source": {"kind": "sql", "url_env": "WH_URL", "table": "t"}, "privacy": {"epsilon": 1}}
    )
    key = source_key(spec)
    assert key.startswith("sql:") and "db:5432/h" in key
    assert "hunter2pw" not in key and "optsecret" not in key and "sslmode" not in key


def test_a_spend_above_the_reservation_is_charged_and_nothing_is_catalogued(
    catalog: Catalog, tmp_path: Path
) -> None:
    from synthgen.catalog import Dataset

    source = _source(tmp_path)
    r = budget.reserve(
        catalog, source=source, run_id="r1", privacy=PrivacySettings(epsilon=2), default_cap=CAP
    )
    assert r is not None
    row_before = len(catalog.ledger(source))
    mechanisms = [{"step": "training", "mechanism": "dp_sgd", "epsilon": 2.5, "delta": 1e-6}]
    with pytest.raises(BudgetError, match="above its reservation") as info:
        budget.settle(catalog, r, mechanisms=mechanisms, rows=[_model_row("m-over")])
    assert "\n" not in str(info.value)
    now = budget.standing(catalog, source)
    assert now.spent_epsilon == pytest.approx(2.5) and now.reserved_epsilon == 0.0  # charged, closed
    assert len(catalog.ledger(source)) == row_before + 1
    with catalog.session() as s:
        assert s.get(Dataset, "m-over") is None  # what overspent is not catalogued


def _model_row(model_id: str):  # type: ignore[no-untyped-def]
    from synthgen.catalog import Dataset

    return Dataset(
        id=model_id,
        name="t",
        zone="real",
        kind="model",
        format="dir",
        path="m",
        content_hash="h",
        created_by="u",
    )


def test_an_unsafe_table_name_is_a_spec_error_that_validate_reports(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nsource: {kind: sql, url: 'postgresql://localhost/db', table: 't; drop table x'}\n"
    )
    exe = Path(sys.executable).with_name("synthgen")
    r = subprocess.run([str(exe), "spec", "validate", str(spec)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "use a plain (schema.)table name" in r.stderr, r.stderr
