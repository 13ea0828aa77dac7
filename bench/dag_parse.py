"""DAG parse time: dags/synthgen_dags.py vs an empty DAG file, as Airflow's DAG processor parses it.

The DAG processor (and, in Airflow 3, every task at start-up) parses a DAG file in a fresh
process in which Airflow's own modules are already imported. Each measurement therefore
runs in a new interpreter that imports ``airflow.sdk`` and the DagBag first, then times
``DagBag(dag_folder=<file>)`` alone. Baseline: a file holding one trivial TaskFlow DAG.
The synthgen file is measured with the repository's pipelines and with 10 specs, to show
how the cost grows per spec.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import benchmark

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "synthgen_dags.py"

EMPTY_DAG = """
from datetime import datetime
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def empty():
    @task
    def noop() -> None:
        return None

    noop()


empty()
"""

PARSE = r"""
import json, sys, time
import airflow.sdk  # the DAG processor has Airflow imported before it parses a file
from airflow.dag_processing.dagbag import DagBag
t0 = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in ("torch", "opacus", "presidio_analyzer", "spacy", "polars", "pandas", "matplotlib")
               if m in sys.modules)
print(json.dumps({"s": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors), "heavy": heavy}))
"""


def _parse(dag_folder: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, str(dag_folder)], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _measure(dag_folder: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    runs = [_parse(dag_folder, env) for _ in range(repeats)]
    times = [r["s"] for r in runs]
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "dags": runs[0]["dags"],
        "import_errors": runs[0]["errors"],
        "heavy_modules_imported": runs[0]["heavy"],
    }


@benchmark("dag_parse")
def run(args: argparse.Namespace) -> dict[str, Any]:
    repeats = 3 if args.quick else max(5, args.repeats)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "airflow").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SYNTHGEN_"))}
        env |= {"AIRFLOW_HOME": str(tmp / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}

        empty_dir = tmp / "empty"
        empty_dir.mkdir()
        (empty_dir / "empty_dag.py").write_text(EMPTY_DAG)

        ours_dir = tmp / "dags"
        ours_dir.mkdir()
        shutil.copy(DAG_FILE, ours_dir / DAG_FILE.name)

        many = tmp / "pipelines10"
        many.mkdir()
        demo = (REPO / "pipelines" / "demo.yaml").read_text()
        for i in range(10):
            (many / f"p{i}.yaml").write_text(demo.replace("name: demo-patients", f"name: demo-{i}", 1))

        baseline = _measure(empty_dir, env, repeats)
        repo_specs = _measure(ours_dir, env | {"SYNTHGEN_PIPELINES": str(REPO / "pipelines")}, repeats)
        ten_specs = _measure(ours_dir, env | {"SYNTHGEN_PIPELINES": str(many)}, repeats)
    return {
        "baseline": "DagBag of a file holding one trivial TaskFlow DAG (same interpreter set-up)",
        "baseline_s": baseline["median_s"],
        "baseline_runs_s": baseline["runs_s"],
        "synthgen_repo_pipelines": repo_specs,
        "synthgen_10_specs": ten_specs,
        "overhead_vs_baseline_s": round(repo_specs["median_s"] - baseline["median_s"], 3),
        "per_extra_spec_s": round(
            (ten_specs["median_s"] - repo_specs["median_s"]) / max(1, 10 - repo_specs["dags"]), 4
        ),
        "goal": "well under dagbag_import_timeout (30 s); no torch, opacus, presidio, spacy at parse",
    }


if __name__ == "__main__":  # pragma: no cover - `python -m bench dag_parse` is the usual way
    from bench.harness import main

    raise SystemExit(main(["dag_parse", *sys.argv[1:]]))
