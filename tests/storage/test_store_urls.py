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


AZURE_SPELLINGS = [
    "abfs://zones@acct.dfs.core.windows.net/real",
    "abfss://zones@acct.dfs.core.windows.net/real/",
    "az://zones@acct.dfs.core.windows.net/real",
    "abfs://Zones@ACCT.blob.core.windows.net/real",
]


@pytest.mark.parametrize("raw", AZURE_SPELLINGS)
def test_azure_spellings_of_one_location_normalise_to_account_container_and_prefix(raw: str) -> None:
    assert parse_store_url(raw) == StoreURL("abfs", "zones", ("real",), "acct")
    assert parse_store_url(str(parse_store_url(raw))) == parse_store_url(raw)  # str() keeps the account
    assert parse_store_url(raw).path == "zones/real"  # adlfs paths are container/key


@pytest.mark.parametrize("real", [*AZURE_SPELLINGS, "az://zones/real", "abfs://zones/real"])
@pytest.mark.parametrize(
    "synthetic",
    [
        "az://zones/real/synthetic",  # no account: it may be acct's
        "abfss://zones@acct.dfs.core.windows.net/real",
        "abfs://zones@acct.blob.core.windows.net/real/x",
        "az://zones",
    ],
)
def test_mixing_azure_spellings_cannot_bypass_the_overlap_check(real: str, synthetic: str) -> None:
    with pytest.raises(ZoneConfigError, match="overlap"):
        check_separate(real, synthetic)
    with pytest.raises(ZoneConfigError, match="overlap"):
        check_separate(synthetic, real)


def test_azure_roots_on_other_accounts_containers_or_prefixes_are_separate() -> None:
    check_separate(
        "abfs://zones@acct.dfs.core.windows.net/real", "abfs://zones@other.dfs.core.windows.net/real"
    )
    check_separate("az://zones/real", "az://other/real")
    check_separate("abfs://zones@acct.dfs.core.windows.net/real", "az://zones/realx")


@pytest.mark.parametrize(
    "raw",
    [
        "abfs://zones@acct.example.com/real",
        "abfs://zones@acct.dfs.core.windows.net.evil.com/real",
        "abfs://zones@a@acct.dfs.core.windows.net/real",
        "abfs://zones@/real",
    ],
)
def test_an_azure_host_that_is_not_a_storage_account_is_refused(raw: str) -> None:
    with pytest.raises(ZoneConfigError, match="not an Azure storage host"):
        parse_store_url(raw)


def test_an_azure_root_gives_adlfs_its_account_and_refuses_another_accounts_connection_string(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthgen.storage.credentials import storage_options

    url = parse_store_url("abfss://zones@acct.dfs.core.windows.net/real")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    assert storage_options(url) == {"account_name": "acct"}
    assert storage_options(parse_store_url("az://zones/real")) == {}  # the provider chain's account
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=acct;AccountKey=k")
    assert storage_options(url) == {"account_name": "acct"}
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", "DefaultEndpointsProtocol=https;AccountName=other;AccountKey=k"
    )
    with pytest.raises(ZoneConfigError, match="account 'other'"):
        storage_options(url)
