"""Ingest throughput: a 1M-row CSV into the real zone vs plain ``polars.read_csv`` + ``write_parquet``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark, median_time


def make_csv(path: Path, rows: int, data_dir: Path) -> None:
    """A CSV of ``rows`` rows resampled from the Adult train split (with jittered numerics)."""
    base = pl.read_csv(data_dir / "adult_train.csv")
    rng = np.random.default_rng(0)
    idx = rng.integers(0, base.height, rows)
    frame = base[idx].with_columns(
        (pl.col("fnlwgt") + pl.Series(rng.integers(-500, 500, rows))).alias("fnlwgt"),
        pl.Series("row_id", np.arange(rows)),
    )
    frame.write_csv(path)


@benchmark("ingest")
def run(args: argparse.Namespace) -> dict[str, Any]:
    from synthgen.catalog import Catalog
    from synthgen.spec import spec_from_dict
    from synthgen.stages import Context, ingest
    from synthgen.zones import Zones

    rows = 100_000 if args.quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        csv = tmp / "big.csv"
        make_csv(csv, rows, args.data)
        size_mb = csv.stat().st_size / 2**20

        def baseline() -> None:
            pl.read_csv(csv).write_parquet(tmp / "plain.parquet")

        counter = iter(range(1000))

        def synthgen_ingest() -> None:
            # A fresh home each time, so every run really writes (no idempotent reuse).
            home = tmp / f"home{next(counter)}"
            home.mkdir()
            ctx = Context(
                catalog=Catalog(f"sqlite:///{home}/catalog.db"),
                zones=Zones.from_roots(home / "real", home / "synthetic"),
            )
            spec = spec_from_dict({"name": "bench", "source": {"kind": "csv", "path": str(csv)}})
            ingest(spec, ctx)
            ctx.catalog.dispose()

        base_med, base_runs = median_time(baseline, args.repeats)
        ours_med, ours_runs = median_time(synthgen_ingest, args.repeats)
    return {
        "rows": rows,
        "csv_mb": round(size_mb, 1),
        "baseline": "polars.read_csv + DataFrame.write_parquet",
        "baseline_s": round(base_med, 3),
        "baseline_runs_s": [round(x, 3) for x in base_runs],
        "synthgen_ingest_s": round(ours_med, 3),
        "synthgen_runs_s": [round(x, 3) for x in ours_runs],
        "ratio_vs_baseline": round(ours_med / base_med, 3),
        "goal": "ratio <= 1.3",
        "rows_per_s": round(rows / ours_med),
    }
