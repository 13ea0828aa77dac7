"""`spec init`: a commented starter spec that validates, holds types only, and never overwrites."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest
import yaml

from synthgen.errors import SourceError, SpecError
from synthgen.spec import load_spec
from synthgen.spec_init import init_spec

#: Values that must never reach the spec: each is a real cell of the table below.
SECRET_VALUES = ["Zanzibar-77", "ward-Q9", "48213.5", "1931-07-04", "9041"]


def _table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "patient_id": [9041, 9042, 9043, 9044],
            "email": ["a@x.org", "b@x.org", "c@x.org", "d@x.org"],
            "city": ["Zanzibar-77", "Lyon", "Lyon", "Oslo"],
            "ward": ["ward-Q9", "ward-A", "ward-A", "ward-B"],
            "charges": [48213.5, 10.0, 22.0, 31.0],
            "stay_days": [3, 1, 12, 5],
            "born": ["1931-07-04", "1980-01-01", "1990-02-02", "2001-03-03"],
            "readmitted": [True, False, True, False],
        }
    )


def _check_written(spec_path: Path) -> dict:
    text = spec_path.read_text()
    for v in SECRET_VALUES:
        assert v not in text, f"real value {v!r} written into the starter spec"
    spec = load_spec(spec_path)  # validates
    cols = spec.columns
    assert cols["patient_id"].type.value == "id" and cols["patient_id"].operator == "drop"
    assert cols["email"].pii == "EMAIL_ADDRESS" and cols["email"].operator == "drop"
    assert cols["charges"].type.value == "numeric" and cols["charges"].bounds is None
    assert cols["city"].type.value == "categorical" and cols["city"].categories is None
    assert cols["born"].type.value == "datetime"
    # Storage types, read with the types: a declared run keeps whole numbers and dates.
    assert cols["born"].date is True and cols["charges"].integer is not True
    assert cols["stay_days"].type.value == "numeric" and cols["stay_days"].integer is True
    assert cols["readmitted"].type.value == "boolean"
    assert spec.privacy.schema_source == "declared"
    assert "PUBLIC knowledge" in text
    return yaml.safe_load(text)


def test_from_csv_writes_types_only_and_validates(tmp_path: Path) -> None:
    _table().write_csv(tmp_path / "visits.csv")
    r = init_spec(tmp_path / "spec.yaml", from_data=tmp_path / "visits.csv")
    data = _check_written(r.path)
    assert data["source"] == {"kind": "csv", "path": "visits.csv", "id": "local/visits"}
    assert set(r.dropped) == {"patient_id", "email"}
    assert load_spec(r.path).source_path().resolve() == (tmp_path / "visits.csv").resolve()


def test_from_parquet(tmp_path: Path) -> None:
    t = _table().with_columns(pl.col("born").str.to_date())
    t.write_parquet(tmp_path / "v.parquet")
    r = init_spec(tmp_path / "s.yaml", from_data=tmp_path / "v.parquet")
    assert _check_written(r.path)["source"]["kind"] == "parquet"


def test_from_sqlite_via_url_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "v.db"
    con = sqlite3.connect(db)
    t = _table()
    con.execute(
        "CREATE TABLE visits (patient_id INTEGER, email TEXT, city TEXT, ward TEXT, "
        "charges REAL, stay_days INTEGER, born TEXT, readmitted BOOLEAN)"
    )
    con.executemany("INSERT INTO visits VALUES (?,?,?,?,?,?,?,?)", t.rows())
    con.commit()
    con.close()
    monkeypatch.setenv("VISITS_URL", f"sqlite:///{db}")
    r = init_spec(tmp_path / "s.yaml", url_env="VISITS_URL", table="visits")
    text = r.path.read_text()
    assert str(db) not in text  # the URL stays in the environment
    spec = load_spec(r.path)
    assert spec.source.url_env == "VISITS_URL" and spec.source.table == "visits"
    assert spec.columns["email"].pii == "EMAIL_ADDRESS"
    assert spec.columns["charges"].type.value == "numeric"
    for v in SECRET_VALUES:
        assert v not in text


def test_without_data_writes_a_template_that_validates(tmp_path: Path) -> None:
    r = init_spec(tmp_path / "pipeline.yaml")
    spec = load_spec(r.path)
    assert spec.name == "pipeline" and spec.source.kind == "csv" and spec.columns == {}


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "spec.yaml"
    target.write_text("mine\n")
    with pytest.raises(SpecError, match="already exists"):
        init_spec(target)
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"from_data": Path("x.xlsx")}, SpecError, "unknown file type"),
        ({"from_data": Path("missing.csv")}, SourceError, "not found"),
        ({"url_env": "ONLY_ENV"}, SpecError, "needs both"),
        ({"url_env": "NOT_SET_ANYWHERE_42", "table": "t"}, SpecError, "not set"),
        ({"url_env": "bad name", "table": "t"}, SpecError, "environment variable"),
    ],
)
def test_bad_inputs_write_nothing(tmp_path: Path, kwargs: dict, err: type, match: str) -> None:
    kwargs = {k: (tmp_path / v if isinstance(v, Path) else v) for k, v in kwargs.items()}
    with pytest.raises(err, match=match):
        init_spec(tmp_path / "s.yaml", **kwargs)
    assert not (tmp_path / "s.yaml").exists()


@pytest.mark.parametrize(
    ("name", "body", "separator", "comment"),
    [
        ("a.csv", "x,y\n1,2\n", ",", None),
        ("a.csv", "x;y;z\n1;2,5;3\n4;5;6\n", ";", None),  # a decimal comma is not a separator
        ("a.csv", "x|y\n1|2\n", "|", None),
        ("a.tsv", "x\ty\n1\t2\n", "\t", None),
        ("a.csv", "# exported 2024\n# by the ward\nx,y\n1,2\n", ",", "#"),
        ("a.csv", "only\n1\n2\n", ",", None),
    ],
)
def test_sniff_csv_reads_separator_and_comment_lines(
    tmp_path: Path, name: str, body: str, separator: str, comment: str | None
) -> None:
    from synthgen.spec_init import sniff_csv

    (tmp_path / name).write_text(body)
    d = sniff_csv(tmp_path / name)
    assert (d.separator, d.comment_prefix) == (separator, comment)


def test_tsv_spec_names_its_separator(tmp_path: Path) -> None:
    _table().write_csv(tmp_path / "visits.tsv", separator="\t")
    r = init_spec(tmp_path / "spec.yaml", from_data=tmp_path / "visits.tsv")
    assert load_spec(r.path).source.separator == "\t"
    _check_written(r.path)
