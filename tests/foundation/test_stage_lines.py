"""Piped output gets one line per stage start and end (stage, rows, seconds, epsilon so far)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from synthgen.stage_log import StageLines
from synthgen.stages import Context, StageResult


def _ctx(tmp_path: Path, lines: StageLines) -> Context:
    from synthgen.catalog import Catalog
    from synthgen.zones import Zones

    ctx = Context(
        catalog=Catalog(f"sqlite:///{tmp_path / 'c.db'}"),
        zones=Zones.from_roots(tmp_path / "real", tmp_path / "syn"),
        progress=lines,
    )
    ctx.stages = lines
    return ctx


def test_each_stage_logs_a_start_and_an_end_line_with_rows_seconds_and_epsilon(tmp_path: Path) -> None:
    buf = io.StringIO()
    clock = iter([0.0, 2.5, 10.0, 13.25]).__next__
    spent = iter([0.0, 3.0])
    lines = StageLines(buf, epsilon=lambda: next(spent), clock=clock)
    ctx = _ctx(tmp_path, lines)
    ctx.staged("ingest", lambda: StageResult("ingest", "snap-1", "/p", rows=12_000))
    shards = [StageResult("generate", f"s{i}", "/p", rows=500) for i in range(3)]
    assert ctx.staged("generate", lambda: shards) is shards
    assert buf.getvalue().splitlines() == [
        "[synthgen] ingest: start",
        "[synthgen] ingest: done in 2.5 s (12,000 rows, epsilon spent so far 0)",
        "[synthgen] generate: start",
        "[synthgen] generate: done in 3.2 s (1,500 rows, epsilon spent so far 3)",
    ]


def test_the_end_line_gives_cpu_seconds_beside_wall_seconds(tmp_path: Path) -> None:
    buf = io.StringIO()
    clock = iter([0.0, 9.0]).__next__
    cpu = iter([1.0, 4.5]).__next__
    ctx = _ctx(tmp_path, StageLines(buf, clock=clock, cpu_clock=cpu))
    ctx.staged("train", lambda: None)
    assert buf.getvalue().splitlines()[-1] == "[synthgen] train: done in 9.0 s (cpu 3.5 s)"


def test_a_failing_stage_logs_failed_and_the_error_still_propagates(tmp_path: Path) -> None:
    buf = io.StringIO()
    ctx = _ctx(tmp_path, StageLines(buf))

    def boom() -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ctx.staged("train", boom)
    assert re.fullmatch(
        r"\[synthgen\] train: start\n\[synthgen\] train: FAILED after \d+\.\d s \(cpu \d+\.\d s\)\n",
        buf.getvalue(),
    )


def test_progress_bars_give_stage_lines_when_stderr_is_not_a_terminal() -> None:
    from synthgen import cli

    assert not cli.err.is_terminal  # pytest captures stderr
    with cli.progress_bars() as cb:
        assert isinstance(cb, StageLines)


def test_a_long_step_logs_progress_with_the_time_left_at_most_every_30_s(tmp_path: Path) -> None:
    buf = io.StringIO()
    now = [0.0]
    lines = StageLines(buf, clock=lambda: now[0])
    lines.start("train")
    for epoch, t in [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0), (6, 60.0), (30, 300.0)]:
        now[0] = t
        lines("train", epoch, 30, loss=1.0)
    assert buf.getvalue().splitlines() == [
        "[synthgen] train: start",
        "[synthgen] train: 3/30 (10%), 30 s so far, about 4 min 30 s left",
        "[synthgen] train: 6/30 (20%), 1 min 0 s so far, about 4 min 0 s left",
        "[synthgen] train: 30/30 (100%), 5 min 0 s so far, about 0 s left",
    ]
    buf.truncate(0)
    buf.seek(0)
    now[0] = 1000.0
    lines("train text notes", 1, 4)  # a step without start: timed from its first report
    now[0] = 1040.0
    lines("train text notes", 2, 4)
    assert buf.getvalue().splitlines() == [
        "[synthgen] train text notes: 2/4 (50%), 40 s so far, about 40 s left"
    ]
    assert "train text notes" not in lines._started  # a step that never started stays unstarted
