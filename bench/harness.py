"""Benchmark harness: named benchmarks, each compared against a baseline measured in the same run.

A benchmark is ``@benchmark("name")`` on ``run(args) -> dict``. The harness adds machine
info and package versions and writes ``bench/results/<name>.json``. Timing helpers
(:func:`median_time`, :func:`peak_rss_of`) keep the figures comparable across benchmarks.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA = (BENCH_DIR.parent.parent / "shared" / "data" / "adult").resolve()

_REGISTRY: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {}

_PACKAGES = [
    "synthgen-dp",
    "synthgen",
    "polars",
    "torch",
    "opacus",
    "ctgan",
    "sdv",
    "presidio-analyzer",
    "spacy",
    "cryptography",
    "pyarrow",
    "scikit-learn",
    "sdmetrics",
    "apache-airflow",
]


def benchmark(name: str) -> Callable[[Callable[[argparse.Namespace], dict[str, Any]]], Any]:
    def register(fn: Callable[[argparse.Namespace], dict[str, Any]]) -> Any:
        _REGISTRY[name] = fn
        return fn

    return register


def median_time(fn: Callable[[], Any], repeats: int = 3) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeats`` runs, and all the runs."""
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), runs


def alternating_median_times(fns: list[Callable[[], Any]], repeats: int = 5) -> list[float]:
    """Median wall time of each of ``fns``, timed in turns (a, b, a, b, ...) after one warm-up
    call each, so that drift in the machine's speed hits every side alike."""
    for fn in fns:
        fn()
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, times in zip(fns, runs, strict=True):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return [statistics.median(times) for times in runs]


def peak_rss_of(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command in a child process; return (peak RSS in MB, wall seconds)."""
    import resource
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    del proc
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kb / 1024.0, wall


def machine_info() -> dict[str, Any]:
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        mem_gb = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "memory_gb": mem_gb,
        "packages": versions,
    }


def _discover() -> None:
    for f in sorted(BENCH_DIR.glob("*.py")):
        if f.stem in {"__init__", "__main__", "harness", "render"} or f.stem.startswith("_"):
            continue
        importlib.import_module(f"bench.{f.stem}")


def main(argv: list[str] | None = None) -> int:
    _discover()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all): {', '.join(sorted(_REGISTRY))}"
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data directory (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for smoke runs")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rows", type=int, default=None, help="scale: table rows (default 5,000,000)")
    p.add_argument("--notes", type=int, default=None, help="scale: rows with a note (default 500,000)")
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    p.add_argument("--list", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(sorted(_REGISTRY)))
        return 0
    names = args.names or sorted(_REGISTRY)
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(sorted(_REGISTRY))}",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        t0 = time.perf_counter()
        figures = _REGISTRY[name](args)
        result = {
            "benchmark": name,
            "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "wall_s": round(time.perf_counter() - t0, 2),
            "machine": machine_info(),
            "results": figures,
        }
        path = args.out / f"{name}{'-quick' if args.quick else ''}.json"
        path.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps({"benchmark": name, **figures}, indent=2, default=str))
        print(f"-> {path}", file=sys.stderr)
    return 0
