"""Publication orphans: what a killed publish leaves in the SYNTHETIC zone, and its sweep.

A publish writes the envelope and keyring under their final names, then commits the catalog
row with its binding and audit entries in one transaction (:func:`synthgen.access.publish.publish_dataset`).
A kill before that commit leaves files nothing catalogues: unreadable (every read starts
from the catalog) but taking space and confusing a rotation. The next publish, under the
same lock, removes them and the ``.tmp-`` files of publication folders (``<zone>/<name>/``;
never ``staging/`` or ``models/``, where generate and train work), and records what it removed in the audit
trail (``sweep``). Publishing, revocation and rotation hold :func:`publish_lock`, so a sweep
never removes another publish's files in flight. A synthetic zone on an object store has
the same sweep on keys (:func:`sweep_object_orphans`).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from synthgen.orphans import record_sweep, sweep_object_staging
from synthgen.spec import RESERVED_DATASET_NAMES
from synthgen.zones import Zone, Zones

if TYPE_CHECKING:
    from synthgen.catalog import Catalog
    from synthgen.policy import AuditLog
    from synthgen.storage.zone import ObjectZone

LOCK_NAME = ".synthgen-publish.lock"
#: Top-level folders of the synthetic zone that are not publications (generate's shards, DP
#: models; :mod:`synthgen.orphans` sweeps those): never swept here, and not dataset names.
RESERVED_FOLDERS = RESERVED_DATASET_NAMES
_ENVELOPE = ".sgenc"
_KEYRING = ".keyring.json"


@contextmanager
def publish_lock(zones: Zones) -> Iterator[None]:
    """An exclusive lock over the synthetic zone's publications (one file, ``flock``)."""
    if not isinstance(zones.synthetic, Zone):
        with object_publish_lock(zones.synthetic):
            yield
        return
    root = zones.synthetic.root
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK_NAME, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _dataset_id(name: str) -> str | None:
    for suffix in (_ENVELOPE, _KEYRING):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return None


def sweep_orphans(catalog: Catalog, zones: Zones, audit: AuditLog, *, user: str) -> list[str]:
    """Remove uncatalogued envelopes/keyrings and temporary files from the synthetic zone
    (call under :func:`publish_lock`). Returns the removed paths, relative to the zone; audited.

    On an object store: :func:`sweep_object_orphans`, then the staging transactions older than
    :data:`synthgen.orphans.TEMP_MAX_AGE_S` (:func:`synthgen.orphans.sweep_object_staging`)."""
    if not isinstance(zones.synthetic, Zone):
        swept = sweep_object_orphans(catalog, zones.synthetic, audit, user=user)
        swept += sweep_object_staging(zones.synthetic, audit, user=user)
        spool = zones.synthetic.sweep_spool()  # a killed publish's plaintext assembly, on this host
        resource = f"synthetic:{zones.synthetic.root}"
        return swept + record_sweep(
            audit, user=user, resource=resource, removed=spool, reason="spool folders of killed processes"
        )
    root = zones.synthetic.root
    if not root.is_dir():
        return []
    catalogued = {d.id for d in catalog.list_datasets(zone="synthetic")}
    removed: list[str] = []
    for path in sorted(root.glob("*/*")):  # publications are <zone>/<name>/<id>.sgenc
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in RESERVED_FOLDERS:
            continue
        ds_id = _dataset_id(path.name)
        if path.name.startswith(".tmp-") or (ds_id is not None and ds_id not in catalogued):
            removed.append(str(rel))
            path.unlink(missing_ok=True)
    reason = "uncatalogued publication files or temporaries"
    return record_sweep(audit, user=user, resource="synthetic:*", removed=removed, reason=reason)


def sweep_object_orphans(catalog: Catalog, zone: ObjectZone, audit: AuditLog, *, user: str) -> list[str]:
    """:func:`sweep_orphans` for a synthetic zone on an object store: remove uncatalogued
    envelopes and keyrings (a publish killed after its final copy, before its catalog row).

    Object stores have no ``flock``: call it under :func:`object_publish_lock` (one host) or
    an external lock (an Airflow pool of size one) when several hosts publish into one zone.
    Staging transactions are the business of :func:`synthgen.orphans.sweep_object_staging`.
    Returns the removed keys, relative to the zone root; audited.
    """
    from synthgen.storage.zone import STAGING_PREFIX

    catalogued = {d.id for d in catalog.list_datasets(zone="synthetic")}
    removed: list[str] = []
    # Two delimited listings deep (publications are <name>/<id>.sgenc), never the whole zone.
    for folder in sorted(zone.fs.ls(zone.url.path, detail=True, refresh=True), key=lambda i: i["name"]):
        name = folder["name"].rstrip("/").rsplit("/", 1)[-1]
        if folder["type"] != "directory" or name in RESERVED_FOLDERS or name == STAGING_PREFIX:
            continue
        for path in sorted(zone.fs.ls(folder["name"], detail=False, refresh=True)):
            ds_id = _dataset_id(path.rsplit("/", 1)[-1])
            if ds_id is not None and ds_id not in catalogued:
                zone.fs.rm_file(path)
                removed.append(f"{name}/{path.rsplit('/', 1)[-1]}")
    reason = "uncatalogued publication objects"
    return record_sweep(audit, user=user, resource=f"synthetic:{zone.root}", removed=removed, reason=reason)


@contextmanager
def object_publish_lock(zone: ObjectZone) -> Iterator[None]:
    """:func:`publish_lock` for an object-store zone: a local ``flock`` keyed by the zone's URL.

    It serialises the publishers of one host only (object stores offer no lock a sweep could
    trust); a deployment with several publishing hosts runs publish in a pool of size one.
    """
    import hashlib

    from synthgen.zones import home_dir

    locks = home_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(zone.root.encode("utf-8")).hexdigest()[:24]
    with open(locks / f"publish-{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
