"""What a DP fit decides without reading the data: nullability, coercions, no data refusals.

Outside DP, the models read the raw columns to decide things (does a column hold nulls, is
it constant, does it parse as boolean or datetime) and refuse to run on some answers. Each
answer is one bit of one row, unprotected and uncharged: a single null row made the model
emit nulls, a single unparseable value stopped the run. Under DP these decisions go:

- every modelled column gets a null token, and DP-SGD (or the DP marginals) learns the
  null rate along with everything else;
- a value that does not parse as its declared type (boolean, datetime, numeric) becomes a
  null, row by row: a transformation of that row alone (1-stable, P10);
- a constant or all-null column is simply modelled (harmless under DP), and a categorical
  column with more than ``max_categories`` values is handled by DP discovery, which keeps
  at most that many and maps the rest to "other".

What stays a refusal is a check of the spec against the data's column names (public
schema), never of the values.
"""

from __future__ import annotations

import polars as pl

from synthgen.models.encoding import _FALSE, _TRUE
from synthgen.schema import ColumnType, TableSchema

#: ISO 8601 layouts tried on each value in turn (fixed: a format inferred from the data
#: would let one row decide how every other row parses).
_NAIVE = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")
_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")


def dp_schema(schema: TableSchema) -> TableSchema:
    """``schema`` with every column nullable: the null token is public, the null rate is learned."""
    return TableSchema(columns=[c.model_copy(update={"nullable": True}) for c in schema.columns])


def _lenient_datetime(s: pl.Series) -> pl.Series:
    """Each value parsed on its own by the first fixed ISO layout that takes it (offsets to
    naive UTC); anything else is null."""
    s = s.str.strip_chars().str.replace(r"Z$", "+00:00")
    parts = [s.str.strptime(pl.Datetime("us"), f, strict=False, exact=True) for f in _NAIVE]
    parts += [
        s.str.strptime(pl.Datetime("us", "UTC"), f, strict=False, exact=True).dt.replace_time_zone(None)
        for f in _OFFSET
    ]
    return pl.select(pl.coalesce(parts)).to_series().alias(s.name)


def _lenient_boolean(s: pl.Series) -> pl.Series:
    """true/false, yes/no, y/n, t/f or 1/0 (any case) as Boolean; anything else is null."""
    if s.dtype.is_numeric():
        strs = s.cast(pl.Int64, strict=False).cast(pl.String)
    else:
        strs = s.cast(pl.String).str.strip_chars().str.to_lowercase()
    expr = pl.when(strs.is_in(_TRUE)).then(True).when(strs.is_in(_FALSE)).then(False).otherwise(None)
    return pl.select(expr).to_series().alias(s.name)


def dp_coerce(frame: pl.DataFrame, schema: TableSchema) -> pl.DataFrame:
    """Values that do not parse as their column's declared type become nulls, row by row."""
    out = []
    for col in schema.columns:
        if col.name not in frame.columns:
            continue
        s = frame.get_column(col.name)
        if col.type == ColumnType.boolean and s.dtype != pl.Boolean:
            s = _lenient_boolean(s)
        elif col.type == ColumnType.datetime and s.dtype == pl.String:
            s = _lenient_datetime(s)
        elif col.type == ColumnType.numeric and not s.dtype.is_numeric():
            s = s.cast(pl.Float64, strict=False)
        out.append(s)
    return frame.with_columns(out)
