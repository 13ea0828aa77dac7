"""Shared set-up of the pipeline tests: a synthgen home with the demo CSV and role keys."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from synthgen.demo import write_demo_csv

#: The repo's demo pipeline spec, which the pipeline tests run with small settings.
DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml"


@contextmanager
def demo_home(home: Path, *, rows: int, seed: int) -> Iterator[Path]:
    """Point ``SYNTHGEN_HOME`` at ``home`` (SQLite catalog), write ``rows`` demo visits and role keys."""
    saved = {k: os.environ.get(k) for k in ("SYNTHGEN_HOME", "SYNTHGEN_USER", "SYNTHGEN_CATALOG_URL")}
    os.environ["SYNTHGEN_HOME"] = str(home)
    os.environ.pop("SYNTHGEN_CATALOG_URL", None)
    try:
        write_demo_csv(home / "demo" / "patients.csv", rows, seed)
        from synthgen.access import init_keys

        init_keys(user="alice")
        yield home
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
