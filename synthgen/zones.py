"""Storage zones: the REAL zone (real data and everything derived from it without DP)
and the SYNTHETIC zone (DP outputs only), kept apart (privacy contract P1).

Each zone is a local directory root, or an object-store URL (``s3://bucket/prefix``;
see :mod:`synthgen.storage`, whose URL rules apply to such roots): :meth:`Zones.from_roots`
returns a :class:`Zone` or an :class:`~synthgen.storage.zone.ObjectZone` for each, with the
same operations (``exists``, ``open``, ``atomic_write``, ``atomic_path``, ``atomic_dir``,
``staging``/``commit``, ``remove``, ``uri``); :mod:`synthgen.zone_io` reads catalogued paths
of either kind.

Every path handed out is resolved (``..`` and
symlinks included) and must stay inside its own zone's root; roots that overlap or
nest are a configuration error. Writes are atomic: data goes to a temporary file in
the destination directory, is fsynced, then renamed into place, so a crash never
leaves a half-written file under its final name.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from synthgen.errors import ZoneConfigError, ZoneError
from synthgen.storage import check_separate, is_url, parse_store_url
from synthgen.storage.urls import StoreURL
from synthgen.storage.zone import ZONE_MARKER, ObjectZone, mark_object_zone, open_object_zone

ZoneName = Literal["real", "synthetic"]
_TMP_PREFIX = ".tmp-"


def home_dir() -> Path:
    """synthgen's home: ``SYNTHGEN_HOME`` or ``./.synthgen``."""
    return Path(os.environ.get("SYNTHGEN_HOME", ".synthgen")).expanduser().absolute()


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class Zone:
    name: ZoneName
    root: Path
    #: The other zone's root: a path resolving there is refused even if nested oddly.
    other_root: Path

    def resolve(self, rel: str | os.PathLike[str]) -> Path:
        """Absolute path of ``rel`` inside this zone, after resolving ``..`` and symlinks.

        Raises :class:`ZoneError` if the result leaves the zone or lands in the other zone.
        """
        rel_path = Path(rel)
        candidate = rel_path if rel_path.is_absolute() else self.root / rel_path
        resolved = candidate.resolve(strict=False)
        if _is_within(resolved, self.other_root) or not _is_within(resolved, self.root):
            raise ZoneError(
                f"refusing {self.name}-zone path {os.fspath(rel)!r}: it resolves outside the "
                f"{self.name} zone ({resolved})"
            )
        return resolved

    def uri(self, rel: str | os.PathLike[str]) -> str:
        """The location of ``rel`` as the catalog records it (the resolved absolute path)."""
        return str(self.resolve(rel))

    def contains(self, path: str | os.PathLike[str]) -> bool:
        return _is_within(Path(path).resolve(strict=False), self.root)

    def exists(self, rel: str | os.PathLike[str]) -> bool:
        return self.resolve(rel).exists()

    def open(self, rel: str | os.PathLike[str], mode: str = "rb") -> IO[Any]:
        if any(c in mode for c in "wax+"):
            raise ZoneError("open zone files for writing with atomic_write()")
        return open(self.resolve(rel), mode)

    def remove(self, rel: str | os.PathLike[str]) -> None:
        p = self.resolve(rel)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    @contextmanager
    def atomic_write(self, rel: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
        """Write a file atomically: yields an open temp file, renamed onto ``rel`` on success."""
        with self.atomic_path(rel) as tmp, open(tmp, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())

    @contextmanager
    def atomic_path(self, rel: str | os.PathLike[str]) -> Iterator[Path]:
        """Yields a temporary path beside ``rel``; it is renamed onto ``rel`` on success
        and deleted on any error. For writers that want a path (polars, pyarrow)."""
        final = self.resolve(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after mkdir: a symlinked parent created meanwhile must not escape.
        final = self.resolve(rel)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            self._private(tmp)
            _fsync_path(tmp)
            os.replace(tmp, final)
            _fsync_path(final.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _private(self, path: Path) -> None:
        """Real-zone files are 0600 whatever the writer's umask (reports included)."""
        if self.name != "real":
            return
        for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
            if p.is_file() and not p.is_symlink():
                os.chmod(p, 0o600)

    @contextmanager
    def staging(self, rel_dir: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
        """A temporary file path inside ``rel_dir``, for content whose final name is known
        only once it is written (content hashes). Publish it with :meth:`commit`; whatever
        is still at the temporary path on exit is deleted."""
        directory = self.resolve(rel_dir)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=suffix, dir=self.resolve(rel_dir))
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def commit(self, tmp: Path, rel: str | os.PathLike[str]) -> Path:
        """Atomically move a finished staging file onto ``rel`` (same zone)."""
        final = self.resolve(rel)
        if not self.contains(tmp):
            raise ZoneError(f"staging file {tmp} is not in the {self.name} zone")
        final.parent.mkdir(parents=True, exist_ok=True)
        self._private(tmp)
        _fsync_path(tmp)
        os.replace(tmp, final)
        _fsync_path(final.parent)
        return final

    @contextmanager
    def atomic_dir(self, rel: str | os.PathLike[str]) -> Iterator[Path]:
        """Yields a temporary directory beside ``rel``, renamed onto ``rel`` on success.

        An existing ``rel`` is replaced only after the new content is complete.
        """
        final = self.resolve(rel)
        final.parent.mkdir(parents=True, exist_ok=True)
        final = self.resolve(rel)
        tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=final.parent))
        try:
            yield tmp
            self._private(tmp)
            for f in tmp.rglob("*"):
                if f.is_file():
                    _fsync_path(f)
            if final.exists():
                old = final.with_name(f"{_TMP_PREFIX}old-{final.name}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _fsync_path(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def sweep_temporaries(self, *, older_than: float = 0.0) -> list[str]:
        """Remove temp files left by a crash (never visible under a final name) whose newest
        modification is more than ``older_than`` seconds ago (a younger one may belong to a
        stage still running). Returns the removed paths, relative to the zone root."""
        import time

        removed: list[str] = []
        if not self.root.exists():
            return removed
        cutoff = time.time() - older_than
        for p in sorted(self.root.rglob(f"{_TMP_PREFIX}*")):
            if not p.exists() or any(
                q.name.startswith(_TMP_PREFIX) for q in p.relative_to(self.root).parents
            ):
                continue  # inside a temp folder already removed or about to be
            try:
                inner = p.rglob("*") if p.is_dir() and not p.is_symlink() else ()
                newest = max([p.lstat().st_mtime, *(f.lstat().st_mtime for f in inner)])
            except OSError:
                continue
            if newest > cutoff:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(str(p.relative_to(self.root)))
        return removed


# ZONE_MARKER (imported above): a file at each zone root recording its role, so that one
# deployment's real zone can never be pointed into another deployment's synthetic zone.


def _check_marked_role(root: Path, role: ZoneName) -> None:
    """Refuse ``root`` as a ``role`` zone if it, or a folder above it, is marked as the other zone."""
    for folder in (root, *root.parents):
        marker = folder / ZONE_MARKER
        try:
            marked = json.loads(marker.read_text(encoding="utf-8")).get("role")
        except (OSError, ValueError, AttributeError):
            continue
        if marked != role:
            raise ZoneError(
                f"{role} zone root {root} lies in a folder marked as a {marked} zone ({marker}); "
                f"point SYNTHGEN_{role.upper()}_ZONE at a folder of its own"
            )


def _mark(root: Path, role: ZoneName) -> None:
    marker = root / ZONE_MARKER
    if not marker.exists():
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=root)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"role": role}, fh)
        os.replace(tmp, marker)


def _root(raw: str | os.PathLike[str]) -> Path | str:
    """A local root resolved to a Path; an object-store URL kept as given (see :mod:`synthgen.storage`)."""
    text = os.fspath(raw)
    if is_url(text):
        return text
    return Path(text.removeprefix("file://")).expanduser().resolve()


def zone_roots_from_env() -> tuple[Path | str, Path | str]:
    """The configured (real, synthetic) roots, without creating them: local roots resolved,
    object-store URLs as given."""
    home = home_dir()
    real = os.environ.get("SYNTHGEN_REAL_ZONE", str(home / "zones" / "real"))
    synthetic = os.environ.get("SYNTHGEN_SYNTHETIC_ZONE", str(home / "zones" / "synthetic"))
    return _root(real), _root(synthetic)


def check_outside_zones(path: str | os.PathLike[str], what: str, *, allow_real: bool = False) -> None:
    """Refuse a key folder, audit file or catalog database inside a zone (the real zone only
    when ``allow_real``): keys and records must not travel with the data they protect."""
    p = Path(path).expanduser().resolve()
    real, synthetic = zone_roots_from_env()
    for root, name in ((synthetic, "synthetic"), (real, "real")):
        if (name == "real" and allow_real) or not isinstance(root, Path):
            continue  # a local path is never inside an object-store zone
        if _is_within(p, root):
            where = "outside both zones" if not allow_real else "outside the synthetic zone"
            raise ZoneError(f"{what} {p} is inside the {name} zone ({root}); keep it {where}")


def _fsync_path(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: A zone of either kind: a local folder or a prefix of an object store.
AnyZone = Zone | ObjectZone


@dataclass(frozen=True)
class Zones:
    real: AnyZone
    synthetic: AnyZone

    @classmethod
    def from_roots(cls, real: str | os.PathLike[str], synthetic: str | os.PathLike[str]) -> Zones:
        r, s = _root(real), _root(synthetic)
        if not isinstance(r, Path) or not isinstance(s, Path):
            # Every check first: separation, credentials, reachability, bucket, markers.
            opened = open_zones(r, s)
            return cls(real=opened.real, synthetic=opened.synthetic)
        if _is_within(r, s) or _is_within(s, r):
            raise ZoneConfigError(
                f"zone roots overlap: real={r} synthetic={s}; give the two zones separate, non-nested roots"
            )
        for p, role in ((r, "real"), (s, "synthetic")):
            _check_marked_role(p, role)  # type: ignore[arg-type]
        for p, role in ((r, "real"), (s, "synthetic")):
            p.mkdir(parents=True, exist_ok=True)
            _mark(p, role)  # type: ignore[arg-type]
        return cls(real=Zone("real", r, s), synthetic=Zone("synthetic", s, r))

    @classmethod
    def from_env(cls) -> Zones:
        """Zones from ``SYNTHGEN_REAL_ZONE`` / ``SYNTHGEN_SYNTHETIC_ZONE`` (defaults under the home)."""
        return cls.from_roots(*zone_roots_from_env())

    def zone(self, name: ZoneName) -> AnyZone:
        return self.real if name == "real" else self.synthetic


#: The ``other_root`` of a local zone whose partner is on an object store: nothing on the local
#: file system resolves under ``/dev/null`` (a device, not a folder), so no path is refused for it.
_NO_LOCAL_PARTNER = Path("/dev/null/object-store-zone")


@dataclass(frozen=True)
class StoreZones:
    """The two zones when one or both roots are object-store URLs (:mod:`synthgen.storage.zone`)."""

    real: Zone | ObjectZone
    synthetic: Zone | ObjectZone

    def zone(self, name: ZoneName) -> Zone | ObjectZone:
        return self.real if name == "real" else self.synthetic


def open_zones(real: Path | str, synthetic: Path | str) -> StoreZones:
    """Both zones, one or both on an object store, after every check, in this order: URL form
    and separation (no network), credentials, reachability, bucket, role markers. Nothing is
    written before all passed. Raises :class:`ZoneConfigError` (exit 2) or
    :class:`~synthgen.errors.StorageUnreachable` (exit 1).
    """
    roots: tuple[tuple[ZoneName, Path | str], ...] = (("real", real), ("synthetic", synthetic))
    urls = {name: parse_store_url(root) for name, root in roots if isinstance(root, str)}
    check_separate(real, synthetic)
    spool = Path(os.environ.get("SYNTHGEN_SPOOL", str(home_dir() / "spool"))).resolve()
    for name, root in roots:
        if urls and isinstance(root, Path):
            local = root.resolve()
            if spool.is_relative_to(local) or local.is_relative_to(spool):
                # Spooled real files inside (or around) a zone would sit in the wrong room.
                raise ZoneConfigError(
                    f"SYNTHGEN_SPOOL ({spool}) overlaps the {name} zone ({local}): put the spool "
                    "outside both zones"
                )
    opened: dict[ZoneName, Zone | ObjectZone] = {}
    for name, root in roots:
        other_name: ZoneName = "synthetic" if name == "real" else "real"
        other_root = dict(roots)[other_name]
        other: StoreURL | Path = urls.get(other_name) or (
            other_root if isinstance(other_root, Path) else _NO_LOCAL_PARTNER
        )
        if isinstance(root, str):
            opened[name] = open_object_zone(name, root, other, spool=spool / name)
        else:
            _check_marked_role(root, name)
            opened[name] = Zone(name, root, other if isinstance(other, Path) else _NO_LOCAL_PARTNER)
    for zone in opened.values():
        if isinstance(zone, ObjectZone):
            mark_object_zone(zone)
        else:
            zone.root.mkdir(parents=True, exist_ok=True)
            _mark(zone.root, zone.name)
    return StoreZones(real=opened["real"], synthetic=opened["synthetic"])
