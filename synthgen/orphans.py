"""Orphans of killed runs: files under final names that no catalog row owns, swept at the next run.

A stage commits its files first and its catalog row second, so a kill in between leaves a
complete artifact that nothing lists: for ``train`` a DP model folder (synthetic zone) or a
non-DP one (real zone), and the holdout, an uncatalogued copy of real rows (real zone).
Its epsilon is not lost: the run's budget reservation stays open, so the source stays
charged (see :mod:`synthgen.privacy.budget`). The sweep, run at the start of ``train``,
removes such files, turns a dead run's open reservation into a ``killed_run`` ledger entry
(same amount), removes ``.tmp-`` leftovers and the other stages' uncatalogued outputs under
final names (snapshots, anonymized data, reports, shards) once they are older than
:data:`TEMP_MAX_AGE_S`, and records everything it removed in the audit log. For an
object-store zone it does the same on keys, removes staging transactions older than
:data:`TEMP_MAX_AGE_S` and the local spool folders of killed processes
(:meth:`~synthgen.storage.zone.ObjectZone.sweep_spool`: their ``flock`` is free). The staging
folder of a ``synthgen run`` that was killed (its run lock free, :func:`run_alive`) goes at once,
whatever its age.

A training run holds an exclusive ``flock`` on ``<real zone>/locks/train/<model id>.lock``
for its whole life, taken before it reserves budget or writes anything. The kernel drops
the lock when the process dies, however it dies, so the sweep can tell a live run from a
dead one: it never touches what a live run owns. The lock is per host (or per shared file
system that honours ``flock``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from synthgen.errors import SynthgenError
from synthgen.zones import AnyZone, Zone, home_dir

if TYPE_CHECKING:
    from synthgen.policy import AuditLog
    from synthgen.spec import PipelineSpec
    from synthgen.stages.context import Context
    from synthgen.storage.zone import ObjectZone

#: A ``.tmp-`` file or folder younger than this may belong to a stage still writing it.
TEMP_MAX_AGE_S = 6 * 3600.0
_HOLDOUT_SUFFIXES = (".counts.json", ".parquet")


def _lock_path(real: AnyZone, key: str, kind: str = "train") -> Path:
    if isinstance(real, Zone):
        return real.resolve(f"locks/{kind}/{key}.lock")
    # An object store has no flock: a real zone there keeps its locks on this host,
    # under the home, keyed by the zone's URL (as object_publish_lock does).
    import hashlib

    zone_key = hashlib.sha256(real.root.encode("utf-8")).hexdigest()[:24]
    return home_dir() / "locks" / f"zone-{zone_key}" / kind / f"{key}.lock"


@contextmanager
def running(real: AnyZone, model_id: str) -> Iterator[None]:
    """Mark the training of ``model_id`` as live for as long as the block runs (and the process lives)."""
    with _live(real, model_id, "train", f"model {model_id} is being trained by another process; wait for it"):
        yield


@contextmanager
def run_alive(real: AnyZone, pipeline: str, run_id: str) -> Iterator[None]:
    """Mark the whole run ``run_id`` (``synthgen run``) as live while the block runs.

    A run killed outright leaves its lock file with the lock free: the sweep then removes the
    run's staging shards (catalogued, but no live run will publish them). A run that ends,
    even by an error, removes the file: its shards stay for ``synthgen publish`` to retry.
    """
    with _live(real, run_id, f"run/{pipeline}", f"run {run_id} is already running in another process"):
        yield


@contextmanager
def one_at_a_time(real: AnyZone, pipeline: str, stage: str) -> Iterator[None]:
    """Serialise ``stage`` of ``pipeline`` across processes (blocking ``flock``).

    For the stages whose output id is derived from their input (ingest, anonymize): two runs
    of one pipeline would build the same dataset into the same folders at once. The second
    waits here and then finds the first's output catalogued and reuses it. The lock file
    exists only while a holder runs (or after a kill, until the next holder takes it).
    """
    with _held(_lock_path(real, f"{pipeline}.{stage}", "stage"), busy=None):
        yield


@contextmanager
def _live(real: AnyZone, key: str, kind: str, busy: str) -> Iterator[None]:
    """Hold ``locks/<kind>/<key>.lock`` while the block runs, or raise ``busy`` if another process does."""
    with _held(_lock_path(real, key, kind), busy=busy):
        yield


@contextmanager
def _held(path: Path, *, busy: str | None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block; the file is unlinked (still locked) after.

    ``busy`` None: wait for the lock; else raise :class:`SynthgenError` with it at once.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if busy is None else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise SynthgenError(str(busy)) from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break  # the lock is on the file the sweep (and the next taker) will look at
        except FileNotFoundError:
            pass
        os.close(fd)  # the file was removed between our open and our lock: take a fresh one
    try:
        yield
    finally:
        # Unlink while holding the lock: a sweeper that still opens the old file finds the
        # output catalogued (the holder commits before it gets here), one that opens later finds
        # none; a waiter on the old inode sees it is no longer the path's and retries.
        path.unlink(missing_ok=True)
        os.close(fd)


def _dead(real: AnyZone, key: str, kind: str = "train") -> bool:
    """True when no live process holds ``key`` (its lock file is gone or its lock is free)."""
    try:
        fd = os.open(_lock_path(real, key, kind), os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops a lock we took
    return True


def _entries(zone: AnyZone, rel_dir: str) -> list[tuple[str, bool]]:
    """``(name, is_folder)`` of what lies directly in ``rel_dir`` (none when it is not a folder)."""
    if not isinstance(zone, Zone):
        return zone.listdir(rel_dir)
    d = zone.resolve(rel_dir)
    return [(p.name, p.is_dir()) for p in sorted(d.iterdir())] if d.is_dir() else []


def _train_candidates(spec: PipelineSpec, ctx: Context) -> list[tuple[AnyZone, str, str]]:
    """(zone, relative path, model id) of every model folder and holdout file of the pipeline."""
    out: list[tuple[AnyZone, str, str]] = []
    for zone in (ctx.zones.synthetic, ctx.zones.real):
        out += [
            (zone, f"models/{spec.name}/{name}", name)
            for name, _ in _entries(zone, f"models/{spec.name}")
            if not name.startswith(".tmp-")
        ]
    for name, _ in _entries(ctx.zones.real, f"holdout/{spec.name}"):
        suffix = next((s for s in _HOLDOUT_SUFFIXES if name.endswith(s)), None)
        if suffix and not name.startswith(".tmp-"):
            out.append((ctx.zones.real, f"holdout/{spec.name}/{name}", name.removesuffix(suffix)))
    return out


def _stage_candidates(spec: PipelineSpec, ctx: Context) -> list[tuple[AnyZone, str, str]]:
    """(zone, relative path, dataset id) of the other stages' outputs under final names: snapshots,
    anonymized folders, reports (real zone) and generated shards (either zone)."""
    out: list[tuple[AnyZone, str, str]] = []

    def each(zone: AnyZone, rel_dir: str, suffix: str = "", *, dirs: bool = False) -> None:
        for name, is_dir in _entries(zone, rel_dir):
            if not name.startswith(".tmp-") and name.endswith(suffix) and (not dirs or is_dir):
                out.append((zone, f"{rel_dir}/{name}", name.removesuffix(suffix)))

    real = ctx.zones.real
    each(real, f"snapshots/{spec.name}", ".parquet")  # a snapshot from before parts: one file
    each(real, f"snapshots/{spec.name}", dirs=True)  # a directory of parts
    each(real, f"anonymized/{spec.name}")
    each(real, f"reports/{spec.name}")
    for zone in (ctx.zones.synthetic, real):
        for run_name, is_dir in _entries(zone, f"staging/{spec.name}"):
            if is_dir and not run_name.startswith(".tmp-"):
                each(zone, f"staging/{spec.name}/{run_name}", ".parquet")
    return out


def _age(zone: AnyZone, rel: str) -> float:
    return _age_s(zone.resolve(rel)) if isinstance(zone, Zone) else zone.age_s(rel)


def _remove_rel(zone: AnyZone, rel: str) -> None:
    if isinstance(zone, Zone):
        _remove(zone.resolve(rel))
    else:
        zone.remove(rel)


def _age_s(path: Path) -> float:
    """Seconds since anything under ``path`` was last modified."""
    import time

    try:
        inner = path.rglob("*") if path.is_dir() else ()
        return time.time() - max([path.lstat().st_mtime, *(f.lstat().st_mtime for f in inner)])
    except OSError:  # changing under us: a stage is working on it
        return 0.0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_train(spec: PipelineSpec, ctx: Context) -> dict[str, list[str]]:
    """Remove what killed training runs of ``spec``'s pipeline left, and audit it.

    Returns ``{"removed": ["zone:path", ...], "killed_runs": [run ids charged]}``.
    """
    from synthgen.policy.audit import AuditLog
    from synthgen.privacy import budget

    real = ctx.zones.real
    removed: list[str] = []
    for zone, rel, model_id in _train_candidates(spec, ctx):
        if ctx.catalog.get_dataset(model_id) is None and _dead(real, model_id):
            _remove_rel(zone, rel)
            removed.append(f"{zone.name}:{rel}")
    # The other stages hold no lock, but each catalogues its output right after committing it:
    # one uncatalogued for longer than TEMP_MAX_AGE_S was left by a killed stage.
    for zone, rel, dataset_id in _stage_candidates(spec, ctx):
        if ctx.catalog.get_dataset(dataset_id) is None and _age(zone, rel) > TEMP_MAX_AGE_S:
            _remove_rel(zone, rel)
            removed.append(f"{zone.name}:{rel}")
    killed: list[str] = []
    for r in budget.open_reservations(ctx.catalog):
        model_id = str((r.detail or {}).get("model_id") or "")
        if (r.detail or {}).get("pipeline") != spec.name or not model_id:
            continue
        dead = ctx.catalog.get_dataset(model_id) is None and _dead(real, model_id)
        if dead and budget.charge_killed(ctx.catalog, r.id, reason="its run died before settling"):
            killed.append(r.run_id)
    removed += _sweep_killed_runs(spec, ctx)
    locks = _lock_path(real, "-").parent
    for stale in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        if _dead(real, stale.stem):
            stale.unlink(missing_ok=True)  # a dead run's lock file; it guards nothing now
    for zone in (real, ctx.zones.synthetic):
        removed += [f"{zone.name}:{p}" for p in zone.sweep_temporaries(older_than=TEMP_MAX_AGE_S)]
        if not isinstance(zone, Zone):  # the spool folders of killed processes (their flock is free)
            removed += [f"{zone.name}:spool:{p}" for p in zone.sweep_spool()]
    if removed or killed:
        AuditLog(ctx.catalog).record(
            actor=ctx.user,
            action="sweep",
            resource=f"pipeline:{spec.name}",
            decision="ok",
            detail={"removed": removed, "killed_runs": killed},
        )
    return {"removed": removed, "killed_runs": killed}


def _sweep_killed_runs(spec: PipelineSpec, ctx: Context) -> list[str]:
    """Remove the staging folder (shards, a publish's assembly) of every killed ``synthgen run``.

    Killed means: the run's lock file (:func:`run_alive`) is still there and nobody holds its
    lock. A folder without a lock file (``synthgen generate``, a DAG, a run that ended by an
    error) is kept: a later ``publish`` may use it. The shards' catalog rows stay (lineage);
    ``publish`` skips shards whose files are gone.
    """
    removed: list[str] = []
    real = ctx.zones.real
    kind = f"run/{spec.name}"
    for zone in (ctx.zones.synthetic, real):
        for run_id, is_dir in _entries(zone, f"staging/{spec.name}"):
            if not is_dir or run_id.startswith(".tmp-") or not _lock_path(real, run_id, kind).exists():
                continue
            if _dead(real, run_id, kind):
                rel = f"staging/{spec.name}/{run_id}"
                _remove_rel(zone, rel)
                removed.append(f"{zone.name}:{rel}")
    locks = _lock_path(real, "-", kind).parent
    for stale in sorted(locks.glob("*.lock")) if locks.is_dir() else []:
        if _dead(real, stale.stem, kind):
            stale.unlink(missing_ok=True)  # its staging (if any) went above
    return removed


def sweep_object_staging(
    zone: ObjectZone, audit: AuditLog, *, user: str, older_than: float = TEMP_MAX_AGE_S
) -> list[str]:
    """Remove the staging transactions that killed writers left in an object-store zone.

    An object store has no rename: a commit writes under ``.synthgen-staging/<txn>/`` first
    (:mod:`synthgen.storage.zone`). A transaction whose newest object is older than
    ``older_than`` seconds has no live writer (a commit takes seconds to minutes); its
    objects were never under a final key and never catalogued. Audited.
    """
    removed = zone.sweep_temporaries(older_than=older_than)
    return record_sweep(
        audit,
        user=user,
        resource=f"{zone.name}:{zone.root}",
        removed=removed,
        reason="staging objects of killed writers",
    )


def record_sweep(audit: AuditLog, *, user: str, resource: str, removed: list[str], reason: str) -> list[str]:
    """Audit what a sweep removed (nothing when it removed nothing); returns ``removed``."""
    if removed:
        audit.record(
            actor=user,
            action="sweep",
            resource=resource,
            decision="ok",
            detail={"removed": removed, "reason": reason},
        )
    return removed
