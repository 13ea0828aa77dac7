"""Tabular synthesizers: encoding, DP-TVAE, DP-CTGAN, SDV (non-DP) kinds, and their registry."""

from synthgen.models.base import (
    Progress,
    ProgressCallback,
    Synthesizer,
    count_duplicates,
    make_synthesizer,
    resolve_device,
)
from synthgen.models.encoding import Span, TableEncoder

__all__ = [
    "Progress",
    "ProgressCallback",
    "Span",
    "Synthesizer",
    "TableEncoder",
    "count_duplicates",
    "make_synthesizer",
    "resolve_device",
]
