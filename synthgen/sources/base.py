"""Source readers: each turns one kind of source into polars, streaming where it can."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path

import polars as pl

from synthgen import pathvars
from synthgen.errors import SourceError
from synthgen.safe_yaml import quote
from synthgen.schema import control_character
from synthgen.sources.messages import read_error
from synthgen.spec import PipelineSpec


def refuse_bad_column_names(names: list[str], where: str) -> None:
    """Raise :class:`SourceError` (one line, exit 1) for a name holding a control character or
    a line break, or a name given to more than one column; ``names`` as the source writes them.

    polars panics on a NUL in a name when it converts to Arrow (after ingest, in anonymize), a
    line break in a name cannot go back into a spec, and polars' CSV reader renames a repeated
    name (``_duplicated_0``): the spec's override, the report and the output would each mean
    another column than the header says. Names are not values: the message may quote them.
    """
    for position, name in enumerate(names, start=1):
        bad = control_character(name)
        if bad is not None:
            raise SourceError(
                f"{where}: column {position} of {len(names)} is named {quote(name)}, which holds a "
                f"control character ({bad!r}); rename it in the source (control characters and line "
                "breaks are refused in column names)"
            )
    counts = Counter(names)
    for name, count in counts.items():
        if count > 1:
            at = [str(i) for i, n in enumerate(names, start=1) if n == name]
            raise SourceError(
                f"{where}: the column name {quote(name)} is used {count} times (columns "
                f"{', '.join(at[:-1])} and {at[-1]}); give each column its own name in the source"
            )


class Source(ABC):
    """A readable source. ``sink_parquet`` must stream (bounded memory) where the format allows."""

    kind: str

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec

    def header(self) -> list[str] | None:
        """The column names as the source itself writes them, before a reader renames any
        (``None``: the reader keeps them as they are, so its frame's names are the source's)."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """Where the data comes from, for messages (never contains secrets)."""

    @abstractmethod
    def sample(self, n: int = 10_000) -> pl.DataFrame:
        """The first ``n`` rows (schema inference, validation)."""

    @abstractmethod
    def sink_parquet(self, path: Path) -> None:
        """Write the whole source to ``path`` as Parquet."""


class FileSource(Source):
    """A source backed by a local file that polars can scan lazily."""

    def __init__(self, spec: PipelineSpec) -> None:
        super().__init__(spec)
        self.path = spec.source_path()
        # Messages show the path as the spec wrote it, never an expanded variable's value.
        self.shown = pathvars.shown(spec.source.path or "", self.path)
        if not self.path.exists():
            raise SourceError(f"source file not found: {self.shown}")
        if not self.path.is_file():
            raise SourceError(f"source path is not a file: {self.shown}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"source file is empty: {self.shown}")

    def describe(self) -> str:
        return f"{self.kind} {self.shown}"

    @abstractmethod
    def scan(self) -> pl.LazyFrame: ...

    def sample(self, n: int = 10_000) -> pl.DataFrame:
        return self._guard(lambda: self.scan().head(n).collect())

    def sink_parquet(self, path: Path) -> None:
        self._guard(lambda: self.scan().sink_parquet(path, compression="zstd"))

    def _guard(self, fn):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
            message = read_error(exc, self.describe(), self.locate_bad_value)
            raise SourceError(message + self.read_hint(exc)) from None

    def read_hint(self, exc: BaseException) -> str:
        """Text appended to a failed read's message when the file's layout suggests a fix."""
        return ""

    def locate_bad_value(self, column: str, dtype: str) -> int | None:
        """The 1-based data row of ``column``'s first value that is not ``dtype`` (for messages)."""
        return None
