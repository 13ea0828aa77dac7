"""A zone whose root is an object-store URL (``s3://bucket/prefix``; ``gs://``, ``abfs://`` by the same code).

Object stores have no rename, so the local zone's "write a temp file, rename it" becomes:

1. write every object of a commit under ``<root>/.synthgen-staging/<txn>/<key>`` (a writer
   that dies leaves objects only there; an unfinished multipart upload is never visible at all);
2. copy each staged object to its final key (server-side copy, no data through this host);
3. delete the staging objects; the caller then writes the catalog row **last**.

Every read starts from the catalog, so a reader never sees a dataset that is uncatalogued or
half-written: before step 3 ends nothing lists it, and a dataset folder whose copy was cut
short in step 2 has no catalog row either. :meth:`ObjectZone.sweep_temporaries` removes
staging transactions older than a grace period; uncatalogued final objects go the way the
local zone's do (:mod:`synthgen.publication_orphans`).

Streaming: :meth:`ObjectZone.atomic_write` hands out a file object writing straight to the
staging key (a multipart upload: memory is one part, :data:`BLOCK_SIZE`); :meth:`ObjectZone.open`
reads with ranged requests. Writers that need a local path (polars sinks) get one in a
private spool folder (:meth:`staging`, :meth:`atomic_path`, :meth:`atomic_dir`), uploaded on
success: those buffer one file on local disk, not in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from synthgen.errors import StorageUnreachable, ZoneConfigError, ZoneError
from synthgen.storage.credentials import check_credentials, storage_options
from synthgen.storage.urls import StoreURL, parse_store_url

ZoneName = Literal["real", "synthetic"]
#: Top-level prefix of a zone where commits stage their objects; never a dataset name.
STAGING_PREFIX = ".synthgen-staging"
#: Multipart part size: the most a streamed write holds in memory (S3's minimum part is 5 MiB).
BLOCK_SIZE = 8 * 2**20
ZONE_MARKER = ".synthgen-zone"
#: Name prefix of a spool folder between its creation and its lock.
_SPOOL_NEW = ".new-"

_FSSPEC_MODULE = {"s3": "s3fs", "gs": "gcsfs", "abfs": "adlfs"}


def filesystem(url: StoreURL) -> Any:
    """A fresh fsspec filesystem for ``url``'s store, credentials from the provider chain."""
    import fsspec

    options = storage_options(url)
    check_credentials(url, options)
    try:
        return fsspec.filesystem(url.scheme, skip_instance_cache=True, **options)
    except ImportError:
        raise ZoneConfigError(
            f"{url.scheme}:// zones need the {_FSSPEC_MODULE[url.scheme]} package "
            f"(pip install {_FSSPEC_MODULE[url.scheme]})"
        ) from None


def _is_unreachable(exc: BaseException) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    connection_errors = {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ConnectionError",
        "TimeoutError",
        "ServerTimeoutError",
        "ReadTimeoutError",
    }
    return bool(names & connection_errors) or isinstance(exc, (ConnectionError, TimeoutError))


def probe(url: StoreURL, fs: Any) -> None:
    """Check, before any data is read, that the store answers, the bucket exists and the
    credentials are accepted. Exit 1 (:class:`StorageUnreachable`) or 2 (:class:`ZoneConfigError`)."""
    try:
        if url.scheme == "s3":
            fs.call_s3("head_bucket", Bucket=url.bucket)
        elif not fs.exists(url.bucket):
            raise FileNotFoundError(url.bucket)
    except FileNotFoundError:
        raise ZoneConfigError(
            f"zone root {url}: bucket {url.bucket!r} does not exist; create it first"
        ) from None
    except PermissionError as exc:
        raise ZoneConfigError(
            f"zone root {url}: the store refused the credentials ({' '.join(str(exc).split())[:160]})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - classified below: unreachable (exit 1) or not (exit 2)
        cause: BaseException | None = exc
        while cause is not None and not _is_unreachable(cause):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise ZoneConfigError(
                f"zone root {url}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            ) from None
        where = (
            (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url")  # an Airflow connection's
            or os.environ.get("AWS_ENDPOINT_URL")
            or "the provider's default endpoint"
        )
        raise StorageUnreachable(
            f"zone root {url}: the object store at {where} cannot be reached ({type(cause).__name__}); "
            "check AWS_ENDPOINT_URL and the network, then retry"
        ) from None


@dataclass(frozen=True)
class ObjectZone:
    """One zone on an object store. Same operations as :class:`synthgen.zones.Zone`, on keys."""

    name: ZoneName
    url: StoreURL
    #: The other zone's root (a URL, or a local path when the zones are on different stores).
    other: StoreURL | Path
    fs: Any = field(repr=False, compare=False)
    #: Local scratch folder (0700) for writers that need a path; uploaded, then deleted.
    spool: Path = field(default=Path(tempfile.gettempdir()), compare=False)

    @property
    def root(self) -> str:
        return str(self.url)

    # -- naming ---------------------------------------------------------------

    def locate(self, rel: str | os.PathLike[str]) -> StoreURL:
        """The location of ``rel`` (a key relative to the root, or a URL) after the zone checks."""
        raw = os.fspath(rel)
        if raw.startswith("/"):
            raise ZoneError(
                f"refusing {self.name}-zone path {raw!r}: a local path, but the zone is {self.url}"
            )
        loc = parse_store_url(raw) if "://" in raw else self.url.join(raw)
        if (isinstance(self.other, StoreURL) and self.other.contains(loc)) or not self.url.contains(loc):
            raise ZoneError(
                f"refusing {self.name}-zone path {raw!r}: it lies outside the {self.name} zone ({loc})"
            )
        if self.url.relative(loc).split("/")[0] == STAGING_PREFIX:
            raise ZoneError(f"refusing {self.name}-zone path {raw!r}: {STAGING_PREFIX}/ is reserved")
        return loc

    def uri(self, rel: str | os.PathLike[str]) -> str:
        """The full URL of ``rel`` (what the catalog records as a dataset's path)."""
        return str(self.locate(rel))

    def contains(self, path: str | os.PathLike[str]) -> bool:
        raw = os.fspath(path)
        return "://" in raw and self.url.contains(parse_store_url(raw))

    # -- reading --------------------------------------------------------------

    def exists(self, rel: str | os.PathLike[str]) -> bool:
        return bool(self.fs.exists(self.locate(rel).path))

    def open(self, rel: str | os.PathLike[str], mode: str = "rb") -> IO[Any]:
        """A streaming reader (ranged GETs of :data:`BLOCK_SIZE`)."""
        if any(c in mode for c in "wax+"):
            raise ZoneError("open zone files for writing with atomic_write()")
        return self.fs.open(self.locate(rel).path, mode, block_size=BLOCK_SIZE)  # type: ignore[no-any-return]

    def remove(self, rel: str | os.PathLike[str]) -> None:
        path = self.locate(rel).path
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    # -- writing: staging prefix, then final keys ------------------------------

    def _txn(self) -> StoreURL:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        return self.url.join(f"{STAGING_PREFIX}/{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def _publish(self, txn: StoreURL, pairs: list[tuple[str, StoreURL]]) -> None:
        """Copy staged objects (relative keys under ``txn``) onto their final locations, then drop ``txn``."""
        for rel, final in pairs:
            self.fs.copy(txn.join(rel).path, final.path)
        self._drop(txn)

    def _drop(self, txn: StoreURL) -> None:
        try:
            self.fs.rm(txn.path, recursive=True)
        except FileNotFoundError:
            pass
        except Exception:  # noqa: BLE001 - best effort: the sweep removes what is left
            pass

    @contextmanager
    def atomic_write(self, rel: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
        """Stream a file to ``rel``: written under the staging prefix (uncommitted multipart
        upload), committed, then copied to its final key. On error nothing appears anywhere."""
        final = self.locate(rel)
        txn = self._txn()
        fh = self.fs.open(txn.join("object").path, "wb", block_size=BLOCK_SIZE, autocommit=False)
        writer: IO[Any] = fh
        if "b" not in mode:
            import io

            writer = io.TextIOWrapper(fh, encoding="utf-8", write_through=True)
        try:
            yield writer
            writer.flush()
            fh.close()
            fh.commit()
        except BaseException:
            fh.discard()  # aborts the multipart upload: no part of it becomes an object
            fh.closed = True  # and the discarded buffer is never flushed on garbage collection
            self._drop(txn)
            raise
        try:
            self._publish(txn, [("object", final)])
        except BaseException:
            self._drop(txn)
            raise

    @contextmanager
    def _spool_dir(self) -> Iterator[Path]:
        """A private spool folder, ``flock``-ed for as long as the block runs: the kernel drops
        the lock when the process dies, however it dies, so :meth:`sweep_spool` can tell the
        folder of a live writer from one that a killed process left (SIGKILL skips ``finally``)."""
        import fcntl

        self.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Locked under a name the sweep passes over, then renamed (the lock follows the folder):
        # a sweep never meets a folder of this zone's name that is not locked by a live writer.
        new = Path(tempfile.mkdtemp(prefix=f"{_SPOOL_NEW}{self.name}-", dir=self.spool))
        fd = os.open(new, os.O_RDONLY)
        d = new
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            d = new.with_name(new.name.removeprefix(_SPOOL_NEW))
            os.rename(new, d)
            yield d
        finally:
            shutil.rmtree(d, ignore_errors=True)
            os.close(fd)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private local folder in the spool for work that needs paths; deleted on exit."""
        with self._spool_dir() as d:
            yield d

    @contextmanager
    def fetch(self, rel: str | os.PathLike[str]) -> Iterator[Path]:
        """A local copy of the object or folder at ``rel`` (a key or a URL) in the spool, for
        readers that need a path (polars scans, torch loads); deleted on exit. Each object is
        streamed to disk in :data:`BLOCK_SIZE` chunks: memory stays one block, disk is the copy."""
        loc = self.locate(rel)
        with self._spool_dir() as d:
            target = d / (loc.prefix[-1] if loc.prefix else "root")
            if self.fs.isdir(loc.path):
                for key in sorted(self.fs.find(loc.path)):
                    sub = key[len(loc.path) :].lstrip("/")
                    dest = target / sub
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self.fs.get_file(key, str(dest))
                target.mkdir(exist_ok=True)
            else:
                self.fs.get_file(loc.path, str(target))
            yield target

    def upload(self, files: list[tuple[Path, str]]) -> None:
        """Upload local files onto their keys through one staging transaction, copied to their
        final keys in the order given (put a completion marker last)."""
        finals = [self.locate(rel) for _, rel in files]
        self._upload([(p, f"{i:05d}") for i, (p, _) in enumerate(files)], finals)

    def listdir(self, rel: str | os.PathLike[str]) -> list[tuple[str, bool]]:
        """``(name, is_folder)`` of the entries directly under ``rel`` (one delimited listing)."""
        loc = self.locate(rel)
        try:
            infos = self.fs.ls(loc.path, detail=True, refresh=True)
        except FileNotFoundError:
            return []
        out = []
        for info in infos:
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info["name"].rstrip("/") != loc.path:
                out.append((name, info["type"] == "directory"))
        return sorted(out)

    def age_s(self, rel: str | os.PathLike[str]) -> float:
        """Seconds since the newest object under ``rel`` was written (0 when it cannot be dated)."""
        try:
            found = self.fs.find(self.locate(rel).path, detail=True)
        except FileNotFoundError:
            return 0.0
        if not found:
            return 0.0
        return time.time() - max(_mtime(info) for info in found.values())

    def sweep_spool(self) -> list[str]:
        """Remove the spool folders that killed processes left: a live writer holds its folder's
        ``flock`` (the kernel drops it when the process dies, SIGKILL included), so a folder
        whose lock is free has no writer. Returns the removed folders' paths. Nothing in them
        was ever under a final key: a spool folder is uploaded through the staging prefix or
        not at all. (A folder killed in the instant between its creation and its lock keeps its
        ``.new-`` name; those go once older than a minute.)"""
        import fcntl

        removed: list[str] = []
        if not self.spool.is_dir():
            return removed
        cutoff = time.time() - 60.0
        found = [(d, False) for d in self.spool.glob(f"{self.name}-*")]
        found += [(d, True) for d in self.spool.glob(f"{_SPOOL_NEW}{self.name}-*")]
        for d, fresh in sorted(found):
            try:
                if not d.is_dir() or d.is_symlink() or (fresh and d.lstat().st_mtime > cutoff):
                    continue
                fd = os.open(d, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            finally:
                os.close(fd)  # closing drops a lock we took
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
        return removed

    def _upload(self, local_files: list[tuple[Path, str]], finals: list[StoreURL]) -> None:
        txn = self._txn()
        try:
            for path, key in local_files:
                self.fs.put_file(str(path), txn.join(key).path)
            self._publish(txn, [(key, f) for (_, key), f in zip(local_files, finals, strict=True)])
        except BaseException:
            self._drop(txn)
            raise

    @contextmanager
    def atomic_path(self, rel: str | os.PathLike[str]) -> Iterator[Path]:
        """A local spool path; uploaded (staging, then final key) when the block succeeds."""
        final = self.locate(rel)
        with self._spool_dir() as d:
            tmp = d / final.prefix[-1]
            yield tmp
            self._upload([(tmp, "object")], [final])

    @contextmanager
    def staging(self, rel_dir: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
        """A local spool file for content whose final name is known only once written; publish it
        with :meth:`commit`."""
        self.locate(rel_dir)
        with self._spool_dir() as d:
            yield d / f"object{suffix}"

    def commit(self, tmp: Path, rel: str | os.PathLike[str]) -> str:
        """Upload a finished spool file onto ``rel`` through the staging prefix. Returns its URL."""
        final = self.locate(rel)
        self._upload([(tmp, "object")], [final])
        return str(final)

    @contextmanager
    def atomic_dir(self, rel: str | os.PathLike[str]) -> Iterator[Path]:
        """A local spool folder uploaded onto ``rel`` on success: all files staged first, then copied.

        Objects of an earlier version that the new one lacks are removed after the copy.
        Unlike the local zone's folder swap, replacing an existing folder is not atomic here:
        a reader of the old version may meet new objects. The stages name folders by their
        inputs and settings (``anon-<hash>``, ``model-<hash>``, ``report-<hash>``) and reuse a
        catalogued one instead of rewriting it, so a folder is replaced only when no catalog
        row (hence no reader) points at it: the leftover of a killed run.
        """
        final = self.locate(rel)
        with self._spool_dir() as d:
            yield d
            files = sorted(p for p in d.rglob("*") if p.is_file())
            keys = [p.relative_to(d).as_posix() for p in files]
            old = set(self.fs.find(final.path)) if self.fs.exists(final.path) else set()
            finals = [final.join(k) for k in keys]
            self._upload(list(zip(files, keys, strict=True)), finals)
            for stale in old - {f.path for f in finals}:
                self.fs.rm_file(stale)

    # -- sweeping -------------------------------------------------------------

    def sweep_temporaries(self, *, older_than: float = 0.0) -> list[str]:
        """Remove staging transactions whose newest object is more than ``older_than`` seconds old
        (a younger one may belong to a writer still running). Returns the removed keys' folders."""
        staging = self.url.join(STAGING_PREFIX)
        try:
            txns = self.fs.ls(staging.path, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        cutoff = time.time() - older_than
        removed: list[str] = []
        for txn in sorted(txns):
            objects = self.fs.find(txn, detail=True)
            newest = max((_mtime(info) for info in objects.values()), default=0.0)
            if newest > cutoff:
                continue
            self.fs.rm(txn, recursive=True)
            removed.append(f"{STAGING_PREFIX}/{txn.rstrip('/').rsplit('/', 1)[-1]}")
        return removed


def _mtime(info: dict[str, Any]) -> float:
    stamp = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or info.get("updated")
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if isinstance(stamp, (int, float)):
        return float(stamp)
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return time.time()  # unknown age: treat as young, never remove what we cannot date


def _check_marker(fs: Any, url: StoreURL, role: ZoneName) -> None:
    """Refuse ``url`` as a ``role`` zone if it or a prefix above it is marked as the other zone."""
    import json

    for depth in range(len(url.prefix), -1, -1):
        marker = StoreURL(url.scheme, url.bucket, url.prefix[:depth]).join(ZONE_MARKER)
        try:
            with fs.open(marker.path, "rb") as fh:
                marked = json.loads(fh.read().decode("utf-8")).get("role")
        except (FileNotFoundError, ValueError, AttributeError):
            continue
        if marked != role:
            raise ZoneConfigError(
                f"{role} zone root {url} lies under a prefix marked as a {marked} zone ({marker}); "
                f"point SYNTHGEN_{role.upper()}_ZONE at a prefix of its own"
            )


def _mark(fs: Any, url: StoreURL, role: ZoneName) -> None:
    import json

    marker = url.join(ZONE_MARKER)
    if not fs.exists(marker.path):
        fs.pipe_file(marker.path, json.dumps({"role": role}).encode("utf-8"))


def open_object_zone(name: ZoneName, root: str, other: StoreURL | Path, *, spool: Path) -> ObjectZone:
    """Check an object-store zone root (credentials, reachability, bucket, role marker) and mark it.

    Nothing is written before every check has passed.
    """
    url = parse_store_url(root)
    fs = filesystem(url)
    probe(url, fs)
    _check_marker(fs, url, name)
    return ObjectZone(name=name, url=url, other=other, fs=fs, spool=spool)


def mark_object_zone(zone: ObjectZone) -> None:
    """Record the zone's role at its root (after both zones passed their checks)."""
    _mark(zone.fs, zone.url, zone.name)
