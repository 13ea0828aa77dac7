"""Column type inference from a sample, with spec overrides winning.

Inference reads real rows, so it is a (small) disclosure of *schema*, not of
values: it decides each column's logical type (an identifier is a column whose name says so,
``client id``, ``ClientID``, ``ID``, ``patient_no``, holding unique values, or unique integers
filling a range with no gap: a row number; its values are never modelled), and (from the whole
snapshot, in ``stages.ingest``) whether it holds any missing value. Under DP, bounds and
category lists are never taken from here; they come from the spec or from
DP mechanisms (P2). Declare types in the spec to remove the type read. Under DP the
nullability bit is not used either: every column gets a null token and the model learns the
null rate through DP (``models.dp_input``); outside DP it is used as read.
"""

from __future__ import annotations

import re

import polars as pl

from synthgen.errors import SpecError
from synthgen.schema import ColumnSchema, ColumnType, TableSchema
from synthgen.spec import ColumnOverride

#: Names (normalised by :func:`_normalise`) that announce an identifier when the values are unique:
#: ``client id``, ``ClientID``, ``customer-id``, ``ID``, ``patient_no``, ``account number``, ``userid``.
_ID_NAME = re.compile(
    r"(^|_)(id|ids|uuid|guid|key|no|nr|num|number)$"
    r"|(client|customer|cust|user|patient|member|account|acct|person|employee|emp|subject|record|row"
    r"|visit|order|transaction|txn|case|claim|loan|policy)id$"
)
#: At least this many rows before unique consecutive integers are read as a row number (``index``,
#: ``Unnamed: 0``, ``#``) whatever the column's name.
_ROW_NUMBER_MIN_ROWS = 1000
#: A string column whose values average more than this many characters and are
#: mostly distinct is free text rather than a category.
_TEXT_MEAN_CHARS = 40


def _normalise(name: str) -> str:
    """``Client ID`` / ``clientID`` / ``client-id`` -> ``client_id``."""
    split = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-z]+", "_", split.lower()).strip("_")


def _is_row_number(non_null: pl.Series) -> bool:
    """Unique integers filling a range with no gap (1..n, 100001..100000+n in any order)."""
    n = len(non_null)
    if n < _ROW_NUMBER_MIN_ROWS or non_null.n_unique() != n:
        return False
    lo, hi = non_null.min(), non_null.max()
    return isinstance(lo, int) and isinstance(hi, int) and hi - lo + 1 == n


def is_identifier(name: str, s: pl.Series) -> bool:
    """An identifier column: its name says so (``client id``, ``ID``, ``patient_no``) and its non-null
    values are unique, or it holds unique integers filling a range with no gap (a row number)."""
    dt = s.dtype
    if not (dt.is_integer() or dt in (pl.String, pl.Categorical, pl.Enum)):
        return False
    non_null = s.drop_nulls()
    unique = len(non_null) > 1 and non_null.n_unique() == len(non_null)
    if unique and _ID_NAME.search(_normalise(name)) is not None:
        return True
    return dt.is_integer() and s.null_count() == 0 and _is_row_number(non_null)


def _infer_type(name: str, s: pl.Series) -> ColumnType:
    dt = s.dtype
    if dt == pl.Boolean:
        return ColumnType.boolean
    if dt.is_temporal():
        return ColumnType.datetime
    non_null = s.drop_nulls()
    n = max(len(non_null), 1)
    if dt.is_numeric():
        return ColumnType.id if is_identifier(name, s) else ColumnType.numeric
    if dt in (pl.String, pl.Categorical, pl.Enum):
        strs = non_null.cast(pl.String)
        uniq = strs.n_unique() / n
        mean = strs.str.len_chars().mean()
        mean_len = float(mean) if isinstance(mean, int | float) else 0.0
        if mean_len >= _TEXT_MEAN_CHARS and uniq > 0.5:
            return ColumnType.text
        if is_identifier(name, s):
            return ColumnType.id
        return ColumnType.categorical
    return ColumnType.categorical


def _whole_floats(s: pl.Series) -> bool:
    """A float column whose sampled values are all whole numbers (``1.0``, ``2.0``, blanks): a
    pandas export of an integer column with nulls, or codes written as floats. Read like the
    storage type (README, "What neither covers"); ``privacy.schema: declared`` removes the read."""
    if not s.dtype.is_float():
        return False
    vals = s.drop_nulls().drop_nans()
    return len(vals) > 0 and bool((vals == vals.floor()).all())


def _separator_hint(columns: list[str]) -> str:
    """A hint when a CSV was split on the wrong separator: one column whose name holds another."""
    if len(columns) != 1:
        return ""
    found = [sep for sep in (",", ";", "\t", "|") if sep in columns[0]]
    if not found:
        return ""
    shown = "tab" if found[0] == "\t" else repr(found[0])
    return f"; the file read as one column: is source.separator wrong? its header holds {shown}"


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
            f"(the source has: {', '.join(sample.columns)}){_separator_hint(sample.columns)}"
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
            "integer": dtype.is_integer() or _whole_floats(s),
            "date": dtype == pl.Date,
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
            if o.integer is not None:
                fields["integer"] = o.integer
            if o.date is not None:
                fields["date"] = o.date
        try:
            cols.append(ColumnSchema(**fields))
        except ValueError as exc:
            raise SpecError(f"columns.{name}: {exc}") from None
    return TableSchema(columns=cols)
