"""Shared base of the anonymization operators (one file per operator, as in Presidio)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from synthgen.anonymize.surrogates import Surrogates


@dataclass(frozen=True)
class OperatorContext:
    """Keyed material shared by the operators of one pipeline run."""

    surrogates: Surrogates
    #: Key for the ``hash`` operator (derived from the pipeline secret; never the secret itself).
    hash_key: bytes


class Operator(ABC):
    """Replaces an identifier: a whole column (``column``) or one span inside a text (``span``)."""

    name: ClassVar[str]

    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def span(self, value: str, entity: str) -> str:
        """The replacement for one identifier ``value`` of type ``entity``."""

    def column(self, values: pl.Series, entity: str) -> pl.Series | None:
        """The replacement column (``None`` drops it). Default: :meth:`span` on each distinct value."""
        s = values if values.dtype == pl.String else values.cast(pl.String)
        uniques = s.drop_nulls().unique().to_list()
        mapping = {u: self.span(u, entity) for u in uniques}
        return s.replace_strict(mapping, default=None, return_dtype=pl.String).alias(values.name)
