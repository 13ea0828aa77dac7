"""End-to-end demo time (`synthgen demo`, 10k rows, DP at epsilon 3) against two baselines in the
same run: the demo as it was before issue 16 (DP-TVAE, 20 epochs, batch 1024, text sampling batch
512; same stages, same epsilon), and a bare non-private synthesizer on the same data: ctgan's TVAE
fitted on the demo table (identifier columns dropped) for 20 epochs, then sampled.
Goal: the demo finishes within 90 s on two quiet cores."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import benchmark

#: The demo's model settings before issue 16, run beside the current demo as its baseline.
PREVIOUS_DEMO = [
    "--set",
    "model.kind=dp_tvae",
    "--set",
    "model.epochs=20",
    "--set",
    "model.batch_size=1024",
    "--set",
    "model.text.generate_batch_size=512",
]


def _stage_lines(stderr: str) -> dict[str, float]:
    """Seconds per stage from the demo's non-terminal stage lines (synthgen.stage_log)."""
    out: dict[str, float] = {}
    for m in re.finditer(r"\[synthgen\] (\w+): done in ([0-9.]+) s", stderr):
        out[m.group(1)] = float(m.group(2))
    return out


def _verdict(stdout: str) -> str | None:
    m = re.search(r"verdict: (\w+)", stdout)
    return m.group(1) if m else None


@benchmark("demo")
def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = 2_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = dict(os.environ, SYNTHGEN_HOME=str(home))
        env.pop("SYNTHGEN_USER", None)
        exe = Path(sys.executable).with_name("synthgen")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(exe), "demo", "--rows", str(rows)], env=env, capture_output=True, text=True, timeout=1800
        )
        demo_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"synthgen demo failed: {proc.stderr.strip()[-2000:]}")
        stages = _stage_lines(proc.stderr)
        before_home = Path(tmp) / "before"
        t0 = time.perf_counter()
        before = subprocess.run(
            [str(exe), "demo", "--rows", str(rows), *PREVIOUS_DEMO],
            env=dict(env, SYNTHGEN_HOME=str(before_home)),
            capture_output=True,
            text=True,
            timeout=1800,
        )
        before_s = time.perf_counter() - t0
        if before.returncode != 0:
            raise RuntimeError(f"previous demo settings failed: {before.stderr.strip()[-2000:]}")

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
        "stages_s": stages,
        "previous_demo": "same demo with the settings before issue 16: " + " ".join(PREVIOUS_DEMO),
        "previous_demo_s": round(before_s, 1),
        "previous_demo_stages_s": _stage_lines(before.stderr),
        "speedup_vs_previous": round(before_s / demo_s, 2),
        "baseline": "ctgan TVAE non-private fit (20 epochs) + sample, tabular columns only",
        "baseline_s": round(baseline_s, 1),
        "goal": "synthgen_demo_s <= 90 on two quiet cores",
        "demo_verdict": _verdict(proc.stdout),
        "previous_demo_verdict": _verdict(before.stdout),
        "demo_stdout_tail": proc.stdout.strip().splitlines()[-40:],
    }
