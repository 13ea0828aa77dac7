from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from synthgen.access import ENVELOPE_FORMAT, publish_dataset, read_dataset, read_to_file
from synthgen.errors import AccessDenied, PolicyError, SpecError, ZoneError
from synthgen.policy import verify_audit

from .conftest import Env


def test_publish_encrypts_into_synthetic_zone_and_read_round_trips(env: Env) -> None:
    ds = env.publish()
    path = env.zones.synthetic.resolve(ds.path)
    assert ds.zone == "synthetic" and ds.format == ENVELOPE_FORMAT and ds.dp is True
    assert env.zones.synthetic.contains(path) and not env.zones.real.contains(path)
    raw = path.read_bytes()
    assert b"nurse" not in raw and b"welder" not in raw  # values are not in the clear
    assert sorted(ds.extra["roles"]) == ["analyst", "data-steward", "ml-engineer"]
    assert ds.tags == {"project": "demo"}
    got = read_dataset("adult-synthetic", user="bob", catalog=env.catalog, zones=env.zones)
    assert_frame_equal(got, env.frame())


def test_publish_removes_plaintext_staging_file_only_after_success(env: Env) -> None:
    staged = env.stage("x.parquet")
    env.publish(plaintext_parquet=staged)
    assert not staged.exists()
    staged2 = env.stage("y.parquet")
    with pytest.raises(AccessDenied):
        env.publish(plaintext_parquet=staged2, user="bob")
    assert staged2.exists()


def test_publish_refuses_non_dp_output_as_shareable_without_policy(env: Env) -> None:
    staged = env.stage("nondp.parquet")
    with pytest.raises(AccessDenied, match="publish"):
        env.publish(plaintext_parquet=staged, dp=False, classification="shareable")
    assert staged.exists()
    assert env.catalog.list_datasets(zone="synthetic") == []


def test_non_dp_output_published_restricted_is_readable_only_by_steward(env: Env) -> None:
    ds = env.publish(name="nondp", dp=False, classification="restricted")
    assert ds.extra["roles"] == ["data-steward"]  # analyst / ml-engineer refused by the policy
    assert read_dataset("nondp", user="alice", catalog=env.catalog, zones=env.zones).height == 200
    with pytest.raises(AccessDenied):
        read_dataset("nondp", user="bob", catalog=env.catalog, zones=env.zones)


def test_publish_wraps_only_for_roles_the_policy_lets_read(env: Env) -> None:
    ds = env.publish(name="internal-set", classification="internal")
    assert sorted(ds.extra["roles"]) == ["data-steward", "ml-engineer"]  # analysts read shareable only


def test_publish_refuses_when_no_requested_role_may_read(env: Env) -> None:
    with pytest.raises(PolicyError, match="unreadable"):
        env.publish(name="orphan", classification="internal", roles=["analyst"])


def test_denied_read_raises_access_denied_with_exit_code_3_and_is_audited(env: Env) -> None:
    env.publish(name="internal-set", classification="internal")
    with pytest.raises(AccessDenied) as err:
        read_dataset("internal-set", user="bob", catalog=env.catalog, zones=env.zones)
    assert err.value.exit_code == 3
    assert "\n" not in str(err.value) and "bob" in str(err.value)
    lines = (env.home / "audit" / "audit.jsonl").read_text().splitlines()
    assert '"decision":"deny"' in lines[-1] and '"actor":"bob"' in lines[-1]
    assert verify_audit(env.catalog).ok


def test_unknown_user_is_denied(env: Env) -> None:
    env.publish()
    with pytest.raises(AccessDenied, match="unknown-user"):
        read_dataset("adult-synthetic", user="mallory", catalog=env.catalog, zones=env.zones)


def test_read_to_file_writes_parquet_and_csv_outside_the_zones(env: Env, tmp_path) -> None:
    env.publish()
    pq_out = read_to_file(
        "adult-synthetic", user="carol", out=tmp_path / "o.parquet", catalog=env.catalog, zones=env.zones
    )
    csv_out = read_to_file(
        "adult-synthetic",
        user="carol",
        out=tmp_path / "o.csv",
        format="csv",
        catalog=env.catalog,
        zones=env.zones,
    )
    assert_frame_equal(pl.read_parquet(pq_out), env.frame())
    assert pl.read_csv(csv_out).height == 200
    assert not list(tmp_path.glob(".tmp-*"))
    with pytest.raises(SpecError, match="inside the synthetic zone"):
        read_to_file(
            "adult-synthetic",
            user="carol",
            out=env.zones.synthetic.root / "leak.parquet",
            catalog=env.catalog,
            zones=env.zones,
        )


def test_synthetic_dataset_cannot_be_written_into_the_real_zone(env: Env, monkeypatch) -> None:
    # A name that tries to climb out of the synthetic zone into the real one is refused.
    with pytest.raises((SpecError, ZoneError)):
        env.publish(name="../../real/evil", plaintext_parquet=env.stage("e.parquet"))
    # And zones configured to overlap are refused before anything is written.
    from synthgen.zones import Zones

    with pytest.raises(ZoneError):
        Zones.from_roots(env.zones.real.root, env.zones.real.root / "synthetic")
    # A symlink from the synthetic zone into the real zone cannot be used as a target.
    link = env.zones.synthetic.root / "adult-synthetic"
    link.symlink_to(env.zones.real.root, target_is_directory=True)
    staged = env.stage("z.parquet")
    with pytest.raises(ZoneError):
        env.publish(plaintext_parquet=staged)
    assert not any(env.zones.real.root.rglob("*.sgenc"))
    assert staged.exists()


def test_manifest_disagreeing_with_the_call_is_refused(env: Env) -> None:
    from synthgen.errors import PrivacyError

    with pytest.raises(PrivacyError, match="dp"):
        env.publish(manifest={"dp": False})


def test_publish_needs_a_kek_for_every_reader_role(env: Env) -> None:
    import shutil

    from synthgen.errors import CryptoError

    shutil.rmtree(env.home / "keys" / "analyst")
    staged = env.stage("k.parquet")
    with pytest.raises(CryptoError, match="keys init"):
        env.publish(plaintext_parquet=staged)
    assert staged.exists() and not any(env.zones.synthetic.root.rglob("*.sgenc"))


def test_publish_dataset_signature_is_keyword_only(env: Env) -> None:
    with pytest.raises(TypeError):
        publish_dataset(env.stage())  # type: ignore[misc]
