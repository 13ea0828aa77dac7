"""Anonymization mapped over the snapshot's parts: --workers N gives the single-process output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from synthgen import stages
from synthgen.anonymize.leak import LeakIndex
from synthgen.spec import load_spec

from ._home import DEMO_SPEC, demo_home

ROWS = 450
PARTS = ["ingest.part_rows=200"]  # 3 parts: 200, 200, 50
SECRET = "mapped-anonymize-test-secret-0123456789"


@pytest.fixture()
def home(tmp_path: Path) -> Iterator[Path]:
    os.environ["SYNTHGEN_PIPELINE_SECRET"] = SECRET  # one secret for both homes: comparable outputs
    try:
        with demo_home(tmp_path / "home", rows=ROWS, seed=3) as h:
            yield h
    finally:
        os.environ.pop("SYNTHGEN_PIPELINE_SECRET", None)


def _ctx() -> stages.Context:
    ctx = stages.Context.from_env()
    ctx.user = "synthgen-pipeline"
    return ctx


def test_ingest_writes_bounded_parts_in_row_order(home: Path) -> None:
    ctx = _ctx()
    snap = stages.ingest(load_spec(DEMO_SPEC, PARTS), ctx)
    ds = ctx.catalog.get_dataset(snap.dataset_id)
    assert ds is not None and ds.rows == ROWS and ds.extra["part_rows"] == 200
    parts = stages.snapshot_parts(ds)
    assert [pl.read_parquet(p).height for p in parts] == [200, 200, 50]
    whole = pl.read_csv(home / "demo" / "patients.csv")
    assert pl.concat([pl.read_parquet(p) for p in parts])["visit_id"].to_list() == whole["visit_id"].to_list()


def _outputs(result: Any) -> tuple[pl.DataFrame, dict[str, Any], int]:
    report = json.loads(Path(result.extra["report_path"]).read_text())
    secret = stages.pipeline_secret(load_spec(DEMO_SPEC, PARTS))
    index = LeakIndex.load(result.extra["leak_index"], secret=secret)
    return pl.read_parquet(result.path), report, len(index)


def test_two_workers_give_the_single_process_output(
    home: Path, tmp_path: Path, synthgen_cli: Callable[..., Any]
) -> None:
    spec = load_spec(DEMO_SPEC, PARTS)
    args = ["anonymize", str(DEMO_SPEC), "--set", PARTS[0], "--workers", "2"]
    r = synthgen_cli(args, env={"SYNTHGEN_USER": "synthgen-pipeline"})
    assert r.code == 0, r.err
    ctx = _ctx()
    mapped = stages.anonymize(spec, ctx, snapshot_id=stages.ingest(spec, ctx).dataset_id)
    assert mapped.reused  # the CLI's run, found by id
    # The parts' working directory is gone once the merged dataset is catalogued.
    assert not list(Path(mapped.path).parent.parent.glob("parts-*"))
    data_2, report_2, index_2 = _outputs(mapped)
    with demo_home(tmp_path / "single", rows=ROWS, seed=3):  # the same data, one process
        ctx1 = _ctx()
        single = stages.anonymize(spec, ctx1, snapshot_id=stages.ingest(spec, ctx1).dataset_id, workers=1)
        data_1, report_1, index_1 = _outputs(single)
    assert single.dataset_id == mapped.dataset_id
    assert data_2.equals(data_1) and data_2.height == ROWS
    assert report_2 == report_1 and report_2["parts"] == 3
    assert index_2 == index_1 > 0


@pytest.mark.parametrize("workers", ["0", "-2", "65", "100000"])
def test_workers_outside_one_to_64_is_a_usage_error(
    home: Path, synthgen_cli: Callable[..., Any], workers: str
) -> None:
    for command in ("anonymize", "run"):
        r = synthgen_cli([command, str(DEMO_SPEC), "--workers", workers])
        assert r.code == 2, r.err
        lines = r.err.strip().splitlines()
        assert len(lines) == 1 and "--workers must be between 1 and 64" in lines[0], lines


def test_an_edited_analyzer_config_is_never_served_what_the_old_one_made(home: Path, tmp_path: Path) -> None:
    # Same config path, new content: the anonymized id (and the parts' work folder keyed on it)
    # changes, so neither the catalogued output nor a killed run's finished parts are reused.
    import synthgen.anonymize as anonymize_pkg

    shipped = Path(anonymize_pkg.__file__).with_name("presidio.yaml").read_text()
    config = tmp_path / "presidio.yaml"
    config.write_text(shipped)
    spec = load_spec(DEMO_SPEC, [*PARTS, f"anonymize.config={config}"])
    ctx = _ctx()
    snap = stages.ingest(spec, ctx).dataset_id
    first = stages.anonymize(spec, ctx, snapshot_id=snap)
    assert stages.anonymize(spec, ctx, snapshot_id=snap).dataset_id == first.dataset_id  # reused
    config.write_text(shipped.replace("default_score_threshold: 0.4", "default_score_threshold: 0.5"))
    assert stages.anonymize(spec, ctx, snapshot_id=snap).dataset_id != first.dataset_id
