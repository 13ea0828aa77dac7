"""SQL tables and queries (SQLite, PostgreSQL, any SQLAlchemy URL), read in batches.

Credentials never live in the spec: the spec names an environment variable holding
the whole URL (``url_env``) or just the password (``password_env``). A secrets file
(``SYNTHGEN_SECRETS_FILE``, YAML ``NAME: value``, mode 0600) may stand in for the
environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, NoSuchModuleError, SQLAlchemyError

from synthgen.errors import SourceError
from synthgen.sources.base import Source
from synthgen.sources.messages import read_error, redact
from synthgen.sources.secrets import secret

_BATCH_ROWS = 50_000


class SqlSource(Source):
    kind = "sql"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        src = spec.source
        raw: str | None = src.url
        if src.url_env:
            raw = secret(src.url_env)
            if not raw:
                raise SourceError(f"environment variable {src.url_env} (source.url_env) is not set")
        assert raw is not None
        try:
            url: URL = make_url(raw.strip())
        except (ArgumentError, ValueError):  # the message may quote the URL, password and all
            raise SourceError("source URL is not a valid SQLAlchemy URL") from None
        if url.host and "@" in url.host:
            # An unencoded '@' in the password: what follows it would be shown as the host.
            raise SourceError("source URL: its host contains '@'; write an '@' in the password as %40")
        if src.password_env:
            pw = secret(src.password_env)
            if pw is None:
                raise SourceError(f"environment variable {src.password_env} (source.password_env) is not set")
            url = url.set(password=pw)
        if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
            db = Path(url.database)
            if not db.is_absolute():
                db = spec.base_dir / db
            if not db.is_file():
                raise SourceError(f"SQLite database not found: {db}")
            url = url.set(database=str(db))
        self._url = url
        # Shown in messages and part of the budget ledger's key: no password, and no query options
        # (``?password=...``, ``?sslkey=...`` can carry secrets too).
        self._where = url.set(query={}).render_as_string(hide_password=True)
        self._sql = src.query or f"SELECT * FROM {_quote_table(src.table)}"

    def describe(self) -> str:
        what = "query" if self.spec.source.query else f"table {self.spec.source.table}"
        return f"sql {what} at {self._where}"

    def _engine(self) -> Engine:
        try:
            return create_engine(self._url)
        except (NoSuchModuleError, ImportError) as exc:
            raise SourceError(f"no database driver for {self._url.drivername}: {exc}") from None

    def _fail(self, exc: SQLAlchemyError) -> SourceError:
        orig = getattr(exc, "orig", None) or exc
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if isinstance(exc, DataError):  # "invalid input syntax for type integer: <a cell value>"
            first = redact(first)
        # Never echo the URL with its password: _where is already redacted.
        return SourceError(f"cannot read {self.describe()}: {first}")

    def sample(self, n: int = 10_000) -> pl.DataFrame:
        engine = self._engine()
        try:
            with engine.connect() as conn:
                result = conn.execute(text(self._sql))
                cols = list(result.keys())
                rows = result.fetchmany(n)
            return pl.DataFrame([tuple(r) for r in rows], schema=cols, orient="row", infer_schema_length=None)
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        finally:
            engine.dispose()

    def sink_parquet(self, path: Path) -> None:
        engine = self._engine()
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        try:
            with engine.connect().execution_options(stream_results=True) as conn:
                for batch in pl.read_database(
                    text(self._sql), conn, iter_batches=True, batch_size=_BATCH_ROWS, infer_schema_length=None
                ):
                    table = batch.to_arrow()
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(path, schema, compression="zstd")
                    else:
                        table = table.cast(schema)
                    writer.write_table(table)
            if writer is None:  # no rows at all: still write an empty file with the columns
                sample = self.sample(0)
                sample.write_parquet(path)
        except SQLAlchemyError as exc:
            raise self._fail(exc) from None
        except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
            raise SourceError(read_error(exc, self.describe())) from None
        finally:
            if writer is not None:
                writer.close()
            engine.dispose()


def _quote_table(name: str | None) -> str:
    assert name is not None
    parts = name.strip().split(".")
    for p in parts:
        if not p.replace("_", "").isalnum():
            raise SourceError(f"source.table {name!r}: use a plain (schema.)table name, or `query`")
    return ".".join(f'"{p}"' for p in parts)
