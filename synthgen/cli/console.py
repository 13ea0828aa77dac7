"""The CLI's consoles and progress display, shared by every command module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Lines are never broken at the console's width (80 columns when piped): a path or a command
# printed must stay whole to be copied. Tables still lay out at the width.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Any]:
    """A Rich progress display, and a callback ``progress(stage, done, total, **info)`` for the stages."""
    if not enabled:
        yield None
        return
    if not err.is_terminal:
        # Piped or in CI: one line per stage start and end instead of bars nobody sees.
        from synthgen.stage_log import StageLines

        yield StageLines()
        return
    prog = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def callback(stage: str, done: float, total: float | None = None, **info: Any) -> None:
        text = " ".join(f"{k}={fmt(v)}" for k, v in info.items())
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total, info=text)
        prog.update(tasks[stage], completed=done, total=total, info=text)

    with prog:
        yield callback


def fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
