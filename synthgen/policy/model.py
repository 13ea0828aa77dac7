"""The policy file schema (``policies/*.yaml``), validated with pydantic.

A file holds roles, users mapped to roles, and rules::

    version: 1
    roles:
      analyst: {description: reads shareable DP outputs}
    users:
      bob: [analyst]
    rules:
      - id: analyst-read-shareable
        effect: allow                  # allow | deny; a matching deny always wins
        roles: [analyst]               # or ["*"] for every role
        actions: [read]                # read | publish | train | generate | admin
        resources:                     # each field a value or a list; "*" (default) = any
          zone: synthetic              # real | synthetic | keys
          name: "adult-*"              # name pattern: * ? [..] {a,b}, whole name (names.py)
          classification: shareable    # shareable | internal | restricted
          kind: synthetic              # snapshot | anonymized | synthetic | report | ...
        conditions:
          dp: true                     # true: DP outputs only; false: non-DP outputs only
          max_epsilon: 3               # the dataset's epsilon must be known and <= 3

A rule without a ``dp`` condition never matches a non-DP (``dp: false``) dataset: a
non-DP output is reachable only through a rule that says ``dp: false`` explicitly
(privacy contract P7).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from synthgen.policy.names import check_name_pattern
from synthgen.spec_section import SpecSection

Action = Literal["read", "publish", "train", "generate", "admin"]
ACTIONS: tuple[str, ...] = ("read", "publish", "train", "generate", "admin")
ZONES = ("real", "synthetic", "keys")
CLASSIFICATIONS = ("shareable", "internal", "restricted")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_USER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,119}$")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str | int | float) else value


StrList = Annotated[list[str], BeforeValidator(_as_list)]


class RoleDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""


class Resources(BaseModel):
    """Which resources a rule covers; every listed field must match, ``*`` matches anything."""

    model_config = ConfigDict(extra="forbid")
    zone: StrList = ["*"]
    name: StrList = ["*"]
    classification: StrList = ["*"]
    kind: StrList = ["*"]

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: list[str]) -> list[str]:
        bad = [z for z in v if z not in (*ZONES, "*")]
        if bad:
            raise ValueError(f"unknown zone {bad[0]!r}; expected one of {', '.join(ZONES)} or '*'")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: list[str]) -> list[str]:
        for pattern in v:  # refused here, at load, never at enforcement time
            check_name_pattern(pattern)
        return v

    @field_validator("classification")
    @classmethod
    def _classification(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in (*CLASSIFICATIONS, "*")]
        if bad:
            raise ValueError(
                f"unknown classification {bad[0]!r}; expected one of {', '.join(CLASSIFICATIONS)} or '*'"
            )
        return v


class Conditions(SpecSection):
    model_config = ConfigDict(extra="forbid")
    #: True: DP outputs only. False: non-DP outputs only (the one way to reach them). None: any
    #: dataset that is not marked ``dp: false``.
    dp: bool | None = None
    #: The dataset's total epsilon must be recorded and at most this.
    max_epsilon: float | None = Field(default=None, gt=0)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    effect: Literal["allow", "deny"]
    roles: StrList
    actions: Annotated[list[Action], BeforeValidator(_as_list)]
    resources: Resources = Resources()
    conditions: Conditions = Conditions()
    description: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("rule id: use lowercase letters, digits, '-' and '_' (max 64)")
        return v

    @field_validator("roles", "actions")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must name at least one")
        return v


class BudgetDefaults(SpecSection):
    """The cap a source gets on its first run (``synthgen budget set-cap`` changes it later)."""

    model_config = ConfigDict(extra="forbid")
    epsilon_cap: float = Field(default=10.0, gt=0, le=1e6)
    delta_cap: float = Field(default=1e-3, gt=0, lt=1)


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1]
    #: Default per-source budget cap; several files: the smallest of each wins.
    budget: BudgetDefaults | None = None
    roles: dict[str, RoleDef | None] = {}
    users: dict[str, StrList] = {}
    rules: list[Rule] = []

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: dict[str, RoleDef | None]) -> dict[str, RoleDef | None]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"role {name!r}: use lowercase letters, digits, '-' and '_' (max 64)")
        return v

    @field_validator("users")
    @classmethod
    def _users(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in v:
            if not _USER.match(str(name)):
                raise ValueError(f"user {name!r}: use letters, digits and _ . @ - (max 120)")
        return v
