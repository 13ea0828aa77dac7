"""`spec init`, `run/train --dry-run`, the run pre-flight and help style, through the installed script."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import polars as pl

from tests.conftest import run_synthgen


def _one_line(err: str) -> bool:
    return err.strip() != "" and err.strip().count("\n") == 0


def _table(rows: int = 300) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "visit_id": list(range(rows)),
            "email": [f"p{i}@example.org" for i in range(rows)],
            "ward": [["A", "B", "C"][i % 3] for i in range(rows)],
            "age": [20 + i % 60 for i in range(rows)],
            "readmitted": [i % 4 == 0 for i in range(rows)],
        }
    )


def _ledger_rows(home: Path) -> int:
    db = home / "catalog.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        total = 0
        for t in ("budget_entries", "budget_reservations"):
            if t in names:
                total += con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
        return total


def _zone_files(home: Path) -> list[Path]:
    return [p for p in (home / "zones").rglob("*") if p.is_file() and p.name != ".synthgen-zone"]


def test_spec_init_writes_a_spec_that_validates_and_runs(home: Path, tmp_path: Path) -> None:
    _table().write_csv(tmp_path / "visits.csv")
    spec = tmp_path / "visits.yaml"
    r = run_synthgen(["spec", "init", str(spec), "--from-data", str(tmp_path / "visits.csv")])
    assert r.code == 0, r.err
    assert "identifier columns it drops: visit_id, email" in r.out
    assert run_synthgen(["spec", "validate", str(spec)]).code == 0
    assert run_synthgen(["keys", "init", "--user", "alice"]).code == 0
    r = run_synthgen(
        ["run", str(spec), "--set", "evaluate.plots=false"], env={"SYNTHGEN_USER": "synthgen-pipeline"}
    )
    assert r.code == 0, r.err


def test_spec_init_bad_inputs(home: Path, tmp_path: Path) -> None:
    existing = tmp_path / "mine.yaml"
    existing.write_text("keep me\n")
    r = run_synthgen(["spec", "init", str(existing)])
    assert r.code == 2 and _one_line(r.err) and "never overwrites" in r.err
    assert existing.read_text() == "keep me\n"
    r = run_synthgen(["spec", "init", str(tmp_path / "a.yaml"), "--from-data", str(tmp_path / "none.csv")])
    assert r.code == 1 and _one_line(r.err) and "not found" in r.err
    (tmp_path / "t.xlsx").write_text("x")
    r = run_synthgen(["spec", "init", str(tmp_path / "b.yaml"), "--from-data", str(tmp_path / "t.xlsx")])
    assert r.code == 2 and _one_line(r.err) and "unknown file type" in r.err
    r = run_synthgen(["spec", "init", str(tmp_path / "c.yaml"), "--url-env", "X_URL"])
    assert r.code == 2 and _one_line(r.err) and "--table" in r.err
    assert not any((tmp_path / n).exists() for n in ("a.yaml", "b.yaml", "c.yaml"))


def test_spec_init_source_first_form(home: Path, tmp_path: Path) -> None:
    """`spec init SOURCE [--out SPEC]`: the positional is the data; without --out, `<stem>.yaml` here."""
    _table().write_csv(tmp_path / "visits.csv")
    r = run_synthgen(["spec", "init", str(tmp_path / "visits.csv"), "--out", str(tmp_path / "mine.yaml")])
    assert r.code == 0, r.err
    assert run_synthgen(["spec", "validate", str(tmp_path / "mine.yaml")]).code == 0
    work = tmp_path / "work"
    work.mkdir()
    r = run_synthgen(["spec", "init", str(tmp_path / "visits.csv")], cwd=work)
    assert r.code == 0, r.err
    assert "source:\n  kind: csv\n" in (work / "visits.yaml").read_text()
    # The spec named twice, or a spec where the data goes: one line, exit 2, nothing written.
    for args in (
        [str(tmp_path / "visits.csv"), "--out", str(tmp_path / "x.yaml"), "--from-data", "y.csv"],
        [str(tmp_path / "other.yaml"), "--out", str(tmp_path / "x.yaml")],
    ):
        r = run_synthgen(["spec", "init", *args])
        assert r.code == 2 and _one_line(r.err), r.err
    assert not (tmp_path / "x.yaml").exists()


def test_spec_init_reads_the_csv_layout(home: Path, tmp_path: Path) -> None:
    """A leading comment line and a ';' separator go into the spec, and ingest then reads the file."""
    body = _table().write_csv(separator=";")
    (tmp_path / "visits.csv").write_text("# Data source: the ward's export, 2024\n" + body)
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"name: plain\nsource: {{kind: csv, path: {tmp_path / 'visits.csv'}, separator: ';'}}\n")
    r = run_synthgen(["ingest", str(plain)])
    assert r.code == 1 and _one_line(r.err) and "source.comment_prefix: '#'" in r.err, r.err
    r = run_synthgen(["spec", "init", str(tmp_path / "visits.csv"), "--out", str(tmp_path / "v.yaml")])
    assert r.code == 0, r.err
    text = (tmp_path / "v.yaml").read_text()
    assert "  separator: ;\n" in text and "  comment_prefix: '#'\n" in text
    assert "\n  ward:\n" in text and "\n  age:\n" in text  # the header was read as the header
    assert run_synthgen(["ingest", str(tmp_path / "v.yaml")]).code == 0


def test_a_ragged_csv_names_its_row_and_a_headerless_one_is_asked_about(home: Path, tmp_path: Path) -> None:
    """A row with more fields than the header: the error names the data row and the counts (no
    value). A first line of counts and class names (scikit-learn's CSVs): the same error asks
    whether it is a header; a numeric first line with the rows' field count gets a warning."""
    body = _table(400).write_csv().splitlines()
    body[301] += ",SECRET-extra"
    (tmp_path / "ragged.csv").write_text("\n".join(body) + "\n")
    r = run_synthgen(["spec", "init", str(tmp_path / "ragged.csv"), "--out", str(tmp_path / "r.yaml")])
    assert r.code == 1 and _one_line(r.err), r.err
    assert "data row 301 has 6 fields, the header 5" in r.err and "SECRET" not in r.err, r.err
    assert not (tmp_path / "r.yaml").exists()
    rows = _table(50).drop("visit_id", "email").with_columns(pl.col("readmitted").cast(pl.Int8))
    (tmp_path / "counts.csv").write_text("50,yes\n" + rows.write_csv(include_header=False))
    r = run_synthgen(["spec", "init", str(tmp_path / "counts.csv"), "--out", str(tmp_path / "c.yaml")])
    assert r.code == 1 and _one_line(r.err) and "is the first line a header?" in r.err, r.err
    (tmp_path / "nohead.csv").write_text(rows.write_csv(include_header=False))
    r = run_synthgen(["spec", "init", str(tmp_path / "nohead.csv"), "--out", str(tmp_path / "n.yaml")])
    assert r.code == 0, r.err
    assert "column names are numbers: is the first line a header?" in r.out, r.out


def _spec_for(tmp_path: Path, csv: Path) -> Path:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\n"
        f"source: {{kind: csv, path: {csv}}}\n"
        "columns:\n  visit_id: {type: id, operator: drop}\n  email: {pii: EMAIL_ADDRESS, operator: drop}\n"
        "  ward: {type: categorical, categories: [A, B, C]}\n  age: {type: numeric, bounds: [0, 120]}\n"
        "  readmitted: {type: boolean}\n"
        "evaluate: {plots: false}\n"
    )
    return spec


def test_dry_run_reads_no_row_and_charges_nothing(home: Path, tmp_path: Path) -> None:
    # A header that reads, then a row no reader can parse: any read of the data fails.
    csv = tmp_path / "bad.csv"
    csv.write_bytes(b"visit_id,email,ward,age,readmitted\n1,a@x.org,A,\xff\xfe\x00\x01,true\n")
    spec = _spec_for(tmp_path, csv)
    env = {"SYNTHGEN_USER": "synthgen-pipeline"}
    r = run_synthgen(["run", str(spec), "--dry-run"], env=env)  # no keys yet: the pre-flight's refusal
    assert r.code == 2 and _one_line(r.err) and "synthgen keys init" in r.err, r.err
    assert "no row read, nothing charged" in r.out  # the plan is printed all the same
    assert run_synthgen(["keys", "init", "--user", "alice"]).code == 0
    for cmd in (["run", str(spec), "--dry-run"], ["train", str(spec), "--dry-run"]):
        r = run_synthgen(cmd, env=env)
        assert r.code == 0, r.err
        assert "pre-flight: all checks pass" in r.out
        assert "no row read, nothing charged" in r.out and "remaining 10" in r.out
        assert "epsilon split: preprocessing 0.3, tabular model 2.7" in r.out  # all public: share 0.1
    assert _ledger_rows(home) == 0 and _zone_files(home) == []
    assert run_synthgen(["ingest", str(spec)], env=env).code == 1  # a real read does fail


def test_run_preflight_stops_before_any_read_or_charge(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "v.csv"
    _table().write_csv(csv)
    spec = _spec_for(tmp_path, csv)
    env = {"SYNTHGEN_USER": "synthgen-pipeline"}
    r = run_synthgen(["run", str(spec)], env=env)  # no keys yet
    assert r.code == 2 and _one_line(r.err)
    assert "no key-encryption key" in r.err and "alice" in r.err and "synthgen keys init" in r.err
    assert _ledger_rows(home) == 0 and _zone_files(home) == []
    assert run_synthgen(["keys", "init", "--user", "alice"]).code == 0
    r = run_synthgen(["run", str(spec)], env={"SYNTHGEN_USER": "bob"})  # an analyst may not publish
    assert r.code == 3 and _one_line(r.err) and "may not publish" in r.err
    r = run_synthgen(["run", str(spec), "--set", "privacy.epsilon=11"], env=env)  # over the cap of 10
    assert r.code == 1 and _one_line(r.err) and "budget exhausted" in r.err and "> cap 10" in r.err
    (tmp_path / "v.csv").unlink()
    r = run_synthgen(["run", str(spec)], env=env)
    assert r.code == 2 and _one_line(r.err) and "source file not found" in r.err
    assert _ledger_rows(home) == 0 and _zone_files(home) == []


def test_help_shows_flags_as_flags_and_commands_in_workflow_order() -> None:
    r = run_synthgen(["run", "--help"], env={"COLUMNS": "120"})
    assert r.code == 0
    assert "<bool>" not in r.out and "{spec}" not in r.out
    assert "synthgen run [OPTIONS] SPEC" in r.out and "--dry-run" in r.out
    top = run_synthgen(["--help"], env={"COLUMNS": "120"}).out
    assert "<bool>" not in top
    # Every command, panel by panel, exactly in the order a user works (the real help, not the app's list).
    assert help_commands(top) == [
        ("Set up", ["demo", "spec", "keys"]),
        (
            "Pipeline stages, in order",
            ["ingest", "anonymize", "train", "generate", "evaluate", "publish", "run"],
        ),
        ("Results", ["read", "report", "inspect"]),
        ("Administration", ["budget", "policy", "audit", "catalog"]),
        ("PII tools", ["scan-pii", "eval-pii"]),
    ]


def help_commands(text: str) -> list[tuple[str, list[str]]]:
    """The command panels of a Rich help page: (title, command names in printed order)."""
    panels: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if m := re.match(r"\s*╭─ (.+?) ─", line):
            panels.append((m.group(1), []))
        elif panels and (m := re.match(r"\s*│ ([a-z][a-z-]*) ", line)):
            panels[-1][1].append(m.group(1))
    return [(title, names) for title, names in panels if title not in ("Options", "Arguments")]
