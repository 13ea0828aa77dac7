"""Issue 14.6: restricted artifacts, keys, the audit log and the catalog stay out of the synthetic
zone; real-zone files are 0600. Through the installed console script."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from synthgen.catalog import Dataset

from .conftest import Env

EXE = Path(sys.executable).with_name("synthgen")


def _synthgen(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXE), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _report(env: Env) -> Dataset:
    with env.zones.real.atomic_write("reports/adult/r1/report.html", mode="w") as fh:
        fh.write("<html>restricted</html>")
    path = env.zones.real.resolve("reports/adult/r1/report.html")
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


def test_report_out_into_the_synthetic_zone_is_refused_and_copies_are_0600(env: Env, tmp_path: Path) -> None:
    report = _report(env)
    assert stat.S_IMODE(Path(report.path).stat().st_mode) == 0o600  # real-zone files: 0600
    inside = env.zones.synthetic.root / "leak.html"
    proc = _synthgen("report", "adult", "--user", "alice", "--out", str(inside))
    assert proc.returncode == 1 and "synthetic zone" in proc.stderr and not inside.exists()
    out = tmp_path / "mine.html"
    proc = _synthgen("report", "adult", "--user", "alice", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "<html>restricted</html>" and stat.S_IMODE(out.stat().st_mode) == 0o600


def test_real_zone_atomic_dir_files_are_0600(env: Env) -> None:
    with env.zones.real.atomic_dir("reports/x/r2") as d:
        (d / "report.html").write_text("r")  # the writer's umask would give 0644
        pl.DataFrame({"a": [1]}).write_parquet(d / "summary.parquet")
    for f in _files(env.zones.real.resolve("reports/x/r2")):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_real_zone_pointed_into_another_deployments_synthetic_zone_is_refused(
    env: Env, tmp_path: Path
) -> None:
    other = tmp_path / "other-deployment"
    proc = _synthgen("keys", "init", "--user", "alice", SYNTHGEN_HOME=str(other))  # creates, marks its zones
    assert proc.returncode == 0, proc.stderr
    other_synthetic = other / "zones" / "synthetic"
    assert (other_synthetic / ".synthgen-zone").is_file()
    csv = tmp_path / "d.csv"
    pl.DataFrame({"a": [1, 2, 3]}).write_csv(csv)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: visits\nsource: {{kind: csv, path: {csv}}}\n")
    before = _files(other_synthetic)
    proc = _synthgen("ingest", str(spec), SYNTHGEN_REAL_ZONE=str(other_synthetic / "real"))
    assert proc.returncode == 1 and "marked as a synthetic zone" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert _files(other_synthetic) == before  # no plaintext snapshot written there


@pytest.mark.parametrize(
    ("var", "where", "what"),
    [
        ("SYNTHGEN_KEYS_DIR", "keys", "key folder"),
        ("SYNTHGEN_AUDIT_FILE", "audit/audit.jsonl", "audit file"),
        ("SYNTHGEN_CATALOG_URL", "catalog.db", "catalog database"),
    ],
)
def test_keys_audit_file_and_catalog_inside_the_synthetic_zone_are_refused(
    env: Env, var: str, where: str, what: str
) -> None:
    target = env.zones.synthetic.root / where
    value = f"sqlite:///{target}" if var == "SYNTHGEN_CATALOG_URL" else str(target)
    before = _files(env.zones.synthetic.root)
    proc = _synthgen("keys", "init", "--user", "alice", **{var: value})
    assert proc.returncode == 1 and what in proc.stderr and "synthetic zone" in proc.stderr, proc.stderr
    assert _files(env.zones.synthetic.root) == before  # keys init wrote nothing into the zone


def test_keys_init_never_writes_keys_into_the_real_zone(env: Env) -> None:
    target = env.zones.real.root / "keys"
    proc = _synthgen("keys", "init", "--user", "alice", SYNTHGEN_KEYS_DIR=str(target))
    assert proc.returncode == 1 and "real zone" in proc.stderr and not target.exists()
