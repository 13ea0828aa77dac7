"""Source readers, one module per kind, chosen by ``source.kind``."""

from __future__ import annotations

from synthgen.sources.base import FileSource, Source, refuse_bad_column_names
from synthgen.sources.csv import CsvSource
from synthgen.sources.infer import infer_schema
from synthgen.sources.jsonl import JsonlSource
from synthgen.sources.parquet import ParquetSource
from synthgen.sources.sql import SqlSource
from synthgen.spec import PipelineSpec

_KINDS: dict[str, type[Source]] = {
    "csv": CsvSource,
    "parquet": ParquetSource,
    "jsonl": JsonlSource,
    "sql": SqlSource,
}


def open_source(spec: PipelineSpec) -> Source:
    return _KINDS[spec.source.kind](spec)


__all__ = ["FileSource", "Source", "infer_schema", "open_source", "refuse_bad_column_names"]
