"""Mapped anonymization: the same table with 1 worker (baseline) and 2 workers, in the same run.

``python -m bench anonymize_workers [--notes N]``: bench.scale's seeded table (an id column and a
note naming a person, a phone and a date on every ``rows // notes``-th row), ingested in 4 parts;
``anonymize`` with ``workers=1`` in one home, then ``workers=2`` in a second home with the same
pipeline secret (same ids: nothing is reused across the two), each in a fresh process. Reports
docs/s (notes per second of the stage, imports excluded; spawned workers load Presidio and
spaCy themselves, which is included), peak RSS of the stage process and of the largest worker,
and whether the two outputs are equal. On 2 shared cores expect well under 2x, and a loss for
small tables, where two model loads cost more than the work they share.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import benchmark
from bench.scale import _figures, _run_child, make_table, spec_dict


@benchmark("anonymize_workers")
def run(args: argparse.Namespace) -> dict[str, Any]:
    notes = args.notes if args.notes is not None else (3_000 if args.quick else 12_000)
    rows = args.rows or notes * 10 // 3
    results: dict[str, Any] = {"rows": rows, "notes": notes, "parts": 4, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="bench-anon-workers-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "table.parquet"
        make_table(source, rows, notes)
        spec = tmp / "spec.json"
        spec.write_text(json.dumps(spec_dict(source, rows, 1)))
        runs = {}
        for workers in (1, 2):
            home = tmp / f"home{workers}"
            home.mkdir()
            ing = _run_child("ingest", home, spec)
            runs[workers] = _run_child("anonymize", home, spec, f"{ing['dataset_id']}:{workers}")
            results[f"anonymize_{workers}_worker{'s' if workers > 1 else ''}"] = _figures(
                runs[workers], rows=rows, notes=notes
            )
        results["baseline"] = "1 worker (in process), same table, same run"
        results["speedup_1_to_2"] = round(runs[1]["seconds"] / runs[2]["seconds"], 2)
        import polars as pl

        results["same_output"] = pl.read_parquet(runs[1]["path"]).equals(pl.read_parquet(runs[2]["path"]))
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return results
