"""JSON Lines text documents: one JSON object per line, the text in ``source.text_field``."""

from __future__ import annotations

import polars as pl

from synthgen.errors import SourceError
from synthgen.sources.base import FileSource


class JsonlSource(FileSource):
    kind = "jsonl"

    def scan(self) -> pl.LazyFrame:
        return pl.scan_ndjson(self.path, infer_schema_length=10_000)

    def sample(self, n: int = 10_000) -> pl.DataFrame:
        frame = super().sample(n)
        field = self.spec.source.text_field
        if field not in frame.columns:
            raise SourceError(
                f"{self.describe()}: no field {field!r} in the documents "
                f"(fields: {', '.join(frame.columns)}); set source.text_field"
            )
        return frame
