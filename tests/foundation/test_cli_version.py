"""`synthgen --version` and shell completion, through the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import synthgen

EXE = Path(sys.executable).with_name("synthgen")


def test_version_prints_the_package_version_and_exits_0() -> None:
    r = subprocess.run([str(EXE), "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"synthgen {synthgen.__version__}"


def test_bash_completion_script_is_offered() -> None:
    r = subprocess.run(
        [str(EXE), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, SHELL="/bin/bash"),
    )
    assert r.returncode == 0, r.stderr
    assert "_SYNTHGEN_COMPLETE" in r.stdout and "complete" in r.stdout


def test_spec_validate_show_prints_the_resolved_spec_as_yaml() -> None:
    import yaml

    spec = Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml"
    r = subprocess.run(
        [str(EXE), "spec", "validate", str(spec), "--show", "--set", "privacy.epsilon=1.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    resolved = yaml.safe_load(r.stdout)
    assert resolved["name"] == "demo-patients"
    assert resolved["privacy"]["epsilon"] == 1.5  # the override
    assert resolved["privacy"]["accountant"] == "prv" and resolved["evaluate"]["holdout"] == 0.2  # defaults
