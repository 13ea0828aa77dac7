"""The model's saved schema (shareable: config.json in the synthetic zone) is the same for
neighbouring datasets: one all-null row added must not flip a column's ``nullable`` flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import run_synthgen

SPEC = """name: {name}
source: {{kind: csv, path: {csv}}}
columns:
  age: {{type: numeric}}
  ward: {{type: categorical}}
  flag: {{type: boolean}}
privacy: {{epsilon: 2, schema: declared}}
model: {{kind: dp_mst}}
output: {{rows: 50}}
evaluate: {{enabled: false}}
anonymize: {{enabled: false}}
"""


def test_one_all_null_row_does_not_change_the_shareable_model_schema(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    d0 = pl.DataFrame(
        {"age": rng.integers(20, 80, n), "ward": rng.choice(["A", "B", "C"], n), "flag": rng.random(n) < 0.5}
    )
    d1 = pl.concat([d0, pl.DataFrame({"age": [None], "ward": [None], "flag": [None]}, schema=d0.schema)])
    (c0, _), (c1, _) = _run_pair(tmp_path, {"nb-d0": d0, "nb-d1": d1}, SPEC)
    assert c0["schema"] == c1["schema"]
    assert all(c["nullable"] for c in c0["schema"]["columns"])


DATE_SPEC = """name: {name}
source: {{kind: csv, path: {csv}}}
columns:
  age: {{type: numeric}}
  seen: {{type: datetime{date}}}
privacy: {{epsilon: 2, schema: declared}}
model: {{kind: {kind}}}
output: {{rows: 50}}
evaluate: {{enabled: false}}
anonymize: {{enabled: false}}
"""


def _run_pair(tmp_path: Path, frames: dict[str, pl.DataFrame], spec: str) -> list[tuple[dict, pl.Schema]]:
    env = {
        "SYNTHGEN_HOME": str(tmp_path / "home"),
        "SYNTHGEN_USER": "synthgen-pipeline",
        "SYNTHGEN_PIPELINE_SECRET": "x" * 32,
    }
    assert run_synthgen(["keys", "init"], env={**env, "SYNTHGEN_USER": "alice"}).code == 0
    out = []
    for name, frame in frames.items():
        csv = tmp_path / f"{name}.csv"
        frame.write_csv(csv)
        path = tmp_path / f"{name}.yaml"
        path.write_text(spec.format(name=name, csv=csv), encoding="utf-8")
        r = run_synthgen(["run", str(path)], env=env, cwd=tmp_path)
        assert r.code == 0, r.err
        models = tmp_path / "home" / "zones" / "synthetic" / "models" / name
        (config,) = models.glob("*/tabular/config.json")
        read = run_synthgen(
            ["read", f"{name}-synthetic", "--out", str(tmp_path / f"{name}.parquet")],
            env={**env, "SYNTHGEN_USER": "alice"},
            cwd=tmp_path,
        )
        assert read.code == 0, read.err
        out.append((json.loads(config.read_text()), pl.read_parquet(tmp_path / f"{name}.parquet").schema))
    return out


@pytest.mark.parametrize("kind", ["dp_mst", "dp_tvae"])
@pytest.mark.parametrize("date", ["", ", date: true"])
def test_one_row_with_a_time_of_day_does_not_change_the_published_date_type(
    tmp_path: Path, kind: str, date: str
) -> None:
    # A CSV column of calendar dates reads as Date until one row holds a time of day, then as
    # Datetime: under privacy.schema declared that one row must not decide the output's type.
    rng = np.random.default_rng(1)
    n = 300
    days = [f"2020-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n))]
    d0 = pl.DataFrame({"age": rng.integers(20, 80, n), "seen": days})
    d1 = pl.concat([d0, pl.DataFrame({"age": [40], "seen": ["2020-06-01 10:30:00"]})])
    tag = f"dt-{kind.replace('_', '')}-{bool(date):d}"
    frames = {f"{tag}-0": d0, f"{tag}-1": d1}
    spec = DATE_SPEC.replace("{date}", date).replace("{kind}", kind)
    if kind == "dp_tvae":
        spec = spec.replace("model: {kind: dp_tvae}", "model: {kind: dp_tvae, epochs: 1}")
    (c0, s0), (c1, s1) = _run_pair(tmp_path, frames, spec)
    assert c0["schema"] == c1["schema"]
    assert s0 == s1
    assert s0["seen"] == (pl.Date if date else pl.Datetime("us"))
