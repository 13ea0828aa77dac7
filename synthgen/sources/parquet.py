"""Parquet files, scanned lazily."""

from __future__ import annotations

import polars as pl

from synthgen.sources.base import FileSource


class ParquetSource(FileSource):
    kind = "parquet"

    def scan(self) -> pl.LazyFrame:
        return pl.scan_parquet(self.path)
