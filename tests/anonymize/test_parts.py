"""Anonymization in parts: the plan is taken once, parts run independently, the merge is one output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from synthgen.anonymize.leak import LeakIndex
from synthgen.anonymize.parts import anonymize_part_file, merge_parts, part_name, write_plan
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.errors import AnonymizeError
from synthgen.storage.parquet import split_parts

SECRET = b"test-secret-0123456789abcdef0123"


def _snapshot(frame: pl.DataFrame, root: Path, part_rows: int) -> list[Path]:
    src = root / "whole.parquet"
    frame.write_parquet(src)
    parts_dir = root / f"parts-{part_rows}"
    parts_dir.mkdir()
    return [parts_dir / n for n in split_parts(src, parts_dir, part_rows)]


def _run(parts: list[Path], work: Path, settings: AnonymizeSettings, order: list[int] | None = None) -> Path:
    write_plan(work, parts, schema=None, settings=settings, secret=SECRET)
    for i in order if order is not None else range(len(parts)):
        anonymize_part_file(work, parts[i], i, settings=settings, secret=SECRET)
    out = work / "out"
    out.mkdir()
    report = merge_parts(work, len(parts), out, secret=SECRET)
    (out / "report.json").write_text(json.dumps(report, default=str))
    return out


@pytest.fixture()
def table(demo: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    visits, _ = demo
    # The first 40 patients come back at the end: the same values in part 0 and in the last part.
    return pl.concat([visits, visits.head(40)])


def test_split_parts_bounds_part_size_and_keeps_row_order(table: pl.DataFrame, tmp_path: Path) -> None:
    parts = _snapshot(table, tmp_path, 70)
    assert [pl.read_parquet(p).height for p in parts] == [70, 70, 20]
    assert pl.concat([pl.read_parquet(p) for p in parts]).equals(table)


def test_the_same_value_gets_the_same_surrogate_in_every_part(table: pl.DataFrame, tmp_path: Path) -> None:
    s = AnonymizeSettings(default_operator="surrogate")
    parts = _snapshot(table, tmp_path, 40)
    assert len(parts) == 4
    out = pl.read_parquet(_run(parts, tmp_path / "work", s) / "data.parquet")
    first, last = out.head(40), out.tail(40)
    for col in ("name", "email", "ssn", "phone", "notes"):
        assert first[col].equals(last[col]), col  # parts 0 and 3 were anonymized apart
        assert not set(first[col].to_list()) & set(table[col].to_list()), col


def test_parts_in_any_order_equal_one_part_in_one_process(table: pl.DataFrame, tmp_path: Path) -> None:
    s = AnonymizeSettings(default_operator="surrogate", stream_rows=100)
    one = _run(_snapshot(table, tmp_path, 10_000), tmp_path / "one", s)
    parts = _snapshot(table, tmp_path, 40)
    many = _run(parts, tmp_path / "many", s, order=[3, 1, 0, 2])
    assert pl.read_parquet(many / "data.parquet").equals(pl.read_parquet(one / "data.parquet"))
    r1, rn = (json.loads((d / "report.json").read_text()) for d in (one, many))
    assert (r1.pop("parts"), rn.pop("parts")) == (1, 4)
    assert rn == r1 and rn["rows"] == table.height
    i1 = LeakIndex.load(one / "leak_index.parquet", secret=SECRET)
    i_n = LeakIndex.load(many / "leak_index.parquet", secret=SECRET)
    assert len(i_n) == len(i1) > 0
    assert i_n.scan(table).total == i1.scan(table).total > table.height


_KILL_MID_PART = """
import os, sys
from pathlib import Path
from synthgen.anonymize import leak, parts
from synthgen.anonymize.settings import AnonymizeSettings
def killed(self, path):  # the part's data is written; the worker dies before its index is
    os._exit(137)
leak.LeakIndex.save = killed
settings = AnonymizeSettings(default_operator="surrogate")
work, part, secret = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].encode()
parts.anonymize_part_file(work, part, 1, settings=settings, secret=secret)
"""


def test_a_worker_killed_mid_part_leaves_no_part_and_the_retry_completes(
    table: pl.DataFrame, tmp_path: Path
) -> None:
    s = AnonymizeSettings(default_operator="surrogate")
    parts = _snapshot(table, tmp_path, 40)
    work = tmp_path / "work"
    write_plan(work, parts, schema=None, settings=s, secret=SECRET)
    anonymize_part_file(work, parts[0], 0, settings=s, secret=SECRET)
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_MID_PART, str(work), str(parts[1]), SECRET.decode()], check=False
    )
    assert killed.returncode == 137
    assert not (work / part_name(1)).exists()  # nothing half-written under the part's name
    assert [p.name for p in work.glob(".tmp-part-00001-*")]  # the leftovers are a temporary (swept)
    with pytest.raises(AnonymizeError, match="parts not anonymized yet: part-00001"):
        merge_parts(work, len(parts), work, secret=SECRET)
    for i in range(len(parts)):  # the retry: part 0 is kept, part 1 is redone
        anonymize_part_file(work, parts[i], i, settings=s, secret=SECRET)
    assert sorted(p.name for p in work.glob("part-*")) == [part_name(i) for i in range(4)]
    out = work / "out"
    out.mkdir()
    report = merge_parts(work, len(parts), out, secret=SECRET)
    assert report["rows"] == table.height == pl.read_parquet(out / "data.parquet").height


def test_a_twin_that_finishes_the_same_part_first_is_kept_and_the_late_one_succeeds(
    table: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os
    import shutil as shutil_module

    from synthgen.anonymize import parts as parts_module

    s = AnonymizeSettings(default_operator="surrogate", stream_rows=100)
    snap = _snapshot(table, tmp_path, 40)
    work = tmp_path / "work"
    write_plan(work, snap, schema=None, settings=s, secret=SECRET)
    real_replace = os.replace

    def twin_wins(src: object, dst: object) -> None:
        # The twin's rename lands between this worker's exists() check and its own rename.
        if not str(dst).endswith("part-00000"):
            return real_replace(src, dst)  # type: ignore[arg-type]
        shutil_module.copytree(str(src), str(dst))
        raise OSError(errno.ENOTEMPTY, "Directory not empty", str(dst))

    monkeypatch.setattr(parts_module.os, "replace", twin_wins)
    final = anonymize_part_file(work, snap[0], 0, settings=s, secret=SECRET)
    monkeypatch.setattr(parts_module.os, "replace", real_replace)
    assert (final / "report.json").is_file()
    assert sorted(p.name for p in work.iterdir() if p.name.startswith("part-")) == [
        final.name
    ]  # no stray temp
