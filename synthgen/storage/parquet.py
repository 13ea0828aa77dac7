"""Parquet to and from a zone, streaming: memory is one row group plus one upload part.

Works on local and object-store zones alike: it uses only ``atomic_write`` and ``open``.
A file is read row group by row group (:func:`row_group_batches`), so memory is one
row group whatever the file size.
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


def row_group_batches(
    source: pq.ParquetFile, *, batch_rows: int = ROW_GROUP_ROWS
) -> Iterator[pa.RecordBatch]:
    """The record batches of ``source``, decoding one row group at a time.

    Not ``ParquetFile.iter_batches``: in pyarrow 26 it reads ahead over the whole file (a 256 MiB
    file of 1 MiB row groups peaked at ~400 MB RSS, against ~105 MB row group by row group;
    ``bench/results/storage.json``).
    """
    for i in range(source.num_row_groups):
        yield from source.read_row_group(i).to_batches(max_chunksize=batch_rows)


def iter_batches(
    zone: Any, rel: str | os.PathLike[str], *, batch_rows: int = ROW_GROUP_ROWS
) -> Iterator[pa.RecordBatch]:
    """The record batches of the Parquet file at ``rel``, fetching one row group's byte range at a time."""
    with zone.open(rel, "rb") as fh:
        yield from row_group_batches(pq.ParquetFile(fh), batch_rows=batch_rows)


def read_schema(zone: Any, rel: str | os.PathLike[str]) -> pa.Schema:
    """The Arrow schema of the Parquet file at ``rel`` (reads the footer only)."""
    with zone.open(rel, "rb") as fh:
        return pq.ParquetFile(fh).schema_arrow


def split_parts(src: str | os.PathLike[str], dest: str | os.PathLike[str], part_rows: int) -> list[str]:
    """Rewrite the local Parquet file ``src`` as ``dest/part-NNNNN.parquet`` files of at most
    ``part_rows`` rows each, in row order, in one streaming pass (memory: one batch).

    Returns the part file names. The parts are the unit of work that anonymization maps over.
    """
    names: list[str] = []
    writer: pq.ParquetWriter | None = None
    in_part = 0
    pf = pq.ParquetFile(src)
    try:
        for batch in pf.iter_batches(batch_size=min(part_rows, 65_536)):
            offset = 0
            while offset < batch.num_rows:
                if writer is None or in_part == part_rows:
                    if writer is not None:
                        writer.close()
                    names.append(f"part-{len(names):05d}.parquet")
                    writer = pq.ParquetWriter(os.path.join(dest, names[-1]), pf.schema_arrow)
                    in_part = 0
                take = min(part_rows - in_part, batch.num_rows - offset)
                writer.write_batch(batch.slice(offset, take))
                in_part += take
                offset += take
    finally:
        if writer is not None:
            writer.close()
    return names
