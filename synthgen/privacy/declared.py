"""``privacy.schema: declared``: the steward's switch that removes every type read from real rows.

Column types the spec leaves out are inferred from a sample of real rows (not DP: it
reveals which columns look numeric, datetime or categorical). With ``declared``, a DP run
takes every type from the spec and refuses, before any DP mechanism or budget reservation,
a column the spec does not type. That includes whether a numeric column holds integers and
whether a datetime column holds dates only (:func:`declared_storage`): the data's dtype is a
read of its rows too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from synthgen.errors import SpecError
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnType, TableSchema


def require_declared_types(privacy: PrivacySettings, columns: Mapping[str, Any], schema: TableSchema) -> None:
    """Raise :class:`SpecError` (exit 2) naming the columns of ``schema`` that ``columns`` leaves untyped."""
    if not privacy.dp or privacy.schema_source != "declared":
        return
    missing = [c.name for c in schema.columns if getattr(columns.get(c.name), "type", None) is None]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SpecError(
            f"privacy.schema is declared but column(s) {shown} have no type in the spec: "
            "set columns.<name>.type for each, or privacy.schema: inferred"
        )


def declared_storage(
    privacy: PrivacySettings, columns: Mapping[str, Any], schema: TableSchema, frame: pl.DataFrame
) -> tuple[TableSchema, pl.DataFrame]:
    """Under DP with ``privacy.schema: declared``: integers and dates only as the spec says.

    A CSV (or JSON) column of whole numbers is read as Int64 until one row holds ``2.5``, then as
    Float64; a column of calendar dates is read as Date until one row holds a time of day, then
    as Datetime. The encoder took its integer grid, spikes and output dtype from that, so one row
    decided, deterministically, whether every synthetic value is a whole number (or a date) and
    what type the published column has. Here the flags are ``columns.<name>.integer`` and
    ``columns.<name>.date`` (false when unset), and the frame's numeric columns become Float64
    and its Date columns Datetime, value by value (1-stable), so the encoder never sees the
    data's dtype.
    """
    if not privacy.dp or privacy.schema_source != "declared":
        return schema, frame
    cols = []
    casts = []
    for c in schema.columns:
        declared = columns.get(c.name)
        dtype = frame.schema.get(c.name)
        if c.type == ColumnType.numeric:
            c = c.model_copy(update={"integer": bool(getattr(declared, "integer", None))})
            if dtype is not None and dtype.is_numeric():
                casts.append(pl.col(c.name).cast(pl.Float64))
        elif c.type == ColumnType.datetime:
            c = c.model_copy(update={"date": bool(getattr(declared, "date", None))})
            if dtype == pl.Date:
                casts.append(pl.col(c.name).cast(pl.Datetime("us")))
        cols.append(c)
    return TableSchema(columns=cols), frame.with_columns(casts) if casts else frame
