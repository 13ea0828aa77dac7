"""The orphan sweep at the start of train: what a killed run left under final names goes, what a
live run owns stays, a dead run's reservation becomes a ledger entry, and the audit log says so."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from synthgen.catalog import AccessLog
from synthgen.orphans import TEMP_MAX_AGE_S, running, sweep_train
from synthgen.privacy import budget
from synthgen.privacy.settings import PrivacySettings
from synthgen.spec import PipelineSpec

SPEC = PipelineSpec.model_validate({"name": "orph", "source": {"kind": "csv", "path": "/x/d.csv"}})


def _artifacts(ctx: Any, model_id: str) -> list[Path]:
    model = ctx.zones.synthetic.resolve(f"models/orph/{model_id}")
    model.mkdir(parents=True)
    (model / "run.json").write_text("{}")
    holdout = ctx.zones.real.resolve(f"holdout/orph/{model_id}.parquet")
    holdout.parent.mkdir(parents=True, exist_ok=True)
    holdout.write_bytes(b"PAR1")
    counts = holdout.with_name(f"{model_id}.counts.json")
    counts.write_text("{}")
    return [model, holdout, counts]


def test_sweep_removes_a_dead_runs_files_keeps_a_live_runs_and_charges_the_dead_reservation(ctx: Any) -> None:
    dead = _artifacts(ctx, "model-dead")
    live = _artifacts(ctx, "model-live")
    detail = {"model_id": "model-dead", "pipeline": "orph"}
    res = budget.reserve(
        ctx.catalog,
        source="id:orph",
        run_id="r-dead",
        privacy=PrivacySettings(epsilon=2),
        default_cap=(10.0, 1e-3),
        detail=detail,
    )
    assert res is not None
    old_tmp = ctx.zones.real.resolve("snapshots/orph/.tmp-abc.parquet")
    old_tmp.parent.mkdir(parents=True)
    old_tmp.write_bytes(b"x")
    past = time.time() - TEMP_MAX_AGE_S - 60
    os.utime(old_tmp, (past, past))
    young_tmp = old_tmp.with_name(".tmp-young.parquet")  # may belong to a stage still writing it
    young_tmp.write_bytes(b"x")

    with running(ctx.zones.real, "model-live"):
        out = sweep_train(SPEC, ctx)
    assert not any(p.exists() for p in dead) and all(p.exists() for p in live)
    assert not old_tmp.exists() and young_tmp.exists()
    assert sorted(out["removed"]) == sorted(
        [
            "synthetic:models/orph/model-dead",
            "real:holdout/orph/model-dead.parquet",
            "real:holdout/orph/model-dead.counts.json",
            "real:snapshots/orph/.tmp-abc.parquet",
        ]
    )
    assert out["killed_runs"] == ["r-dead"]
    now = budget.standing(ctx.catalog, "id:orph")
    assert now.reserved_epsilon == 0.0 and now.spent_epsilon == 2.0  # same charge, now in the ledger
    assert [e.step for e in ctx.catalog.ledger("id:orph")] == ["killed_run"]
    with ctx.catalog.session() as s:
        sweeps = [e.detail for e in s.scalars(select(AccessLog).where(AccessLog.action == "sweep"))]
    assert sweeps == [out]


def test_a_live_run_cannot_be_started_twice(ctx: Any) -> None:
    import pytest

    from synthgen.errors import SynthgenError

    with running(ctx.zones.real, "model-x"), pytest.raises(SynthgenError, match="another process"):
        with running(ctx.zones.real, "model-x"):
            pass
    assert not ctx.zones.real.resolve("locks/train/model-x.lock").exists()


def _old(path: Path) -> Path:
    past = time.time() - TEMP_MAX_AGE_S - 60
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (past, past))
    return path


def test_sweep_removes_old_uncatalogued_outputs_of_the_other_stages_only(ctx: Any) -> None:
    from synthgen.catalog import Dataset

    real, syn = ctx.zones.real, ctx.zones.synthetic
    files = {
        "snap": real.resolve("snapshots/orph/snap-orphan.parquet"),
        "kept_snap": real.resolve("snapshots/orph/snap-kept.parquet"),
        "young_snap": real.resolve("snapshots/orph/snap-young.parquet"),
        "anon": real.resolve("anonymized/orph/anon-orphan/data.parquet"),
        "report": real.resolve("reports/orph/report-orphan/report.html"),
        "shard": syn.resolve("staging/orph/run-1/shard-orphan.parquet"),
    }
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    ctx.catalog.add_dataset(
        Dataset(
            id="snap-kept",
            name="orph",
            zone="real",
            kind="snapshot",
            format="parquet",
            path=str(files["kept_snap"]),
            content_hash="h",
            created_by="t",
        )
    )
    for key in ("snap", "kept_snap", "shard"):
        _old(files[key])
    _old(files["anon"].parent)
    _old(files["report"].parent)

    out = sweep_train(SPEC, ctx)
    assert sorted(out["removed"]) == [
        "real:anonymized/orph/anon-orphan",
        "real:reports/orph/report-orphan",
        "real:snapshots/orph/snap-orphan.parquet",
        "synthetic:staging/orph/run-1/shard-orphan.parquet",
    ]
    assert files["kept_snap"].exists() and files["young_snap"].exists()  # catalogued / maybe in progress


def test_only_the_staging_of_a_killed_run_is_swept_not_a_live_one_nor_one_without_a_run_lock(
    ctx: Any,
) -> None:
    from synthgen.orphans import run_alive

    def shards(run_id: str) -> Path:
        d = ctx.zones.synthetic.resolve(f"staging/orph/{run_id}")
        d.mkdir(parents=True)
        (d / "shard-1.parquet").write_bytes(b"PAR1")
        return d

    killed, live, generated = shards("cli-killed"), shards("cli-live"), shards("dag-run")
    lock = ctx.zones.real.resolve("locks/run/orph/cli-killed.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # what a SIGKILLed run leaves: the file, nobody holding its lock
    with run_alive(ctx.zones.real, "orph", "cli-live"):
        out = sweep_train(SPEC, ctx)
        assert live.exists()
    assert not killed.exists() and not lock.exists()
    assert generated.exists()  # no run lock: `synthgen generate` or a DAG; a later publish uses it
    assert "synthetic:staging/orph/cli-killed" in out["removed"]
    assert "synthetic:staging/orph/cli-live" not in out["removed"]
