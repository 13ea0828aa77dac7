"""Local KEK files: ``<home>/keys/<role>/v<NNNN>.kek``, one file per KEK version.

Each file is created with mode 0600 inside a 0700 directory and holds::

    synthgen-kek v1
    <base64 of the 32 key bytes>
    <first 16 hex digits of SHA-256("synthgen-kek-check" || key)>

The check line lets a corrupted file be reported as such (instead of as a failed
unwrap); 64 bits of a hash reveal nothing useful about a 256-bit key. A file that
group or others can read is refused: a KEK readable by every local account would
make the role separation meaningless.

This provider puts every role's KEK on one machine, readable by one OS account. Role
separation by keys then holds between machines or accounts that are given only their
own roles' files (copy ``keys/<role>/`` to the analyst's host, or use the env
provider with one secret per role); on a single shared account it reduces to the
policy check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
import uuid
from pathlib import Path

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

_HEADER = "synthgen-kek v1"
_VERSION_FILE = re.compile(r"^v(\d{4,})\.kek$")


def _check_digits(key: bytes) -> str:
    return hashlib.sha256(b"synthgen-kek-check" + key).hexdigest()[:16]


class LocalKeyProvider(KeyProvider):
    """One KEK per role (with versions) in files under ``root`` (default ``<home>/keys``)."""

    name = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        from synthgen.zones import check_outside_zones

        self.root = Path(root)
        # Keys never live with the data they protect: refused inside either zone (issue 14.6).
        check_outside_zones(self.root, "the key folder")

    def __repr__(self) -> str:
        return f"LocalKeyProvider({self.root})"

    # -- files -------------------------------------------------------------------
    def _role_dir(self, role: str) -> Path:
        return self.root / check_role(role)

    def _versions(self, role: str) -> list[int]:
        d = self._role_dir(role)
        if not d.is_dir():
            return []
        found = [int(m.group(1)) for p in d.iterdir() if (m := _VERSION_FILE.match(p.name))]
        return sorted(found)

    def _kek_id(self, role: str, version: int) -> str:
        return f"{self.name}:{role}:v{version}"

    def _parse_id(self, kek_id: str) -> tuple[str, int]:
        parts = kek_id.split(":")
        if len(parts) != 3 or parts[0] != self.name or not re.fullmatch(r"v\d+", parts[2]):
            raise CryptoError(f"KEK id {kek_id!r} does not belong to the local key provider")
        return check_role(parts[1]), int(parts[2][1:])

    def _path(self, role: str, version: int) -> Path:
        return self._role_dir(role) / f"v{version:04d}.kek"

    def _load(self, role: str, version: int) -> SecretKey:
        path = self._path(role, version)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise CryptoError(
                f"key file {path} is missing (KEK {self._kek_id(role, version)}); restore it from "
                "backup, or ask a data steward to re-grant the role"
            ) from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CryptoError(
                f"key file {path} is accessible by group/others (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run `chmod 600 {path}`"
            )
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise CryptoError(f"key file {path} belongs to another user; refusing to use it")
        try:
            lines = path.read_text(encoding="ascii").splitlines()
            if len(lines) != 3 or lines[0] != _HEADER:
                raise ValueError
            raw = base64.b64decode(lines[1], validate=True)
            if len(raw) != 32 or not hmac.compare_digest(_check_digits(raw), lines[2]):
                raise ValueError
        except (ValueError, UnicodeDecodeError, binascii.Error):
            raise CryptoError(
                f"key file {path} is corrupted (format or check digits do not match); restore it from backup"
            ) from None
        return SecretKey(raw, label=self._kek_id(role, version))

    def _write(self, role: str, version: int) -> str:
        d = self._role_dir(role)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        d.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(d, 0o700)
        key = SecretKey.generate(label=self._kek_id(role, version))
        raw = key.reveal()
        text = f"{_HEADER}\n{base64.b64encode(raw).decode()}\n{_check_digits(raw)}\n"
        path = self._path(role, version)
        # A temporary name of its own (a killed or concurrent writer's never blocks this one).
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        # O_EXCL + 0600 from the first byte: the key never exists with wider permissions.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, text.encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link, not replace: it fails if the name exists, so a concurrent writer of the
                # same version can never overwrite a KEK that already wraps data keys.
                os.link(tmp, path)
            except FileExistsError:
                raise CryptoError(f"key file {path} already exists; refusing to overwrite a KEK") from None
        finally:
            tmp.unlink(missing_ok=True)
        return self._kek_id(role, version)

    # -- KeyProvider ---------------------------------------------------------------
    def roles(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p.name))

    def kek_ids(self, role: str) -> list[str]:
        return [self._kek_id(role, v) for v in self._versions(role)]

    def wrap(self, role: str, data_key: SecretKey, context: dict[str, str]) -> WrappedKey:
        kek_id = self.current_kek_id(role)
        _, version = self._parse_id(kek_id)
        blob = gcm_wrap(self._load(role, version), data_key, wrap_aad(context, kek_id))
        return WrappedKey(role=role, kek_id=kek_id, alg=WRAP_ALG, blob=blob)

    def unwrap(self, wrapped: WrappedKey, context: dict[str, str]) -> SecretKey:
        role, version = self._parse_id(wrapped.kek_id)
        if role != wrapped.role or wrapped.alg != WRAP_ALG:
            raise CryptoError(f"wrapped key for role {wrapped.role!r} names KEK {wrapped.kek_id!r}")
        kek = self._load(role, version)
        return gcm_unwrap(kek, wrapped.blob, wrap_aad(context, wrapped.kek_id), label=f"data key ({role})")

    def create(self, role: str) -> str | None:
        if self._versions(role):
            return None
        return self._write(role, 1)

    def new_version(self, role: str) -> str:
        versions = self._versions(role)
        return self._write(role, (versions[-1] + 1) if versions else 1)

    def retire(self, role: str, kek_ids: list[str]) -> list[str]:
        current = self.current_kek_id(role)
        gone = []
        for kek_id in kek_ids:
            r, v = self._parse_id(kek_id)
            if r != role or kek_id == current:
                continue
            self._path(r, v).unlink(missing_ok=True)
            gone.append(kek_id)
        return gone
