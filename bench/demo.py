"""End-to-end demo time (`synthgen demo`, 10k rows, DP at epsilon 3) against a bare non-private
synthesizer on the same data in the same run: ctgan's TVAE fitted on the demo table (identifier
columns dropped) for the demo's epochs, then sampled. Goal: the demo finishes within 3 minutes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import benchmark


def _stage_times(home: Path) -> dict[str, float]:
    from synthgen.catalog import Catalog

    cat = Catalog(f"sqlite:///{home / 'catalog.db'}")
    rows = sorted(cat.list_datasets(), key=lambda d: d.created_at)
    out: dict[str, float] = {}
    prev = None
    for d in rows:
        if prev is not None:
            key = d.kind
            out[key] = round(out.get(key, 0.0) + (d.created_at - prev).total_seconds(), 2)
        prev = d.created_at
    cat.dispose()
    return out


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
        stages = _stage_times(home)

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
        tvae = TVAE(epochs=spec.model.epochs, batch_size=500)
        tvae.fit(table, discrete_columns=discrete)
        tvae.sample(rows)
        baseline_s = time.perf_counter() - t0
    return {
        "rows": rows,
        "synthgen_demo_s": round(demo_s, 1),
        "stages_s (catalog timestamps, approx.)": stages,
        "baseline": f"ctgan TVAE non-private fit ({spec.model.epochs} epochs) + sample, tabular columns only",
        "baseline_s": round(baseline_s, 1),
        "goal": "synthgen_demo_s <= 180",
        "demo_stdout_tail": proc.stdout.strip().splitlines()[-40:],
    }
