"""Column names that used to crash late or be renamed silently: a control character (a NUL
made polars panic in anonymize; a newline made `spec init` write a spec that does not parse)
and a name given to two columns (polars renamed it `<name>_duplicated_0`). The source is
refused at ingest in one line, exit 1, before anything is written or charged; a spec naming
such a column is a spec error, exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.hardening._input import HEAD, STEWARD, Cli
from tests.hardening._input import one_line as _one_line
from tests.hardening._input import write as _write

# -- 5, 6. column names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, expect",
    [
        ("age,d\x00x,flag", "column 2 of 3 is named 'd\\x00x', which holds a control character ('\\x00')"),
        ('age,"d\nx",flag', "column 2 of 3 is named 'd\\nx', which holds a control character ('\\n')"),
        ("age,dx,dx", "the column name 'dx' is used 2 times (columns 2 and 3)"),
        ("dx,age,dx,dx", "the column name 'dx' is used 3 times (columns 1, 3 and 4)"),
    ],
    ids=["nul", "newline", "duplicate", "triplicate"],
)
def test_a_bad_column_name_in_the_header_stops_the_run_at_ingest(
    tmp_path: Path, home: Path, synthgen_cli: Cli, header: str, expect: str
) -> None:
    assert synthgen_cli(["keys", "init"], env=STEWARD).code == 0
    width = len(next(csv.reader([header])))
    data = tmp_path / "d.csv"
    data.write_text(header + "\n" + "".join(",".join([str(i % 50)] * width) + "\n" for i in range(300)))
    spec = _write(
        tmp_path, HEAD + "privacy: {epsilon: 1}\nmodel: {kind: dp_tvae, epochs: 1}\noutput: {rows: 20}\n"
    )
    r = synthgen_cli(["run", str(spec)], env=STEWARD)  # was: a polars panic in anonymize / silent rename
    assert r.code == 1, r.err
    assert expect in r.err.strip().splitlines()[-1], r.err[-1500:]
    assert "Traceback" not in r.err and "panicked" not in r.err and "_duplicated_" not in r.err
    r = synthgen_cli(["budget", "show", f"csv:{data}", "--json"], env=STEWARD)
    assert r.code == 0 and json.loads(r.out)["entries"] == [], r.out
    assert not list((home / "zones").rglob("*.parquet"))


def test_a_spec_column_with_a_control_character_is_a_spec_error(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    r = synthgen_cli(
        ["spec", "validate", str(_write(tmp_path, HEAD + 'columns:\n  "a\\tb": {type: numeric}\n'))]
    )
    assert r.code == 2 and "column name 'a\\tb' holds a control character" in _one_line(r.err), r.err


# -- 7. spec init ---------------------------------------------------------------------------


def test_spec_init_refuses_a_column_name_with_a_newline_and_writes_nothing(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    data = tmp_path / "visits.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["pa\ntient", "age"])
        w.writerows([["x", 1], ["y", 2]])
    out = tmp_path / "visits.yaml"
    r = synthgen_cli(["spec", "init", str(data), "--out", str(out)])  # was: exit 0, an unparsable spec
    assert r.code == 1 and "column 1 of 2 is named 'pa\\ntient'" in _one_line(r.err), r.err
    assert not out.exists()


def test_spec_init_quotes_unusual_names_so_the_spec_validates(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    data = tmp_path / "visits.csv"
    names = ["zero\u200bwidth", "it's: #1", "é ü", "- dash", "[x]"]
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        w.writerows([[f"v{i}", i, "a", "b", "c"] for i in range(5)])
    out = tmp_path / "visits.yaml"
    r = synthgen_cli(["spec", "init", str(data), "--out", str(out)])
    assert r.code == 0, r.err
    r = synthgen_cli(["spec", "validate", str(out), "--show"])
    assert r.code == 0, r.err
    assert set(yaml.safe_load(r.out)["columns"]) == set(names)
