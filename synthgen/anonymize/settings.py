"""Anonymization section of the pipeline spec (owned by :mod:`synthgen.anonymize`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Operator = Literal["drop", "surrogate", "hash", "mask", "redact"]


class AnonymizeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Presidio analyzer config (YAML); None = the config shipped with synthgen.
    config: str | None = None
    #: Operator for a detected identifier column unless a column names its own.
    default_operator: Operator = "drop"
    #: Per-column operator overrides.
    operators: dict[str, Operator] = {}
    #: How PII spans inside text are replaced.
    text_operator: Literal["surrogate", "tag", "redact", "hash", "mask"] = "surrogate"
    #: Columns analysed as free text (besides those typed `text`).
    text_columns: list[str] = []
    batch_size: int = 256
    n_process: int = 1
