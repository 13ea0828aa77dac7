"""Privacy section of the pipeline spec (owned by :mod:`synthgen.privacy`)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthgen.spec_section import SpecSection


class PrivacySettings(SpecSection):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    #: False is the explicit non-DP opt-out (P7): outputs carry ``dp: false``.
    dp: bool = True
    #: Target epsilon for one run (preprocessing + training), 0.001 to 1000.
    epsilon: float = Field(default=3.0, ge=1e-3, le=1000)
    #: Target delta; None = 1/(10 n) (P3). A given value is still capped at 1/(10 n).
    delta: float | None = Field(default=None, ge=1e-20, le=0.1)
    #: A lower cumulative epsilon cap for this pipeline's runs; it can only lower the source's
    #: own cap (set on the source's first run from the policy, changed by `synthgen budget set-cap`).
    budget_cap: float | None = Field(default=None, gt=0, le=10_000)
    #: Share of epsilon spent on DP preprocessing (row count, numeric bins/bounds, category discovery).
    #: Unset: 0.1 + 0.2 x the share of modelled columns that need a DP mechanism (numeric bins,
    #: category discovery), so 0.3 when no column has public bounds or categories.
    preprocessing_share: float | None = Field(default=None, ge=0, lt=1)
    #: Share of the training epsilon given to the text model, when there is one.
    text_share: float = Field(default=0.3, ge=0, lt=1)
    #: declared: a DP run refuses any column whose type the spec does not declare, so no type
    #: is read from real rows; inferred: undeclared types come from a sample of rows (not DP).
    schema_source: Literal["declared", "inferred"] = Field(default="inferred", alias="schema")
    #: Opacus accountant that calibrates DP-SGD noise: prv (tighter) or rdp.
    accountant: Literal["prv", "rdp"] = "prv"
    #: Column identifying a person when one person has several rows.
    entity_key: str | None = None
    #: Share of delta given to DP category discovery (thresholded noisy counts), when a column needs it.
    discovery_delta_share: float = Field(default=0.1, gt=0, lt=1)
    #: Weight of the DP row count within the preprocessing budget (each DP column weighs 1).
    count_weight: float = Field(default=0.5, gt=0, le=1_000)
