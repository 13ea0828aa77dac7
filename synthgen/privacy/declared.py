"""``privacy.schema: declared``: the steward's switch that removes every type read from real rows.

Column types the spec leaves out are inferred from a sample of real rows (not DP: it
reveals which columns look numeric, datetime or categorical). With ``declared``, a DP run
takes every type from the spec and refuses, before any DP mechanism or budget reservation,
a column the spec does not type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthgen.errors import SpecError
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import TableSchema


def require_declared_types(privacy: PrivacySettings, columns: Mapping[str, Any], schema: TableSchema) -> None:
    """Raise :class:`SpecError` (exit 2) naming the columns of ``schema`` that ``columns`` leaves untyped."""
    if not privacy.dp or privacy.schema_source != "declared":
        return
    missing = [c.name for c in schema.columns if getattr(columns.get(c.name), "type", None) is None]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SpecError(
            f"privacy.schema is declared but column(s) {shown} have no type in the spec: "
            "set columns.<name>.type for each, or privacy.schema: inferred"
        )
