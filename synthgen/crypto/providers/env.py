"""KEKs from environment variables, for containers and Airflow workers.

``SYNTHGEN_KEK_<ROLE>`` holds the base64 of a role's 32-byte KEK (role upper-cased,
``-`` as ``_``: ``SYNTHGEN_KEK_ML_ENGINEER``), ``SYNTHGEN_KEK_<ROLE>_VERSION`` its
version label (default ``v1``). During a rotation the old key stays available as
``SYNTHGEN_KEK_<ROLE>_PREVIOUS`` with ``SYNTHGEN_KEK_<ROLE>_PREVIOUS_VERSION``;
``synthgen keys rotate ROLE`` then re-wraps everything to the current key, after
which the operator removes the ``_PREVIOUS`` variables from the secret store.
This provider cannot create keys: they come from the secret store (Airflow
connection or variable, Kubernetes secret, Docker secret).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping

from synthgen.crypto.providers.base import (
    WRAP_ALG,
    KeyProvider,
    WrappedKey,
    check_role,
    gcm_unwrap,
    gcm_wrap,
    wrap_aad,
)
from synthgen.crypto.secret import SecretKey
from synthgen.errors import CryptoError

PREFIX = "SYNTHGEN_KEK_"
_SUFFIXES = ("_VERSION", "_PREVIOUS", "_PREVIOUS_VERSION")


def env_var(role: str) -> str:
    return PREFIX + check_role(role).upper().replace("-", "_")


class EnvKeyProvider(KeyProvider):
    """Role KEKs read from ``environ`` (default ``os.environ``) at each use."""

    name = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def __repr__(self) -> str:
        return "EnvKeyProvider()"

    def _slots(self, role: str) -> list[tuple[str, str]]:
        """(kek id, variable name) pairs available for ``role``, previous first."""
        var = env_var(role)
        out = []
        if var + "_PREVIOUS" in self._environ:
            out.append(
                (self._id(role, self._environ.get(var + "_PREVIOUS_VERSION", "v0")), var + "_PREVIOUS")
            )
        if var in self._environ:
            out.append((self._id(role, self._environ.get(var + "_VERSION", "v1")), var))
        return out

    def _id(self, role: str, version: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", version):
            raise CryptoError(f"{env_var(role)}_VERSION: use letters, digits, '.', '_', '-' (max 32)")
        return f"{self.name}:{role}:{version}"

    def _load(self, var: str, kek_id: str) -> SecretKey:
        try:
            raw = base64.b64decode(self._environ[var].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError(f"{var} is not valid base64; expected a base64-encoded 32-byte key") from None
        if len(raw) != 32:
            raise CryptoError(f"{var} decodes to {len(raw)} bytes; expected a 32-byte key")
        return SecretKey(raw, label=kek_id)

    def roles(self) -> list[str]:
        found = set()
        for name in self._environ:
            if name.startswith(PREFIX) and not name.endswith(_SUFFIXES):
                found.add(name[len(PREFIX) :].lower().replace("_", "-"))
        return sorted(r for r in found if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", r))

    def kek_ids(self, role: str) -> list[str]:
        return [kek_id for kek_id, _ in self._slots(role)]

    def _key_for(self, role: str, kek_id: str) -> SecretKey:
        for candidate, var in self._slots(role):
            if candidate == kek_id:
                return self._load(var, kek_id)
        raise CryptoError(
            f"KEK {kek_id} is not in the environment (set {env_var(role)} or {env_var(role)}_PREVIOUS)"
        )

    def wrap(self, role: str, data_key: SecretKey, context: dict[str, str]) -> WrappedKey:
        kek_id = self.current_kek_id(role)
        blob = gcm_wrap(self._key_for(role, kek_id), data_key, wrap_aad(context, kek_id))
        return WrappedKey(role=role, kek_id=kek_id, alg=WRAP_ALG, blob=blob)

    def unwrap(self, wrapped: WrappedKey, context: dict[str, str]) -> SecretKey:
        if wrapped.alg != WRAP_ALG or not wrapped.kek_id.startswith(f"{self.name}:{wrapped.role}:"):
            raise CryptoError(f"wrapped key for role {wrapped.role!r} was made by another key provider")
        kek = self._key_for(wrapped.role, wrapped.kek_id)
        return gcm_unwrap(
            kek, wrapped.blob, wrap_aad(context, wrapped.kek_id), label=f"data key ({wrapped.role})"
        )

    def create(self, role: str) -> str | None:
        if self.kek_ids(role):
            return None
        raise CryptoError(
            f"the env key provider cannot create keys; put a base64 32-byte key in {env_var(role)}"
        )

    def new_version(self, role: str) -> str:
        # The new key is already in the environment; rotation re-wraps to it.
        return self.current_kek_id(role)

    def retire(self, role: str, kek_ids: list[str]) -> list[str]:
        return []  # the operator removes SYNTHGEN_KEK_<ROLE>_PREVIOUS from the secret store
