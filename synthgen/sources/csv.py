"""CSV files, scanned lazily (streaming sink to Parquet)."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from functools import cached_property

import polars as pl

from synthgen.schema import TEMPORAL_PARSERS, ColumnType
from synthgen.sources.base import FileSource

_INFER_ROWS = 10_000
#: Rows read to find a ragged row for the error message (the read already failed).
_RAGGED_SCAN_ROWS = 5_000_000
#: How to re-parse a column as the type polars' error names (its short names), to find the bad row.
_PARSES: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "i64": lambda e: e.cast(pl.Int64, strict=False),
    "f64": lambda e: e.cast(pl.Float64, strict=False),
    "bool": lambda e: e.cast(pl.Boolean, strict=False),
    "date": lambda e: e.str.to_date(strict=False),
}


class CsvSource(FileSource):
    kind = "csv"

    def _raw(self) -> pl.LazyFrame:
        # A ragged line (too many fields) is an error, not silently truncated. Columns the spec
        # types as categorical/text/id are read as text, whatever the first rows look like.
        as_text = {
            name: pl.String
            for name, o in self.spec.columns.items()
            if o.type in (ColumnType.categorical, ColumnType.text, ColumnType.id)
        }
        return pl.scan_csv(
            self.path,
            separator=self.spec.source.separator,
            comment_prefix=self.spec.source.comment_prefix,
            infer_schema_length=_INFER_ROWS,
            truncate_ragged_lines=False,
            schema_overrides=as_text or None,
        )

    def header(self) -> list[str] | None:
        """The header's fields as written (polars renames a repeated one ``NAME_duplicated_0``);
        ``None`` when Python's reader cannot split it (a field over its size limit)."""
        prefix = self.spec.source.comment_prefix
        try:
            with open(self.path, encoding="utf-8-sig", errors="replace", newline="") as fh:
                lines = (line for line in fh if not (prefix and line.startswith(prefix)))
                return next(csv.reader(lines, delimiter=self.spec.source.separator), None)
        except (OSError, csv.Error):
            return None

    def read_hint(self, exc: BaseException) -> str:
        if self.spec.source.comment_prefix is None:
            try:
                with open(self.path, "rb") as fh:
                    first = fh.read(1)
            except OSError:
                return ""
            if first == b"#":
                return (
                    "; the file starts with a '#' line: set source.comment_prefix: '#' to skip comment lines"
                )
        if "more fields than defined" in str(exc):
            return self._ragged_hint()
        return ""

    def _ragged_hint(self) -> str:
        """Where the first row with more fields than the header is (row and field counts only:
        no value), and whether the first line looks like no header at all (scikit-learn's
        bundled CSVs start with a line of counts and class names)."""
        prefix = self.spec.source.comment_prefix
        try:
            with open(self.path, encoding="utf-8", errors="replace", newline="") as fh:
                lines = (line for line in fh if not (prefix and line.startswith(prefix)))
                rows = csv.reader(lines, delimiter=self.spec.source.separator)
                header = len(next(rows, []))
                scanned = enumerate(itertools.islice(rows, _RAGGED_SCAN_ROWS), start=1)
                found = next(((i, len(row)) for i, row in scanned if len(row) > header), None)
        except (OSError, csv.Error):
            return ""
        if found is None:
            return ""
        number, fields = found
        where = f"; data row {number:,} has {fields} fields, the header {header}"
        if number == 1:
            return where + ": is the first line a header? write one with a name per field"
        return where + ": quote the field that holds the separator, or fix that row"

    def locate_bad_value(self, column: str, dtype: str) -> int | None:
        parse = _PARSES.get(dtype)
        if parse is None:
            return None
        as_text = pl.scan_csv(
            self.path,
            separator=self.spec.source.separator,
            comment_prefix=self.spec.source.comment_prefix,
            infer_schema_length=0,
        )
        bad = pl.col(column).is_not_null() & parse(pl.col(column)).is_null()
        hit = as_text.with_row_index("_row").filter(bad).select("_row").head(1).collect()
        return int(hit.item()) + 1 if hit.height else None

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
        Detection runs the very expression the scan will run. Datetimes with UTC offsets
        become naive UTC (one time base for the model). A column the spec types as anything
        but ``datetime`` is left as it is.
        """
        sample = self._raw_sample
        casts: list[pl.Expr] = []
        for name, dtype in sample.schema.items():
            override = self.spec.columns.get(name)
            if dtype != pl.String or (override and override.type not in (None, ColumnType.datetime)):
                continue
            values = sample.select(pl.col(name).drop_nulls())
            if values.is_empty():
                continue
            for parse in TEMPORAL_PARSERS:
                try:
                    values.head(20).select(parse(pl.col(name)))  # cheap rejection first
                    values.select(parse(pl.col(name)))
                except (pl.exceptions.PolarsError, ValueError):
                    continue
                casts.append(parse(pl.col(name)))
                break
        return casts

    def scan(self) -> pl.LazyFrame:
        lf = self._raw()
        return lf.with_columns(self._temporal) if self._temporal else lf
