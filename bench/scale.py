"""Scale: a seeded table (default 5,000,000 rows, 500,000 of them with a note) through the stages.

``python -m bench scale [--rows N] [--notes M]``. Each stage runs in its own child process
(``python -m bench.scale STAGE ...``) on one shared catalog and zone home, so every figure
has its own peak RSS (the child's ``VmHWM``; the training ranks' RSS sampled every 0.2 s by
psutil; goal <= 2 GB).

Stages and the baseline each is compared with, in the same run:

* ingest (Parquet source -> REAL-zone snapshot) against a plain ``polars`` scan -> sink of the
  same file;
* anonymize (identifier column dropped, Presidio on the notes) with 1 worker, the baseline of
  2 workers (mapped anonymization, issue 18 part 2). When this checkout has no mapped
  anonymize, the 2-worker row says "not measured" and no speed-up is given;
* train DP-TVAE on the tabular columns (the text model off) in 1 process with 1 thread, the
  baseline of ``model.distributed.world_size: 2`` (2 ranks, 1 thread each);
* generate as many rows as the table has, from the 1-process model.

Rows/s are table rows; docs/s are notes (non-null text values). On 2 shared cores 2 workers
cannot reach 2x; the ratio is reported as measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import benchmark

SECRET = "bench-scale-secret-0123456789abcdef"
RSS_GOAL_MB = 2048
_FIRST = ["Maria", "John", "Aisha", "Wei", "Olga", "Pedro", "Fatima", "Liam", "Sofia", "Kenji"]
_LAST = ["Garcia", "Smith", "Khan", "Chen", "Ivanova", "Silva", "Haddad", "Murphy", "Rossi", "Sato"]
_DIAG = [f"D{i:02d}" for i in range(20)]
_REGIONS = ["north", "south", "east", "west", "central", "coast", "hills", "valley"]


def make_table(path: Path, rows: int, notes: int, *, chunk: int = 250_000, seed: int = 0) -> None:
    """Write the seeded table in row groups of ``chunk`` (bounded memory while generating).

    Every ``rows // notes``-th row has a note naming a person, a phone and a date.
    """
    import polars as pl
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    every = max(1, rows // max(notes, 1)) if notes else 0
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, rows, chunk):
            m = min(chunk, rows - start)
            ids = np.arange(start, start + m)
            age = rng.integers(0, 100, m)
            diag = np.where(age > 60, rng.integers(0, 5, m), rng.integers(0, 20, m))
            cost = np.round(rng.gamma(2.0, 500.0, m) * (1 + age / 100), 2)
            frame = pl.DataFrame(
                {
                    "patient_id": ids,
                    "age": age,
                    "sex": rng.choice(["F", "M"], m),
                    "region": rng.choice(_REGIONS, m),
                    "diagnosis": np.array(_DIAG)[diag],
                    "cost": np.minimum(cost, 99_999.0),
                    "readmitted": rng.random(m) < 0.1 + age / 500,
                }
            )
            has_note = (ids % every == 0) & (ids // every < notes) if every else np.zeros(m, bool)
            frame = frame.with_columns(
                pl.when(pl.Series(has_note))
                .then(
                    pl.format(
                        "Seen {} {} on {}/03/2024, call back on 0{} 555 {}. {} follow-up in clinic.",
                        pl.Series(np.array(_FIRST)[rng.integers(0, 10, m)]),
                        pl.Series(np.array(_LAST)[rng.integers(0, 10, m)]),
                        pl.Series(rng.integers(10, 29, m)),
                        pl.Series(rng.integers(20, 80, m)),
                        pl.Series(rng.integers(1000, 9999, m)),
                        pl.col("diagnosis"),
                    )
                )
                .otherwise(None)
                .alias("note")
            )
            table = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def spec_dict(source: Path, rows: int, world_size: int) -> dict[str, Any]:
    return {
        "name": "scale",
        "source": {"kind": "parquet", "path": str(source)},
        "columns": {"patient_id": {"type": "id"}, "note": {"type": "text"}},
        "anonymize": {"text_columns": ["note"]},
        # Four parts, so that 2 workers have work to share (the default part is 200,000 rows).
        "ingest": {"part_rows": max(100, -(-rows // 4))},
        "privacy": {"epsilon": 1.0, "accountant": "rdp"},
        "model": {
            "kind": "dp_tvae",
            "epochs": 1,
            "batch_size": 8192,
            "device": "cpu",
            "text": {"enabled": False},
            "distributed": {"world_size": world_size},
        },
        "output": {"rows": rows},
    }


def mapped_anonymize_available() -> bool:
    """True when this checkout's CLI has ``--workers`` for anonymize (issue 18 part 2)."""
    import inspect

    from synthgen.stages import anonymize

    return "workers" in inspect.signature(anonymize).parameters


# -- child side -------------------------------------------------------------------------


def own_peak_mb() -> float:
    """This process's peak RSS since it started: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries a process's ``ru_maxrss`` over from the parent it was
    forked from (across exec), so a child started by a 1 GB parent reports at least 1 GB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class ChildPeak:
    """Samples the RSS of this process's children (the training ranks) every 0.2 s; keeps the max."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    self.peak_mb = max(self.peak_mb, child.memory_info().rss / 2**20)
                except psutil.Error:
                    continue

    def __enter__(self) -> ChildPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _stage(argv: list[str]) -> None:
    """``python -m bench.scale STAGE HOME SPEC_JSON [ARG]``: run one stage, print one JSON line."""
    import torch

    # One thread per process: training ranks take one core each, so the 1-process baseline gets
    # one too (on these shared cores 2 threads in one process trained 500,000 rows in 182 s
    # against 39 s for 2 one-thread ranks: oversubscription, not parallelism).
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    with ChildPeak() as children:
        out = _run_stage(argv[0], Path(argv[1]), argv[2], argv[3] if len(argv) > 3 else "")
        out["seconds"] = time.perf_counter() - t0
    out["peak_rss_mb"] = own_peak_mb()
    out["peak_rss_children_mb"] = children.peak_mb  # sampled: a peak shorter than 0.2 s can be missed
    print("SCALE " + json.dumps(out), flush=True)


def _run_stage(stage: str, home: Path, spec_json: str, arg: str) -> dict[str, Any]:
    if stage == "baseline_copy":
        import polars as pl

        pl.scan_parquet(spec_json).sink_parquet(home / "plain_copy.parquet")
        return {}
    from synthgen.catalog import Catalog
    from synthgen.spec import spec_from_dict
    from synthgen.stages import Context, anonymize, generate, ingest, train
    from synthgen.zones import Zones

    spec = spec_from_dict(json.loads(Path(spec_json).read_text()))
    ctx = Context(
        catalog=Catalog(f"sqlite:///{home}/catalog.db"),
        zones=Zones.from_roots(home / "real", home / "synthetic"),
    )
    if stage == "ingest":
        res = ingest(spec, ctx)
    elif stage == "anonymize":
        snapshot_id, _, workers = arg.partition(":")
        res = anonymize(spec, ctx, snapshot_id=snapshot_id, workers=int(workers or 1))
    elif stage == "train":
        res = train(spec, ctx, anonymized_id=arg, run_id=f"bench-{spec.model.distributed.world_size}")
    elif stage == "generate":
        res = generate(spec, ctx, model_id=arg, run_id="bench-gen")
    else:
        raise SystemExit(f"unknown stage {stage}")
    ctx.catalog.dispose()
    return {"dataset_id": res.dataset_id, "rows": res.rows, "path": res.path}


def _run_child(stage: str, home: Path, spec_path: Path | str, arg: str = "") -> dict[str, Any]:
    env = {
        **os.environ,
        "SYNTHGEN_PIPELINE_SECRET": SECRET,
        "SYNTHGEN_HOME": str(home),
        "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": "",
    }
    argv = [sys.executable, "-m", "bench.scale", stage, str(home), str(spec_path), arg]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SCALE ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"stage {stage} failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    out = json.loads(lines[-1][len("SCALE ") :])
    out["wall_s"] = wall  # the child's whole life, imports included
    return out


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("nan")


def _figures(r: dict[str, Any], *, rows: int, notes: int | None = None) -> dict[str, Any]:
    peak = max(r["peak_rss_mb"], r.get("peak_rss_children_mb", 0.0))
    out = {
        "seconds": round(r["seconds"], 2),
        "rows_per_s": _rate(rows, r["seconds"]),
        "peak_rss_mb": round(r["peak_rss_mb"], 1),
        "peak_rss_largest_child_mb": round(r.get("peak_rss_children_mb", 0.0), 1),
        "rss_within_goal": peak <= RSS_GOAL_MB,
    }
    if notes is not None:
        out["docs_per_s"] = _rate(notes, r["seconds"])
    return out


@benchmark("scale")
def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = args.rows or (200_000 if args.quick else 5_000_000)
    notes = args.notes if args.notes is not None else (2_000 if args.quick else 500_000)
    results: dict[str, Any] = {
        "rows": rows,
        "notes": notes,
        "full_size": rows == 5_000_000 and notes == 500_000,
        "cores": os.cpu_count(),
        "rss_goal_mb": RSS_GOAL_MB,
    }
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "table.parquet"
        t0 = time.perf_counter()
        make_table(source, rows, notes)
        results["generate_table_s"] = round(time.perf_counter() - t0, 1)
        results["table_mb"] = round(source.stat().st_size / 2**20, 1)
        home = tmp / "home"
        home.mkdir()
        specs = {}
        for ws in (1, 2):
            specs[ws] = tmp / f"spec{ws}.json"
            specs[ws].write_text(json.dumps(spec_dict(source, rows, ws)))

        base = _run_child("baseline_copy", home, source)
        ing = _run_child("ingest", home, specs[1])
        results["ingest"] = {
            **_figures(ing, rows=rows),
            "baseline": "polars scan_parquet -> sink_parquet of the same file",
            "baseline_s": round(base["seconds"], 2),
            "baseline_peak_rss_mb": round(base["peak_rss_mb"], 1),
            "ratio_vs_baseline": round(ing["seconds"] / base["seconds"], 2),
        }
        an1 = _run_child("anonymize", home, specs[1], ing["dataset_id"])
        results["anonymize_1_worker"] = _figures(an1, rows=rows, notes=notes)
        if mapped_anonymize_available():
            # A second home with the same secret: the same ids, so nothing is reused across runs.
            home2 = tmp / "home2"
            home2.mkdir()
            ing2 = _run_child("ingest", home2, specs[1])
            an2 = _run_child("anonymize", home2, specs[1], ing2["dataset_id"] + ":2")
            results["anonymize_2_workers"] = _figures(an2, rows=rows, notes=notes)
            results["anonymize_speedup_1_to_2"] = round(an1["seconds"] / an2["seconds"], 2)
            import polars as pl

            same = pl.read_parquet(an1["path"]).equals(pl.read_parquet(an2["path"]))
            results["anonymize_2_workers_same_output"] = same
        else:
            results["anonymize_2_workers"] = "not measured: needs mapped anonymize (issue 18 part 2)"
            results["anonymize_speedup_1_to_2"] = None

        tr1 = _run_child("train", home, specs[1], an1["dataset_id"])
        tr2 = _run_child("train", home, specs[2], an1["dataset_id"])
        results["train_dp_tvae_1_process"] = {
            **_figures(tr1, rows=rows),
            "baseline_of": "world_size 2",
            "threads": 1,
        }
        results["train_dp_tvae_2_ranks"] = _figures(tr2, rows=rows)
        results["train_speedup_1_to_2"] = round(tr1["seconds"] / tr2["seconds"], 2)
        results["train_settings"] = "dp_tvae, 1 epoch, batch 8192, epsilon 1 (rdp), CPU, text model off"

        gen = _run_child("generate", home, specs[1], tr1["dataset_id"])
        results["generate"] = _figures(gen, rows=int(gen["rows"]))
    return results


if __name__ == "__main__":
    _stage(sys.argv[1:])
