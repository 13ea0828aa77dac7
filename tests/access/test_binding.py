"""Issue 14.3-14.5: a published file, its keyring and its audit entries are bound to the catalog.

Reads go through the installed console script, where a user meets them."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl

from synthgen.access import ENVELOPE_SUFFIX, KEYRING_SUFFIX, revoke_role
from synthgen.crypto import Keyring, SecretKey, encrypt_stream, read_header
from synthgen.policy import verify_audit

from .conftest import Env

EXE = Path(sys.executable).with_name("synthgen")


def _synthgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120)


def _ring_path(env: Env, ds) -> Path:  # type: ignore[no-untyped-def]
    p = env.zones.synthetic.resolve(ds.path)
    return p.with_name(p.name.removesuffix(ENVELOPE_SUFFIX) + KEYRING_SUFFIX)


def _forged_rows() -> bytes:
    buf = io.BytesIO()
    pl.DataFrame({"age": [99], "income": [0.0], "job": ["forged"]}).write_parquet(buf)
    return buf.getvalue()


def test_reader_key_holder_reencrypting_with_the_same_data_key_and_header_is_refused(env: Env) -> None:
    ds = env.publish()
    envelope = env.zones.synthetic.resolve(ds.path)
    # bob (analyst) holds the analyst KEK: he unwraps the data key and re-encrypts his own rows
    # under it, with the original manifest, so every tag and the key commitment verify.
    data_key = Keyring.from_bytes(_ring_path(env, ds).read_bytes()).unwrap(env.provider, "analyst")
    with open(envelope, "rb") as fh:
        manifest = read_header(fh).manifest
    forged = io.BytesIO()
    encrypt_stream(io.BytesIO(_forged_rows()), forged, data_key=data_key, manifest=manifest)
    envelope.write_bytes(forged.getvalue())
    proc = _synthgen("read", "adult-synthetic", "--user", "bob")
    assert proc.returncode == 1, proc.stdout
    assert "not the one the platform published" in proc.stderr and "forged" not in proc.stdout
    assert proc.stderr.strip().count("\n") == 0


def test_reader_key_holder_swapping_in_a_new_envelope_and_keyring_is_refused(env: Env) -> None:
    ds = env.publish()
    envelope = env.zones.synthetic.resolve(ds.path)
    with open(envelope, "rb") as fh:
        manifest = read_header(fh).manifest
    own_key = SecretKey.generate()  # a fresh data key, wrapped with the analyst KEK bob holds
    ring = Keyring(dataset_id=ds.id, key_id=manifest["key_id"])
    ring.add(env.provider, "analyst", own_key)
    forged = io.BytesIO()
    encrypt_stream(io.BytesIO(_forged_rows()), forged, data_key=own_key, manifest=manifest)
    envelope.write_bytes(forged.getvalue())
    _ring_path(env, ds).write_bytes(ring.to_bytes())
    proc = _synthgen("read", "adult-synthetic", "--user", "bob")
    assert proc.returncode == 1 and "not the one the catalog records" in proc.stderr
    assert "forged" not in proc.stdout


def test_restoring_the_pre_revocation_keyring_does_not_restore_reads(env: Env) -> None:
    ds = env.publish()
    before = _ring_path(env, ds).read_bytes()
    assert _synthgen("read", "adult-synthetic", "--user", "bob").returncode == 0
    assert revoke_role("adult-synthetic", "analyst", user="alice", catalog=env.catalog, zones=env.zones)
    assert Keyring.from_bytes(_ring_path(env, ds).read_bytes()).generation == 2
    _ring_path(env, ds).write_bytes(before)  # the revoked analyst entry is back in the file
    proc = _synthgen("read", "adult-synthetic", "--user", "bob")
    assert proc.returncode == 1 and "older than the catalog's 2" in proc.stderr
    # Relabelling the old keyring's generation does not help: its bytes are not the recorded ones.
    doc = json.loads(before)
    doc["generation"] = 2
    _ring_path(env, ds).write_text(json.dumps(doc))
    proc = _synthgen("read", "adult-synthetic", "--user", "bob")
    assert proc.returncode == 1 and "not the one the catalog records" in proc.stderr


def test_an_edited_catalog_binding_fails_its_mac(env: Env) -> None:
    ds = env.publish()
    extra = dict(env.catalog.get_dataset(ds.id).extra)
    extra["binding"] = {**extra["binding"], "file_sha256": "0" * 64}
    env.catalog.update_dataset(ds.id, extra=extra)
    proc = _synthgen("read", "adult-synthetic", "--user", "bob")
    assert proc.returncode == 1 and "fails its MAC" in proc.stderr
    assert "the record was edited (the platform secret is the one that published it)" in proc.stderr


def test_a_wrong_platform_secret_is_reported_as_such_not_as_an_edit(env: Env) -> None:
    env.publish()
    wrong = {**os.environ, "SYNTHGEN_PIPELINE_SECRET": "not-the-publishing-secret-0123456789"}
    args = [str(EXE), "read", "adult-synthetic", "--user", "bob"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=wrong)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "this platform secret is not the one that published it" in proc.stderr
    assert "check SYNTHGEN_PIPELINE_SECRET" in proc.stderr
    assert "not-the-publishing-secret" not in proc.stderr  # never the secret itself


def test_rotation_keeps_the_binding_current(env: Env) -> None:
    ds = env.publish()
    assert _synthgen("keys", "rotate", "analyst", "--user", "alice").returncode == 0
    assert Keyring.from_bytes(_ring_path(env, ds).read_bytes()).generation == 2
    assert _synthgen("read", "adult-synthetic", "--user", "bob").returncode == 0


_KILL = textwrap.dedent(
    """
    import os, sys
    import synthgen.policy.audit as audit
    real_write = os.write
    def write(fd, data):
        if b'"action":"key.wrap"' in data or b'"action":"publication"' in data:
            os._exit(137)  # SIGKILL-like: no cleanup, no finally
        return real_write(fd, data)
    audit.os.write = write
    sys.path.insert(0, sys.argv[1])
    from synthgen.access import publish_dataset
    from synthgen.catalog import Catalog
    from synthgen.zones import Zones
    publish_dataset(
        plaintext_parquet=sys.argv[2], name="killed", manifest={"privacy": {"epsilon": 1.0}},
        dp=True, classification="shareable", roles=["analyst"], tags={}, parents=[],
        catalog=Catalog.from_env(), zones=Zones.from_env(), user="synthgen-pipeline",
        dataset_id="pub-killed",
    )
    """
)


def test_publish_killed_after_writing_leaves_nothing_readable_unaudited_and_is_swept(env: Env) -> None:
    staged = env.stage("killed.parquet")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _KILL, str(repo), str(staged)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 137, proc.stderr
    ds = env.catalog.get_dataset("pub-killed")
    audited = any(
        '"pub-killed"' in line for line in (env.home / "audit" / "audit.jsonl").read_text().splitlines()
    )
    # Either the publication is complete and audited, or it is not in the catalog at all.
    assert ds is None or audited, "a readable dataset with no key-wrap/publication audit entry"
    assert ds is None
    assert _synthgen("read", "killed", "--user", "bob").returncode == 1  # not catalogued: not found
    orphans = sorted(p.name for p in (env.zones.synthetic.root / "killed").iterdir())
    assert orphans == ["pub-killed.keyring.json", "pub-killed.sgenc"]
    env.publish(name="next")  # the next publish sweeps them and says so in the audit trail
    assert not any((env.zones.synthetic.root / "killed").iterdir())
    entries = [json.loads(x) for x in (env.home / "audit" / "audit.jsonl").read_text().splitlines()]
    sweep = [e for e in entries if e["action"] == "sweep"]
    assert sweep and sorted(sweep[0]["detail"]["removed"]) == [
        os.path.join("killed", "pub-killed.keyring.json"),
        os.path.join("killed", "pub-killed.sgenc"),
    ]
    assert verify_audit(env.catalog).ok
