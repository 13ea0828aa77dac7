"""``mask``: replace every letter and digit but the last four with ``*`` (layout kept)."""

from __future__ import annotations

from synthgen.anonymize.operators.base import Operator

KEEP_LAST = 4


class Mask(Operator):
    name = "mask"

    def span(self, value: str, entity: str) -> str:
        alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
        # Short values are masked completely: four characters of a five-character value say too much.
        keep = set(alnum[-KEEP_LAST:]) if len(alnum) > 2 * KEEP_LAST else set()
        return "".join(ch if (i in keep or not ch.isalnum()) else "*" for i, ch in enumerate(value))
