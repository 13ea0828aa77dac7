"""The audit trail: every access decision, key operation and publication, hash-chained.

Each entry is written twice, to the catalog's ``access_log`` table and to a JSONL
file (``<home>/audit/audit.jsonl``), in one step under a file lock. An entry is::

    {"seq": n, "ts": ..., "actor": ..., "action": ..., "resource": ..., "decision": ...,
     "rule": ..., "detail": {...}, "prev_hash": <hash of entry n-1>, "hash": ...}

with ``hash = HMAC-SHA256(K, canonical JSON of the entry without "hash")`` and
``prev_hash`` of the first entry 64 zeros. ``K`` is derived from the platform secret
(:mod:`synthgen.crypto.platform`, under ``<home>/keys`` or ``SYNTHGEN_PIPELINE_SECRET``),
never stored beside the log: without it nobody can recompute a valid chain after editing,
deleting or inserting an entry. Editing any field breaks that entry's hash; deleting or
inserting an entry breaks the next entry's ``prev_hash`` (or the sequence); and the two
copies must agree, so a tail cut from one of them shows too.

The latest ``seq`` and ``hash`` are also anchored in the catalog (``catalog_meta``
``audit_head``), written in the same transaction as the entry, so a tail cut from *both*
copies alike, or both copies emptied, is caught; an anchor missing from a catalog that
holds datasets is a break too. What the anchor cannot catch is a rollback of the whole
catalog database together with the file (restore from an old backup): copy the head
(``synthgen audit verify`` prints it) somewhere append-only if that matters.

Details never hold key material: key operations record KEK ids and roles only.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from synthgen.catalog import AccessLog, Catalog, Dataset
from synthgen.catalog.models import Meta
from synthgen.crypto.canonical import canonical_json
from synthgen.errors import CatalogError

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "actor", "action", "resource", "decision", "rule", "detail", "prev_hash")


def audit_path() -> Path:
    """``SYNTHGEN_AUDIT_FILE``, else ``<home>/audit/audit.jsonl``."""
    from synthgen.zones import home_dir

    env = os.environ.get("SYNTHGEN_AUDIT_FILE")
    return Path(env) if env else home_dir() / "audit" / "audit.jsonl"


_PURPOSE = "audit-chain"
ANCHOR = "audit_head"


def audit_key(*, create: bool = True) -> bytes:
    """The chain's HMAC key, derived from the platform secret (never stored beside the log)."""
    from synthgen.crypto.platform import derive_key

    return derive_key(_PURPOSE, create=create)


def entry_hash(entry: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical_json({k: entry.get(k) for k in _FIELDS}), hashlib.sha256).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class AuditLog:
    """Appends keyed, hash-chained entries to the catalog and the JSONL file."""

    def __init__(self, catalog: Catalog, path: Path | None = None, *, key: bytes | None = None) -> None:
        self.catalog = catalog
        self.path = path or audit_path()
        self._key = key

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = audit_key()
        return self._key

    def record(
        self,
        *,
        actor: str,
        action: str,
        resource: str,
        decision: str,
        rule: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one entry and return it. ``decision`` is allow | deny | ok | error."""
        with self.batch() as batch:
            return batch.record(
                actor=actor, action=action, resource=resource, decision=decision, rule=rule, detail=detail
            )

    @contextmanager
    def batch(self) -> Iterator[AuditBatch]:
        """One catalog transaction for entries *and* whatever else the caller adds to
        ``batch.session`` (a dataset row): they commit together or not at all.

        The file lines are written after the rows are flushed and before the commit: if the
        commit then fails, the file holds entries the catalog lacks, which ``verify_audit``
        reports; an entry that committed without its file line is never possible.
        """
        from synthgen.zones import check_outside_zones

        check_outside_zones(self.path, "the audit file", allow_real=True)
        with _locked(self.path), self.catalog.session() as s:
            batch = AuditBatch(self, s)
            yield batch
            if batch.entries:
                s.flush()  # a conflicting seq (another writer on a shared catalog) fails here
                head = batch.entries[-1]
                anchor = s.get(Meta, ANCHOR)
                value = f"{head['seq']} {head['hash']}"
                if anchor is None:
                    s.add(Meta(key=ANCHOR, value=value))
                else:
                    anchor.value = value
                s.flush()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, b"".join(canonical_json(e) + b"\n" for e in batch.entries))
                    os.fsync(fd)
                finally:
                    os.close(fd)


class AuditBatch:
    """Entries appended inside one :meth:`AuditLog.batch` transaction."""

    def __init__(self, log: AuditLog, session: Session) -> None:
        self.log = log
        self.session = session
        self.entries: list[dict[str, Any]] = []

    def record(
        self,
        *,
        actor: str,
        action: str,
        resource: str,
        decision: str,
        rule: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if self.entries:
            seq, prev = self.entries[-1]["seq"] + 1, self.entries[-1]["hash"]
        else:
            last = self.session.execute(
                select(AccessLog).order_by(AccessLog.seq.desc()).limit(1)
            ).scalar_one_or_none()
            seq, prev = ((last.seq + 1), last.hash) if last else (1, GENESIS)
        entry: dict[str, Any] = {
            "seq": seq,
            "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "resource": resource,
            "decision": decision,
            "rule": rule,
            "detail": json.loads(canonical_json(detail or {})),
            "prev_hash": prev,
        }
        entry["hash"] = entry_hash(entry, self.log.key)
        self.session.add(
            AccessLog(
                seq=entry["seq"],
                ts=datetime.fromisoformat(entry["ts"]),
                actor=actor,
                action=action,
                resource=resource,
                decision=decision,
                rule=rule,
                detail=entry["detail"],
                prev_hash=entry["prev_hash"],
                hash=entry["hash"],
            )
        )
        self.entries.append(entry)
        return entry


@dataclass
class AuditReport:
    ok: bool
    entries: int
    head: str
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head[:16]}"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        return f"audit chain BROKEN: {self.problems[0]}{more}"


def verify_audit(
    catalog: Catalog | None = None, path: Path | None = None, *, key: bytes | None = None
) -> AuditReport:
    """Check the keyed JSONL chain, that the catalog copy matches it entry for entry, and that
    the catalog's anchor names the last entry. Needs the platform secret (the chain's key)."""
    from synthgen.zones import check_outside_zones

    path = path or audit_path()
    # The same refusal as writing: a trail inside the synthetic zone is shareable, so a copy there
    # proves nothing (and its reader could have written it).
    check_outside_zones(path, "the audit file", allow_real=True)
    key = key if key is not None else audit_key(create=False)
    problems: list[str] = []
    file_entries: list[dict[str, Any]] = []
    mismatched = 0
    prev, expected_seq = GENESIS, 1
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    problems.append(f"{path}:{lineno}: blank line")
                    continue
                try:
                    entry = json.loads(raw)
                    if not isinstance(entry, dict):
                        raise ValueError
                except ValueError:
                    problems.append(f"{path}:{lineno}: not a JSON object")
                    continue
                if not hmac.compare_digest(str(entry.get("hash")), entry_hash(entry, key)):
                    mismatched += 1
                    problems.append(f"{path}:{lineno}: entry {entry.get('seq')} was edited (hash mismatch)")
                if entry.get("prev_hash") != prev:
                    problems.append(
                        f"{path}:{lineno}: entry {entry.get('seq')} does not follow the previous entry "
                        "(an entry before it was deleted, inserted or edited)"
                    )
                if entry.get("seq") != expected_seq:
                    problems.append(
                        f"{path}:{lineno}: sequence jumps from {expected_seq - 1} to {entry.get('seq')}"
                    )
                prev = str(entry.get("hash"))
                expected_seq = (entry["seq"] + 1) if isinstance(entry.get("seq"), int) else expected_seq + 1
                file_entries.append(entry)
    if file_entries and mismatched == len(file_entries):
        # Not one entry verifies: far likelier a different key than every entry edited.
        problems.insert(
            0,
            f"no entry of {path} verifies under this platform secret: most likely it is not the secret "
            "that wrote the trail (check SYNTHGEN_PIPELINE_SECRET or <home>/keys/pipeline.secret); "
            "if it is, every entry was edited",
        )
    if catalog is not None:
        try:
            with catalog.session() as s:
                rows = list(s.scalars(select(AccessLog).order_by(AccessLog.seq)))
                count = s.scalar(select(func.count()).select_from(AccessLog)) or 0
        except CatalogError as exc:  # pragma: no cover - reported, not raised
            problems.append(f"catalog: {exc}")
            rows, count = [], 0
        by_seq = {e.get("seq"): e for e in file_entries}
        if count != len(file_entries):
            problems.append(f"catalog holds {count} entries, {path.name} holds {len(file_entries)}")
        for row in rows:
            e = by_seq.get(row.seq)
            if e is None:
                problems.append(f"catalog entry {row.seq} is missing from {path.name}")
                continue
            same = (
                row.hash == e.get("hash")
                and row.prev_hash == e.get("prev_hash")
                and (row.actor, row.action, row.resource, row.decision, row.rule)
                == (e.get("actor"), e.get("action"), e.get("resource"), e.get("decision"), e.get("rule"))
                and canonical_json(row.detail or {}) == canonical_json(e.get("detail") or {})
            )
            if not same:
                problems.append(f"catalog entry {row.seq} differs from {path.name}")
        problems += _check_anchor(catalog, file_entries)
    return AuditReport(ok=not problems, entries=len(file_entries), head=prev, problems=problems)


def _check_anchor(catalog: Catalog, entries: list[dict[str, Any]]) -> list[str]:
    """The catalog's anchor must name the last entry (catches a tail cut from both copies)."""
    with catalog.session() as s:
        anchor = s.get(Meta, ANCHOR)
        value = anchor.value if anchor is not None else None
        has_datasets = s.scalar(select(func.count()).select_from(Dataset)) or 0
    last = f"{entries[-1].get('seq')} {entries[-1].get('hash')}" if entries else None
    if value is None:
        if entries or has_datasets:
            return ["the catalog holds no audit anchor: the anchor, or the whole log, was removed"]
        return []
    if value != last:
        seq = value.split(" ")[0]
        return [
            f"the catalog's anchor names entry {seq}, but the chain ends at "
            f"{entries[-1].get('seq') if entries else 'nothing'}: entries were cut or the log replaced"
        ]
    return []
