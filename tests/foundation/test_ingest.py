from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from synthgen.errors import SourceError, SpecError
from synthgen.spec import spec_from_dict
from synthgen.stages import Context, ingest
from synthgen.zones import ZONE_MARKER


def _spec(tmp_path: Path, path: str = "d.csv", **extra: object):  # type: ignore[no-untyped-def]
    return spec_from_dict(
        {"name": "visits", "source": {"kind": "csv", "path": path}, **extra}, base_dir=tmp_path
    )


def _zone_files(ctx: Context) -> list[Path]:
    return [p for p in ctx.zones.real.root.rglob("*") if p.is_file() and p.name != ZONE_MARKER]


def test_ingest_snapshots_into_real_zone_and_catalogues(ctx: Context, tmp_path: Path) -> None:
    pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "x"]}).write_csv(tmp_path / "d.csv")
    r = ingest(_spec(tmp_path), ctx)
    assert r.rows == 3 and r.dataset_id.startswith("snap-")
    assert ctx.zones.real.contains(r.path)
    ds = ctx.catalog.get_dataset(r.dataset_id)
    assert ds is not None and ds.zone == "real" and ds.kind == "snapshot" and ds.rows == 3
    assert ds.created_by == "tester" and ds.classification == "restricted"
    assert [c["name"] for c in ds.schema_json["columns"]] == ["a", "b"]
    assert pl.read_parquet(r.path).shape == (3, 2)


def test_ingest_is_idempotent_by_content(ctx: Context, tmp_path: Path) -> None:
    pl.DataFrame({"a": [1, 2, 3]}).write_csv(tmp_path / "d.csv")
    first = ingest(_spec(tmp_path), ctx)
    again = ingest(_spec(tmp_path), ctx)
    assert again.reused and again.dataset_id == first.dataset_id
    assert len(ctx.catalog.list_datasets()) == 1
    pl.DataFrame({"a": [1, 2, 4]}).write_csv(tmp_path / "d.csv")
    assert ingest(_spec(tmp_path), ctx).dataset_id != first.dataset_id


def test_changed_overrides_on_the_same_data_give_a_new_snapshot_schema(ctx: Context, tmp_path: Path) -> None:
    # Regression: the snapshot was keyed by content alone, so bounds added to the spec after a
    # first run were ignored on the same data (the catalogued schema was the first run's).
    pl.DataFrame({"a": [1.0, 2.0, 3.0]}).write_csv(tmp_path / "d.csv")
    first = ingest(_spec(tmp_path), ctx)
    bounded = ingest(_spec(tmp_path, columns={"a": {"bounds": [0, 10]}}), ctx)
    assert not bounded.reused and bounded.dataset_id != first.dataset_id
    schema = ctx.catalog.get_dataset(bounded.dataset_id).schema_json
    assert schema["columns"][0]["bounds"] == [0.0, 10.0]
    assert ingest(_spec(tmp_path, columns={"a": {"bounds": [0, 10]}}), ctx).reused


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, SourceError, "not found"),
        ("", SourceError, "empty"),
        ("a,b\n", SourceError, "empty"),
        ("a,b\n1,2\n3,4,5\n", SourceError, "cannot read csv"),
    ],
    ids=["missing", "zero-bytes", "header-only", "ragged"],
)
def test_bad_sources_leave_nothing_behind(
    ctx: Context, tmp_path: Path, content: str | None, error: type, match: str
) -> None:
    if content is not None:
        (tmp_path / "d.csv").write_text(content)
    with pytest.raises(error, match=match):
        ingest(_spec(tmp_path), ctx)
    assert ctx.catalog.list_datasets() == []
    assert _zone_files(ctx) == []


def test_unknown_override_column_fails_before_writing(ctx: Context, tmp_path: Path) -> None:
    pl.DataFrame({"a": [1]}).write_csv(tmp_path / "d.csv")
    with pytest.raises(SpecError, match="unknown column 'nope'"):
        ingest(_spec(tmp_path, columns={"nope": {"type": "numeric"}}), ctx)
    assert ctx.catalog.list_datasets() == [] and _zone_files(ctx) == []


def test_crash_mid_ingest_leaves_nothing_visible(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pl.DataFrame({"a": list(range(1000))}).write_csv(tmp_path / "d.csv")
    from synthgen.sources.base import FileSource

    def crashing_sink(self: FileSource, path: Path) -> None:
        path.write_bytes(b"PAR1 half-written")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(FileSource, "sink_parquet", crashing_sink)
    with pytest.raises(KeyboardInterrupt):
        ingest(_spec(tmp_path), ctx)
    assert _zone_files(ctx) == [] and ctx.catalog.list_datasets() == []


def test_catalog_failure_removes_the_snapshot(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pl.DataFrame({"a": [1, 2]}).write_csv(tmp_path / "d.csv")

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("catalog went away")

    monkeypatch.setattr(ctx.catalog, "add_dataset", broken)
    with pytest.raises(RuntimeError):
        ingest(_spec(tmp_path), ctx)
    assert _zone_files(ctx) == []


def _columns(ctx: Context, dataset_id: str) -> dict[str, dict]:
    return {c["name"]: c for c in ctx.catalog.get_dataset(dataset_id).schema_json["columns"]}


def test_datetimes_with_utc_offsets_ingest_as_naive_utc(ctx: Context, tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(
        "ts,x\n2021-10-24T04:46:47-05:00,1\n2021-02-01T06:17:12+00:00,2\n2021-02-01T06:17:12+02:00,3\n"
    )
    r = ingest(_spec(tmp_path), ctx)
    ts = pl.read_parquet(r.path)["ts"]
    assert ts.dtype == pl.Datetime("us") and str(ts[0]) == "2021-10-24 09:46:47"
    assert _columns(ctx, r.dataset_id)["ts"]["type"] == "datetime"


def test_a_column_typed_in_the_spec_is_not_cast_to_a_date(ctx: Context, tmp_path: Path) -> None:
    # Dates in the 10,000-row sample, a non-date value later: declared categorical, it stays text.
    pl.DataFrame({"d": ["2021-01-05"] * 11_000 + ["unknown"], "x": list(range(11_001))}).write_csv(
        tmp_path / "d.csv"
    )
    with pytest.raises(SourceError, match="column 'd'"):
        ingest(_spec(tmp_path), ctx)
    r = ingest(_spec(tmp_path, columns={"d": {"type": "categorical"}}), ctx)
    assert pl.read_parquet(r.path)["d"].dtype == pl.String


def test_nullability_comes_from_the_whole_snapshot(ctx: Context, tmp_path: Path) -> None:
    # A null past the inference sample, and NaN/inf (read as null by the encoder), make a
    # column nullable; training would refuse the nulls of a column inferred as not nullable.
    n = 12_000
    late = [1.0] * n
    late[11_500] = None  # type: ignore[call-overload]
    pl.DataFrame(
        {
            "late_null": late,
            "nan": [float("nan") if i == 5 else float(i) for i in range(n)],
            "inf": [float("inf") if i == 7 else float(i) for i in range(n)],
            "full": [float(i) for i in range(n)],
        }
    ).write_parquet(tmp_path / "d.parquet")
    r = ingest(_spec(tmp_path, source={"kind": "parquet", "path": "d.parquet"}), ctx)
    nullable = {k: v["nullable"] for k, v in _columns(ctx, r.dataset_id).items()}
    assert nullable == {"late_null": True, "nan": True, "inf": True, "full": False}


def test_nested_columns_are_refused_unless_left_out_as_ids(ctx: Context, tmp_path: Path) -> None:
    pl.DataFrame({"tags": [["a", "b"], ["c"]], "x": [1, 2]}).write_parquet(tmp_path / "d.parquet")
    source = {"kind": "parquet", "path": "d.parquet"}
    with pytest.raises(SpecError, match=r"column 'tags' holds nested values .*columns.tags.type: id"):
        ingest(_spec(tmp_path, source=source), ctx)
    assert ctx.catalog.list_datasets() == [] and _zone_files(ctx) == []
    r = ingest(_spec(tmp_path, source=source, columns={"tags": {"type": "id"}}), ctx)
    assert _columns(ctx, r.dataset_id)["tags"]["type"] == "id"
