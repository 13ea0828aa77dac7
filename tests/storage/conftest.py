"""A real S3-compatible HTTP server on loopback (moto's standalone server), started and
stopped by the fixture in its own process group, reached through s3fs with an endpoint URL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _moto_server(log: Path, **env: str) -> Iterator[str]:
    """moto's standalone S3 server on a free loopback port, in its own process group."""
    port = _free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with _moto_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server that checks signatures against its own IAM users after the first request
    (which creates the test's bucket): any key the test holds is unknown to it."""
    log = tmp_path_factory.mktemp("moto-auth") / "server.log"
    with _moto_server(log, INITIAL_NO_AUTH_ACTION_COUNT="1") as url:
        yield url


@pytest.fixture
def aws_env(s3_endpoint: str, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credentials and endpoint through the standard chain's environment variables only
    (no ~/.aws of the machine, no instance metadata)."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
    }
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "SYNTHGEN_STORAGE_CONN_ID"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def bucket(aws_env: dict[str, str]) -> str:
    """A fresh, empty bucket on the loopback server."""
    import boto3

    name = f"sg-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


def list_keys(bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def open_multipart_uploads(bucket: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]
