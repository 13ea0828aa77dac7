"""Content hashes and the idempotent ids of stage outputs.

A stage's output id is a hash of its input ids and settings, so a retry finds the output it
already wrote. Ids derived from real data bytes are keyed (:func:`keyed_hash`): an unkeyed
hash of real content would confirm any guess of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def settings_hash(*parts: Any) -> str:
    """Stable short hash of JSON-able settings and ids (for idempotent output ids)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def keyed_hash(key: bytes, *parts: Any) -> str:
    """:func:`settings_hash` under an HMAC key: for ids derived from real data bytes."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hmac.new(key, blob, hashlib.sha256).hexdigest()[:16]
