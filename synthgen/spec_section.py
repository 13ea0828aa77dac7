"""The base model of every pipeline spec section: a YAML boolean is never a number.

pydantic's lax mode reads ``True`` as ``1`` for an ``int`` and ``1.0`` for a ``float`` field
(``bool`` is a subclass of ``int`` in Python), so ``privacy.epsilon: true`` or ``output.rows:
yes`` validated as 1 and ran. Strict types (``StrictFloat``) would also refuse YAML lists for
tuples and strings for enums; this base refuses only a boolean given where a field holds
numbers, and still reads an integer for a float field (``epsilon: 3``).
"""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

from synthgen.safe_yaml import quote


def _holds_numbers(annotation: Any) -> bool:
    """``annotation`` takes numbers (int or float, also inside Optional, tuple, list) but no bool."""
    seen: set[Any] = set()
    todo = [annotation]
    while todo:
        ann = todo.pop()
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            todo.append(typing.get_args(ann)[0])
        elif origin is not None and origin is not typing.Literal:
            todo.extend(a for a in typing.get_args(ann) if a is not Ellipsis)
        else:
            seen.add(ann)
    return bool(seen & {int, float}) and bool not in seen


class SpecSection(BaseModel):
    """Base of the spec's sections: refuses ``true``/``false`` where a field holds numbers."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        flagged = isinstance(value, bool) or (
            isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value)
        )
        if flagged and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and _holds_numbers(field.annotation):
                raise ValueError(
                    f"expected a number, got {quote(value)} "
                    "(YAML reads true/false, yes/no and on/off as booleans)"
                )
        return value
