"""Findings 10, 11, 12: no cell value in a read error, policies never from the working directory,
clear lines for the cases the red team hit, and every command an error names exists."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from synthgen.cli import app

Cli = Callable[..., Any]
ROOT = Path(__file__).resolve().parents[2]
EMAIL = "john.doe@example.com"


def _spec(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text("name: visits\n" + body)
    return p


def test_a_type_change_past_the_inferred_rows_names_column_and_row_not_the_value(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    lines = ["name,age"] + [f"n{i},{20 + i % 50}" for i in range(12_000)] + [f"x,{EMAIL}", "y,30"]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    r = synthgen_cli(["ingest", str(_spec(tmp_path, "source: {kind: csv, path: d.csv}\n"))])
    assert r.code == 1 and EMAIL not in r.err and "john" not in r.err
    assert "column 'age'" in r.err and "row 12,001" in r.err and "columns.age.type" in r.err
    # The fix the message names works: read as text, the column ingests.
    fixed = _spec(tmp_path, "source: {kind: csv, path: d.csv}\ncolumns: {age: {type: categorical}}\n")
    r = synthgen_cli(["ingest", str(fixed)])
    assert r.code == 0 and "ingested 12,002 rows" in r.out, r.err


def test_a_late_non_date_names_column_and_row_not_the_value(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    (tmp_path / "d.csv").write_text("d,x\n" + "2021-01-05,1\n" * 11_000 + f"{EMAIL},2\n")
    r = synthgen_cli(["ingest", str(_spec(tmp_path, "source: {kind: csv, path: d.csv}\n"))])
    assert r.code == 1 and EMAIL not in r.err and "column 'd'" in r.err and "row 11,001" in r.err


def test_a_bad_csv_separator_is_a_spec_error(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    r = synthgen_cli(
        ["spec", "validate", str(_spec(tmp_path, "source: {kind: csv, path: d.csv, separator: ';;'}\n"))]
    )
    assert r.code == 2 and "source.separator: expected one single-byte character" in r.err


def test_a_wrong_csv_separator_names_source_separator(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    (tmp_path / "d.csv").write_text("age,job\n30,nurse\n41,clerk\n")
    spec = _spec(
        tmp_path, "source: {kind: csv, path: d.csv, separator: ';'}\ncolumns: {age: {type: numeric}}\n"
    )
    r = synthgen_cli(["ingest", str(spec)])
    assert r.code == 2 and r.err.strip().count("\n") == 0 and "source.separator" in r.err, r.err


def test_empty_categories_is_one_line(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    spec = _spec(tmp_path, "source: {kind: csv, path: d.csv}\ncolumns: {job: {categories: []}}\n")
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2 and r.err.strip().count("\n") == 0 and "columns.job.categories" in r.err


def test_deep_nesting_is_a_clear_line_not_a_recursion_error(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    spec = _spec(tmp_path, "source: {kind: csv, path: d.csv}\nx: " + "[" * 3000 + "]" * 3000 + "\n")
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2 and "RecursionError" not in r.err and "nested more than" in r.err
    bad_policy = tmp_path / "p.yaml"
    bad_policy.write_text("version: 1\nroles: " + "{a: " * 3000 + "x" + "}" * 3000 + "\n")
    r = synthgen_cli(["policy", "validate", str(bad_policy)])
    assert r.code == 2 and "RecursionError" not in r.err and "nested more than" in r.err


def test_a_missing_stage_output_reads_as_english(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    (tmp_path / "d.csv").write_text("a\n1\n2\n")
    r = synthgen_cli(["train", str(_spec(tmp_path, "source: {kind: csv, path: d.csv}\n"))])
    assert r.code == 1 and "has no anonymized data yet" in r.err and "synthgen anonymize" in r.err


def test_policies_never_come_from_the_working_directory(
    tmp_path: Path, home: Path, synthgen_cli: Cli, monkeypatch: Any
) -> None:
    monkeypatch.delenv("SYNTHGEN_POLICY_DIR", raising=False)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "evil.yaml").write_text(
        "version: 1\nroles: {r: {}}\nusers: {mallory: [r]}\n"
        "rules:\n  - {id: grant-all, effect: allow, roles: [r], actions: [read, admin],"
        " resources: {zone: '*'}}\n"
    )
    r = synthgen_cli(["keys", "init", "--user", "mallory"], cwd=tmp_path)
    assert r.code == 3, r.err  # the planted ./policies/evil.yaml was not loaded
    r = synthgen_cli(["policy", "validate"], cwd=tmp_path)
    assert r.code == 0 and "5 roles" in r.out


def test_policy_check_says_which_policies_it_used(
    tmp_path: Path, home: Path, synthgen_cli: Cli, monkeypatch: Any
) -> None:
    monkeypatch.delenv("SYNTHGEN_POLICY_DIR", raising=False)
    (tmp_path / "d.csv").write_text("a\n1\n2\n")
    assert synthgen_cli(["ingest", str(_spec(tmp_path, "source: {kind: csv, path: d.csv}\n"))]).code == 0
    r = synthgen_cli(["policy", "check", "-u", "alice", "-a", "read", "-d", "visits"])
    assert r.code == 0 and "policies: the shipped policies" in r.out
    r = synthgen_cli(
        ["policy", "check", "-u", "alice", "-a", "read", "-d", "visits"],
        env={"SYNTHGEN_POLICY_DIR": str(ROOT / "policies")},
    )
    assert r.code == 0 and "policies: SYNTHGEN_POLICY_DIR" in r.out


# -- every command an error message names exists -------------------------------------

_NAMED = re.compile(r"`synthgen ((?:[a-z][\w-]*)(?: [a-z][\w-]*)*)")
#: Calls whose ``hint`` argument is "<command> <spec>", printed as "run `synthgen <hint>`".
_HINT_CALLS = {"latest_required": 3, "latest_run": None}


def _named_commands() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for f in (ROOT / "synthgen").rglob("*.py"):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.update(tuple(m.group(1).split()) for m in _NAMED.finditer(node.value))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                _HINT_CALLS
            ):
                hints = [kw.value for kw in node.keywords if kw.arg == "hint"]
                if len(node.args) > 3:
                    hints.append(node.args[3])
                for h in hints:
                    if isinstance(h, ast.JoinedStr) and isinstance(h.values[0], ast.Constant):
                        found.add(tuple(str(h.values[0].value).split()))
    return found


def _resolves(words: tuple[str, ...]) -> bool:
    cmd: Any = typer.main.get_command(app)  # click's, or the copy Typer vendors
    for i, word in enumerate(words):
        if not hasattr(cmd, "commands"):
            return i > 0  # the rest are arguments
        sub = cmd.commands.get(word)
        if sub is None:
            return False
        cmd = sub
    return True


def test_every_command_named_in_a_message_exists() -> None:
    named = _named_commands()
    assert ("catalog", "list") in named and ("anonymize",) in named  # the scan sees messages and hints
    missing = sorted(" ".join(w) for w in named if not _resolves(w))
    assert not missing, f"messages name commands that do not exist: {missing}"
