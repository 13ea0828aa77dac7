"""P9 for the catalog: real-derived fields only for stewards and auditors, through the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from synthgen.errors import PrivacyError
from synthgen.manifest import check_shareable

from .conftest import Env

EXE = Path(sys.executable).with_name("synthgen")


def _synthgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def ingested(env: Env, tmp_path: Path) -> int:
    n = 137
    pl.DataFrame({"age": list(range(n)), "job": ["clerk"] * n}).write_csv(tmp_path / "d.csv")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: visits\nsource: {{kind: csv, path: {tmp_path / 'd.csv'}}}\n")
    proc = _synthgen("ingest", str(spec))
    assert proc.returncode == 0, proc.stderr
    env.publish(name="visits-synthetic")
    return n


@pytest.mark.parametrize(
    ("user", "sees"), [("alice", True), ("dave", True), ("bob", False), ("carol", False)]
)
def test_catalog_list_shows_exact_real_row_counts_only_to_stewards_and_auditors(
    env: Env, ingested: int, user: str, sees: bool
) -> None:
    proc = _synthgen("catalog", "list", "--json", "--user", user)
    assert proc.returncode == 0, proc.stderr
    rows = {d["zone"]: d for d in json.loads(proc.stdout)}
    assert rows["real"]["rows"] == (ingested if sees else None)
    assert rows["real"]["restricted_fields"] == ("shown" if sees else "withheld")
    assert (rows["real"]["content_hash"] is not None) is sees  # F3: a hash of real bytes
    assert rows["synthetic"]["rows"] == 200  # a DP output's size is a spec setting: shown to all
    table = _synthgen("catalog", "list", "--zone", "real", "--user", user)
    assert table.returncode == 0
    assert (str(ingested) in table.stdout) is sees and ("withheld" in table.stdout) is not sees


def test_publish_refuses_a_manifest_carrying_evaluation_scores(env: Env) -> None:
    with pytest.raises(PrivacyError, match="scores"):
        env.publish(manifest={"privacy": {"epsilon": 1.0}, "scores": {"exact_match_rate": 0.0001}})
    with pytest.raises(PrivacyError, match=r"privacy\.trtr"):
        check_shareable({"privacy": {"trtr": 0.8}})


def test_inspect_reads_the_header_without_a_key_and_says_it_is_unverified(env: Env, tmp_path: Path) -> None:
    ds = env.publish()
    copy = tmp_path / "copy.sgenc"  # any holder of the file: no catalog, no keys
    copy.write_bytes(Path(ds.path).read_bytes())
    proc = _synthgen("inspect", str(copy), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["manifest"]["dataset_id"] == ds.id and doc["manifest"]["privacy"]["epsilon"] == 1.0
    assert "not checked" in doc["authentication"]
    by_name = _synthgen("inspect", "adult-synthetic")
    assert by_name.returncode == 0 and ds.id in by_name.stdout and "not checked" in by_name.stdout
    missing = _synthgen("inspect", "no-such-dataset")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0


def test_a_snapshot_id_is_keyed_not_a_hash_of_the_real_bytes(env: Env, ingested: int) -> None:
    """F3: the id reaches the shareable manifest's lineage; unkeyed, it would confirm a guess of the data."""
    from synthgen.catalog import Catalog
    from synthgen.ids import settings_hash

    cat = Catalog.from_env()
    snap = cat.list_datasets(kind="snapshot")[0]
    cat.dispose()
    assert snap.id.startswith("snap-")
    # The snapshot is a directory of parts; its content hash is the sha256 of the Parquet bytes.
    digest, part_rows = snap.content_hash, snap.extra["part_rows"]
    assert digest and len(digest) == 64
    unkeyed = [settings_hash(digest, snap.schema_json), settings_hash(digest, snap.schema_json, part_rows)]
    assert snap.id not in {f"snap-{u}" for u in unkeyed}


def test_inspect_prints_a_crafted_manifest_as_plain_text(env: Env, tmp_path: Path) -> None:
    # The header is unauthenticated: whoever hands over the file writes it. Escape sequences
    # (window title, hyperlink) and Rich markup must reach the terminal as visible text.
    evil = "\x1b]0;pw\x07 [b]x[/b] \u202e"
    ds = env.publish(manifest={"privacy": {"epsilon": 1.0}, "owner": evil})
    proc = _synthgen("inspect", ds.path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout and "\x07" not in proc.stdout
    assert "\\x1b]0;pw\\x07" in proc.stdout and "[b]x[/b]" in proc.stdout and "\\u202e" in proc.stdout
