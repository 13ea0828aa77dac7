"""Parquet to and from a zone, streaming: memory is one row group plus one upload part.

Works on local and object-store zones alike: it uses only ``atomic_write`` and ``open``.
pyarrow writes each row group's column chunks to the file as soon as the group is full, and
the object-store writer turns them into multipart-upload parts of
:data:`synthgen.storage.zone.BLOCK_SIZE`; reading fetches only the byte ranges of the row
group being decoded (plus the footer).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: Rows per row group: the unit of memory when writing and reading.
ROW_GROUP_ROWS = 64_000


def write_batches(
    zone: Any,
    rel: str | os.PathLike[str],
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch | pa.Table],
    *,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = "zstd",
) -> int:
    """Write ``batches`` as one Parquet file at ``rel`` in ``zone`` (atomically). Returns the row count."""
    rows = 0
    with (
        zone.atomic_write(rel) as fh,
        pq.ParquetWriter(fh, schema, compression=compression) as writer,
    ):
        for batch in batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch], schema=schema)
            writer.write_table(table, row_group_size=row_group_rows)
            rows += table.num_rows
    return rows


def iter_batches(
    zone: Any, rel: str | os.PathLike[str], *, batch_rows: int = ROW_GROUP_ROWS
) -> Iterator[pa.RecordBatch]:
    """The record batches of the Parquet file at ``rel``, read one row group's range at a time."""
    with zone.open(rel, "rb") as fh:
        yield from pq.ParquetFile(fh).iter_batches(batch_size=batch_rows)


def read_schema(zone: Any, rel: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of the Parquet file at ``rel`` (reads the footer only)."""
    with zone.open(rel, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow
