"""Object-store zone roots as normalised URLs, and the separation rule on them.

A root such as ``s3://Bucket/a/b/`` is normalised to scheme ``s3``, bucket ``bucket`` and
prefix ``("a", "b")``. Separation (privacy contract P1) is decided on that form only:
two roots overlap when they name the same scheme and bucket and one prefix is a leading
run of the other's segments. Anything that could make two spellings name one place is
refused rather than normalised away: ``.`` and ``..`` segments (also percent-encoded),
empty segments (``a//b``), backslashes, and credentials or options inside the URL
(``user:secret@``, ``?...``; a SAS token or a key must come from the provider chain).

Azure names one location in several spellings: ``abfs://container@account.dfs.core.windows.net/p``,
``abfss://`` (TLS) and ``az://`` of the same, the ``blob`` endpoint of the same account, and
``az://container/p`` or ``abfs://container/p``, whose account comes from the provider chain
(``AZURE_STORAGE_ACCOUNT_NAME``). All normalise to scheme ``abfs``, container as the bucket,
and the account (empty when the URL does not name it). A root without an account may be on
any account, so it overlaps every root of the same container and prefix: mixing spellings
can refuse two roots that are truly apart (write both with their account), never pass two
that are one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from synthgen.errors import ZoneConfigError

#: Spellings fsspec accepts for one store, folded so that ``s3a://b`` and ``s3://b`` compare equal.
SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfss": "abfs", "az": "abfs"}
#: Object stores a zone may live on (``file://`` roots are local paths and stay with :mod:`synthgen.zones`).
SUPPORTED_SCHEMES = ("s3", "gs", "abfs")
#: An Azure storage host: the account's Data Lake (``dfs``) or Blob endpoint, one storage either way.
_AZURE_HOST = re.compile(r"(?P<account>[a-z0-9]{3,24})\.(?:dfs|blob)\.core\.windows\.net")


@dataclass(frozen=True)
class StoreURL:
    """A normalised object-store location: ``scheme://bucket/seg/seg``.

    For ``abfs`` the bucket is the container and ``account`` the storage account ("" when
    the URL leaves it to the provider chain); other stores have no account.
    """

    scheme: str
    bucket: str
    prefix: tuple[str, ...] = ()
    account: str = ""

    def __str__(self) -> str:
        if self.account:  # the spelling that keeps the account, and parses back to this location
            host = f"{self.bucket}@{self.account}.dfs.core.windows.net"
            return "/".join((f"{self.scheme}://{host}", *self.prefix))
        return f"{self.scheme}://{self.path}"

    @property
    def path(self) -> str:
        """The location as fsspec names it, without the protocol: ``bucket/seg/seg``."""
        return "/".join((self.bucket, *self.prefix))

    def join(self, rel: str) -> StoreURL:
        """This location with the relative key ``rel`` appended (its segments checked like a root's)."""
        return replace(self, prefix=(*self.prefix, *_segments(rel, what=f"key {rel!r}")))

    def contains(self, other: StoreURL) -> bool:
        """True when ``other`` is this location or lies under it (an unnamed account may be any)."""
        return (
            self.scheme == other.scheme
            and self.bucket == other.bucket
            and (self.account == other.account or not self.account or not other.account)
            and other.prefix[: len(self.prefix)] == self.prefix
        )

    def relative(self, other: StoreURL) -> str:
        """``other``'s key relative to this location (``other`` must lie under it)."""
        if not self.contains(other):
            raise ZoneConfigError(f"{other} is not under {self}")
        return "/".join(other.prefix[len(self.prefix) :])


def is_url(raw: str) -> bool:
    """True for ``scheme://...`` roots other than ``file://`` (which are local paths)."""
    scheme, sep, _ = raw.partition("://")
    return bool(sep) and scheme.lower() != "file"


def _segments(path: str, *, what: str) -> tuple[str, ...]:
    if "\\" in path:
        raise ZoneConfigError(f"{what}: a backslash is not allowed in an object-store key")
    stripped = path.strip("/")
    if not stripped:
        return ()
    parts = tuple(stripped.split("/"))
    for part in parts:
        if part == "":
            raise ZoneConfigError(f"{what}: empty path segment ('//'); write each prefix once")
        if unquote(part) in (".", "..") or "/" in unquote(part):
            raise ZoneConfigError(f"{what}: '.' and '..' segments are not allowed in an object-store URL")
    return parts


def parse_store_url(raw: str) -> StoreURL:
    """Normalise an object-store zone root. Raises :class:`ZoneConfigError` (exit 2) with one line."""
    what = f"zone root {raw!r}"
    parts = urlsplit(raw)
    scheme = SCHEME_ALIASES.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in SUPPORTED_SCHEMES:
        raise ZoneConfigError(
            f"{what}: unsupported scheme {parts.scheme!r}; use "
            f"{', '.join(s + '://' for s in SUPPORTED_SCHEMES)} or a local path"
        )
    if parts.query or parts.fragment or raw.rstrip().endswith("?"):
        raise ZoneConfigError(
            f"{what}: options or tokens in the URL are refused; credentials come from the provider "
            "chain (environment, ~/.aws, an Airflow connection), never the zone root"
        )
    netloc = parts.netloc
    if ":" in netloc.partition("@")[0] and "@" in netloc:
        raise ZoneConfigError(
            f"{what}: the URL holds credentials (user:secret@); remove them and use the provider chain"
        )
    if "@" in netloc and scheme != "abfs":  # abfs://container@account.dfs.core.windows.net is a name
        raise ZoneConfigError(f"{what}: the URL holds a user name; remove it and use the provider chain")
    bucket, account = netloc.lower(), ""
    if scheme == "abfs" and "@" in bucket:
        bucket, _, host = bucket.partition("@")
        m = _AZURE_HOST.fullmatch(host)
        if m is None:
            raise ZoneConfigError(
                f"{what}: {host!r} is not an Azure storage host; write "
                "abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX, or az://CONTAINER/PREFIX "
                "with the account from the provider chain"
            )
        account = m.group("account")
    if not bucket or any(c in bucket for c in " /\\"):
        raise ZoneConfigError(f"{what}: no bucket; write {scheme}://BUCKET/PREFIX")
    return StoreURL(scheme, bucket, _segments(parts.path, what=what), account)


def check_separate(real: str | Path, synthetic: str | Path) -> None:
    """Refuse two zone roots that name the same place or nest, whatever their spelling.

    Local roots are compared by :mod:`synthgen.zones`; here one or both are object-store URLs.
    A URL and a local path never overlap (they are different stores).
    """
    if isinstance(real, Path) or isinstance(synthetic, Path):
        return
    r, s = parse_store_url(real), parse_store_url(synthetic)
    if r.contains(s) or s.contains(r):
        raise ZoneConfigError(
            f"zone roots overlap: real={r} synthetic={s}; give the two zones separate, non-nested "
            "prefixes (better: separate buckets with separate credentials)"
        )
