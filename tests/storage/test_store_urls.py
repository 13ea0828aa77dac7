from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.errors import ZoneConfigError
from synthgen.storage import StoreURL, check_separate, parse_store_url


def test_roots_are_normalised_to_scheme_bucket_and_prefix() -> None:
    assert parse_store_url("S3A://Bucket/a/b/") == StoreURL("s3", "bucket", ("a", "b"))
    assert parse_store_url("gcs://b") == StoreURL("gs", "b", ())
    assert str(parse_store_url("s3://b/x/")) == "s3://b/x"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("s3://b/a/../synthetic", "'..'"),
        ("s3://b/a/%2e%2e/x", "'..'"),
        ("s3://b/a/./x", "'..'"),
        ("s3://b/a//x", "empty path segment"),
        ("s3://b/a\\x", "backslash"),
        ("s3://AKIAX:secret@b/a", "credentials"),
        ("s3://b/a?access_key=x", "options or tokens"),
        ("ftp://b/a", "unsupported scheme"),
        ("s3:///a", "no bucket"),
    ],
)
def test_ambiguous_or_credential_bearing_roots_are_refused(raw: str, why: str) -> None:
    with pytest.raises(ZoneConfigError, match=why):
        parse_store_url(raw)


@pytest.mark.parametrize(
    ("real", "synthetic"),
    [
        ("s3://b/zones", "s3://b/zones"),
        ("s3://b/zones", "s3://b/zones/synthetic"),
        ("s3a://B/zones/real/", "s3://b/zones"),
        ("s3://b", "s3://b/synthetic"),
    ],
)
def test_overlapping_roots_are_refused_whatever_their_spelling(real: str, synthetic: str) -> None:
    with pytest.raises(ZoneConfigError, match="overlap"):
        check_separate(real, synthetic)


def test_sibling_prefixes_and_other_buckets_are_separate() -> None:
    check_separate("s3://b/real", "s3://b/realx")  # segment-wise, not string prefixes
    check_separate("s3://real-bucket/z", "s3://synthetic-bucket/z")
    check_separate("gs://b/z", "s3://b/z")
    check_separate(Path("/data/real"), "s3://b/z")


def test_a_key_cannot_climb_out_of_its_root() -> None:
    root = parse_store_url("s3://b/real")
    with pytest.raises(ZoneConfigError, match=r"'\.\.'"):
        root.join("snapshots/../../synthetic/x")
    assert root.join("snapshots/x.parquet").path == "b/real/snapshots/x.parquet"


def test_an_airflow_connection_uri_gives_keys_endpoint_and_region(monkeypatch: pytest.MonkeyPatch) -> None:
    from synthgen.storage.credentials import storage_options

    monkeypatch.setenv("SYNTHGEN_STORAGE_CONN_ID", "minio")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MINIO",
        "aws://AK%2Fid:s%40cret@/?endpoint_url=http%3A%2F%2Fminio%3A9000&region_name=eu-1",
    )
    opts = storage_options(parse_store_url("s3://b/z"))
    assert (opts["key"], opts["secret"]) == ("AK/id", "s@cret")
    assert opts["client_kwargs"] == {"endpoint_url": "http://minio:9000", "region_name": "eu-1"}


def test_a_named_connection_that_is_not_exported_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthgen.storage.credentials import storage_options

    monkeypatch.setenv("SYNTHGEN_STORAGE_CONN_ID", "absent")
    monkeypatch.delenv("AIRFLOW_CONN_ABSENT", raising=False)
    with pytest.raises(ZoneConfigError, match="AIRFLOW_CONN_ABSENT is not set"):
        storage_options(parse_store_url("s3://b/z"))


def test_columns_named_like_credentials_are_data_not_credentials() -> None:
    from synthgen.spec import spec_from_dict

    spec = spec_from_dict(
        {
            "name": "p",
            "source": {"kind": "csv", "path": "d.csv"},
            "columns": {"password": {"operator": "drop"}, "token": {"type": "categorical"}},
            "anonymize": {"operators": {"secret": "drop"}},
            "output": {"access": {"tags": {"credentials": "none"}}},
        }
    )
    assert set(spec.columns) == {"password", "token"}


def test_a_credential_key_in_any_section_is_refused_by_name() -> None:
    from synthgen.errors import SpecError
    from synthgen.spec import spec_from_dict

    with pytest.raises(SpecError, match=r"model\.storage_options: credentials never go in the spec"):
        spec_from_dict(
            {"name": "p", "source": {"kind": "csv", "path": "d.csv"}, "model": {"storage_options": {}}}
        )
    with pytest.raises(SpecError, match="description: holds what looks like a cloud access key id"):
        spec_from_dict(
            {"name": "p", "description": "AKIAIOSFODNN7EXAMPLE", "source": {"kind": "csv", "path": "d"}}
        )
