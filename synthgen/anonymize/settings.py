"""Anonymization section of the pipeline spec (owned by :mod:`synthgen.anonymize`)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthgen.spec_section import SpecSection

Operator = Literal["drop", "surrogate", "hash", "mask", "redact"]


class AnonymizeSettings(SpecSection):
    model_config = ConfigDict(extra="forbid")

    #: Run Presidio at all (off: only columns typed `id` are dropped).
    enabled: bool = True
    #: Presidio analyzer config (YAML); None = the config shipped with synthgen
    #: (synthgen/anonymize/presidio.yaml: spaCy model, labels_to_ignore, threshold, recognizers).
    config: str | None = None
    #: Operator for a detected identifier column unless a column names its own.
    default_operator: Operator = "drop"
    #: Per-column operator overrides.
    operators: dict[str, Operator] = {}
    #: How PII spans inside text are replaced ("surrogate": a consistent fake of the same type,
    #: "tag": <ENTITY_TYPE>).
    text_operator: Literal["surrogate", "tag", "redact", "hash", "mask"] = "surrogate"
    #: Columns analysed as free text (besides those typed `text`).
    text_columns: list[str] = []
    #: Documents per spaCy `nlp.pipe` batch.
    batch_size: int = Field(default=256, ge=1, le=100_000)
    #: spaCy worker processes (1 = in process; >1 forks workers, worth it for long documents; at most 64).
    n_process: int = Field(default=1, ge=1, le=64)
    #: Minimum Presidio score for a span; None = the config's `default_score_threshold`.
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Distinct values per string column that Presidio analyses to decide if it is an identifier.
    sample_size: int = Field(default=200, ge=10, le=100_000)
    #: Share of sampled values that must be one identifier entity for the column to be flagged.
    min_fraction: float = Field(default=0.6, gt=0.0, le=1.0)
    #: Flag columns whose name says what they hold (email, phone, ssn, first_name, ...).
    name_hints: bool = True
    #: Treat string columns of long multi-word values as free text even when not typed `text`.
    auto_text: bool = True
    #: Documents longer than this are analysed in overlapping windows of this many characters
    #: (at most spaCy's ``nlp.max_length``, 1,000,000), so a document of any length is analysed.
    max_doc_chars: int = Field(default=100_000, ge=1_000, le=1_000_000)
    #: Rows per batch when streaming a large table (bounded memory).
    stream_rows: int = Field(default=20_000, ge=100, le=10_000_000)
    #: Distinct documents whose analyzer results are remembered (repeated notes analysed once; 0 = off).
    doc_cache: int = Field(default=10_000, ge=0, le=10_000_000)
