"""Column type inference from a sample, with spec overrides winning.

Inference reads real rows, so it is a (small) disclosure of *schema*, not of
values: it decides each column's logical type, and (from the whole snapshot, in
``pipeline.ingest``) whether it holds any missing value. Under DP, bounds and
category lists are never taken from here; they come from the spec or from
DP mechanisms (P2). Declare types in the spec to remove the type read; the
nullability bit is not DP (a synthetic null shows the real column had one).
"""

from __future__ import annotations

import re

import polars as pl

from synthgen.errors import SpecError
from synthgen.schema import ColumnSchema, ColumnType, TableSchema
from synthgen.spec import ColumnOverride

_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$", re.IGNORECASE)
#: A string column whose values average more than this many characters and are
#: mostly distinct is free text rather than a category.
_TEXT_MEAN_CHARS = 40


def _infer_type(name: str, s: pl.Series) -> ColumnType:
    dt = s.dtype
    if dt == pl.Boolean:
        return ColumnType.boolean
    if dt.is_temporal():
        return ColumnType.datetime
    non_null = s.drop_nulls()
    n = max(len(non_null), 1)
    if dt.is_numeric():
        if _ID_NAME.search(name) and dt.is_integer() and non_null.n_unique() == len(non_null) and n > 1:
            return ColumnType.id
        return ColumnType.numeric
    if dt in (pl.String, pl.Categorical, pl.Enum):
        strs = non_null.cast(pl.String)
        uniq = strs.n_unique() / n
        mean = strs.str.len_chars().mean()
        mean_len = float(mean) if isinstance(mean, int | float) else 0.0
        if mean_len >= _TEXT_MEAN_CHARS and uniq > 0.5:
            return ColumnType.text
        if _ID_NAME.search(name) and uniq == 1.0 and n > 1:
            return ColumnType.id
        return ColumnType.categorical
    return ColumnType.categorical


def infer_schema(
    sample: pl.DataFrame,
    overrides: dict[str, ColumnOverride] | None = None,
    text_columns: list[str] | None = None,
) -> TableSchema:
    """Schema of ``sample``: inferred types, then the spec's per-column overrides."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(sample.columns))
    if unknown:
        raise SpecError(
            f"columns: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(the source has: {', '.join(sample.columns)})"
        )
    text_columns = text_columns or []
    cols: list[ColumnSchema] = []
    for name in sample.columns:
        s = sample[name]
        o = overrides.get(name)
        if s.dtype.is_nested() and not (o is not None and o.type == ColumnType.id):
            raise SpecError(
                f"column {name!r} holds nested values ({s.dtype}); synthgen models flat columns: "
                f"set columns.{name}.type: id to leave it out, or flatten it first"
            )
        ctype = ColumnType.text if name in text_columns else _infer_type(name, s)
        dtype = s.dtype
        fields: dict = {
            "name": name,
            "type": ctype,
            "nullable": s.null_count() > 0 or len(s) == 0,
            "integer": dtype.is_integer(),
        }
        if o is not None:
            if o.type is not None:
                fields["type"] = o.type
            if o.pii is not None:
                fields["pii"] = o.pii
            if o.bounds is not None:
                fields["bounds"] = o.bounds
            if o.categories is not None:
                fields["categories"] = o.categories
        try:
            cols.append(ColumnSchema(**fields))
        except ValueError as exc:
            raise SpecError(f"columns.{name}: {exc}") from None
    return TableSchema(columns=cols)
