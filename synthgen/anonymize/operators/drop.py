"""``drop``: remove the identifier column; inside text, remove the span."""

from __future__ import annotations

import polars as pl

from synthgen.anonymize.operators.base import Operator


class Drop(Operator):
    name = "drop"

    def span(self, value: str, entity: str) -> str:
        return ""

    def column(self, values: pl.Series, entity: str) -> pl.Series | None:
        return None
