"""Encryption for published datasets: the envelope format, data keys wrapped per role,
and the key providers that hold the role KEKs. See docs/encryption-format.md."""

from synthgen.crypto.envelope import (
    DEFAULT_SEGMENT_SIZE,
    EnvelopeHeader,
    EnvelopeInfo,
    decrypt_stream,
    encrypt_stream,
    iter_decrypt,
    read_header,
    verify_stream,
)
from synthgen.crypto.keyring import Keyring
from synthgen.crypto.providers import (
    EnvKeyProvider,
    KeyProvider,
    LocalKeyProvider,
    WrappedKey,
    provider_from_env,
)
from synthgen.crypto.secret import SecretKey

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "EnvKeyProvider",
    "EnvelopeHeader",
    "EnvelopeInfo",
    "KeyProvider",
    "Keyring",
    "LocalKeyProvider",
    "SecretKey",
    "WrappedKey",
    "decrypt_stream",
    "encrypt_stream",
    "iter_decrypt",
    "provider_from_env",
    "read_header",
    "verify_stream",
]
