"""CSV files, scanned lazily (streaming sink to Parquet)."""

from __future__ import annotations

from functools import cached_property

import polars as pl

from synthgen.sources.base import FileSource

_INFER_ROWS = 10_000


class CsvSource(FileSource):
    kind = "csv"

    def _raw(self) -> pl.LazyFrame:
        # A ragged line (too many fields) is an error, not silently truncated.
        return pl.scan_csv(
            self.path,
            separator=self.spec.source.separator,
            infer_schema_length=_INFER_ROWS,
            truncate_ragged_lines=False,
        )

    @cached_property
    def _raw_sample(self) -> pl.DataFrame:
        return self._guard(lambda: self._raw().head(_INFER_ROWS).collect())

    def sample(self, n: int = 10_000) -> pl.DataFrame:
        if n <= _INFER_ROWS:
            return self._raw_sample.head(n).with_columns(self._temporal)
        return super().sample(n)

    @cached_property
    def _temporal(self) -> list[pl.Expr]:
        """Casts for string columns whose sampled values all parse as dates or datetimes.

        polars' own ``try_parse_dates`` costs ~10x the whole scan when combined with a long
        schema inference, so dates are detected once on a sample and cast in the lazy plan.
        """
        sample = self._raw_sample
        casts: list[pl.Expr] = []
        for name, dtype in sample.schema.items():
            if dtype != pl.String:
                continue
            values = sample[name].drop_nulls()
            if values.is_empty():
                continue
            for parse in (
                lambda s: s.str.to_date(strict=True),
                lambda s: s.str.to_datetime(strict=True),
            ):
                try:
                    parse(values.head(20))  # cheap rejection before parsing the whole sample
                    parse(values)
                except (pl.exceptions.PolarsError, ValueError):
                    continue
                casts.append(parse(pl.col(name)))
                break
        return casts

    def scan(self) -> pl.LazyFrame:
        lf = self._raw()
        return lf.with_columns(self._temporal) if self._temporal else lf
