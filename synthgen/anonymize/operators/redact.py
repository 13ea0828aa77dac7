"""``redact``: the column is kept with every value null; inside text, the span is removed."""

from __future__ import annotations

import polars as pl

from synthgen.anonymize.operators.base import Operator


class Redact(Operator):
    name = "redact"

    def span(self, value: str, entity: str) -> str:
        return ""

    def column(self, values: pl.Series, entity: str) -> pl.Series | None:
        return pl.Series(values.name, [None] * len(values), dtype=pl.String)
