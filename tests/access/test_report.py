"""Restricted evaluation reports in the real zone: stewards and auditors only, audited."""

from __future__ import annotations

import pytest

from synthgen.access import read_report
from synthgen.catalog import Dataset
from synthgen.errors import AccessDenied

from .conftest import Env


@pytest.fixture
def report(env: Env) -> Dataset:
    with env.zones.real.atomic_write("reports/adult/r1/report.html", mode="w") as fh:
        fh.write("<html>restricted</html>")
    path = env.zones.real.resolve("reports/adult/r1/report.html")
    # The pipeline's snapshot shares the pipeline's name: lookup by name must still pick the report.
    env.catalog.add_dataset(
        Dataset(
            id="snap-1",
            name="adult",
            zone="real",
            kind="snapshot",
            format="parquet",
            path="x",
            content_hash="h",
            created_by="t",
        )
    )
    return env.catalog.add_dataset(
        Dataset(
            id="report-1",
            name="adult",
            zone="real",
            kind="report",
            format="html",
            path=str(path),
            content_hash="h",
            classification="restricted",
            dp=False,
            created_by="t",
        )
    )


def test_steward_and_auditor_may_read_restricted_report(env: Env, report: Dataset, tmp_path) -> None:
    for user in ("alice", "dave"):
        assert (
            read_report("adult", user=user, catalog=env.catalog, zones=env.zones).read_text()
            == "<html>restricted</html>"
        )
    copied = read_report(
        "report-1", user="dave", out=tmp_path / "r.html", catalog=env.catalog, zones=env.zones
    )
    assert copied.read_text() == "<html>restricted</html>"


@pytest.mark.parametrize("user", ["bob", "carol", "synthgen-pipeline", "mallory"])
def test_others_may_not_read_restricted_report(env: Env, report: Dataset, user: str) -> None:
    with pytest.raises(AccessDenied):
        read_report("adult", user=user, catalog=env.catalog, zones=env.zones)
    last = (env.home / "audit" / "audit.jsonl").read_text().splitlines()[-1]
    assert '"decision":"deny"' in last and "report-1" in last
