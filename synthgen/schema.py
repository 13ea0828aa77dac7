"""Column schema shared by every stage.

A :class:`ColumnSchema` says what a column *is* (its logical type) and what is
publicly known about it (bounds, category list). Public facts come from the
pipeline spec and are free under differential privacy; anything learned from
the data itself must go through a DP mechanism (see :mod:`synthgen.privacy`).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

#: Unicode categories refused in a column name: control characters (NUL, tab, newline, ...) and
#: the line and paragraph separators. polars panics on a NUL in a name when it writes Arrow, and a
#: line break in a name cannot be written back into a spec or a one-line message.
_NAME_BAD_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def control_character(name: str) -> str | None:
    """The first control character or line separator in a column name (``None``: the name is fine)."""
    return next((c for c in name if unicodedata.category(c) in _NAME_BAD_CATEGORIES), None)


class ColumnType(str, Enum):
    numeric = "numeric"
    categorical = "categorical"
    datetime = "datetime"
    boolean = "boolean"
    text = "text"
    id = "id"


class ColumnSchema(BaseModel):
    """One column: its type, and what the spec declares public about it.

    ``bounds`` and ``categories`` are *public* only when they come from the
    spec (``public=True``); values inferred from the data are never public.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    type: ColumnType
    nullable: bool = True
    #: Presidio entity type when the column is a direct identifier (EMAIL_ADDRESS, ...).
    pii: str | None = None
    #: Public bounds (lower, upper) for numeric/datetime columns, declared in the spec.
    bounds: tuple[float, float] | None = None
    #: Public category list for categorical columns, declared in the spec.
    categories: list[str] | None = None
    #: Numeric column holding only integers (restored on generation).
    integer: bool = False
    #: Datetime column of calendar dates, no time of day (generated as dates).
    date: bool = False

    @model_validator(mode="after")
    def _check(self) -> ColumnSchema:
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"bounds must satisfy lower < upper, got {list(self.bounds)}")
        if self.categories is not None and len(self.categories) == 0:
            raise ValueError("categories must not be empty")
        return self


class TableSchema(BaseModel):
    """Ordered columns of a table."""

    model_config = ConfigDict(extra="forbid")

    columns: list[ColumnSchema]

    def __getitem__(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def of_type(self, *types: ColumnType) -> list[ColumnSchema]:
        return [c for c in self.columns if c.type in types]


#: Parsers of date/time strings (for a polars Series or Expr), tried in turn: date, naive
#: datetime, then datetime with a UTC offset, made naive UTC (one time base for the model).
TEMPORAL_PARSERS: tuple[Callable[[Any], Any], ...] = (
    lambda x: x.str.to_date(strict=True),
    lambda x: x.str.to_datetime(strict=True),
    lambda x: x.str.to_datetime(strict=True, time_zone="UTC").dt.replace_time_zone(None),
)
