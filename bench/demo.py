"""End-to-end demo time (`synthgen demo`, DP at epsilon 3) against the demo's previous size in the
same run, plus a bare non-private synthesizer on the same data as a reference.

- current: `synthgen demo --rows 5000` (the demo spec: 5,000 synthetic rows, text model 2 epochs);
- previous: the demo before this change, same code and epsilon: 10,000 sample rows, 10,000
  synthetic rows, text model 4 epochs (``PREVIOUS_DEMO``);
- reference: ctgan's TVAE (non-private, 20 epochs) fitted and sampled on the tabular columns.

Wall seconds depend on how busy the host is; each run also reports its CPU seconds (user + sys,
all threads, from ``getrusage``) and the stage lines' per-stage CPU, which a shared host distorts
far less. Goal: the demo finishes within 90 s on two quiet cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import benchmark

#: Sample rows of the current demo (``synthgen demo``'s default).
DEMO_ROWS = 5_000

#: The demo before this change, run beside the current one as its baseline.
PREVIOUS_DEMO = ["--rows", "10000", "--set", "output.rows=10000", "--set", "model.text.epochs=4"]


def _stage_lines(stderr: str) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds per stage from the demo's non-terminal stage lines (synthgen.stage_log)."""
    out: dict[str, dict[str, float]] = {}
    for m in re.finditer(r"\[synthgen\] (\w+): done in ([0-9.]+) s(?: \(cpu ([0-9.]+) s)?", stderr):
        out[m.group(1)] = {"wall_s": float(m.group(2))}
        if m.group(3):
            out[m.group(1)]["cpu_s"] = float(m.group(3))
    return out


def _verdict(stdout: str) -> str | None:
    m = re.search(r"verdict: (\w+)", stdout)
    return m.group(1) if m else None


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed_demo(
    exe: Path, args: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run([str(exe), "demo", *args], env=env, capture_output=True, text=True, timeout=3600)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"synthgen demo {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc, wall, cpu


def _load() -> float:
    return round(os.getloadavg()[0], 2)


@benchmark("demo")
def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = 2_000 if args.quick else DEMO_ROWS
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = dict(os.environ, SYNTHGEN_HOME=str(home))
        env.pop("SYNTHGEN_USER", None)
        exe = Path(sys.executable).with_name("synthgen")
        load_before = _load()
        proc, demo_s, demo_cpu = _timed_demo(exe, ["--rows", str(rows)], env)
        load_between = _load()
        before, before_s, before_cpu = _timed_demo(
            exe, PREVIOUS_DEMO, dict(env, SYNTHGEN_HOME=str(Path(tmp) / "before"))
        )
        load_after = _load()

        import polars as pl
        from ctgan import TVAE

        from synthgen.spec import load_spec

        spec = load_spec(Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml")
        frame = pl.read_csv(home / "demo" / "patients.csv", try_parse_dates=True)
        drop = [n for n, c in spec.columns.items() if c.operator == "drop"] + ["notes"]
        table = frame.drop([c for c in drop if c in frame.columns]).to_pandas()
        discrete = [c for c in table.columns if table[c].dtype == object or table[c].dtype == bool]
        for c in table.columns:
            if str(table[c].dtype).startswith("datetime"):
                table[c] = table[c].astype("int64") // 10**9
        t0 = time.perf_counter()
        tvae = TVAE(epochs=20, batch_size=500)
        tvae.fit(table, discrete_columns=discrete)
        tvae.sample(rows)
        baseline_s = time.perf_counter() - t0
    return {
        "rows": rows,
        "synthgen_demo_s": round(demo_s, 1),
        "synthgen_demo_cpu_s": round(demo_cpu, 1),
        "stages": _stage_lines(proc.stderr),
        "previous_demo": "same code, the demo's settings before this change: " + " ".join(PREVIOUS_DEMO),
        "previous_demo_s": round(before_s, 1),
        "previous_demo_cpu_s": round(before_cpu, 1),
        "previous_demo_stages": _stage_lines(before.stderr),
        "speedup_vs_previous_wall": round(before_s / demo_s, 2),
        "speedup_vs_previous_cpu": round(before_cpu / demo_cpu, 2),
        "load_average_1min": {"before": load_before, "between": load_between, "after": load_after},
        "baseline": "ctgan TVAE non-private fit (20 epochs) + sample, tabular columns only",
        "baseline_s": round(baseline_s, 1),
        "goal": "synthgen_demo_s <= 90 on two quiet cores",
        "demo_verdict": _verdict(proc.stdout),
        "previous_demo_verdict": _verdict(before.stdout),
        "demo_stdout_tail": proc.stdout.strip().splitlines()[-40:],
    }
