"""Object-store zone roots through the installed ``synthgen`` command: every misconfiguration
is one line and an exit code, before the source is read and before anything is written."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import list_keys


def _spec(tmp_path: Path, **source: str) -> Path:
    # The source file does not exist: an error naming it would mean the source was read
    # before the zones were checked.
    extra = "".join(f"\n  {k}: {v}" for k, v in source.items())
    p = tmp_path / "visits.yaml"
    p.write_text(f"name: visits\nsource:\n  kind: csv\n  path: missing.csv{extra}\n", encoding="utf-8")
    return p


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "missing.csv" not in lines[0]
    return lines[0]


def _env(real: str, synthetic: str) -> dict[str, str]:
    return {"SYNTHGEN_REAL_ZONE": real, "SYNTHGEN_SYNTHETIC_ZONE": synthetic}


def test_two_zones_under_one_prefix_exit_2_and_write_nothing(
    bucket: str, tmp_path: Path, synthgen_cli: Callable[..., object]
) -> None:
    r = synthgen_cli(
        ["ingest", str(_spec(tmp_path))], env=_env(f"s3://{bucket}/z", f"s3a://{bucket.upper()}/z/syn/")
    )
    assert r.code == 2, r.err  # type: ignore[attr-defined]
    assert "zone roots overlap" in _one_line(r.err)  # type: ignore[attr-defined]
    assert list_keys(bucket) == []


def test_an_unreachable_endpoint_exits_1_with_one_line(
    bucket: str, tmp_path: Path, synthgen_cli: Callable[..., object]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once the socket closes
    r = synthgen_cli(
        ["ingest", str(_spec(tmp_path))],
        env={**_env(f"s3://{bucket}/real", f"s3://{bucket}/synthetic"), "AWS_ENDPOINT_URL": dead},
    )
    assert r.code == 1, r.err  # type: ignore[attr-defined]
    line = _one_line(r.err)  # type: ignore[attr-defined]
    assert "cannot be reached" in line and "AWS_ENDPOINT_URL" in line
    assert list_keys(bucket) == []


def test_a_missing_bucket_exits_2(bucket: str, tmp_path: Path, synthgen_cli: Callable[..., object]) -> None:
    r = synthgen_cli(
        ["ingest", str(_spec(tmp_path))], env=_env("s3://no-such-bucket/real", f"s3://{bucket}/s")
    )
    assert r.code == 2, r.err  # type: ignore[attr-defined]
    assert "bucket 'no-such-bucket' does not exist" in _one_line(r.err)  # type: ignore[attr-defined]
    assert list_keys(bucket) == []


def test_missing_credentials_exit_2(
    bucket: str, tmp_path: Path, synthgen_cli: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    r = synthgen_cli(["ingest", str(_spec(tmp_path))], env=_env(f"s3://{bucket}/real", f"s3://{bucket}/s"))
    assert r.code == 2, r.err  # type: ignore[attr-defined]
    assert "no credentials for s3://" in _one_line(r.err)  # type: ignore[attr-defined]
    assert list_keys(bucket) == []


def test_valid_object_zones_pass_their_checks_and_the_stage_goes_on_to_the_source(
    bucket: str, tmp_path: Path, synthgen_cli: Callable[..., object]
) -> None:
    r = synthgen_cli(
        ["ingest", str(_spec(tmp_path))], env=_env(f"s3://{bucket}/real", f"s3://{bucket}/synthetic")
    )
    assert r.code == 1, r.err  # type: ignore[attr-defined]  # the source's own exit code
    lines = [line for line in r.err.splitlines() if line.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and "missing.csv" in lines[0], r.err  # type: ignore[attr-defined]
    assert list_keys(bucket) == ["real/.synthgen-zone", "synthetic/.synthgen-zone"]


def test_a_spec_holding_a_storage_secret_is_refused_without_echoing_it(
    tmp_path: Path, synthgen_cli: Callable[..., object]
) -> None:
    spec = _spec(tmp_path, aws_secret_access_key="wJalrXUtnFEMI-do-not-print")
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2, r.err  # type: ignore[attr-defined]
    line = _one_line(r.err)  # type: ignore[attr-defined]
    assert "source.aws_secret_access_key: credentials never go in the spec" in line
    assert "wJalr" not in r.err + r.out  # type: ignore[attr-defined]
