"""The access commands, run through the installed ``synthgen`` console script (real exit codes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from synthgen.access import KEYRING_SUFFIX

from .conftest import Env


@pytest.fixture
def run(synthgen_cli: Callable[..., Any]) -> Callable[..., Any]:
    """``run(*args)``: the console script with these arguments, as a ``CliResult``."""
    return lambda *args: synthgen_cli(list(args))


def test_policy_check_prints_decision_and_rule(run, env: Env) -> None:
    env.publish()
    r = run("policy", "check", "--user", "bob", "--action", "read", "--dataset", "adult-synthetic")
    assert r.code == 0 and "allow" in r.out and "analyst-read-shareable-dp" in r.out
    r = run("policy", "check", "--user", "dave", "--action", "read", "--dataset", "adult-synthetic")
    assert r.code == 3 and r.out.startswith("deny") and "default-deny" in r.out


def test_policy_check_with_a_misspelt_action_is_a_usage_error(run, env: Env) -> None:
    env.publish()
    r = run("policy", "check", "--user", "bob", "--action", "raed", "--dataset", "adult-synthetic")
    assert r.code == 2 and "raed" in r.err and "read" in r.err and r.err.strip().count("\n") == 0


def test_read_prints_rows_and_denied_read_exits_3(run, env: Env, tmp_path) -> None:
    env.publish()
    r = run("read", "adult-synthetic", "--user", "bob")
    assert r.code == 0 and "200 rows x 3 columns" in r.out
    r = run("read", "adult-synthetic", "--user", "dave")
    assert r.code == 3 and "denied" in r.err and "Traceback" not in r.err
    r = run("read", "adult-synthetic", "-u", "carol", "--out", str(tmp_path / "a.csv"), "--format", "csv")
    assert r.code == 0 and (tmp_path / "a.csv").read_text().startswith("age,income,job")
    r = run("read", "adult-synthetic", "-u", "carol", "--out", str(tmp_path / "b.CSV"))  # CSV by its suffix
    assert r.code == 0 and (tmp_path / "b.CSV").read_text().startswith("age,income,job")
    r = run("read", "adult-synthetic", "-u", "carol", "--out", str(tmp_path / "c.parquet"))
    assert r.code == 0 and (tmp_path / "c.parquet").read_bytes().startswith(b"PAR1")


def test_user_defaults_to_synthgen_user(run, env: Env, monkeypatch) -> None:
    env.publish()
    monkeypatch.setenv("SYNTHGEN_USER", "bob")
    assert run("read", "adult-synthetic").code == 0


def test_keys_list_rotate_revoke_and_audit_verify(run, env: Env) -> None:
    env.publish()
    r = run("keys", "list")
    assert r.code == 0 and "local:analyst:v1" in r.out
    r = run("keys", "rotate", "analyst", "--user", "alice")
    assert r.code == 0 and "local:analyst:v2" in r.out and "re-wrapped 1" in r.out
    assert run("keys", "rotate", "analyst", "--user", "bob").code == 3
    r = run("keys", "revoke", "adult-synthetic", "analyst", "--user", "alice")
    assert r.code == 0 and "revoked analyst" in r.out
    r = run("audit", "verify")
    assert r.code == 0 and "intact" in r.out


def test_audit_verify_on_a_broken_chain_exits_1(run, env: Env) -> None:
    env.publish()
    audit = env.home / "audit" / "audit.jsonl"
    lines = audit.read_text().splitlines()
    assert len(lines) >= 3
    audit.write_text("\n".join(lines[:1] + lines[2:]) + "\n")
    r = run("audit", "verify")
    assert r.code == 1 and "BROKEN" in r.err


def test_audit_verify_refuses_an_audit_file_inside_the_synthetic_zone(run, env: Env, monkeypatch) -> None:
    env.publish()
    inside = env.zones.synthetic.root / "audit.jsonl"
    inside.write_text((env.home / "audit" / "audit.jsonl").read_text())
    monkeypatch.setenv("SYNTHGEN_AUDIT_FILE", str(inside))
    r = run("audit", "verify")
    assert r.code == 1 and "inside the synthetic zone" in r.err and r.err.strip().count("\n") == 0, r.err
    assert "intact" not in r.out


def test_keys_rotate_that_fails_part_way_exits_1(run, env: Env) -> None:
    env.publish("first")
    env.publish("second")
    rings = sorted(env.zones.synthetic.root.rglob(f"*{KEYRING_SUFFIX}"))
    assert len(rings) == 2
    rings[0].write_bytes(b"not a keyring")
    r = run("keys", "rotate", "analyst", "--user", "alice")
    assert r.code == 1 and "not re-wrapped" in r.err and "re-wrapped 1" in r.out


def test_keys_init_is_idempotent(run, env: Env) -> None:
    r = run("keys", "init", "--user", "alice")
    assert r.code == 0 and "analyst: already has a key" in r.out
    assert run("keys", "init", "--user", "bob").code == 3


def test_policy_validate_reports_the_broken_line(run, env: Env, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nroles: {a: {}}\nrules:\n  - {id: x, effect: maybe, roles: [a], actions: [read]}\n"
    )
    r = run("policy", "validate", str(bad))
    assert r.code == 2 and r.err.startswith(f"error: {bad}:4:")
    r = run("policy", "validate")
    assert r.code == 0 and "ok:" in r.out
