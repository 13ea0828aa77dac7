"""The keyring sidecar: a dataset's data key, wrapped once per role.

It lives next to the envelope (``<id>.sgenc`` + ``<id>.keyring.json``) and outside
the authenticated manifest on purpose: rotating a role's KEK or revoking a role
rewrites this small file and never touches the encrypted data. Its integrity comes
from the wraps themselves: each is AES-GCM with associated data naming the dataset,
the data key id, the role and the KEK id, so an entry edited, relabelled or copied
from another dataset fails to unwrap; and the envelope's key commitment rejects a
data key that belongs to another file. Which keyring is *current* is the catalog's to say:
its binding records the keyring's generation and hash (see :mod:`synthgen.binding`).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.providers.base import KeyProvider, WrappedKey, check_role
from synthgen.crypto.secret import SecretKey
from synthgen.errors import CryptoError

FORMAT = "synthgen-keyring"
VERSION = 1


@dataclass
class Keyring:
    dataset_id: str
    #: Random id of the data key (not derived from it); stable across KEK rotations.
    key_id: str
    entries: dict[str, WrappedKey] = field(default_factory=dict)
    #: Grows by one on every rewrite (revocation, rotation); the catalog binding records the
    #: current one, so a keyring restored from before a revocation is refused.
    generation: int = 1

    def context(self, role: str) -> dict[str, str]:
        """What each wrap is bound to (the AAD / KMS encryption context)."""
        return {"dataset_id": self.dataset_id, "key_id": self.key_id, "role": role}

    @property
    def roles(self) -> list[str]:
        return sorted(self.entries)

    def add(self, provider: KeyProvider, role: str, data_key: SecretKey) -> WrappedKey:
        """Wrap ``data_key`` for ``role`` under its current KEK (replacing an older wrap)."""
        wrapped = provider.wrap(check_role(role), data_key, self.context(role))
        self.entries[role] = wrapped
        return wrapped

    def unwrap(self, provider: KeyProvider, role: str) -> SecretKey:
        wrapped = self.entries.get(role)
        if wrapped is None:
            raise CryptoError(
                f"dataset {self.dataset_id} holds no key for role {role!r} (revoked or never granted)"
            )
        return provider.unwrap(wrapped, self.context(role))

    def revoke(self, role: str) -> bool:
        return self.entries.pop(role, None) is not None

    # -- serialisation -----------------------------------------------------------
    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "dataset_id": self.dataset_id,
            "key_id": self.key_id,
            "generation": self.generation,
            "entries": [
                {
                    "role": w.role,
                    "kek_id": w.kek_id,
                    "alg": w.alg,
                    "wrapped": base64.b64encode(w.blob).decode("ascii"),
                }
                for _, w in sorted(self.entries.items())
            ],
        }
        return canonical_json(doc) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "keyring") -> Keyring:
        try:
            doc = json.loads(data.decode("utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError("not a synthgen keyring")
            if doc.get("version") != VERSION:
                raise ValueError(f"keyring version {doc.get('version')} is not supported")
            generation = doc.get("generation", 0)
            if not isinstance(generation, int) or isinstance(generation, bool):
                raise ValueError("generation is not an integer")
            ring = cls(dataset_id=str(doc["dataset_id"]), key_id=str(doc["key_id"]), generation=generation)
            for e in doc["entries"]:
                role = check_role(str(e["role"]))
                blob = base64.b64decode(e["wrapped"], validate=True)
                ring.entries[role] = WrappedKey(
                    role=role, kek_id=str(e["kek_id"]), alg=str(e["alg"]), blob=blob
                )
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
            raise CryptoError(f"{where} is corrupted: {exc}") from None
        return ring
