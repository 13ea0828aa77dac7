"""Lint of docker/: hadolint on the Dockerfile, the compose file against the compose-spec schema.

No Docker engine runs here, so the images are never built: these checks, plus the
native stack tests (test_airflow_stack.py), are what CI can verify.
The schema is vendored (docker/compose-spec.schema.json): the copy that check-jsonschema
0.39.0 ships as its builtin ``vendor.compose-spec`` (sha256 d549057e...), Apache-2.0
(docker/compose-spec.LICENSE).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
from typing import Any

import jsonschema
import pytest
import yaml
from airflow_stack import BIN, REPO

DOCKER = REPO / "docker"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    raw = (DOCKER / "compose-spec.schema.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SCHEMA_SHA256, "the vendored compose-spec schema changed"
    return jsonschema.Draft202012Validator(json.loads(raw))


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_pins_the_airflow_base_image_and_bakes_in_no_secret() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.\d+-python3\.11\b", text, re.M)
    assert not re.search(r"(KEK|PASSWORD|SECRET|TOKEN)\w*=", text, re.I)
    assert "ARG TORCH_VARIANT=cpu" in text  # the CUDA variant is a build argument


def test_compose_file_matches_the_compose_spec_schema(
    compose: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_schema_check_catches_a_broken_compose_file(
    compose: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["airflow-scheduler"]["restart_policy"] = "always"  # not a service key
    assert not validator.is_valid(broken)


def test_compose_has_the_airflow_components_and_a_celery_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    core = {
        "postgres",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
    }
    assert core <= {name for name, s in services.items() if "profiles" not in s}
    celery = {name for name, s in services.items() if "celery" in s.get("profiles", [])}
    assert celery == {"redis", "airflow-worker", "airflow-worker-gpu"}
    gpu = services["airflow-worker-gpu"]
    assert "gpu" in gpu["command"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_zones_are_separate_volumes_mounted_only_where_tasks_run(compose: dict[str, Any]) -> None:
    assert {"real-zone", "synthetic-zone"} <= set(compose["volumes"])
    for name, service in compose["services"].items():
        mounts = [v.split(":")[:2] for v in service.get("volumes", [])]
        real = [target for source, target in mounts if source == "real-zone"]
        synthetic = [target for source, target in mounts if source == "synthetic-zone"]
        runs_tasks = name in {"airflow-scheduler", "airflow-worker", "airflow-worker-gpu"}
        assert (real, synthetic) == ((["/zones/real"], ["/zones/synthetic"]) if runs_tasks else ([], []))


def test_keks_are_mounted_secrets_given_only_to_task_runners(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        keks = [
            s for s in service.get("secrets", []) if isinstance(s, dict) and s["source"].startswith("kek_")
        ]
        if name in {"airflow-scheduler", "airflow-worker", "airflow-worker-gpu"}:
            assert {k["target"].split("/")[-2] for k in keks} == {"analyst", "ml-engineer", "data-steward"}
        else:
            assert keks == []
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"}  # files mounted at run time, never inline values


def test_no_secret_value_in_any_environment(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            secret_like = re.search(
                r"PASSWORD|SYNTHGEN_KEK_|FERNET_KEY|JWT_SECRET|SECRET_KEY|PIPELINE_SECRET", key
            )
            if secret_like and not key.endswith(("_CMD", "_FILE")):
                raise AssertionError(f"{name}: {key}={value!r} puts a secret in the environment")
            assert not re.search(r"://[^/@:]+:[^/@]+@", str(value)), f"{name}: {key} holds a password"


def test_env_example_sets_no_secret() -> None:
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key = line.split("=", 1)[0]
            assert not re.search(r"PASSWORD|SECRET_KEY|KEK|FERNET|TOKEN", key), line


def test_build_context_ships_no_local_state() -> None:
    rules = [
        ln for ln in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines() if ln and ln[0] != "#"
    ]
    assert rules[0] == "*"  # deny by default, then an allow-list
    assert not [r for r in rules if r.startswith(("!.synthgen", "!.venv", "!docker/secrets"))]


def test_compose_paths_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), volume
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file()


def test_dockerfile_copies_only_what_exists() -> None:
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY"):
            sources = [p for p in line.split()[1:-1] if not p.startswith("--")]
            for src in sources:
                assert (REPO / src).exists(), f"{line}: {src} is not in the repository"
