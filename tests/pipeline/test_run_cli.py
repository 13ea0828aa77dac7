"""``synthgen run`` through the installed console script: the pre-flight of a non-DP run checks the
resource publish will check, ``--dry-run`` exits as the run's pre-flight would, concurrent runs
of one spec in one home either succeed or fail with one line, and a killed run's shards are swept."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

SYNTHGEN = str(Path(sys.executable).with_name("synthgen"))
REPO = Path(__file__).resolve().parents[2]
NAME = "run-cli"
SPEC = f"""
name: {NAME}
source: {{kind: csv, path: data.csv}}
columns:
  email: {{pii: EMAIL_ADDRESS, operator: drop}}
  age: {{type: numeric, bounds: [0, 100]}}
  group: {{type: categorical, categories: [a, b, c]}}
privacy: {{epsilon: 4}}
model: {{kind: dp_mst}}
output:
  rows: 200
  access: {{roles: [data-steward], classification: restricted}}
evaluate: {{enabled: false}}
"""
NON_DP = ["--set", "privacy.dp=false"]


def _env(home: Path, policy_dir: Path | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHGEN_")}
    return e | {
        "SYNTHGEN_HOME": str(home),
        "SYNTHGEN_CATALOG_URL": f"sqlite:///{home / 'catalog.db'}",
        "SYNTHGEN_POLICY_DIR": str(policy_dir or REPO / "policies"),
        "SYNTHGEN_PIPELINE_SECRET": "run-cli-test-secret-0123456789",
        "SYNTHGEN_USER": "synthgen-pipeline",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _home(tmp_path: Path, *, anonymize: bool = True) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    rng = np.random.default_rng(0)
    n = 600
    pl.DataFrame(
        {
            "email": [f"p{i}@example.org" for i in range(n)],
            "age": rng.integers(18, 90, n),
            "group": rng.choice(["a", "b", "c"], n),
        }
    ).write_csv(home / "data.csv")
    spec = SPEC if anonymize else SPEC + "anonymize: {enabled: false}\n"
    (home / "spec.yaml").write_text(spec)
    assert _sg(_env(home), "keys", "init", "--user", "alice").returncode == 0
    return home


def _sg(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SYNTHGEN, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["SYNTHGEN_HOME"]
    )


def _run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SYNTHGEN, "run", "spec.yaml", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=env["SYNTHGEN_HOME"],
    )


def _error_lines(stderr: str) -> list[str]:
    """stderr without the stage progress lines (``[synthgen] ingest: start`` ...)."""
    return [ln for ln in stderr.strip().splitlines() if ln and not ln.startswith("[synthgen]")]


def _one_line(stderr: str) -> bool:
    return len(_error_lines(stderr)) == 1 and "Traceback" not in stderr and "[SQL" not in stderr


def _zone_files(home: Path) -> list[Path]:
    return [p for p in (home / "zones").rglob("*") if p.is_file() and p.name != ".synthgen-zone"]


def _db(home: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(home / "catalog.db") as con:
        return list(con.execute(sql))


def _policy_without_non_dp_publish(tmp_path: Path) -> Path:
    """The shipped policy minus the rules that let anyone publish a ``dp: false`` output."""
    doc = yaml.safe_load((REPO / "policies" / "default.yaml").read_text())
    doc["rules"] = [r for r in doc["rules"] if (r.get("conditions") or {}).get("dp") is not False]
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "default.yaml").write_text(yaml.safe_dump(doc))
    return folder


# -- 1. a non-DP run: the pre-flight checks what publish checks ------------------------------


def test_non_dp_restricted_run_that_the_policy_allows_passes_preflight_and_publishes(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    r = _sg(_env(home), "run", "spec.yaml", *NON_DP)
    assert r.returncode == 0, r.stderr
    rows = _db(home, "SELECT zone, dp, classification FROM datasets WHERE kind = 'synthetic'")
    assert rows == [("synthetic", 0, "restricted")]


def test_the_run_summary_says_which_model_auto_chose_and_why(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    r = _sg(_env(home), "run", "spec.yaml", "--set", "model.kind=auto")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.strip("│ ").startswith("model "))
    assert "dp_mst" in row and "DP count" in r.stdout, r.stdout


def test_an_sdv_run_needs_the_pickle_setting_up_front_and_then_runs_to_publish(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    sdv = [*NON_DP, "--set", "model.kind=sdv_gaussian_copula"]
    # Without the setting, generate could not load the model train saved: refused before training.
    r = _sg(_env(home), "run", "spec.yaml", *sdv)
    assert r.returncode == 2 and "model.sdv_allow_pickle: true" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert _db(home, "SELECT COUNT(*) FROM datasets") in ([], [(0,)])
    r = _sg(_env(home), "run", "spec.yaml", *sdv, "--set", "model.sdv_allow_pickle=true")
    assert r.returncode == 0, r.stderr
    assert _db(home, "SELECT zone, dp FROM datasets WHERE kind = 'synthetic'") == [("synthetic", 0)]


def test_train_refuses_data_read_from_another_source_than_the_spec_names_now(tmp_path: Path) -> None:
    # Red-team: train took the pipeline's latest anonymized rows by name and charged the ledger of
    # whatever source the spec named then, so --set source.path=other.csv trained the real rows again
    # on a fresh budget. A copy of the same file (same rows) reused the snapshot the same way.
    home = _home(tmp_path, anonymize=False)
    env = _env(home)
    assert _sg(env, "run", "spec.yaml").returncode == 0
    spent = _db(home, "SELECT SUM(epsilon) FROM budget_ledger")[0][0]
    (home / "other.csv").write_text("email,age,group\nx@example.org,30,a\n")
    (home / "copy.csv").write_bytes((home / "data.csv").read_bytes())
    models = _db(home, "SELECT COUNT(*) FROM datasets WHERE kind = 'model'")
    for args in (
        ("train", "spec.yaml", "--set", "source.path=other.csv"),
        ("run", "spec.yaml", "--set", "source.path=copy.csv"),
    ):
        r = _sg(env, *args)
        assert r.returncode == 2, (args, r.stderr)
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, r.stderr
        assert "its epsilon is charged to the source its rows came from" in errors[0]
    assert _db(home, "SELECT SUM(epsilon) FROM budget_ledger")[0][0] == spent
    assert _db(home, "SELECT COUNT(*) FROM datasets WHERE kind = 'model'") == models


def test_a_source_id_keeps_its_ledger_when_the_file_moves(tmp_path: Path) -> None:
    # The ledger is the source.id's: the same rows read from a new place are charged to it.
    home = _home(tmp_path, anonymize=False)
    env = _env(home)
    pinned = ("--set", "source.id=clinic-visits")
    assert _sg(env, "run", "spec.yaml", *pinned).returncode == 0
    (home / "moved.csv").write_bytes((home / "data.csv").read_bytes())
    moved = (*pinned, "--set", "source.path=moved.csv")
    # The id is bound to the first file: a new place needs an admin to release the binding ...
    assert _sg(env, "train", "spec.yaml", *moved).returncode == 2
    assert _sg(env, "budget", "unbind", "id:clinic-visits", "--user", "alice").returncode == 0
    # ... and then the rows already anonymized are trained and charged to the same ledger.
    r = _sg(env, "train", "spec.yaml", *moved)
    assert r.returncode == 0, r.stderr
    assert _db(home, "SELECT DISTINCT source FROM budget_ledger") == [("id:clinic-visits",)]
    assert _db(home, "SELECT SUM(epsilon) FROM budget_ledger")[0][0] == pytest.approx(8.0)


def test_non_dp_run_without_a_dp_false_rule_is_denied_at_preflight_and_reads_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    env = _env(home, _policy_without_non_dp_publish(tmp_path))
    r = _sg(env, "run", "spec.yaml", *NON_DP)
    assert r.returncode == 3 and _one_line(r.stderr), r.stderr
    assert "pre-flight" in r.stderr and "may not publish synthetic:run-cli-synthetic" in r.stderr
    assert _zone_files(home) == []  # no snapshot: not a row was read
    assert _db(home, "SELECT COUNT(*) FROM datasets") == [(0,)]
    # The same spec at a classification no rule allows for non-DP outputs: denied the same way.
    r = _sg(_env(home), "run", "spec.yaml", *NON_DP, "--set", "output.access.classification=internal")
    assert r.returncode == 3 and _one_line(r.stderr) and "may not publish" in r.stderr, r.stderr
    assert _zone_files(home) == []


# -- 2. --dry-run reports what the run's pre-flight would, with its exit code ---------------


def test_dry_run_exits_with_the_preflights_code_and_reads_and_charges_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    env = _env(home)
    over = ("--set", "privacy.epsilon=11")  # over the default cap of 10
    real = _sg(env, "run", "spec.yaml", *over)
    assert real.returncode == 1 and "budget exhausted" in real.stderr, real.stderr
    for cmd in ("run", "train"):
        dry = _sg(env, cmd, "spec.yaml", *over, "--dry-run")
        assert dry.returncode == 1 and _one_line(dry.stderr), dry.stderr
        assert _error_lines(dry.stderr) == _error_lines(real.stderr)
        assert "this run does not fit" in dry.stdout  # the plan is still printed
    denied = _sg(env | {"SYNTHGEN_USER": "bob"}, "run", "spec.yaml", "--dry-run")
    assert denied.returncode == 3 and _one_line(denied.stderr) and "may not publish" in denied.stderr
    strict = _env(home, _policy_without_non_dp_publish(tmp_path))
    non_dp = _sg(strict, "run", "spec.yaml", *NON_DP, "--dry-run")
    assert non_dp.returncode == 3 and "may not publish" in non_dp.stderr, non_dp.stderr
    ok = _sg(env, "run", "spec.yaml", "--dry-run")
    assert ok.returncode == 0 and "pre-flight: all checks pass" in ok.stdout, ok.stderr
    assert _zone_files(home) == []
    assert _db(home, "SELECT COUNT(*) FROM budget_ledger") == [(0,)]
    assert _db(home, "SELECT COUNT(*) FROM budget_reservations") == [(0,)]


# -- 3. concurrent runs of one spec in one home ------------------------------------------------


def test_three_concurrent_runs_of_one_spec_succeed_or_fail_with_one_line_within_the_cap(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path)
    env = _env(home)
    runs = [_run(env), _run(env), _run(env)]  # epsilon 4 each on a cap of 10: two fit
    done = [(p.wait(600), *p.communicate()) for p in runs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 0, 1], [(c, _error_lines(e)) for c, _, e in done]
    _, _, refused = next(d for d in done if d[0] == 1)
    assert _one_line(refused) and "budget exhausted" in refused, refused
    spent = _db(home, "SELECT SUM(epsilon) FROM budget_ledger")[0][0]
    assert spent == pytest.approx(8.0) and spent <= 10.0
    # One snapshot and one anonymized dataset, shared; two publications.
    kinds = dict(_db(home, "SELECT kind, COUNT(*) FROM datasets GROUP BY kind"))
    assert (kinds["snapshot"], kinds["anonymized"], kinds["synthetic"]) == (1, 1, 2)
    assert not list((home / "zones").rglob("*.tmp"))


# -- 4. a killed run's staging shards ----------------------------------------------------------


def test_the_staging_shards_of_a_killed_run_are_swept_by_the_next_run(tmp_path: Path) -> None:
    home = _home(tmp_path, anonymize=False)
    env = _env(home)
    staging = home / "zones" / "synthetic" / "staging" / NAME
    big = ["--set", "output.rows=3000000", "--set", "output.shard_rows=50000"]
    p = _run(env, *big)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if staging.is_dir() and list(staging.glob("*/shard-*.parquet")):
            break  # a shard is committed and catalogued; more are coming
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    os.kill(p.pid, signal.SIGKILL)
    p.wait(30)
    killed = [d for d in staging.iterdir() if d.is_dir()]
    assert len(killed) == 1 and list(killed[0].glob("shard-*.parquet"))
    r = _sg(env, "run", "spec.yaml")
    assert r.returncode == 0, r.stderr
    assert not killed[0].exists()
    swept = _db(home, "SELECT detail FROM access_log WHERE action = 'sweep'")
    assert any(f"synthetic:staging/{NAME}/{killed[0].name}" in json.loads(d)["removed"] for (d,) in swept)


# -- 5. keys rotate / init with a role the policy does not define --------------------------------


def test_rotating_or_creating_the_key_of_an_unknown_role_is_a_usage_error_that_creates_nothing(
    tmp_path: Path,
) -> None:
    home = _home(tmp_path, anonymize=False)
    env = _env(home)
    before = sorted(p.name for p in (home / "keys").iterdir())
    for args in (["rotate", "analsyt"], ["init", "--role", "analsyt"]):
        r = _sg(env, "keys", *args, "--user", "alice")
        assert r.returncode == 2 and _one_line(r.stderr), r.stderr
        assert "unknown role 'analsyt'" in r.stderr and "analyst" in r.stderr
    assert sorted(p.name for p in (home / "keys").iterdir()) == before
    r = _sg(env, "keys", "rotate", "analyst", "--user", "alice")  # a known role still rotates
    assert r.returncode == 0 and "analyst: now local:analyst:v2" in r.stdout, r.stderr
