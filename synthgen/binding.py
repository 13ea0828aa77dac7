"""The catalog binding: which bytes *are* a published dataset, MACed by the platform.

At publish time the catalog row of a dataset records, under ``extra["binding"]``::

    {"dataset_id", "header_hash", "file_sha256", "keyring_generation", "keyring_sha256", "mac"}

with ``mac = HMAC-SHA256(K, canonical JSON of the other fields)`` and ``K`` derived from the
platform secret (:mod:`synthgen.crypto.platform`), which consumers never hold. A read
refuses a file whose envelope or keyring does not match the record:

* someone holding a reader role's KEK could unwrap the data key, re-encrypt their own rows
  under it (even with the original header) and write the result into the synthetic zone:
  the whole-file SHA-256 differs, so the read is refused before any plaintext is released;
* a keyring copied back from before a revocation (or a rotation) carries an older
  generation and another hash: refused. The generation only grows (revoke and rotate add
  one), so a restored keyring cannot be made current again without the platform key;
* an edited catalog record fails its MAC.

The envelope's own integrity (segment tags, key commitment) is unchanged; the binding adds
"this is the file the platform published", which the tags cannot say to a key holder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import IO, Any

from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.platform import derive_key, mac
from synthgen.errors import CryptoError

_PURPOSE = "catalog-binding"
_FIELDS = ("dataset_id", "header_hash", "file_sha256", "keyring_generation", "keyring_sha256")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mac(fields: dict[str, Any], *, create: bool) -> str:
    return mac(derive_key(_PURPOSE, create=create), canonical_json({k: fields[k] for k in _FIELDS}))


def _key_check(*, create: bool) -> str:
    """A short fingerprint of the binding key (a MAC of a constant: reveals nothing of the key).

    Stored beside the MAC so that a failing record can say "another platform secret" rather
    than "edited". It is not MACed itself: whoever edits a record can edit it too, so it only
    picks the wording; the record is refused either way."""
    return mac(derive_key(_PURPOSE, create=create), b"synthgen key check")[:16]


def _secret_where() -> str:
    from synthgen.crypto.platform import secret_path

    return f"SYNTHGEN_PIPELINE_SECRET or {secret_path()}"


def make_binding(
    *, dataset_id: str, header_hash: str, file_sha256: str, keyring_generation: int, keyring_bytes: bytes
) -> dict[str, Any]:
    """The MACed record publish (and every keyring rewrite) stores in the catalog row."""
    fields: dict[str, Any] = {
        "dataset_id": dataset_id,
        "header_hash": header_hash,
        "file_sha256": file_sha256,
        "keyring_generation": int(keyring_generation),
        "keyring_sha256": sha256_hex(keyring_bytes),
    }
    return {**fields, "mac": _mac(fields, create=True), "key_check": _key_check(create=True)}


def rebind_keyring(binding: dict[str, Any], *, generation: int, keyring_bytes: bytes) -> dict[str, Any]:
    """The binding after a revocation or rotation rewrote the keyring (the envelope is unchanged)."""
    check_binding(binding, dataset_id=str(binding.get("dataset_id")))
    return make_binding(
        dataset_id=binding["dataset_id"],
        header_hash=binding["header_hash"],
        file_sha256=binding["file_sha256"],
        keyring_generation=generation,
        keyring_bytes=keyring_bytes,
    )


def check_binding(binding: Any, *, dataset_id: str) -> dict[str, Any]:
    """The binding of ``dataset_id``'s catalog row, after checking its MAC."""
    import hmac

    if not isinstance(binding, dict) or any(k not in binding for k in (*_FIELDS, "mac")):
        raise CryptoError(
            f"dataset {dataset_id} has no catalog binding (published before it existed, or the "
            "record was removed); re-publish it"
        )
    if binding["dataset_id"] != dataset_id:
        raise CryptoError(f"the catalog record of dataset {dataset_id} names another dataset: it was edited")
    if not hmac.compare_digest(str(binding["mac"]), _mac(binding, create=False)):
        stored = binding.get("key_check")
        if stored is None:  # published before the key check existed: either cause is possible
            why = (
                f"the record was edited, or the platform secret ({_secret_where()}) "
                "is not the one that published it"
            )
        elif not hmac.compare_digest(str(stored), _key_check(create=False)):
            why = (
                f"this platform secret is not the one that published it: check {_secret_where()} "
                "(if the secret is right, the record was edited)"
            )
        else:
            why = "the record was edited (the platform secret is the one that published it)"
        raise CryptoError(
            f"cannot verify the catalog record of dataset {dataset_id}: it fails its MAC; {why}"
        )
    return binding


def check_keyring(binding: dict[str, Any], *, generation: int, keyring_bytes: bytes, where: str) -> None:
    """Refuse a keyring that is not the one the catalog records (older generation, or other bytes)."""
    recorded = int(binding["keyring_generation"])
    if generation < recorded:
        raise CryptoError(
            f"keyring {where} is generation {generation}, older than the catalog's {recorded}: "
            "a keyring from before a revocation or rotation was restored; refusing it"
        )
    if generation != recorded or sha256_hex(keyring_bytes) != binding["keyring_sha256"]:
        raise CryptoError(
            f"keyring {where} is not the one the catalog records for dataset {binding['dataset_id']}; "
            "refusing it"
        )


def check_file(binding: dict[str, Any], *, file_sha256: str, name: str) -> None:
    """Refuse an envelope whose bytes (header included) are not the ones the platform published."""
    if file_sha256 != binding["file_sha256"]:
        raise CryptoError(
            f"the encrypted file of {name} is not the one the platform published (its hash differs "
            "from the catalog's record): it was replaced or re-encrypted; nothing was released"
        )


@dataclass
class HashingReader:
    """A read-only file wrapper that hashes every byte it hands out (one pass: no check-then-use gap)."""

    raw: IO[bytes]

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        block = self.raw.read(n)
        self._hash.update(block)
        return block

    def readinto(self, buf: Any) -> int:
        n = self.raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self._hash.update(memoryview(buf)[:n])
        return int(n or 0)

    def hexdigest(self) -> str:
        """The hash of everything read so far, then of the rest of the file (so a partial read
        cannot look complete)."""
        while block := self.raw.read(1 << 20):
            self._hash.update(block)
        return self._hash.hexdigest()


@dataclass
class HashingWriter:
    """A write-only file wrapper that hashes every byte written."""

    raw: IO[bytes]

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256()

    def write(self, data: Any) -> int:
        self._hash.update(data)
        return int(self.raw.write(data))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()
