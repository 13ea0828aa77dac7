"""Shared by the bad-input tests: a minimal spec head, the steward's env, one-line errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

Cli = Callable[..., Any]
HEAD = "name: visits\nsource: {kind: csv, path: d.csv}\n"
STEWARD = {"SYNTHGEN_USER": "alice"}


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def one_line(err: str) -> str:
    """The error's only line (no traceback, no Rust panic)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "panicked" not in err, err[-2000:]
    return lines[0]
