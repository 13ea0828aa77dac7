"""The access CLI pieces, run through a Typer app shaped like the main one."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from synthgen.access_cli import audit_app, keys_app, policy_app, read_cmd, report_cmd
from synthgen.errors import AccessDenied, SynthgenError

from .conftest import Env

app = typer.Typer()
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.command("read")(read_cmd)
app.command("report")(report_cmd)
runner = CliRunner()


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = runner.invoke(app, list(args))
    code = result.exit_code
    if isinstance(result.exception, SynthgenError):  # what synthgen.cli.main does
        code = result.exception.exit_code
    return code, result.output, result.exception


def test_policy_check_prints_decision_and_rule(env: Env) -> None:
    env.publish()
    code, output, _ = run(
        "policy", "check", "--user", "bob", "--action", "read", "--dataset", "adult-synthetic"
    )
    assert code == 0 and "allow" in output and "analyst-read-shareable-dp" in output
    code, output, _ = run(
        "policy", "check", "--user", "dave", "--action", "read", "--dataset", "adult-synthetic"
    )
    assert code == 3 and output.startswith("deny") and "default-deny" in output


def test_read_prints_rows_and_denied_read_exits_3(env: Env, tmp_path) -> None:
    env.publish()
    code, output, _ = run("read", "adult-synthetic", "--user", "bob")
    assert code == 0 and "200 rows x 3 columns" in output
    code, _, exc = run("read", "adult-synthetic", "--user", "dave")
    assert code == 3 and isinstance(exc, AccessDenied)
    code, output, _ = run(
        "read", "adult-synthetic", "-u", "carol", "--out", str(tmp_path / "a.csv"), "--format", "csv"
    )
    assert code == 0 and (tmp_path / "a.csv").read_text().startswith("age,income,job")


def test_user_defaults_to_synthgen_user(env: Env, monkeypatch) -> None:
    env.publish()
    monkeypatch.setenv("SYNTHGEN_USER", "bob")
    assert run("read", "adult-synthetic")[0] == 0


def test_keys_list_rotate_revoke_and_audit_verify(env: Env) -> None:
    env.publish()
    code, output, _ = run("keys", "list")
    assert code == 0 and "local:analyst:v1" in output
    code, output, _ = run("keys", "rotate", "analyst", "--user", "alice")
    assert code == 0 and "local:analyst:v2" in output and "re-wrapped 1" in output
    assert run("keys", "rotate", "analyst", "--user", "bob")[0] == 3
    code, output, _ = run("keys", "revoke", "adult-synthetic", "analyst", "--user", "alice")
    assert code == 0 and "revoked analyst" in output
    code, output, _ = run("audit", "verify")
    assert code == 0 and "intact" in output
    audit = env.home / "audit" / "audit.jsonl"
    lines = audit.read_text().splitlines()
    audit.write_text("\n".join(lines[:3] + lines[4:]) + "\n")
    code, output, _ = run("audit", "verify")
    assert code == 1 and "BROKEN" in output


def test_keys_init_is_idempotent(env: Env) -> None:
    code, output, _ = run("keys", "init", "--user", "alice")
    assert code == 0 and "analyst: already has a key" in output
    assert run("keys", "init", "--user", "bob")[0] == 3


def test_policy_validate_reports_the_broken_line(env: Env, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nroles: {a: {}}\nrules:\n  - {id: x, effect: maybe, roles: [a], actions: [read]}\n"
    )
    code, _, exc = run("policy", "validate", str(bad))
    assert code == 2 and str(exc).startswith(f"{bad}:4:")
    code, output, _ = run("policy", "validate")
    assert code == 0 and "ok:" in output
