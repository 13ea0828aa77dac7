"""Read errors that name the column and the row, never a cell value.

polars and Arrow quote the offending value ("could not parse `john.doe@example.com` as dtype
`i64` at column 'age'"). A source holds real data, so its values stay out of every message,
log line and exception: a parse error becomes the column, the expected type and the row number;
any other reader message has its quoted parts removed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: polars: could not parse `VALUE` as dtype `T` at column 'C' (column number N)
_POLARS_PARSE = re.compile(
    r"could not parse `.*?` as dtype `(?P<dtype>[^`]*)` at column '(?P<col>[^']*)'", re.S
)
#: polars: conversion from `str` to `date` failed in column 'C' for 1 out of N values: ["VALUE"]
_POLARS_CAST = re.compile(r"conversion from `[^`]*` to `(?P<dtype>[^`]*)` failed in column '(?P<col>[^']*)'")
#: Arrow: Failed to parse string: 'VALUE' as a scalar of type int64
_ARROW_PARSE = re.compile(r"Failed to parse string: '.*?' as a scalar of type (?P<dtype>\w+)", re.S)
_QUOTED = re.compile(r"`[^`]*`|'[^']*'|\"[^\"]*\"")
#: Longest reader message kept (after redaction).
MAX_DETAIL = 200

Locate = Callable[[str, str], int | None]


def redact(text: str) -> str:
    """``text`` with every quoted part (where readers put values) replaced by ``<…>``."""
    return _QUOTED.sub("<…>", text)


def read_error(exc: BaseException, where: str, locate: Locate | None = None) -> str:
    """One line for a failed read of ``where``: column, type and row for a parse error, else the
    reader's first line with its quoted parts removed. ``locate(column, dtype)`` finds the 1-based row."""
    text = " ".join(str(exc).split())
    m = _POLARS_PARSE.search(text) or _POLARS_CAST.search(text)
    if m:
        col, dtype = m["col"], m["dtype"]
        row = _safe(locate, col, dtype)
        at = f" in data row {row:,}" if row else ""
        return (
            f"cannot read {where}: column {col!r} has a value that is not {dtype}{at} (the type was "
            f"inferred from the first rows); fix the value, or set columns.{col}.type to "
            "categorical, text or id"
        )
    m = _ARROW_PARSE.search(text)
    if m:
        return (
            f"cannot read {where}: a value does not parse as {m['dtype']} (the type was inferred from "
            "the first rows); fix the value or cast it in the query"
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    detail = redact(first)
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    return f"cannot read {where}: {detail}"


def _safe(locate: Locate | None, column: str, dtype: str) -> int | None:
    if locate is None:
        return None
    try:
        return locate(column, dtype)
    except Exception:  # noqa: BLE001 - locating is best effort; the message stands without a row
        return None
