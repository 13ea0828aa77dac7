from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, text

from synthgen.errors import SourceError, SpecError
from synthgen.schema import ColumnType
from synthgen.sources import infer_schema, open_source
from synthgen.spec import ColumnOverride, spec_from_dict

FRAME = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "age": [30, 41, 52, 63],
        "city": ["Oslo", "Rome", "Oslo", None],
        "visit": ["2024-01-02", "2024-02-03", "2024-03-04", "2024-04-05"],
        "ok": [True, False, True, True],
    }
)


def _spec(tmp_path: Path, source: dict, **extra: object):  # type: ignore[no-untyped-def]
    return spec_from_dict({"name": "t", "source": source, **extra}, base_dir=tmp_path)


def _read(spec, tmp_path: Path) -> pl.DataFrame:  # type: ignore[no-untyped-def]
    out = tmp_path / "out.parquet"
    open_source(spec).sink_parquet(out)
    return pl.read_parquet(out)


def test_csv_is_read_with_dates_parsed(tmp_path: Path) -> None:
    FRAME.write_csv(tmp_path / "d.csv")
    got = _read(_spec(tmp_path, {"kind": "csv", "path": "d.csv"}), tmp_path)
    assert got.height == 4
    assert got.schema["visit"] == pl.Date
    assert got["city"].null_count() == 1


def test_parquet_is_read(tmp_path: Path) -> None:
    FRAME.write_parquet(tmp_path / "d.parquet")
    got = _read(_spec(tmp_path, {"kind": "parquet", "path": "d.parquet"}), tmp_path)
    assert got.equals(FRAME)


def test_jsonl_documents_are_read_and_text_field_checked(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text('{"doc_id": 1, "body": "Call John at 555-0100."}\n{"doc_id": 2, "body": "Nothing."}\n')
    spec = _spec(tmp_path, {"kind": "jsonl", "path": "d.jsonl", "text_field": "body"})
    assert _read(spec, tmp_path)["body"].to_list()[0].startswith("Call John")
    bad = _spec(tmp_path, {"kind": "jsonl", "path": "d.jsonl"})
    with pytest.raises(SourceError, match="no field 'text'"):
        open_source(bad).sample()


def test_sqlite_table_and_query(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with sqlite3.connect(db) as con:
        con.execute("create table visits (id integer, age integer, city text)")
        con.executemany(
            "insert into visits values (?, ?, ?)", [(i, 20 + i, f"c{i % 3}") for i in range(120_000)]
        )
    table = _read(_spec(tmp_path, {"kind": "sql", "url": "sqlite:///d.db", "table": "visits"}), tmp_path)
    assert table.height == 120_000
    query = _read(
        _spec(
            tmp_path,
            {"kind": "sql", "url": f"sqlite:///{db}", "query": "select age from visits where id < 10"},
        ),
        tmp_path,
    )
    assert query.columns == ["age"] and query.height == 10


@pytest.mark.postgres
def test_postgres_table_with_password_from_env(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine(pg_database)
    with engine.begin() as c:
        c.execute(text("create table patients (id int, age int, ward text)"))
        c.execute(
            text("insert into patients select g, 20 + g % 60, 'w' || (g % 4) from generate_series(1, 5000) g")
        )
    engine.dispose()
    monkeypatch.setenv("SG_TEST_PG_URL", pg_database)
    spec = _spec(tmp_path, {"kind": "sql", "url_env": "SG_TEST_PG_URL", "table": "patients"})
    got = _read(spec, tmp_path)
    assert got.height == 5000 and set(got.columns) == {"id", "age", "ward"}
    q = _spec(
        tmp_path,
        {
            "kind": "sql",
            "url_env": "SG_TEST_PG_URL",
            "query": "select ward, count(*) n from patients group by ward",
        },
    )
    assert _read(q, tmp_path).height == 4


def test_failed_sql_connection_is_one_line_without_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_PW", "hunter2")
    spec = _spec(
        tmp_path,
        {"kind": "sql", "url": "postgresql://bob@127.0.0.1:1/db", "password_env": "SG_PW", "table": "t"},
    )
    with pytest.raises(SourceError) as info:
        open_source(spec).sample()
    msg = str(info.value)
    assert "cannot read sql table t" in msg and "hunter2" not in msg and "\n" not in msg


def test_missing_env_secret(tmp_path: Path) -> None:
    spec = _spec(tmp_path, {"kind": "sql", "url_env": "SG_DOES_NOT_EXIST", "table": "t"})
    with pytest.raises(SourceError, match="SG_DOES_NOT_EXIST"):
        open_source(spec)


def test_secrets_file_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sf = tmp_path / "secrets.yaml"
    sf.write_text("SG_URL: sqlite:///x.db\n")
    sf.chmod(0o644)
    monkeypatch.setenv("SYNTHGEN_SECRETS_FILE", str(sf))
    spec = _spec(tmp_path, {"kind": "sql", "url_env": "SG_URL", "table": "t"})
    with pytest.raises(SourceError, match="chmod 600"):
        open_source(spec)
    sf.chmod(0o600)
    with pytest.raises(SourceError, match="SQLite database not found"):
        open_source(spec)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_source(_spec(tmp_path, {"kind": "csv", "path": "nope.csv"}))


def test_ragged_csv(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b\n1,2\n3,4,5\n")
    with pytest.raises(SourceError, match="cannot read csv"):
        _read(_spec(tmp_path, {"kind": "csv", "path": "r.csv"}), tmp_path)


def test_binary_garbage_csv(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 50)
    with pytest.raises(SourceError):
        _read(_spec(tmp_path, {"kind": "csv", "path": "g.csv"}), tmp_path)


def test_inference_types_and_overrides() -> None:
    notes = [f"Patient number {i} was seen today and discharged home in good health." for i in range(4)]
    frame = FRAME.with_columns(pl.Series("notes", notes), pl.col("visit").str.to_date())
    schema = infer_schema(frame, {"age": ColumnOverride(bounds=(0, 120))})
    types = {c.name: c.type for c in schema.columns}
    assert types == {
        "id": ColumnType.id,
        "age": ColumnType.numeric,
        "city": ColumnType.categorical,
        "visit": ColumnType.datetime,
        "ok": ColumnType.boolean,
        "notes": ColumnType.text,
    }
    assert schema["age"].bounds == (0, 120)


def test_whole_floats_are_integers_as_a_pandas_export_writes_them(tmp_path: Path) -> None:
    # pandas writes an integer column with a blank as floats: 1.0, 2.0, "" (codes such as SEX 1/2).
    path = tmp_path / "codes.csv"
    path.write_text("sex,score,blank\n1.0,0.5,\n2.0,1.0,\n,2.0,\n2.0,3.0,\n")
    frame = _read(_spec(tmp_path, {"kind": "csv", "path": str(path)}), tmp_path)
    assert frame["sex"].dtype.is_float()  # the storage type alone says float
    schema = infer_schema(frame)
    assert schema["sex"].integer and schema["sex"].nullable
    assert not schema["score"].integer  # one value is 0.5
    assert not schema["blank"].integer  # no value to read
    declared = infer_schema(frame, {"sex": ColumnOverride(integer=False)})
    assert not declared["sex"].integer  # the spec still decides


def test_unknown_override_column() -> None:

    with pytest.raises(SpecError, match="unknown column 'agee'"):
        infer_schema(FRAME, {"agee": ColumnOverride(type=ColumnType.numeric)})


def test_adult_has_no_text_or_id_columns(adult_dir: Path) -> None:
    schema = infer_schema(pl.read_csv(adult_dir / "adult_train.csv", n_rows=5000))
    assert {c.type for c in schema.columns} == {ColumnType.numeric, ColumnType.categorical}


def test_identifier_columns_a_new_user_would_not_declare_are_inferred_as_ids() -> None:
    from synthgen.demo.tables import credit_like, hospital_like

    credit, hospital = credit_like(3000, seed=0), hospital_like(3000, seed=0)
    n = credit.height
    extra = pl.DataFrame(
        {
            "ClientID": [f"C{i:05d}" for i in range(n)],  # unique strings, camel-case name
            "customer-id": list(range(7, 7 + 3 * n, 3)),  # unique integers with gaps
            "Unnamed: 0": list(range(n)),  # a row number: unique, consecutive, no id name
            "userid": list(range(n, 0, -1)),
            "paid": [i % 5 for i in range(n)],  # ends in "id", is not one
            "amount": [float(i) * 1.5 for i in range(n)],  # unique floats are values, not ids
        }
    )
    types = {c.name: c.type for c in infer_schema(pl.concat([credit, extra], how="horizontal")).columns}
    ids = {c for c, t in types.items() if t == ColumnType.id}
    assert ids == {"client id", "ClientID", "customer-id", "Unnamed: 0", "userid"}
    assert types["SEX"] == types["default.next"] == types["paid"] == ColumnType.numeric
    hosp = {c.name: c.type for c in infer_schema(hospital).columns}
    assert hosp["ID"] == ColumnType.id
    assert hosp["admission_type_id"] == ColumnType.numeric  # a code, repeated: not an id
