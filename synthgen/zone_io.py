"""Catalogued paths of either kind of zone: a local path, or an object-store URL.

The catalog records where each dataset lives: the resolved path of a local zone's file, or
the URL of an object-store zone's key (``s3://bucket/prefix/...``). The stages read their
inputs through these helpers, so the same stage code runs on both kinds of zone. A local
path keeps exactly what the stages did before object stores (``Path(path)``, ``pl.read_parquet``);
a URL goes through its zone (:class:`~synthgen.storage.zone.ObjectZone`): Parquet is read
with ranged requests through pyarrow, and a reader that needs a path (polars scans, torch
loads, the leak index) gets a local copy in the zone's private spool, deleted after use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from synthgen.errors import ZoneError
from synthgen.storage import is_url

if TYPE_CHECKING:
    import polars as pl

    from synthgen.storage.zone import ObjectZone
    from synthgen.zones import Zones


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True for an object-store URL (``s3://...``), False for a local path."""
    return is_url(os.fspath(path))


def join(base: str | os.PathLike[str], *parts: str) -> str:
    """``base`` with ``parts`` appended: ``/`` segments for a URL, ``os.path`` for a local path."""
    raw = os.fspath(base)
    if is_remote(raw):
        return "/".join([raw.rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(raw, *parts))


def sibling(path: str | os.PathLike[str], name: str) -> str:
    """The path of ``name`` in the same folder as ``path`` (``Path.with_name`` for either kind)."""
    raw = os.fspath(path)
    if is_remote(raw):
        return raw.rstrip("/").rsplit("/", 1)[0] + "/" + name
    return str(Path(raw).with_name(name))


def object_zone_of(zones: Zones, path: str | os.PathLike[str]) -> ObjectZone:
    """The object-store zone holding the URL ``path`` (raises :class:`ZoneError` if neither does)."""
    from synthgen.storage.zone import ObjectZone

    for zone in (zones.real, zones.synthetic):
        if isinstance(zone, ObjectZone) and zone.contains(path):
            return zone
    raise ZoneError(f"{os.fspath(path)} lies in neither zone ({zones.real.root}, {zones.synthetic.root})")


def exists(zones: Zones, path: str | os.PathLike[str]) -> bool:
    """Whether the catalogued file or folder ``path`` is there."""
    if not is_remote(path):
        return Path(path).exists()
    return object_zone_of(zones, path).exists(path)


@contextmanager
def local(zones: Zones | None, path: str | os.PathLike[str]) -> Iterator[Path]:
    """A local path to read the catalogued file or folder ``path``: itself when local, else a
    spooled copy (deleted on exit; a URL needs ``zones``)."""
    if not is_remote(path):
        yield Path(path)
        return
    if zones is None:
        raise ZoneError(f"{os.fspath(path)} is on an object store, but no zones were given to read it")
    with object_zone_of(zones, path).fetch(path) as copy:
        yield copy


@contextmanager
def local_all(zones: Zones, paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """:func:`local` for several paths at once."""
    with ExitStack() as stack:
        yield [stack.enter_context(local(zones, p)) for p in paths]


def read_frame(zones: Zones, path: str | os.PathLike[str]) -> pl.DataFrame:
    """The Parquet file ``path`` as a DataFrame (a URL is read with ranged requests, no local copy)."""
    import polars as pl

    if not is_remote(path):
        return pl.read_parquet(os.fspath(path))
    import pyarrow.parquet as pq

    with object_zone_of(zones, path).open(path, "rb") as fh:
        frame = pl.from_arrow(pq.read_table(fh))
    assert isinstance(frame, pl.DataFrame)
    return frame


def read_bytes(zones: Zones, path: str | os.PathLike[str]) -> bytes:
    if not is_remote(path):
        return Path(path).read_bytes()
    with object_zone_of(zones, path).open(path, "rb") as fh:
        data: bytes = fh.read()
    return data


def remove(zones: Zones, path: str | os.PathLike[str]) -> None:
    """Delete the catalogued file ``path`` if it is there (``Path.unlink(missing_ok=True)`` when local)."""
    if not is_remote(path):
        Path(path).unlink(missing_ok=True)
        return
    object_zone_of(zones, path).remove(path)
