"""Canonical JSON: one byte string per value, so hashes and AAD are reproducible."""

from __future__ import annotations

import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """UTF-8 JSON with sorted keys and no whitespace. Refuses NaN/Infinity (not JSON)."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not canonical JSON: {exc}") from None
