"""An unreadable text model through the installed ``synthgen run``: with ``model.text.fallback``
``drop`` the published dataset has no notes column, with ``empty`` every note is null; the run
exits 0, warns in one line, and the manifest and the report say why. (``model``, notes
published anyway, runs in-process in test_text_pipeline.py; a readable model passing the gate
in tests/text/test_gate.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from synthgen.demo import write_demo_csv

from ._home import DEMO_SPEC

SYNTHGEN = str(Path(sys.executable).with_name("synthgen"))
REPO = Path(__file__).resolve().parents[2]
SETS = [
    "source.id=textgate",
    # Most of epsilon on the text side, so the gate's noise (its 10% of it) is small against
    # ~200 held-out notes: a barely trained model cannot pass by chance (the bar is 3.5 per byte,
    # this model scores about 16, the clip).
    "privacy.epsilon=6",
    "privacy.text_share=0.9",
    "model.text.d_model=16",
    "model.text.max_length=64",
    "model.text.epochs=1",
    "model.text.batch_size=64",
    "model.text.learning_rate=0.0001",  # barely trained: unreadable by construction
    "output.rows=200",
    "evaluate.plots=false",
]
LINE = "notes: text model below the readability bar (DP perplexity "


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("textgate")
    write_demo_csv(home / "demo" / "patients.csv", 1000, 3)
    e = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHGEN_")}
    e |= {
        "SYNTHGEN_HOME": str(home),
        "SYNTHGEN_POLICY_DIR": str(REPO / "policies"),
        "SYNTHGEN_PIPELINE_SECRET": "textgate-test-secret-0123456789",
        "SYNTHGEN_CATALOG_URL": f"sqlite:///{home / 'catalog.db'}",
        "SYNTHGEN_USER": "synthgen-pipeline",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COLUMNS": "200",
    }
    assert _sg(e, "keys", "init", "--user", "alice").returncode == 0
    # Two runs at epsilon 6 on one source: the admin raises its cap first.
    assert _sg(e, "budget", "set-cap", "id:textgate", "12", "--user", "alice").returncode == 0
    yield e


def _sg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNTHGEN, *args], env=env, capture_output=True, text=True, timeout=900, cwd=env["SYNTHGEN_HOME"]
    )


def _run(env: dict[str, str], fallback: str, *more: str) -> subprocess.CompletedProcess[str]:
    args = ["run", str(DEMO_SPEC)]
    for s in [*SETS, f"model.text.fallback={fallback}", *more]:
        args += ["--set", s]
    return _sg(env, *args)


def _published(env: dict[str, str], tmp_path: Path) -> tuple[pl.DataFrame, dict]:
    name = "demo-patients-synthetic"
    out = tmp_path / "read.parquet"
    r = _sg(env, "read", name, "--user", "bob", "--out", str(out))
    assert r.returncode == 0, r.stderr
    shown = _sg(env, "inspect", name, "--json")
    assert shown.returncode == 0, shown.stderr
    return pl.read_parquet(out), json.loads(shown.stdout)["manifest"]


def test_drop_publishes_the_dataset_without_the_notes_and_says_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    r = _run(env, "drop")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if LINE in ln]
    assert len(lines) == 1, r.stdout
    assert lines[0].endswith("> 3.5); column left out (model.text.fallback: drop)"), lines[0]
    # The report's verdict: the text failed, but the withheld notes do not make the tables a failure.
    verdict = next(ln for ln in r.stdout.splitlines() if ln.startswith("verdict:"))
    assert "notes were withheld: notes (left out of the dataset)" in verdict, verdict
    assert any(
        "Synthetic text: text column 'notes': below the readability bar" in ln for ln in r.stdout.splitlines()
    )
    frame, manifest = _published(env, tmp_path)
    assert "notes" not in frame.columns and frame.height == 200
    assert {"diagnosis_category", "total_charges", "readmitted_30d"} <= set(frame.columns)  # the rest as ever
    gate = manifest["text"]["notes"]["quality_gate"]
    assert gate["passed"] is False and gate["output"] == "dropped" and gate["fallback"] == "drop"
    assert gate["dp_perplexity_per_byte"] > 3.5 and "notes" not in manifest["schema"]


def test_empty_publishes_the_notes_column_all_null(env: dict[str, str], tmp_path: Path) -> None:
    r = _run(env, "empty", "evaluate.enabled=false")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if LINE in ln]
    assert len(lines) == 1 and lines[0].endswith("column kept, every value null (model.text.fallback: empty)")
    frame, manifest = _published(env, tmp_path)
    assert frame.height == 200 and frame["notes"].null_count() == 200
    assert manifest["text"]["notes"]["quality_gate"]["output"] == "nulls"
    budget = json.loads(_sg(env, "budget", "show", "id:textgate", "--json").stdout)
    gates = [e for e in budget["entries"] if e["mechanism"] == "dp_text_gate"]
    assert len(gates) == 2 and all(e["epsilon"] == pytest.approx(6 * 0.9 * 0.10) for e in gates)
    assert budget["spent_epsilon"] <= 12.0 + 1e-9
