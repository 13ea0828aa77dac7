"""Anonymization operators and their factory: a new operator is a new file and one line here."""

from __future__ import annotations

from synthgen.anonymize.operators.base import Operator, OperatorContext
from synthgen.anonymize.operators.drop import Drop
from synthgen.anonymize.operators.hash import Hash
from synthgen.anonymize.operators.mask import Mask
from synthgen.anonymize.operators.redact import Redact
from synthgen.anonymize.operators.surrogate import Surrogate
from synthgen.anonymize.operators.tag import Tag
from synthgen.errors import AnonymizeError

OPERATORS: dict[str, type[Operator]] = {cls.name: cls for cls in (Drop, Surrogate, Hash, Mask, Redact, Tag)}


def make_operator(name: str, ctx: OperatorContext) -> Operator:
    """The operator called ``name`` (drop | surrogate | hash | mask | redact | tag)."""
    try:
        return OPERATORS[name](ctx)
    except KeyError:
        raise AnonymizeError(
            f"unknown anonymization operator {name!r}; use one of {', '.join(OPERATORS)}"
        ) from None


__all__ = ["OPERATORS", "Operator", "OperatorContext", "make_operator"]
