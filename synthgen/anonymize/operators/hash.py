"""``hash``: keyed HMAC-SHA256 (128 bits, hex) of the value under a key derived from the pipeline
secret. Equal inputs give equal outputs (joins survive); without the key, a dictionary attack on
likely values (names, phone numbers) is not possible, unlike a plain or per-entity salted hash."""

from __future__ import annotations

from synthgen.anonymize.operators.base import Operator
from synthgen.anonymize.surrogates import keyed_hash


class Hash(Operator):
    name = "hash"

    def span(self, value: str, entity: str) -> str:
        return keyed_hash(self.ctx.hash_key, value)
