"""Key material that refuses to show itself.

A :class:`SecretKey` wraps 32 raw bytes. Its ``repr``/``str`` never include the
bytes, it cannot be pickled (so it cannot leak into an XCom, a cache or a
multiprocessing queue by accident), and the bytes are handed out only through
:meth:`SecretKey.reveal`, which makes each use greppable in review.
"""

from __future__ import annotations

import hmac
import os
import secrets
from typing import NoReturn

KEY_BYTES = 32  # AES-256


class SecretKey:
    """A 256-bit symmetric key (a dataset's data key or a role's KEK)."""

    __slots__ = ("_material", "label")

    def __init__(self, material: bytes, *, label: str = "key") -> None:
        if not isinstance(material, bytes | bytearray) or len(material) != KEY_BYTES:
            # Never echo the value: only its length.
            raise ValueError(f"{label}: expected {KEY_BYTES} key bytes, got {len(material)}")
        self._material = bytes(material)
        #: A non-secret name for messages (a key id or a role), never derived from the bytes.
        self.label = label

    @classmethod
    def generate(cls, *, label: str = "key") -> SecretKey:
        """A fresh key from the OS CSPRNG."""
        return cls(secrets.token_bytes(KEY_BYTES), label=label)

    def reveal(self) -> bytes:
        """The raw key bytes, for the cipher call that needs them and nothing else."""
        return self._material

    def __repr__(self) -> str:
        return f"SecretKey({self.label}, <redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:  # keys are not dict keys: hashing would expose a stable digest
        raise TypeError("SecretKey is unhashable")

    def __reduce__(self) -> NoReturn:
        raise TypeError("SecretKey cannot be pickled; pass key ids, not keys")


def random_bytes(n: int) -> bytes:
    """Non-secret randomness (salts, nonce prefixes)."""
    return os.urandom(n)
