"""Runs fuzz cases through synthgen's console entry point, several per process.

Usage: ``python driver.py CASES.json RESULTS.json``. The entry point is looked up the way the
``synthgen`` console script finds it (the ``console_scripts`` entry point), then called once per
case with the case's arguments, environment and a captured stdout/stderr; ``SystemExit`` gives
the exit code. After each case the zones and the catalog (datasets, lineage, ledger) are
digested, so a case that wrote anything is caught and named.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any


def _entry_point() -> Any:
    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "synthgen"]
    return ep.load()


def digest(home: Path) -> str:
    """Files under both zones (path and content) and every catalog row that records data, budget,
    caps, reservations, source claims or scores."""
    from sqlalchemy import create_engine, text

    h = hashlib.sha256()
    zones = home / "zones"
    if zones.exists():
        for p in sorted(zones.rglob("*")):
            if p.is_file():
                content = hashlib.sha256(p.read_bytes()).hexdigest()
                h.update(f"{p.relative_to(zones)}:{content}\n".encode())
    db = home / "catalog.db"
    if db.exists():
        engine = create_engine(f"sqlite:///{db}")
        tables = (
            "datasets",
            "lineage",
            "budget_ledger",
            "budget_caps",
            "budget_source_claims",
            "budget_reservations",
            "scores",
        )
        with engine.connect() as c:
            present = {r[0] for r in c.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
            for table in (t for t in tables if t in present):
                for row in c.execute(text(f"SELECT * FROM {table} ORDER BY 1")):
                    h.update(repr(tuple(row)).encode())
        engine.dispose()
    return h.hexdigest()


def run_case(main: Any, case: dict[str, Any]) -> dict[str, Any]:
    saved = dict(os.environ)
    os.environ.update(case["env"])
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    escaped = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(case["args"])
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
    except BaseException:
        escaped = traceback.format_exc()
        code = "escaped"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"id": case["id"], "code": code, "out": out.getvalue(), "err": err.getvalue(), "escaped": escaped}


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    home = Path(os.environ["SYNTHGEN_HOME"])
    entry = _entry_point()
    results = []
    before = digest(home)
    for case in cases:
        result = run_case(entry, case)
        after = digest(home)
        result["changed"] = after != before
        before = after
        results.append(result)
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
