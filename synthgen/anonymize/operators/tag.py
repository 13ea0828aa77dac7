"""``tag``: replace a span (or every value of a column) with ``<ENTITY_TYPE>``."""

from __future__ import annotations

from synthgen.anonymize.operators.base import Operator


class Tag(Operator):
    name = "tag"

    def span(self, value: str, entity: str) -> str:
        return f"<{entity}>"
