"""The whole pipeline with both zones on the loopback S3 server, through the installed ``synthgen``
command: ``run`` then ``read``, a publish killed mid-way, and the sweep of what it left."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest

from synthgen.catalog import Catalog
from synthgen.storage.zone import STAGING_PREFIX, ZONE_MARKER

from .conftest import list_keys

DEMO_SPEC = Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml"

FAST = [
    "model.epochs=1",
    "model.batch_size=128",
    "model.text.enabled=false",
    "output.rows=300",
    "output.shard_rows=150",
    "ingest.part_rows=150",
    "evaluate.plots=false",
]
NAME = "demo-patients-synthetic"


def _sets() -> list[str]:
    return [a for s in FAST for a in ("--set", s)]


@pytest.fixture
def store(bucket: str, home: Path, aws_env: dict[str, str]) -> dict[str, Any]:
    """Demo data and role keys in the home; the real zone in ``bucket``, the synthetic zone in a
    second bucket (separate buckets, as docs/deploy.md advises)."""
    from synthgen.access import init_keys
    from synthgen.demo import write_demo_csv

    write_demo_csv(home / "demo" / "patients.csv", 300, 0)
    init_keys(user="alice")  # local zones only for this step: the keys live in the home either way
    synthetic = f"sg-syn-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=synthetic)
    env = {
        "SYNTHGEN_REAL_ZONE": f"s3://{bucket}/real",
        "SYNTHGEN_SYNTHETIC_ZONE": f"s3://{synthetic}/zone",
        "SYNTHGEN_USER": "alice",
    }
    return {"env": env, "real": bucket, "synthetic": synthetic, "home": home}


def _published(home: Path) -> list[Any]:
    catalog = Catalog.from_env()
    try:
        return catalog.list_datasets(zone="synthetic", kind="synthetic")
    finally:
        catalog.dispose()


def _spool_folders(home: Path) -> list[Path]:
    return sorted(p for p in (home / "spool").glob("*/*") if p.is_dir())


def test_run_then_read_with_both_zones_on_the_store(
    store: dict[str, Any], synthgen_cli: Callable[..., Any], tmp_path: Path
) -> None:
    env = store["env"]
    # Two anonymize workers: spawned processes that open the zones themselves, one part each.
    r = synthgen_cli(["run", str(DEMO_SPEC), *_sets(), "--workers", "2"], env=env)
    assert r.code == 0, r.err[-3000:]
    [ds] = _published(store["home"])
    assert ds.path.startswith(f"s3://{store['synthetic']}/zone/{NAME}/") and ds.rows == 300
    real, synthetic = list_keys(store["real"]), list_keys(store["synthetic"])
    # Real-derived files in the real bucket only; the synthetic bucket holds the DP model,
    # the envelope and its keyring: no plaintext Parquet, and nothing left under staging.
    assert any(k.startswith("real/snapshots/demo-patients/snap-") for k in real)
    assert any(k.startswith("real/anonymized/demo-patients/anon-") for k in real)
    assert any(k.startswith("real/holdout/") for k in real)
    assert any(k.startswith("real/reports/") for k in real)
    assert not any("/parts-anon-" in k for k in real)  # the parts' work folder goes once catalogued
    assert not any(k.endswith(".parquet") for k in synthetic)
    assert f"zone/{NAME}/{ds.id}.sgenc" in synthetic and f"zone/{NAME}/{ds.id}.keyring.json" in synthetic
    assert not any(STAGING_PREFIX in k for k in real + synthetic)
    assert _spool_folders(store["home"]) == []  # every spooled copy was deleted after use
    assert not list((store["home"] / "zones").rglob("*.parquet"))  # nothing went to local zones
    # `synthgen read` decrypts it from the store: the rows the catalog and the manifest promise.
    out = tmp_path / "out.parquet"
    r = synthgen_cli(["read", NAME, "--user", "alice", "--out", str(out)], env=env)
    assert r.code == 0, r.err
    frame = pl.read_parquet(out)
    assert frame.height == 300 and list(frame.columns) == list(ds.schema_json)
    r = synthgen_cli(["read", NAME, "--user", "alice", "--rows", "3"], env=env)
    assert r.code == 0 and f"{NAME}: 300 rows x {frame.width} columns" in r.out, r.err
    r = synthgen_cli(["inspect", NAME, "--json"], env=env)
    assert r.code == 0 and ds.id in r.out, r.err
    # Key administration rewrites the keyring object (binding first, then the object).
    r = synthgen_cli(["keys", "rotate", "data-steward", "--user", "alice"], env=env)
    assert r.code == 0 and "re-wrapped 1 dataset(s)" in r.out, r.out + r.err
    r = synthgen_cli(["keys", "revoke", NAME, "analyst", "--user", "alice"], env=env)
    assert r.code == 0 and "revoked analyst" in r.out, r.out + r.err
    r = synthgen_cli(["read", NAME, "--user", "alice", "--out", str(tmp_path / "again.parquet")], env=env)
    assert r.code == 0, r.err
    assert pl.read_parquet(tmp_path / "again.parquet").equals(frame)


# Loaded at interpreter start (sitecustomize on PYTHONPATH): the process kills itself with SIGKILL
# when the publish copies the keyring from staging to its final key, i.e. after the envelope is
# under its final key and before the catalog row: the worst moment for a reader.
_KILL_HOOK = textwrap.dedent(
    """
    import os, signal
    from synthgen.storage import zone as _zone

    _publish = _zone.ObjectZone._publish

    def _killing_publish(self, txn, pairs):
        if any(str(final).endswith(".keyring.json") for _, final in pairs):
            os.kill(os.getpid(), signal.SIGKILL)
        return _publish(self, txn, pairs)

    _zone.ObjectZone._publish = _killing_publish
    """
)


def test_a_publish_killed_mid_way_is_never_readable_and_the_sweep_cleans_up(
    store: dict[str, Any], synthgen_cli: Callable[..., Any], tmp_path: Path
) -> None:
    env = store["env"]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_KILL_HOOK, encoding="utf-8")
    killing = {**env, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    r = synthgen_cli(["run", str(DEMO_SPEC), *_sets()], env=killing)
    assert r.code == -9, r.err[-3000:]
    keys = list_keys(store["synthetic"])
    envelopes = [k for k in keys if k.endswith(".sgenc")]
    assert len(envelopes) == 1 and envelopes[0].startswith(f"zone/{NAME}/")  # final, but uncatalogued
    assert any(k.startswith(f"zone/{STAGING_PREFIX}/") for k in keys)  # the keyring, staged only
    assert _published(store["home"]) == []
    r = synthgen_cli(["read", NAME, "--user", "alice"], env=env)
    assert r.code != 0 and "Traceback" not in r.err
    # The killed process's spool folder (the assembled plaintext) outlived it: no finally ran.
    assert [p.parent.name for p in _spool_folders(store["home"])] == ["synthetic"]
    # The next publish sweeps under the publish lock: the uncatalogued envelope and the dead
    # spool folder at once, then publishes (same id: same model, run and shards).
    r = synthgen_cli(["publish", str(DEMO_SPEC), *_sets()], env=env)
    assert r.code == 0, r.err[-3000:]
    assert _spool_folders(store["home"]) == []
    [ds] = _published(store["home"])
    keys = list_keys(store["synthetic"])
    assert [k for k in keys if k.endswith(".sgenc")] == [f"zone/{NAME}/{ds.id}.sgenc"]
    r = synthgen_cli(["read", NAME, "--user", "alice", "--rows", "1"], env=env)
    assert r.code == 0 and f"{NAME}: 300 rows" in r.out, r.err
    # The dead staging transaction is younger than the grace period (a live writer on another
    # host could own one that young), so it stays until it is older; then the sweep takes it.
    staged = [k for k in keys if k.startswith(f"zone/{STAGING_PREFIX}/")]
    assert len(staged) == 1
    from synthgen.orphans import sweep_object_staging
    from synthgen.policy.audit import AuditLog
    from synthgen.zones import Zones

    zones = Zones.from_roots(env["SYNTHGEN_REAL_ZONE"], env["SYNTHGEN_SYNTHETIC_ZONE"])
    catalog = Catalog.from_env()
    try:
        removed = sweep_object_staging(zones.synthetic, AuditLog(catalog), user="tester", older_than=0)  # type: ignore[arg-type]
    finally:
        catalog.dispose()
    assert removed == ["/".join(staged[0].split("/")[1:3])]
    keys = list_keys(store["synthetic"])
    assert not any(STAGING_PREFIX in k for k in keys) and f"zone/{ZONE_MARKER}" in keys
