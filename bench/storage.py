"""Object-store zones vs local zones, same run: peak RSS and wall time of streamed writes and reads.

Each phase runs in a fresh child process that reports its own wall time and peak RSS
(VmHWM), against a zone on moto's S3 server (started here on loopback, through s3fs) and,
as the baseline, against a local zone on disk:

* ``open``: import and open the zones only (the floor every other phase stands on);
* ``encrypt`` / ``decrypt``: an envelope streamed into the synthetic zone
  (:func:`synthgen.crypto.encrypt_stream` onto ``atomic_write``) and verified back from ``open``;
* ``parquet_write`` / ``parquet_read``: a Parquet file streamed in 64k-row batches through
  :mod:`synthgen.storage.parquet` (the source is read row group by row group, 32 MB each:
  the write phase holds one source row group besides what it measures).

* ``stages``: the whole pipeline (ingest, anonymize, train, generate, evaluate, publish, then
  ``read_dataset``) on the demo table with both zones local, then both on the store: seconds
  per stage and the run's peak RSS (one process per backend, fresh home each).

Two file sizes: streaming means the peak RSS of a phase does not grow with the file. Goal:
object-store phases within ~2 upload parts (16 MiB) plus one row group of the local ones.
Wall times include moto's own work on the same cores (it is a Python server): they are not
what a real object store would give and are reported only for completeness.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.crypto import _own_peak_rss_mb, make_parquet
from bench.harness import benchmark

PHASES = ("open", "encrypt", "decrypt", "parquet_write", "parquet_read")


def _phase(phase: str, real: str, synthetic: str, src: Path) -> None:
    """Child-process body: run one phase and print {"seconds", "peak_rss_mb"} as JSON."""
    import pyarrow.parquet as pq

    from synthgen.crypto import SecretKey, encrypt_stream, verify_stream
    from synthgen.storage import parquet as sparquet
    from synthgen.zones import open_zones

    key = SecretKey(bytes.fromhex(os.environ["BENCH_DATA_KEY"]), label="bench")
    roots = [r if "://" in r else Path(r) for r in (real, synthetic)]
    t0 = time.perf_counter()
    zones = open_zones(*roots)
    zone = zones.synthetic
    if phase == "encrypt":
        with open(src, "rb") as fin, zone.atomic_write("bench/data.sgenc") as fout:
            encrypt_stream(fin, fout, data_key=key, manifest={"dataset_id": "bench"})
    elif phase == "decrypt":
        with zone.open("bench/data.sgenc") as fin:
            verify_stream(fin, data_key=key)
    elif phase == "parquet_write":
        source = pq.ParquetFile(src)
        batches = sparquet.row_group_batches(source, batch_rows=65_536)
        sparquet.write_batches(zone, "bench/data.parquet", source.schema_arrow, batches)
    elif phase == "parquet_read":
        for _ in sparquet.iter_batches(zone, "bench/data.parquet", batch_rows=65_536):
            pass
    elif phase == "stages":
        return _stages(real, synthetic)
    elif phase != "open":
        raise SystemExit(f"unknown phase {phase}")
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": _own_peak_rss_mb()}))


#: The demo pipeline, small and without the text model: the stages' I/O is what differs.
STAGE_SETTINGS = [
    "model.text.enabled=false",
    "output.shard_rows=1000",
    "ingest.part_rows=1000",
    "evaluate.plots=false",
]


class _Clock:
    """A ``Context.stages`` observer that times each stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t0: dict[str, float] = {}

    def start(self, stage: str) -> None:
        self._t0[stage] = time.perf_counter()

    def end(self, stage: str, result: Any = None, *, failed: bool = False) -> None:
        self.seconds[stage] = round(time.perf_counter() - self._t0[stage], 2)


def _stages(real: str, synthetic: str) -> None:
    """Child-process body of the ``stages`` phase: a whole run, then a verified read."""
    from synthgen import stages
    from synthgen.access import init_keys, read_dataset
    from synthgen.demo import write_demo_csv
    from synthgen.spec import load_spec

    rows = int(os.environ["BENCH_STAGE_ROWS"])
    home = Path(os.environ["SYNTHGEN_HOME"])
    os.environ["SYNTHGEN_REAL_ZONE"], os.environ["SYNTHGEN_SYNTHETIC_ZONE"] = real, synthetic
    write_demo_csv(home / "demo" / "patients.csv", rows, 0)
    init_keys(user="alice")
    spec = load_spec(
        Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml",
        [*STAGE_SETTINGS, f"output.rows={rows}"],
    )
    t0 = time.perf_counter()
    ctx = stages.Context.from_env()
    ctx.user = "alice"
    clock = _Clock()
    ctx.stages = clock
    stages.run_pipeline(spec, ctx, run_id="bench-1")
    t_read = time.perf_counter()
    frame = read_dataset(spec.synthetic_name, user="alice", catalog=ctx.catalog, zones=ctx.zones)
    assert frame.height == rows, frame.height
    clock.seconds["read"] = round(time.perf_counter() - t_read, 2)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - t0,
                "peak_rss_mb": _own_peak_rss_mb(),
                "by_stage_s": clock.seconds,
            }
        )
    )


def _child(phase: str, real: str, synthetic: str, src: Path, env: dict[str, str]) -> dict[str, float]:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "bench.storage", "--phase", phase, real, synthetic, str(src)],
        env=env,
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _moto(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("moto server did not start")


def _stage_figures(tmp: Path, endpoint: str, env: dict[str, str], *, rows: int) -> dict[str, Any]:
    """The ``stages`` phase on local zones, then on two buckets of the store (same run)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    buckets = [f"bench-{name}-{uuid.uuid4().hex[:8]}" for name in ("real", "syn")]
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    backends = {
        "local": (str(tmp / "stages" / "real"), str(tmp / "stages" / "synthetic")),
        "s3": (f"s3://{buckets[0]}/real", f"s3://{buckets[1]}/synthetic"),
    }
    out: dict[str, Any] = {"rows": rows, "settings": STAGE_SETTINGS}
    for backend, (real, synthetic) in backends.items():
        child_env = {
            **env,
            "SYNTHGEN_HOME": str(tmp / f"stages-home-{backend}"),
            "BENCH_STAGE_ROWS": str(rows),
        }
        r = _child("stages", real, synthetic, tmp, child_env)
        out[backend] = {
            "total_s": round(r["seconds"], 2),
            "peak_rss_mb": round(r["peak_rss_mb"], 1),
            "by_stage_s": r["by_stage_s"],
        }
    out["s3_minus_local_s"] = {
        stage: round(out["s3"]["by_stage_s"][stage] - out["local"]["by_stage_s"][stage], 2)
        for stage in out["local"]["by_stage_s"]
    }
    out["s3_minus_local_rss_mb"] = round(out["s3"]["peak_rss_mb"] - out["local"]["peak_rss_mb"], 1)
    return out


@benchmark("storage")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import boto3

    sizes = [64 << 20] if args.quick else [64 << 20, 256 << 20]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BENCH_DATA_KEY": os.urandom(32).hex(),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    server = _moto(port)
    out: dict[str, Any] = {"sizes_mb": [n >> 20 for n in sizes], "by_size": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="synthgen-bench-storage-") as tmp_name:
            tmp = Path(tmp_name)
            env["SYNTHGEN_HOME"] = str(tmp / "home")
            for size in sizes:
                src = tmp / f"src-{size >> 20}.parquet"
                make_parquet(src, size)
                bucket = f"bench-{uuid.uuid4().hex[:8]}"
                boto3.client(
                    "s3",
                    endpoint_url=endpoint,
                    aws_access_key_id="bench",
                    aws_secret_access_key="bench",
                    region_name="us-east-1",
                ).create_bucket(Bucket=bucket)
                backends = {
                    "local": (str(tmp / f"l{size}" / "real"), str(tmp / f"l{size}" / "synthetic")),
                    "s3": (f"s3://{bucket}/real", f"s3://{bucket}/synthetic"),
                }
                figures: dict[str, dict[str, Any]] = {}
                for phase in PHASES:  # local then s3 for each phase: drift hits both alike
                    for backend, (real, synthetic) in backends.items():
                        r = _child(phase, real, synthetic, src, env)
                        figures.setdefault(phase, {})[backend] = {
                            "seconds": round(r["seconds"], 2),
                            "peak_rss_mb": round(r["peak_rss_mb"], 1),
                        }
                    f = figures[phase]
                    f["s3_minus_local_rss_mb"] = round(f["s3"]["peak_rss_mb"] - f["local"]["peak_rss_mb"], 1)
                out["by_size"][f"{size >> 20}MiB"] = {
                    "file_mb": round(src.stat().st_size / 2**20, 1),
                    **figures,
                }
            out["stages"] = _stage_figures(tmp, endpoint, env, rows=500 if args.quick else 2000)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--phase", required=True)
    p.add_argument("real")
    p.add_argument("synthetic")
    p.add_argument("src", type=Path)
    a = p.parse_args()
    _phase(a.phase, a.real, a.synthetic, a.src)
