"""Bring real and synthetic tables onto one comparable footing.

Every metric compares columns by name, so the first step decides which columns can be
compared and how: each compared column is *numeric* (Float64; datetimes become epoch
seconds) or *categorical* (String; booleans and integer codes become their text). Text
and identifier columns are left to the PII leak scan. Differences between the real and
the synthetic schema (missing or extra columns, other dtypes) are collected as issues
for the report instead of failing the whole evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from synthgen.schema import ColumnType, TableSchema
from synthgen.sources.infer import is_identifier

Kind = Literal["numeric", "categorical"]

#: A string column with more distinct values than this (and than 5% of rows) is treated as free text.
_MAX_INFERRED_CATEGORIES = 200


@dataclass
class AlignedData:
    """Train, holdout and synthetic rows restricted to the compared columns, normalised alike."""

    train: pl.DataFrame
    holdout: pl.DataFrame
    synthetic: pl.DataFrame
    #: Compared columns, in real-data order, and how each is compared.
    kinds: dict[str, Kind]
    #: Real columns left out of the comparison, with the reason.
    excluded: dict[str, str] = field(default_factory=dict)
    #: Differences between the real and the synthetic (or holdout) schema.
    issues: list[str] = field(default_factory=list)
    #: Per real column: (declared or inferred type, real dtype, synthetic dtype or None).
    column_info: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)

    @property
    def numeric(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [c for c, k in self.kinds.items() if k == "categorical"]


def _dtype_family(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "numeric"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_temporal():
        return "temporal"
    if dtype == pl.String or isinstance(dtype, pl.Enum | pl.Categorical):
        return "string"
    return "other"


def _infer_type(series: pl.Series) -> ColumnType:
    family = _dtype_family(series.dtype)
    if family == "numeric":
        return ColumnType.numeric
    if family == "boolean":
        return ColumnType.boolean
    if family == "temporal":
        return ColumnType.datetime
    if family == "string":
        distinct = series.n_unique()
        if distinct <= max(_MAX_INFERRED_CATEGORIES, 0.05 * series.len()) or distinct <= 2:
            return ColumnType.categorical
        return ColumnType.text
    return ColumnType.id


def _as_numeric(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    family = _dtype_family(dtype)
    if family == "temporal":
        if dtype == pl.Date:
            return expr.cast(pl.Int64).cast(pl.Float64) * 86_400.0
        if dtype == pl.Time or isinstance(dtype, pl.Duration):
            return expr.to_physical().cast(pl.Float64)
        return expr.dt.epoch("us").cast(pl.Float64) / 1e6
    if family == "boolean":
        return expr.cast(pl.Float64)
    return expr.cast(pl.Float64, strict=False)


def _as_category(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype.is_float():
        # Integer codes written as floats by a model (1.0) must match the real "1".
        rounded = expr.round(0)
        return (
            pl.when(expr == rounded)
            .then(rounded.cast(pl.Int64, strict=False).cast(pl.String))
            .otherwise(expr.cast(pl.String))
        )
    if dtype == pl.Boolean:
        return expr.cast(pl.String).str.to_lowercase()
    if dtype == pl.String:
        return expr
    return expr.cast(pl.String)


def _normalise(frame: pl.DataFrame, kinds: dict[str, Kind]) -> pl.DataFrame:
    exprs = []
    for name, kind in kinds.items():
        dtype = frame.schema[name]
        if kind == "numeric":
            # NaN, +-inf and null all mean "missing" from here on (as in the models); metrics
            # then need one check, not three.
            value = _as_numeric(pl.col(name), dtype)
            exprs.append(pl.when(value.is_finite()).then(value).otherwise(None).alias(name))
        else:
            exprs.append(_as_category(pl.col(name), dtype).alias(name))
    return frame.select(exprs) if exprs else frame.select([])


def _declared_booleans(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``frame`` with its columns ``names`` as Boolean where their values allow it."""
    from synthgen.errors import ModelError
    from synthgen.models.encoding import as_boolean

    for name in names:
        if name in frame.columns and frame.schema[name] != pl.Boolean:
            try:
                frame = frame.with_columns(as_boolean(frame[name], name))
            except (ModelError, pl.exceptions.PolarsError):
                continue  # not boolean-like: compared as it is, and the dtype issue is reported
    return frame


def align(
    *,
    train: pl.DataFrame,
    holdout: pl.DataFrame,
    synthetic: pl.DataFrame,
    schema: TableSchema | None,
) -> AlignedData:
    """Decide the compared columns and normalise the three tables to them.

    The real training rows are the reference: a column the synthetic table lacks is
    reported and left out; an extra synthetic column is reported and ignored; a
    synthetic numeric column that cannot be read as numbers is reported and left out.
    """
    declared = {c.name: c.type for c in schema.columns} if schema is not None else {}
    kinds: dict[str, Kind] = {}
    excluded: dict[str, str] = {}
    issues: list[str] = []
    info: dict[str, tuple[str, str, str | None]] = {}

    # An undeclared identifier (``client id``) is one the pipeline leaves out, as at ingest.
    types = {
        c: declared.get(c) or (ColumnType.id if is_identifier(c, train[c]) else _infer_type(train[c]))
        for c in train.columns
    }
    # A column declared boolean is read as Boolean by the model (yes/no, y/n, t/f, 1/0: the
    # encoder's own mapping) and generated as Boolean: read the real rows the same way, or "yes"
    # never matches "true" and the column looks collapsed into unseen values.
    train, holdout, synthetic = (
        _declared_booleans(f, [c for c, t in types.items() if t == ColumnType.boolean])
        for f in (train, holdout, synthetic)
    )
    # Identifier and text columns the pipeline leaves out on purpose are not a schema problem.
    missing_syn = [
        c
        for c in train.columns
        if c not in synthetic.columns and types[c] not in (ColumnType.text, ColumnType.id)
    ]
    extra_syn = [c for c in synthetic.columns if c not in train.columns]
    if missing_syn:
        issues.append(f"synthetic data lacks real column(s): {', '.join(missing_syn)}")
    if extra_syn:
        issues.append(f"synthetic data has column(s) not in the real data (ignored): {', '.join(extra_syn)}")

    for name in train.columns:
        ctype = types[name]
        syn_dtype = synthetic.schema.get(name)
        info[name] = (ctype.value, str(train.schema[name]), None if syn_dtype is None else str(syn_dtype))
        if ctype in (ColumnType.text, ColumnType.id) and syn_dtype is None:
            excluded[name] = f"{ctype.value} column: left out of the synthetic data on purpose"
            continue
        if ctype in (ColumnType.text, ColumnType.id):
            excluded[name] = f"{ctype.value} column: covered by the PII leak scan, not by tabular metrics"
            continue
        if syn_dtype is None:
            excluded[name] = "missing from the synthetic data"
            continue
        if name not in holdout.columns:
            excluded[name] = "missing from the holdout"
            issues.append(f"holdout lacks real column {name!r}")
            continue
        kind: Kind = "numeric" if ctype in (ColumnType.numeric, ColumnType.datetime) else "categorical"
        real_family = _dtype_family(train.schema[name])
        syn_family = _dtype_family(syn_dtype)
        if real_family != syn_family:
            issues.append(
                f"column {name!r}: real dtype {train.schema[name]} but synthetic {syn_dtype}"
                f" (compared as {kind})"
            )
            if kind == "numeric":
                converted = synthetic.select(_as_numeric(pl.col(name), syn_dtype))[name]
                lost = converted.null_count() - synthetic[name].null_count()
                if lost > 0:
                    excluded[name] = f"{lost} synthetic value(s) cannot be read as numbers"
                    continue
        kinds[name] = kind

    return AlignedData(
        train=_normalise(train, kinds),
        holdout=_normalise(holdout, kinds),
        synthetic=_normalise(synthetic, kinds),
        kinds=kinds,
        excluded=excluded,
        issues=issues,
        column_info=info,
    )
