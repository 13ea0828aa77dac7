"""Presidio anonymization, offline: identifier columns, PII in free text, surrogates, leak scan.

Importing this package is cheap (the pipeline spec imports :mod:`.settings`); Presidio and spaCy
load on first use of :func:`anonymize_table`, :func:`scan_pii` or :class:`LeakIndex`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthgen.anonymize.leak import LeakIndex, LeakReport
    from synthgen.anonymize.table import AnonymizeResult, anonymize_table, scan_pii

_LAZY = {
    "AnonymizeResult": "synthgen.anonymize.table",
    "anonymize_table": "synthgen.anonymize.table",
    "scan_pii": "synthgen.anonymize.table",
    "LeakIndex": "synthgen.anonymize.leak",
    "LeakReport": "synthgen.anonymize.leak",
}

__all__ = ["AnonymizeResult", "LeakIndex", "LeakReport", "anonymize_table", "scan_pii"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
