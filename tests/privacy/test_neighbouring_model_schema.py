"""The model's saved schema (shareable: config.json in the synthetic zone) is the same for
neighbouring datasets: one all-null row added must not flip a column's ``nullable`` flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

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
    env = {
        "SYNTHGEN_HOME": str(tmp_path / "home"),
        "SYNTHGEN_USER": "synthgen-pipeline",
        "SYNTHGEN_PIPELINE_SECRET": "x" * 32,
    }
    assert run_synthgen(["keys", "init"], env={**env, "SYNTHGEN_USER": "alice"}).code == 0
    schemas = []
    for name, frame in (("nb-d0", d0), ("nb-d1", d1)):
        csv = tmp_path / f"{name}.csv"
        frame.write_csv(csv)
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(SPEC.format(name=name, csv=csv), encoding="utf-8")
        r = run_synthgen(["run", str(spec)], env=env, cwd=tmp_path)
        assert r.code == 0, r.err
        models = tmp_path / "home" / "zones" / "synthetic" / "models" / name
        (config,) = models.glob("*/tabular/config.json")
        schemas.append(json.loads(config.read_text())["schema"])
    assert schemas[0] == schemas[1]
    assert all(c["nullable"] for c in schemas[0]["columns"])
