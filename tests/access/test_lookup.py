"""Finding 12: `read` and `report` given a pipeline name (not a published name) say what to use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from synthgen.catalog import Dataset

from .conftest import Env

Cli = Callable[..., Any]


def _pipeline_with_shard(env: Env) -> None:
    """A pipeline 'visits': a model, a staging shard in the synthetic zone, its published output."""
    model = env.zones.synthetic.root / "models" / "visits" / "m-1"
    model.mkdir(parents=True)
    shard = env.zones.synthetic.root / "staging" / "visits" / "shard-0.parquet"
    shard.parent.mkdir(parents=True)
    env.frame().write_parquet(shard)
    for id_, kind, path in (("m-1", "model", model), ("gen-1", "staging", shard)):
        env.catalog.add_dataset(
            Dataset(
                id=id_,
                name="visits",
                zone="synthetic",
                kind=kind,
                format="parquet",
                path=str(path),
                content_hash="x",
                classification="internal",
                dp=True,
                created_by="synthgen-pipeline",
            )
        )
    env.publish("visits-synthetic", parents=["m-1"])


def test_read_with_a_pipeline_name_names_the_published_dataset(env: Env, synthgen_cli: Cli) -> None:
    _pipeline_with_shard(env)
    r = synthgen_cli(["read", "visits", "--user", "bob"])
    assert r.code == 2 and "'visits' is a pipeline" in r.err and "'visits-synthetic'" in r.err
    assert r.err.strip().count("\n") == 0
    r = synthgen_cli(["read", "visits-synthetic", "--user", "bob"])
    assert r.code == 0 and "200 rows" in r.out


def test_read_of_an_unknown_name_names_an_existing_command(env: Env, synthgen_cli: Cli) -> None:
    r = synthgen_cli(["read", "nothing-here", "--user", "bob"])
    assert r.code == 1 and "synthgen catalog list --zone synthetic" in r.err


def test_report_accepts_the_pipeline_name(env: Env, synthgen_cli: Cli) -> None:
    report = env.zones.real.root / "reports" / "visits" / "rep-1" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>report</html>")
    env.catalog.add_dataset(
        Dataset(
            id="rep-1",
            name="visits-synthetic",
            zone="real",
            kind="report",
            format="html",
            path=str(report),
            content_hash="x",
            classification="restricted",
            dp=False,
            created_by="synthgen-pipeline",
        )
    )
    for name in ("visits", "visits-synthetic", "rep-1"):
        r = synthgen_cli(["report", name, "--user", "dave"])
        assert r.code == 0 and r.out.strip().endswith("report.html"), (name, r.err)
    r = synthgen_cli(["report", "elsewhere", "--user", "dave"])
    assert r.code == 1 and "synthgen evaluate" in r.err
