"""``surrogate``: a realistic fake value of the same type, consistent under the pipeline key."""

from __future__ import annotations

from synthgen.anonymize.operators.base import Operator


class Surrogate(Operator):
    name = "surrogate"

    def span(self, value: str, entity: str) -> str:
        return self.ctx.surrogates(entity, value)
