"""The platform's own secret: the master key only the pipeline holds.

``SYNTHGEN_PIPELINE_SECRET`` (>= 16 bytes), else a random key created once under
``<home>/keys/pipeline.secret`` (mode 0600). It never leaves the platform; consumers hold
role KEKs, not this. Everything keyed by the platform derives its own key from it with
HMAC-SHA256 and a purpose label, so one use never reveals another's key:

* ``pipeline/<name>``: surrogates, hashes and the leak index of one pipeline;
* ``catalog-binding``: the MAC over each published file's catalog record (header hash,
  file hash, keyring generation and hash);
* ``audit-chain``: the keyed hash chain of the audit trail and its catalog anchor.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from synthgen.errors import CryptoError, SpecError

_ENV = "SYNTHGEN_PIPELINE_SECRET"


def secret_path() -> Path:
    from synthgen.zones import home_dir

    return home_dir() / "keys" / "pipeline.secret"


def master_secret(*, create: bool = True) -> bytes:
    """The master secret; created on first use unless ``create`` is False (then a missing one is an error)."""
    raw = os.environ.get(_ENV)
    if raw is not None:
        master = raw.encode()
        if len(master) < 16:
            raise SpecError(f"{_ENV} must be at least 16 bytes")
        return master
    path = secret_path()
    if not path.exists():
        if not create:
            raise CryptoError(
                f"the platform secret is not available here ({_ENV} or {path}); "
                "run this on the platform that published the data"
            )
        from synthgen.zones import check_outside_zones

        check_outside_zones(path.parent, "the key folder")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
    if path.stat().st_mode & 0o077:
        raise SpecError(f"{path} is readable by others; chmod 600 it")
    return path.read_bytes()


def derive_key(purpose: str, *, create: bool = True) -> bytes:
    """A 32-byte key for one purpose, derived from the master secret (never the secret itself)."""
    return hmac.new(master_secret(create=create), b"synthgen/" + purpose.encode(), hashlib.sha256).digest()


def mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()
