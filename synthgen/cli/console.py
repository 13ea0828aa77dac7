"""The CLI's consoles and progress display, shared by every command module."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
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

#: C0 (but tab and newline), DEL, C1, and the bidirectional overrides: never printed as they are.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: object) -> str:
    """``text`` safe to print: Rich markup escaped, control characters shown as ``\\xNN``.

    For anything that comes from data, files or other users (column names, a dataset file's
    unauthenticated manifest, error messages naming them): Rich strips a few control codes but
    passes escape sequences through, so a crafted CSV header or manifest could rewrite the
    terminal, retitle the window or plant a link.
    """
    return escape(
        _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 256 else f"\\u{ord(m[0]):04x}", str(text))
    )


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
