"""Object-store zones against moto's S3 server on loopback, through s3fs: staged commits,
streaming writes and reads, ingest -> publish -> read, and crashes mid-publish."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthgen.catalog import Dataset
from synthgen.crypto.envelope import encrypt_stream, iter_decrypt
from synthgen.crypto.secret import SecretKey
from synthgen.errors import ZoneConfigError, ZoneError
from synthgen.orphans import sweep_object_staging
from synthgen.policy.audit import AuditLog
from synthgen.publication_orphans import sweep_object_orphans
from synthgen.storage import parquet as sparquet
from synthgen.storage.zone import BLOCK_SIZE, STAGING_PREFIX, ZONE_MARKER
from synthgen.zones import StoreZones, open_zones

from .conftest import list_keys, open_multipart_uploads

MARKERS = ["real/" + ZONE_MARKER, "synthetic/" + ZONE_MARKER]


def _zones(bucket: str) -> StoreZones:
    return open_zones(f"s3://{bucket}/real", f"s3://{bucket}/synthetic")


def _dataset(ds_id: str, zone: str, kind: str, path: str, rows: int) -> Dataset:
    return Dataset(
        id=ds_id, name="visits", zone=zone, kind=kind, format="parquet", path=path, rows=rows,
        schema_json={}, content_hash="-", classification="restricted", dp=None, tags={}, extra={},
        created_by="tester",
    )  # fmt: skip


def test_opening_zones_marks_each_root_and_nothing_else(bucket: str) -> None:
    zones = _zones(bucket)
    assert list_keys(bucket) == MARKERS
    assert zones.real.root == f"s3://{bucket}/real"


def test_a_root_under_a_prefix_marked_for_the_other_zone_is_refused(bucket: str) -> None:
    _zones(bucket)
    with pytest.raises(ZoneConfigError, match="marked as a synthetic zone"):
        open_zones(f"s3://{bucket}/synthetic/real", f"s3://{bucket}/other")


def test_keys_outside_the_zone_or_into_the_other_zone_are_refused(bucket: str) -> None:
    zones = _zones(bucket)
    with pytest.raises(ZoneError, match="outside the real zone"):
        zones.real.locate(f"s3://{bucket}/synthetic/x.parquet")
    with pytest.raises(ZoneConfigError, match=r"'\.\.'"):
        zones.real.locate("snapshots/../../synthetic/x")
    with pytest.raises(ZoneError, match="reserved"):
        zones.real.locate(f"{STAGING_PREFIX}/x")


def test_a_streamed_write_is_invisible_until_committed_and_spans_several_parts(bucket: str) -> None:
    zones = _zones(bucket)
    block = os.urandom(1 << 20)
    with zones.synthetic.atomic_write("pub/big.bin") as fh:
        for _ in range(2 * BLOCK_SIZE // len(block) + 1):
            fh.write(block)
        # Two parts are uploaded by now, but no object exists under any key: a multipart
        # upload is visible only once completed.
        assert list_keys(bucket) == MARKERS
        assert len(open_multipart_uploads(bucket)) == 1
    assert list_keys(bucket) == [*MARKERS, "synthetic/pub/big.bin"]  # final key only, staging gone
    assert open_multipart_uploads(bucket) == []
    with zones.synthetic.open("pub/big.bin") as fh:
        assert fh.read(len(block)) == block


def test_a_write_that_fails_leaves_no_object_and_no_open_upload(bucket: str) -> None:
    zones = _zones(bucket)
    with pytest.raises(RuntimeError, match="boom"), zones.synthetic.atomic_write("pub/x.bin") as fh:
        fh.write(os.urandom(BLOCK_SIZE + 1))
        raise RuntimeError("boom")
    assert list_keys(bucket) == MARKERS
    assert open_multipart_uploads(bucket) == []


def test_parquet_streams_in_row_groups_both_ways(bucket: str) -> None:
    zones = _zones(bucket)
    schema = pa.schema([("id", pa.int64()), ("note", pa.string())])
    batches = (
        pa.record_batch([pa.array(range(i, i + 1000)), pa.array(["n"] * 1000)], schema=schema)
        for i in range(0, 5000, 1000)
    )
    rows = sparquet.write_batches(zones.real, "snapshots/v/s.parquet", schema, batches, row_group_rows=1000)
    assert rows == 5000
    with zones.real.open("snapshots/v/s.parquet") as fh:
        assert pq.ParquetFile(fh).metadata.num_row_groups == 5
    got = list(sparquet.iter_batches(zones.real, "snapshots/v/s.parquet", batch_rows=1000))
    assert [b.num_rows for b in got] == [1000] * 5
    assert pa.Table.from_batches(got).column("id").to_pylist() == list(range(5000))
    assert sparquet.read_schema(zones.real, "snapshots/v/s.parquet") == schema


def test_a_spooled_folder_is_uploaded_whole_and_replaces_the_old_version(bucket: str) -> None:
    zones = _zones(bucket)
    with zones.real.atomic_dir("anonymized/v/a1") as d:
        (d / "data.parquet").write_bytes(b"one")
        (d / "old.json").write_text("{}")
    with zones.real.atomic_dir("anonymized/v/a1") as d:
        (d / "data.parquet").write_bytes(b"two")
        (d / "sub").mkdir()
        (d / "sub" / "r.json").write_text("{}")
    keys = [k for k in list_keys(bucket) if k.startswith("real/anonymized")]
    assert keys == ["real/anonymized/v/a1/data.parquet", "real/anonymized/v/a1/sub/r.json"]
    with zones.real.open("anonymized/v/a1/data.parquet") as fh:
        assert fh.read() == b"two"


def test_ingest_publish_read_through_object_zones(bucket: str, ctx, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    zones = _zones(bucket)
    source = tmp_path / "visits.parquet"
    table = pa.table({"age": list(range(3000)), "ward": [f"w{i % 7}" for i in range(3000)]})
    pq.write_table(table, source, row_group_size=500)
    # ingest: stream the source into the real zone, then the catalog row (last)
    rel = "snapshots/visits/snap-1.parquet"
    src = pq.ParquetFile(source)
    rows = sparquet.write_batches(zones.real, rel, src.schema_arrow, src.iter_batches(batch_size=500))
    ctx.catalog.add_dataset(_dataset("snap-1", "real", "snapshot", zones.real.uri(rel), rows))
    # publish: encrypt (segment by segment) into the synthetic zone, then the catalog row
    key = SecretKey.generate(label="dk-test")
    synthetic = tmp_path / "synthetic.parquet"
    pq.write_table(pa.table({"age": [1, 2, 3], "ward": ["w1", "w2", "w1"]}), synthetic)
    env_rel = "visits-synthetic/syn-1.sgenc"
    with open(synthetic, "rb") as fin, zones.synthetic.atomic_write(env_rel) as fout:
        info = encrypt_stream(fin, fout, data_key=key, manifest={"name": "v-s"}, segment_size=4096)
    ctx.catalog.add_dataset(_dataset("syn-1", "synthetic", "synthetic", zones.synthetic.uri(env_rel), 3))
    assert info.segments >= 1
    # read: from the catalog row, streaming the envelope back through the verifier
    snap = ctx.catalog.get_dataset("snap-1")
    back = pa.Table.from_batches(list(sparquet.iter_batches(zones.real, snap.path)))
    assert back.equals(table)
    pub = ctx.catalog.get_dataset("syn-1")
    with zones.synthetic.open(pub.path) as fh:
        plain = b"".join(iter_decrypt(fh, data_key=key))
    assert pq.read_table(io.BytesIO(plain)).to_pydict() == {"age": [1, 2, 3], "ward": ["w1", "w2", "w1"]}
    keys = list_keys(bucket)
    assert "real/snapshots/visits/snap-1.parquet" in keys and "synthetic/visits-synthetic/syn-1.sgenc" in keys
    assert not any(STAGING_PREFIX in k for k in keys)


_CRASH = textwrap.dedent(
    """
    import os, signal, sys
    from synthgen.storage.zone import ObjectZone
    from synthgen.zones import open_zones

    real, synthetic, where = sys.argv[1:4]
    zones = open_zones(real, synthetic)
    if where == "before-final-copy":
        ObjectZone._publish = lambda self, txn, pairs: os.kill(os.getpid(), signal.SIGKILL)
    with zones.synthetic.atomic_write("visits-synthetic/syn-9.sgenc") as fh:
        fh.write(os.urandom(3 << 20))
    with zones.synthetic.atomic_write("visits-synthetic/syn-9.keyring.json") as fh:
        fh.write(b"{}")
    os.kill(os.getpid(), signal.SIGKILL)  # after the final objects, before the catalog row
    """
)


def _crash(bucket: str, where: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, f"s3://{bucket}/real", f"s3://{bucket}/synthetic", where],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr


def test_a_publish_killed_before_its_final_copy_leaves_only_staging_which_the_sweep_removes(
    bucket: str,
    ctx,  # type: ignore[no-untyped-def]
) -> None:
    _crash(bucket, "before-final-copy")
    keys = list_keys(bucket)
    staged = [k for k in keys if k.startswith(f"synthetic/{STAGING_PREFIX}/")]
    assert len(staged) == 1 and not any(k.startswith("synthetic/visits-synthetic") for k in keys)
    assert ctx.catalog.get_dataset("syn-9") is None
    zones = _zones(bucket)
    audit = AuditLog(ctx.catalog)
    assert sweep_object_staging(zones.synthetic, audit, user="tester", older_than=3600) == []  # too young
    removed = sweep_object_staging(zones.synthetic, audit, user="tester", older_than=0)
    assert len(removed) == 1 and removed[0].startswith(STAGING_PREFIX)
    assert list_keys(bucket) == MARKERS


def test_a_publish_killed_before_its_catalog_row_is_never_readable_and_is_swept(
    bucket: str,
    ctx,  # type: ignore[no-untyped-def]
) -> None:
    _crash(bucket, "before-catalog-row")
    keys = list_keys(bucket)
    assert "synthetic/visits-synthetic/syn-9.sgenc" in keys
    assert ctx.catalog.get_dataset("syn-9") is None  # nothing lists it, so no read can start
    assert [d.id for d in ctx.catalog.list_datasets(zone="synthetic")] == []
    zones = _zones(bucket)
    removed = sweep_object_orphans(ctx.catalog, zones.synthetic, AuditLog(ctx.catalog), user="tester")
    assert removed == ["visits-synthetic/syn-9.keyring.json", "visits-synthetic/syn-9.sgenc"]
    assert list_keys(bucket) == MARKERS


def test_the_orphan_sweep_keeps_catalogued_publications(bucket: str, ctx) -> None:  # type: ignore[no-untyped-def]
    zones = _zones(bucket)
    with zones.synthetic.atomic_write("visits-synthetic/syn-1.sgenc") as fh:
        fh.write(b"x")
    uri = zones.synthetic.uri("visits-synthetic/syn-1.sgenc")
    ctx.catalog.add_dataset(_dataset("syn-1", "synthetic", "synthetic", uri, 1))
    assert sweep_object_orphans(ctx.catalog, zones.synthetic, AuditLog(ctx.catalog), user="tester") == []
    assert "synthetic/visits-synthetic/syn-1.sgenc" in list_keys(bucket)


def test_credentials_come_from_an_airflow_connection(
    bucket: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var)
    conn = {"conn_type": "aws", "login": "conn-key", "password": "conn-secret",
            "extra": {"endpoint_url": aws_env["AWS_ENDPOINT_URL"], "region_name": "us-east-1"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ZONE_STORE", json.dumps(conn))
    monkeypatch.setenv("SYNTHGEN_STORAGE_CONN_ID", "zone_store")
    zones = _zones(bucket)
    with zones.real.atomic_write("x.txt") as fh:
        fh.write(b"ok")
    assert zones.real.fs.key == "conn-key"
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env["AWS_ENDPOINT_URL"])
    assert "real/x.txt" in list_keys(bucket)


def test_credentials_the_store_refuses_exit_2_before_anything_is_written(
    aws_env: dict[str, str], s3_endpoint_with_auth: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint_with_auth)
    boto3.client("s3").create_bucket(Bucket="guarded")  # the one unauthenticated request
    with pytest.raises(ZoneConfigError, match="refused the credentials") as err:
        open_zones("s3://guarded/real", "s3://guarded/synthetic")
    assert err.value.exit_code == 2


def test_a_staged_spool_file_is_uploaded_through_the_staging_prefix(bucket: str) -> None:
    zones = _zones(bucket)
    with zones.real.staging("snapshots/v", suffix=".parquet") as tmp:
        pq.write_table(pa.table({"a": [1, 2]}), tmp)
        url = zones.real.commit(tmp, "snapshots/v/snap-2.parquet")
    assert url == f"s3://{bucket}/real/snapshots/v/snap-2.parquet"
    assert not tmp.exists() and list(tmp.parent.parent.iterdir()) == []  # spool emptied
    assert list_keys(bucket) == [*MARKERS[:1], "real/snapshots/v/snap-2.parquet", MARKERS[1]]
    assert pa.Table.from_batches(list(sparquet.iter_batches(zones.real, url))).num_rows == 2


def test_other_stores_go_through_the_same_checks_and_name_their_missing_driver(tmp_path: Path) -> None:
    with pytest.raises(ZoneConfigError, match="overlap"):
        open_zones("gs://b/z", "gcs://B/z/synthetic")
    with pytest.raises(ZoneConfigError, match="gs:// zones need the gcsfs package"):
        open_zones("gs://b/real", "gs://b/synthetic")
    with pytest.raises(ZoneConfigError, match="abfs:// zones need the adlfs package"):
        open_zones("abfss://container@acct.dfs.core.windows.net/real", tmp_path / "synthetic")
    assert not (tmp_path / "synthetic").exists()  # the local zone is not created either


def test_text_writes_and_local_paths(bucket: str) -> None:
    zones = _zones(bucket)
    with zones.real.atomic_write("reports/v/r.json", "w") as fh:
        fh.write('{"ok": true}')
    with zones.real.open("reports/v/r.json") as fh:
        assert json.loads(fh.read()) == {"ok": True}
    with pytest.raises(ZoneError, match="a local path"):
        zones.real.locate("/tmp/real/x.parquet")


def test_a_local_real_zone_beside_an_object_store_synthetic_zone(bucket: str, tmp_path: Path) -> None:
    zones = open_zones(tmp_path / "real", f"s3://{bucket}/synthetic")
    assert (tmp_path / "real" / ZONE_MARKER).is_file()
    assert list_keys(bucket) == ["synthetic/" + ZONE_MARKER]
    with zones.real.atomic_write("snapshots/x.bin") as fh:
        fh.write(b"real")
    with zones.synthetic.atomic_write("pub/x.bin") as fh:
        fh.write(b"dp")
    assert (tmp_path / "real" / "snapshots" / "x.bin").read_bytes() == b"real"
    assert "synthetic/pub/x.bin" in list_keys(bucket)


def test_a_spool_inside_a_local_zone_is_refused_before_anything_is_written(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real files spooled for an object-store real zone must never sit in the synthetic zone.
    monkeypatch.setenv("SYNTHGEN_SPOOL", str(tmp_path / "syn" / "spool"))
    (tmp_path / "syn").mkdir()
    with pytest.raises(ZoneConfigError, match=r"SYNTHGEN_SPOOL .* overlaps the synthetic zone"):
        open_zones(f"s3://{bucket}/real-spool-check", tmp_path / "syn")
    assert list((tmp_path / "syn").iterdir()) == []
    assert not [k for k in list_keys(bucket) if k.startswith("real-spool-check/")]


_KILLED_SPOOL = textwrap.dedent(
    """
    import os, signal, sys
    from synthgen.zones import open_zones

    zones = open_zones(sys.argv[1], sys.argv[2])
    with zones.real.atomic_path("holdout/v/model-1.parquet") as tmp:
        tmp.write_bytes(b"real rows")  # a spooled copy of real rows, not yet uploaded
        os.kill(os.getpid(), signal.SIGKILL)  # no finally runs: the spool folder outlives us
    """
)


def test_the_sweep_removes_the_spool_folders_of_killed_processes_and_keeps_live_ones(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTHGEN_SPOOL", str(tmp_path / "spool"))
    real, synthetic = f"s3://{bucket}/real", f"s3://{bucket}/synthetic"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SPOOL, real, synthetic], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    [dead] = [p for p in (tmp_path / "spool" / "real").iterdir()]
    assert (dead / "model-1.parquet").read_bytes() == b"real rows"
    zones = open_zones(real, synthetic)
    with zones.real.scratch() as live:
        (live / "x").write_bytes(b"in use")
        assert zones.real.sweep_spool() == [str(dead)]
        assert zones.synthetic.sweep_spool() == []  # each zone sweeps its own spool only
        assert (live / "x").read_bytes() == b"in use"  # a live writer's folder is kept
    assert not dead.exists() and list((tmp_path / "spool" / "real").iterdir()) == []
    assert list_keys(bucket) == MARKERS  # nothing of it ever reached the store
