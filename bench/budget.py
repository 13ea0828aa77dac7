"""Cost of the budget's reservation protocol vs the old unlocked check-then-charge, same run.

Per database (SQLite file, PostgreSQL): the wall time of one run's ledger work,

* ``check_then_charge`` (baseline, the code before the budget module): read the source's sum,
  then append two ledger entries in a second transaction, no lock;
* ``reserve_settle``: :func:`synthgen.privacy.budget.reserve` under the per-source lock, then
  :func:`~synthgen.privacy.budget.settle` of the same two entries;

timed in turns, and then ``contended``: 4 processes each reserving epsilon 0.05 at a time until
the cap (6) refuses them, which counts how many reservations passed in total (120 is exact;
the baseline protocol is run the same way and its overspend is reported). Training itself takes
seconds to minutes, so the figure to read is the ratio to a fit, not to the baseline.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import alternating_median_times, benchmark

PG_URL = os.environ.get("SYNTHGEN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_MECHANISMS = [
    {"step": "preprocessing", "mechanism": "laplace_count", "epsilon": 0.1, "delta": 0.0},
    {"step": "training", "mechanism": "dp_sgd", "epsilon": 0.9, "delta": 1e-6, "accountant": "prv"},
]


def _baseline_run(catalog: Any, source: str, eps: float, cap: float) -> bool:
    """The protocol before the budget module: a read of the sum, then an insert, no lock."""
    from synthgen.catalog import BudgetEntry

    spent, _ = catalog.spent(source)
    if spent + eps > cap + 1e-9:
        return False
    with catalog.session() as s:
        s.add_all(
            [
                BudgetEntry(
                    source=source,
                    run_id="b",
                    step=str(m["step"]),
                    mechanism=str(m["mechanism"]),
                    epsilon=eps * float(m["epsilon"]),
                    delta=float(m["delta"]),
                    accountant="basic",
                    detail={},
                )
                for m in _MECHANISMS
            ]
        )
    return True


def _budget_run(catalog: Any, source: str, eps: float, cap: float) -> bool:
    from synthgen.errors import BudgetError
    from synthgen.privacy import budget
    from synthgen.privacy.settings import PrivacySettings

    try:
        r = budget.reserve(
            catalog,
            source=source,
            run_id="r",
            privacy=PrivacySettings(epsilon=eps, delta=1e-9),
            default_cap=(cap, 0.5),
        )
    except BudgetError:
        return False
    mechanisms = [m | {"epsilon": eps * float(m["epsilon"])} for m in _MECHANISMS]
    budget.settle(catalog, r, mechanisms=mechanisms)
    return True


def _contender(url: str, protocol: str, source: str, start_at: float, out: Any) -> None:
    from synthgen.catalog import Catalog

    cat = Catalog(url)
    run = _budget_run if protocol == "reserve_settle" else _baseline_run
    n = 0
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        while run(cat, source, 0.05, 6.0):
            n += 1
        out.put((n, None))
    except Exception as exc:  # an unlocked protocol can also fail on a constraint or a lock
        out.put((n, type(exc).__name__))
    finally:
        cat.dispose()


def _contended(url: str, protocol: str) -> dict[str, Any]:
    from synthgen.catalog import Catalog
    from synthgen.privacy import budget

    source = f"bench:{uuid.uuid4().hex}"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start_at = time.time() + 10
    procs = [ctx.Process(target=_contender, args=(url, protocol, source, start_at, q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [q.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    cat = Catalog(url)
    charged = budget.standing(cat, source).charged_epsilon
    cat.dispose()
    return {
        "passed": sum(n for n, _ in got),
        "exact": 120,
        "charged_epsilon": round(charged, 6),
        "cap": 6.0,
        "errors": sorted({e for _, e in got if e}),
    }


def _pg_database() -> tuple[str, Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"synthgen_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False), drop


@benchmark("budget")
def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthgen.catalog import Catalog

    repeats = 20 if args.quick else 100
    out: dict[str, Any] = {"baseline": "check_then_charge (unlocked read, then insert)", "databases": {}}
    with tempfile.TemporaryDirectory() as d:
        pg_url, drop = _pg_database()
        try:
            for db, url in (("sqlite", f"sqlite:///{Path(d) / 'c.db'}"), ("postgresql", pg_url)):
                cat = Catalog(url)
                base_src, new_src = f"b:{uuid.uuid4().hex}", f"n:{uuid.uuid4().hex}"
                base, new = alternating_median_times(
                    [
                        lambda c=cat, s=base_src: _baseline_run(c, s, 1e-3, 1e9),
                        lambda c=cat, s=new_src: _budget_run(c, s, 1e-3, 1e9),
                    ],
                    repeats=repeats,
                )
                cat.dispose()
                out["databases"][db] = {
                    "check_then_charge_ms": round(base * 1e3, 3),
                    "reserve_settle_ms": round(new * 1e3, 3),
                    "ratio": round(new / base, 2),
                    "contended_4_processes": {
                        "reserve_settle": _contended(url, "reserve_settle"),
                        "check_then_charge": _contended(url, "check_then_charge"),
                    },
                }
        finally:
            drop()
    return out
