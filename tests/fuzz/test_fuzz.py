"""Fuzzing stays in the suite: >= 200 malformed specs, sources and policy files through synthgen's
entry point. For each: exit code 1, 2 or 3; stderr one line with no traceback; no file added to
or changed under either zone; the catalog (datasets, lineage) and the privacy ledger unchanged.

Cases run in batches through the ``synthgen`` console-script entry point (``driver.py``, two
processes in parallel, each on its own copy of a prepared home); a sample is re-run one process
per case through the installed console script to check that the batch sees what a shell sees.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .cases import Case, generate

HERE = Path(__file__).resolve().parent
SEED = int(os.environ.get("SYNTHGEN_FUZZ_SEED", "14"))
SECRET_VALUE = "fuzz-secret-value-0123456789"
WORKERS = 2
CROSS_CHECK = 16


def _prepared_home(tmp_path: Path, home: Path) -> None:
    """A home with one ingested snapshot and one ledger entry, so 'unchanged' means something."""
    from synthgen import stages as pipeline
    from synthgen.catalog import BudgetEntry, Catalog
    from synthgen.spec import load_spec

    src = tmp_path / "seed"
    src.mkdir()
    shutil.copy(HERE / "corpus" / "spec.yaml", src / "spec.yaml")
    shutil.copy(HERE / "corpus" / "visits.csv", src / "visits.csv")
    ctx = pipeline.Context.from_env()
    ctx.user = "synthgen-pipeline"
    pipeline.ingest(load_spec(src / "spec.yaml"), ctx)
    catalog = Catalog.from_env()
    with catalog.session() as s:  # a settled ledger entry, as synthgen.privacy.budget writes it
        s.add(
            BudgetEntry(
                source="csv:fuzz",
                run_id="fuzz-0",
                step="preprocessing",
                mechanism="laplace",
                epsilon=0.1,
                delta=0.0,
                accountant="basic",
                detail={},
            )
        )
    catalog.dispose()
    ctx.catalog.dispose()


def _materialize(case: Case, root: Path) -> dict[str, Any]:
    d = root / case.id
    for name, data in case.files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    d.mkdir(parents=True, exist_ok=True)
    sub = lambda s: s.replace("{dir}", str(d))  # noqa: E731
    return {
        "id": case.id,
        "args": [sub(a) for a in case.args],
        "env": {k: sub(v) for k, v in case.env.items()},
    }


def _problems(r: dict[str, Any]) -> list[str]:
    found = []
    if r["code"] not in (1, 2, 3):
        found.append(f"exit code {r['code']}")
    err = r["err"].strip()
    if not err or err.count("\n"):
        found.append(f"stderr is {err.count(chr(10)) + 1 if err else 0} lines")
    if "Traceback" in r["err"] or r.get("escaped"):
        found.append("traceback")
    if SECRET_VALUE in r["err"] + r["out"]:
        found.append("secret in output")
    if r.get("changed"):
        found.append("zones or catalog changed")
    return found


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("fuzz")
    home = root / "home"
    home.mkdir()
    saved = {k: os.environ.get(k) for k in ("SYNTHGEN_HOME", "SYNTHGEN_CATALOG_URL", "SYNTHGEN_POLICY_DIR")}
    os.environ["SYNTHGEN_HOME"] = str(home)
    os.environ.pop("SYNTHGEN_CATALOG_URL", None)
    os.environ.pop("SYNTHGEN_POLICY_DIR", None)
    try:
        _prepared_home(root, home)
        cases = [_materialize(c, root / "cases") for c in generate(SEED)]
        procs = []
        for w in range(WORKERS):
            wh = root / f"home-{w}"
            shutil.copytree(home, wh)
            (root / f"cases-{w}.json").write_text(json.dumps(cases[w::WORKERS]))
            env = {**os.environ, "SYNTHGEN_HOME": str(wh), "OMP_NUM_THREADS": "1"}
            cmd = [
                sys.executable,
                str(HERE / "driver.py"),
                str(root / f"cases-{w}.json"),
                str(root / f"res-{w}.json"),
            ]
            procs.append(subprocess.Popen(cmd, env=env, cwd=root, stdin=subprocess.DEVNULL))
        for p in procs:
            assert p.wait(timeout=600) == 0, "a fuzz driver crashed"
        results = [r for w in range(WORKERS) for r in json.loads((root / f"res-{w}.json").read_text())]
        return {"cases": cases, "results": results, "root": root, "home": home}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_fuzz_runs_at_least_200_malformed_inputs_of_each_kind(fuzz_run: dict[str, Any]) -> None:
    kinds = collections.Counter(r["id"].split("-")[0] for r in fuzz_run["results"])
    assert len(fuzz_run["results"]) == len(fuzz_run["cases"]) >= 200
    assert kinds["spec"] >= 100 and kinds["source"] >= 40 and kinds["policy"] >= 60 and kinds["known"] >= 5


def test_every_malformed_input_is_refused_cleanly(fuzz_run: dict[str, Any]) -> None:
    bad = {r["id"]: (p, r["err"][:300]) for r in fuzz_run["results"] if (p := _problems(r))}
    codes = collections.Counter(r["code"] for r in fuzz_run["results"])
    summary = os.environ.get("SYNTHGEN_FUZZ_SUMMARY")
    if summary:  # counts for a report: cases per kind and per exit code
        kinds = collections.Counter(r["id"].split("-")[0] for r in fuzz_run["results"])
        by_kind_code = collections.Counter(
            f"{r['id'].split('-')[0]}:{r['code']}" for r in fuzz_run["results"]
        )
        Path(summary).write_text(
            json.dumps({"seed": SEED, "kinds": kinds, "codes": codes, "by_kind_code": by_kind_code}, indent=1)
        )
    assert not bad, f"{len(bad)} of {len(fuzz_run['results'])} cases misbehaved (codes {dict(codes)}): {bad}"


def test_the_batch_sees_what_the_console_script_shows(
    fuzz_run: dict[str, Any], synthgen_cli: Callable[..., Any], tmp_path: Path
) -> None:
    """Re-run a spread of cases, one process each, through the installed ``synthgen`` script."""
    by_id = {r["id"]: r for r in fuzz_run["results"]}
    cases = fuzz_run["cases"][:: max(1, len(fuzz_run["cases"]) // CROSS_CHECK)]
    home = tmp_path / "home"
    shutil.copytree(fuzz_run["home"], home)
    for case in cases:
        r = synthgen_cli(case["args"], env={**case["env"], "SYNTHGEN_HOME": str(home)}, cwd=tmp_path)
        assert (r.code, r.err) == (by_id[case["id"]]["code"], by_id[case["id"]]["err"]), case["id"]
