"""Key and identity failures give one clear error and decrypt nothing; rotation and revocation
change only the keyring."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from synthgen.access import ENVELOPE_SUFFIX, KEYRING_SUFFIX, read_dataset, revoke_role, rotate_role_key
from synthgen.crypto import EnvKeyProvider, Keyring, SecretKey
from synthgen.errors import AccessDenied, CryptoError
from synthgen.policy import verify_audit

from .conftest import Env


def _ring_path(env: Env, ds) -> Path:  # type: ignore[no-untyped-def]
    p = env.zones.synthetic.resolve(ds.path)
    return p.with_name(p.name.removesuffix(ENVELOPE_SUFFIX) + KEYRING_SUFFIX)


def _write_ring_as_insider(env: Env, ds, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Write a tampered keyring *and* make the catalog binding accept it, as someone holding the
    platform secret could: what is left to stop the read is the wraps' own AAD."""
    from synthgen.binding import rebind_keyring

    _ring_path(env, ds).write_bytes(data)
    row = env.catalog.get_dataset(ds.id)
    extra = dict(row.extra)
    ring = Keyring.from_bytes(data)
    extra["binding"] = rebind_keyring(extra["binding"], generation=ring.generation, keyring_bytes=data)
    env.catalog.update_dataset(ds.id, extra=extra)


def _read(env: Env, user: str, name: str = "adult-synthetic"):  # type: ignore[no-untyped-def]
    return read_dataset(name, user=user, catalog=env.catalog, zones=env.zones, provider=env.provider)


def test_role_the_dataset_was_not_wrapped_for_cannot_decrypt(env: Env) -> None:
    # The policy would let ml-engineers read it, but the publisher did not wrap the key for them.
    env.publish(roles=["analyst", "data-steward"])
    with pytest.raises(AccessDenied, match="holds a key"):
        _read(env, "carol")


def test_wrong_roles_kek_cannot_unwrap_another_roles_entry(env: Env) -> None:
    ds = env.publish()
    ring_file = _ring_path(env, ds)
    ring = Keyring.from_bytes(ring_file.read_bytes())
    # Relabel the analyst entry as the ml-engineer's: the AAD names the role, so it fails.
    analyst = ring.entries["analyst"]
    ring.entries["ml-engineer"] = type(analyst)(
        "ml-engineer", analyst.kek_id.replace("analyst", "ml-engineer"), analyst.alg, analyst.blob
    )
    ring_file.write_bytes(ring.to_bytes())
    with pytest.raises(CryptoError, match="not the one the catalog records"):
        _read(env, "carol")
    _write_ring_as_insider(env, ds, ring.to_bytes())
    with pytest.raises(CryptoError, match="cannot unwrap"):
        _read(env, "carol")
    assert_frame_equal(_read(env, "bob"), env.frame())


def test_keyring_entry_copied_from_another_dataset_does_not_unwrap(env: Env) -> None:
    a = env.publish(name="set-a")
    b = env.publish(name="set-b")
    ring_a = Keyring.from_bytes(_ring_path(env, a).read_bytes())
    ring_b = Keyring.from_bytes(_ring_path(env, b).read_bytes())
    ring_b.entries["analyst"] = ring_a.entries["analyst"]
    _write_ring_as_insider(env, b, ring_b.to_bytes())
    with pytest.raises(CryptoError, match="cannot unwrap"):
        _read(env, "bob", "set-b")


def test_swapped_envelope_files_are_detected(env: Env) -> None:
    a = env.publish(name="set-a")
    b = env.publish(name="set-b")
    pa, pb = env.zones.synthetic.resolve(a.path), env.zones.synthetic.resolve(b.path)
    ra, rb = _ring_path(env, a), _ring_path(env, b)
    shutil.copyfile(pb, pa)  # B's envelope under A's name, A's keyring: key commitment fails
    with pytest.raises(CryptoError, match="does not open"):
        _read(env, "bob", "set-a")
    shutil.copyfile(rb, ra)  # and B's keyring too: the keyring names dataset B
    with pytest.raises(CryptoError, match="belongs to dataset"):
        _read(env, "bob", "set-a")


def test_revoked_role_can_no_longer_read_and_others_still_can(env: Env) -> None:
    env.publish()
    assert revoke_role("adult-synthetic", "analyst", user="alice", catalog=env.catalog, zones=env.zones)
    with pytest.raises(AccessDenied, match="revoked"):
        _read(env, "bob")
    assert _read(env, "carol").height == 200
    assert env.catalog.find_dataset("adult-synthetic").extra["roles"] == ["data-steward", "ml-engineer"]


def test_only_an_admin_may_revoke(env: Env) -> None:
    env.publish()
    with pytest.raises(AccessDenied):
        revoke_role("adult-synthetic", "ml-engineer", user="bob", catalog=env.catalog, zones=env.zones)


def test_rotation_rewraps_without_touching_data_and_retires_the_old_kek(env: Env) -> None:
    ds = env.publish()
    envelope = env.zones.synthetic.resolve(ds.path)
    before = envelope.read_bytes()
    old_ring = Keyring.from_bytes(_ring_path(env, ds).read_bytes())
    old_file = env.home / "keys" / "analyst" / "v0001.kek"
    old_kek_text = old_file.read_text()

    result = rotate_role_key(
        "analyst", user="alice", catalog=env.catalog, zones=env.zones, provider=env.provider
    )

    assert result.new_kek_id == "local:analyst:v2" and result.rewrapped == [ds.id] and not result.failed
    assert envelope.read_bytes() == before  # no data re-encryption
    new_ring = Keyring.from_bytes(_ring_path(env, ds).read_bytes())
    assert new_ring.entries["analyst"].kek_id == "local:analyst:v2"
    assert new_ring.entries["analyst"].blob != old_ring.entries["analyst"].blob
    assert new_ring.entries["ml-engineer"] == old_ring.entries["ml-engineer"]  # other roles untouched
    assert not old_file.exists() and result.retired == ["local:analyst:v1"]
    assert_frame_equal(_read(env, "bob"), env.frame())

    # The old wrapped key is gone: putting the old keyring back no longer opens (old KEK destroyed).
    _ring_path(env, ds).write_bytes(old_ring.to_bytes())
    with pytest.raises(CryptoError, match="older than the catalog"):  # the binding refuses it first
        _read(env, "bob")
    _write_ring_as_insider(env, ds, old_ring.to_bytes())
    with pytest.raises(CryptoError, match="missing"):  # and the old KEK is gone anyway
        _read(env, "bob")
    # Even with the old KEK file restored, the new keyring holds nothing it can open.
    _ring_path(env, ds).write_bytes(new_ring.to_bytes())
    old_file.write_text(old_kek_text)
    os.chmod(old_file, 0o600)
    ring = Keyring.from_bytes(_ring_path(env, ds).read_bytes())
    assert all(w.kek_id != "local:analyst:v1" for w in ring.entries.values())


def test_only_an_admin_may_rotate(env: Env) -> None:
    with pytest.raises(AccessDenied):
        rotate_role_key("analyst", user="carol", catalog=env.catalog, zones=env.zones, provider=env.provider)
    assert env.provider.kek_ids("analyst") == ["local:analyst:v1"]


def test_missing_key_file_is_a_clear_error(env: Env) -> None:
    env.publish()
    (env.home / "keys" / "analyst" / "v0001.kek").unlink()
    with pytest.raises(CryptoError, match=r"v0001.kek is missing"):
        _read(env, "bob")


def test_corrupted_key_file_is_a_clear_error(env: Env) -> None:
    env.publish()
    f = env.home / "keys" / "analyst" / "v0001.kek"
    lines = f.read_text().splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[0] ^= 1
    f.write_text(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n{lines[2]}\n")
    with pytest.raises(CryptoError, match="corrupted"):
        _read(env, "bob")
    f.write_text("garbage\n")
    with pytest.raises(CryptoError, match="corrupted"):
        _read(env, "bob")


def test_group_readable_key_file_is_refused(env: Env) -> None:
    env.publish()
    f = env.home / "keys" / "analyst" / "v0001.kek"
    os.chmod(f, 0o640)
    with pytest.raises(CryptoError, match="chmod 600"):
        _read(env, "bob")


def test_key_files_are_created_0600_in_0700_directories(env: Env) -> None:
    for role in env.policy.roles:
        d = env.home / "keys" / role
        assert d.stat().st_mode & 0o777 == 0o700
        for f in d.iterdir():
            assert f.stat().st_mode & 0o777 == 0o600


def test_edited_keyring_is_a_clear_error(env: Env) -> None:
    ds = env.publish()
    ring_file = _ring_path(env, ds)
    doc = json.loads(ring_file.read_text())
    blob = bytearray(base64.b64decode(doc["entries"][0]["wrapped"]))
    blob[-1] ^= 1
    for e in doc["entries"]:
        e["wrapped"] = base64.b64encode(bytes(blob)).decode()
    ring_file.write_text(json.dumps(doc))
    with pytest.raises(CryptoError, match="not the one the catalog records"):
        _read(env, "bob")
    _write_ring_as_insider(env, ds, json.dumps(doc).encode())
    with pytest.raises(CryptoError, match="cannot unwrap"):
        _read(env, "bob")
    ring_file.write_text("{not json")
    with pytest.raises(CryptoError, match="corrupted"):
        _read(env, "bob")


def test_keys_never_reach_audit_catalog_manifest_or_errors(env: Env, monkeypatch) -> None:
    seen: list[SecretKey] = []
    real_generate = SecretKey.generate.__func__  # type: ignore[attr-defined]

    def spy(cls, *, label: str = "key") -> SecretKey:  # type: ignore[no-untyped-def]
        k = real_generate(cls, label=label)
        seen.append(k)
        return k

    monkeypatch.setattr(SecretKey, "generate", classmethod(spy))
    ds = env.publish()
    rotate_role_key("analyst", user="alice", catalog=env.catalog, zones=env.zones, provider=env.provider)
    with pytest.raises(AccessDenied) as err:
        _read(env, "mallory")
    keks = [base64.b64decode(f.read_text().splitlines()[1]) for f in (env.home / "keys").rglob("*.kek")]
    secrets = [k.reveal() for k in seen] + keks
    assert len(secrets) >= 2
    haystacks = [
        (env.home / "audit" / "audit.jsonl").read_bytes(),
        *(p.read_bytes() for p in env.home.glob("catalog.db*")),
        env.zones.synthetic.resolve(ds.path).read_bytes()[:4096],
        _ring_path(env, ds).read_bytes(),
        str(err.value).encode(),
        repr(env.provider).encode(),
    ]
    for s in secrets:
        for form in (s, s.hex().encode(), base64.b64encode(s), base64.urlsafe_b64encode(s)):
            assert not any(form in h for h in haystacks)


def test_env_key_provider_reads_role_keks_and_supports_rotation(env: Env, monkeypatch) -> None:
    environ = {
        "SYNTHGEN_KEK_ANALYST": base64.b64encode(os.urandom(32)).decode(),
        "SYNTHGEN_KEK_DATA_STEWARD": base64.b64encode(os.urandom(32)).decode(),
    }
    provider = EnvKeyProvider(environ)
    assert provider.roles() == ["analyst", "data-steward"]
    env.publish(roles=["analyst", "data-steward"], provider=provider)
    got = read_dataset("adult-synthetic", user="bob", catalog=env.catalog, zones=env.zones, provider=provider)
    assert_frame_equal(got, env.frame())
    # Rotate: the new key goes in the variable, the old one in _PREVIOUS.
    environ["SYNTHGEN_KEK_ANALYST_PREVIOUS"] = environ["SYNTHGEN_KEK_ANALYST"]
    environ["SYNTHGEN_KEK_ANALYST_PREVIOUS_VERSION"] = "v1"
    environ["SYNTHGEN_KEK_ANALYST"] = base64.b64encode(os.urandom(32)).decode()
    environ["SYNTHGEN_KEK_ANALYST_VERSION"] = "v2"
    result = rotate_role_key("analyst", user="alice", catalog=env.catalog, zones=env.zones, provider=provider)
    assert result.new_kek_id == "env:analyst:v2" and len(result.rewrapped) == 1
    del environ["SYNTHGEN_KEK_ANALYST_PREVIOUS"]
    got = read_dataset("adult-synthetic", user="bob", catalog=env.catalog, zones=env.zones, provider=provider)
    assert got.height == 200
    environ["SYNTHGEN_KEK_ANALYST"] = "not base64!"
    with pytest.raises(CryptoError, match="not valid base64"):
        read_dataset("adult-synthetic", user="bob", catalog=env.catalog, zones=env.zones, provider=provider)


def test_every_key_operation_is_audited_and_the_chain_verifies(env: Env) -> None:
    env.publish()
    rotate_role_key("analyst", user="alice", catalog=env.catalog, zones=env.zones, provider=env.provider)
    _read(env, "bob")
    actions = [
        json.loads(line)["action"] for line in (env.home / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    for expected in (
        "key.create",
        "publish",
        "key.wrap",
        "publication",
        "admin",
        "key.rotate",
        "read",
        "key.unwrap",
    ):
        assert expected in actions
    assert verify_audit(env.catalog).ok
