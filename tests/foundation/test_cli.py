from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl


def _spec(tmp_path: Path, path: str = "d.csv") -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(f"name: visits\nsource:\n  kind: csv\n  path: {path}\n")
    return p


def test_help_lists_commands(cli: Callable[[list[str]], tuple[int, str, str]]) -> None:
    code, out, _ = cli(["--help"])
    assert code == 0
    for cmd in ("demo", "ingest", "spec", "catalog"):
        assert cmd in out


def test_spec_error_is_one_line_exit_2(
    tmp_path: Path, home: Path, cli: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nsource: {kind: csv, path: a.csv}\nmodel: {epochs: lots}\n")
    code, _, err = cli(["spec", "validate", str(p)])
    assert code == 2
    assert err.strip().count("\n") == 0 and "model.epochs: expected int" in err
    assert "Traceback" not in err


def test_missing_source_exit_1_no_traceback(
    tmp_path: Path, home: Path, cli: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    code, _, err = cli(["ingest", str(_spec(tmp_path))])
    assert code == 1 and "source file not found" in err and "Traceback" not in err


def test_ingest_then_catalog_list_json(
    tmp_path: Path, home: Path, cli: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    pl.DataFrame({"a": [1, 2]}).write_csv(tmp_path / "d.csv")
    code, out, _ = cli(["ingest", str(_spec(tmp_path))])
    assert code == 0 and "ingested 2 rows" in out
    code, out, _ = cli(["catalog", "list", "--zone", "real", "--json"])
    data = json.loads(out)
    assert code == 0 and data[0]["name"] == "visits" and data[0]["zone"] == "real"
    code, out, _ = cli(["catalog", "list", "--zone", "synthetic", "--json"])
    assert json.loads(out) == []


def test_bad_zone_option_is_usage_error(home: Path, cli: Callable[[list[str]], tuple[int, str, str]]) -> None:
    code, _, err = cli(["catalog", "list", "--zone", "elsewhere"])
    assert code == 2 and "expected real or synthetic" in err


def test_console_script_runs(home: Path) -> None:
    exe = Path(sys.executable).with_name("synthgen")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "synthgen" in proc.stdout


def test_an_unexpected_database_error_is_one_line_without_its_sql_or_row_values() -> None:
    import sqlite3

    from sqlalchemy.exc import IntegrityError

    from synthgen.cli import _unexpected

    exc = IntegrityError(
        "INSERT INTO datasets (id, name) VALUES (?, ?)",
        ("snap-1", "alice@example.org"),
        sqlite3.IntegrityError("UNIQUE constraint failed: datasets.id"),
    )
    line = _unexpected(exc)
    assert line == "catalog database error: IntegrityError: UNIQUE constraint failed: datasets.id"
    assert _unexpected(ValueError("bad\nvalue")) == "ValueError: bad value"
