"""The KeyProvider interface: who holds the key-encryption keys (KEKs), one per role.

A provider wraps and unwraps data keys; it never hands a KEK out. That is the same
contract as a cloud KMS (AWS KMS Encrypt/Decrypt with an encryption context, GCP KMS
with additional authenticated data, Vault transit), so a KMS provider is one more
subclass: ``wrap`` becomes a KMS encrypt call, ``unwrap`` a decrypt call, and
``context`` their encryption context.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.secret import SecretKey, random_bytes
from synthgen.errors import CryptoError

ROLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
WRAP_ALG = "A256GCM"
_WRAP_NONCE = 12


def check_role(role: str) -> str:
    if not ROLE_PATTERN.match(role):
        raise CryptoError(f"invalid role name {role!r}: use lowercase letters, digits, '-' and '_' (max 64)")
    return role


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted under one role's KEK. Safe to store; useless without the KEK."""

    role: str
    kek_id: str
    alg: str
    blob: bytes = field(repr=False)  # nonce || ciphertext || tag for A256GCM


def wrap_aad(context: dict[str, str], kek_id: str) -> bytes:
    """Associated data of a wrap: the caller's context plus the KEK id, canonical JSON.

    The context names the dataset, the data key id and the role, so a wrapped key
    copied to another dataset or relabelled with another role no longer unwraps.
    """
    return canonical_json({"purpose": "synthgen data-key wrap v1", "kek_id": kek_id, **context})


def gcm_wrap(kek: SecretKey, data_key: SecretKey, aad: bytes) -> bytes:
    nonce = random_bytes(_WRAP_NONCE)
    return nonce + AESGCM(kek.reveal()).encrypt(nonce, data_key.reveal(), aad)


def gcm_unwrap(kek: SecretKey, blob: bytes, aad: bytes, *, label: str) -> SecretKey:
    try:
        raw = AESGCM(kek.reveal()).decrypt(blob[:_WRAP_NONCE], blob[_WRAP_NONCE:], aad)
    except (InvalidTag, ValueError):
        raise CryptoError(
            f"cannot unwrap the data key for {label}: the wrapped key was edited, copied from "
            "another dataset, or wrapped under another KEK"
        ) from None
    return SecretKey(raw, label=label)


class KeyProvider(ABC):
    """Holds one KEK per role (possibly several versions) and wraps data keys with it."""

    #: Short name used in KEK ids (``local:analyst:v2``) and in ``SYNTHGEN_KEY_PROVIDER``.
    name: ClassVar[str]

    @abstractmethod
    def roles(self) -> list[str]:
        """Roles that have at least one KEK."""

    @abstractmethod
    def kek_ids(self, role: str) -> list[str]:
        """KEK ids available for ``role``, oldest first (the last is current). May be empty."""

    def current_kek_id(self, role: str) -> str:
        ids = self.kek_ids(check_role(role))
        if not ids:
            raise CryptoError(f"no key-encryption key for role {role!r}; run `synthgen keys init`")
        return ids[-1]

    @abstractmethod
    def wrap(self, role: str, data_key: SecretKey, context: dict[str, str]) -> WrappedKey:
        """Wrap ``data_key`` under the role's current KEK, binding ``context``."""

    @abstractmethod
    def unwrap(self, wrapped: WrappedKey, context: dict[str, str]) -> SecretKey:
        """Unwrap with the KEK named in ``wrapped``; raises :class:`CryptoError` on any failure."""

    @abstractmethod
    def create(self, role: str) -> str | None:
        """Make a first KEK for ``role`` if it has none. Returns the new id, or None if one existed."""

    @abstractmethod
    def new_version(self, role: str) -> str:
        """Make ``role``'s next KEK current (rotation step 1). Returns its id."""

    @abstractmethod
    def retire(self, role: str, kek_ids: list[str]) -> list[str]:
        """Destroy old KEK versions once nothing is wrapped under them (rotation step 3).
        Returns the ids actually destroyed."""
