"""Model section of the pipeline spec (owned by :mod:`synthgen.models`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from synthgen.models.text.settings import TextModelSettings

ModelKind = Literal["dp_tvae", "dp_ctgan", "sdv_gaussian_copula", "sdv_ctgan", "sdv_tvae"]


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ModelKind = "dp_tvae"
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=1024, ge=2)
    #: auto | cpu | cuda | cuda:N
    device: str = "auto"
    seed: int = 0
    #: Drop exact duplicate rows before training (counted in the report either way).
    drop_duplicates: bool = False
    text: TextModelSettings = TextModelSettings()
