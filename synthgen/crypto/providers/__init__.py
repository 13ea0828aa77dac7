"""Key providers: where role KEKs live. One file per provider; pick one with
``SYNTHGEN_KEY_PROVIDER`` (``local``, the default, or ``env``)."""

from __future__ import annotations

import os

from synthgen.crypto.providers.base import KeyProvider, WrappedKey
from synthgen.crypto.providers.env import EnvKeyProvider
from synthgen.crypto.providers.local import LocalKeyProvider
from synthgen.errors import CryptoError

PROVIDERS: dict[str, type[KeyProvider]] = {"local": LocalKeyProvider, "env": EnvKeyProvider}


def provider_from_env() -> KeyProvider:
    """The provider named by ``SYNTHGEN_KEY_PROVIDER``; local keys live in ``SYNTHGEN_KEYS_DIR``
    (default ``<home>/keys``)."""
    from synthgen.zones import home_dir

    name = os.environ.get("SYNTHGEN_KEY_PROVIDER", "local")
    if name == "local":
        return LocalKeyProvider(os.environ.get("SYNTHGEN_KEYS_DIR") or home_dir() / "keys")
    if name == "env":
        return EnvKeyProvider()
    raise CryptoError(f"SYNTHGEN_KEY_PROVIDER={name!r} is not one of: {', '.join(PROVIDERS)}")


__all__ = [
    "PROVIDERS",
    "EnvKeyProvider",
    "KeyProvider",
    "LocalKeyProvider",
    "WrappedKey",
    "provider_from_env",
]
