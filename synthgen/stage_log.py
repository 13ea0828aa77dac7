"""One plain line when each pipeline stage starts and ends, for output that is not a terminal.

In a terminal the CLI shows Rich progress bars; piped into ``tee`` or a CI log those print
nothing until the run ends. :class:`StageLines` is both the stages' progress callback and
the observer of :meth:`synthgen.stages.Context.staged`, and writes::

    [synthgen] train: start
    [synthgen] train: 12/30 (40%), 48 s so far, about 1 min 12 s left
    [synthgen] train: done in 41.2 s (cpu 39.8 s, 8,012 rows, epsilon spent so far 3.0)

A progress line (with the time left, extrapolated from the rate so far) appears only for
long steps, at most every ``PROGRESS_EVERY_S`` seconds.

The epsilon figure is the source's ledger total (a DP result, P9), read through the
function the caller passes; rows are the stage result's own count.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

#: Seconds between two progress lines of one stage (and before the first one).
PROGRESS_EVERY_S = 30.0


def _rows_of(result: Any) -> int | None:
    if isinstance(result, list):
        counts = [_rows_of(r) for r in result]
        return sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
    rows = getattr(result, "rows", None)
    return rows if isinstance(rows, int) else None


class StageLines:
    """Writes a start line and an end line per stage (stage, rows, seconds, epsilon so far)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        epsilon: Callable[[], float | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] | None = None,
    ) -> None:
        self._stream = stream
        self.epsilon = epsilon
        self._clock = clock
        # CPU seconds of this process (all threads) beside wall seconds: on a shared host the
        # wall time says how busy the machine was, the CPU time what the stage itself cost.
        # Shown with the real clock only (an injected clock is a test's).
        self._cpu = cpu_clock or (time.process_time if clock is time.monotonic else None)
        self._started: dict[str, float] = {}
        self._cpu_started: dict[str, float] = {}
        self._last_line: dict[str, float] = {}
        self._first_report: dict[str, float] = {}

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        print(f"[synthgen] {text}", file=stream, flush=True)

    def __call__(self, stage: str, done: float, total: float | None = None, **info: Any) -> None:
        """Progress callback: a line with the time left, only on long steps and at most every 30 s."""
        now = self._clock()
        # A stage's own start, or (a step reported without start/end, such as a text column's
        # training) its first report.
        began = self._started.get(stage, self._first_report.setdefault(stage, now))
        if not total or done <= 0 or now - self._last_line.get(stage, began) < PROGRESS_EVERY_S:
            return
        self._last_line[stage] = now
        elapsed = now - began
        left = elapsed * max(total - done, 0) / done
        self._write(
            f"{stage}: {done:g}/{total:g} ({100 * done / total:.0f}%), {_duration(elapsed)} so far, "
            f"about {_duration(left)} left"
        )

    def start(self, stage: str) -> None:
        self._started[stage] = self._clock()
        if self._cpu is not None:
            self._cpu_started[stage] = self._cpu()
        self._write(f"{stage}: start")

    def end(self, stage: str, result: Any = None, *, failed: bool = False) -> None:
        now = self._clock()
        seconds = now - self._started.pop(stage, now)
        self._last_line.pop(stage, None)
        parts = []
        if self._cpu is not None and stage in self._cpu_started:
            parts.append(f"cpu {self._cpu() - self._cpu_started.pop(stage):.1f} s")
        rows = _rows_of(result)
        if rows is not None:
            parts.append(f"{rows:,} rows")
        eps = self._epsilon()
        if eps is not None:
            parts.append(f"epsilon spent so far {eps:.3g}")
        detail = f" ({', '.join(parts)})" if parts else ""
        self._write(f"{stage}: {'FAILED after' if failed else 'done in'} {seconds:.1f} s{detail}")

    def _epsilon(self) -> float | None:
        if self.epsilon is None:
            return None
        try:
            return self.epsilon()
        except Exception:  # noqa: BLE001 - a log line must never break the run it describes
            return None


def _duration(seconds: float) -> str:
    """``48 s``, ``1 min 12 s``, ``1 h 05 min``."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
