"""Tabular synthesizers: encoding, DP-TVAE, DP-CTGAN, SDV (non-DP) kinds, and their registry.

Names load lazily: the pipeline spec imports :mod:`synthgen.models.settings`, and DAG files
parse the spec, so importing this package must not pull in torch or polars.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthgen.models.base import (
        Progress,
        ProgressCallback,
        Synthesizer,
        count_duplicates,
        make_synthesizer,
        resolve_device,
    )
    from synthgen.models.encoding import Span, TableEncoder

_LAZY = {
    "Progress": "synthgen.models.base",
    "ProgressCallback": "synthgen.models.base",
    "Synthesizer": "synthgen.models.base",
    "count_duplicates": "synthgen.models.base",
    "make_synthesizer": "synthgen.models.base",
    "resolve_device": "synthgen.models.base",
    "Span": "synthgen.models.encoding",
    "TableEncoder": "synthgen.models.encoding",
}

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
