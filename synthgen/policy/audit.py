"""The audit trail: every access decision, key operation and publication, hash-chained.

Each entry is written twice, to the catalog's ``access_log`` table and to a JSONL
file (``<home>/audit/audit.jsonl``), in one step under a file lock. An entry is::

    {"seq": n, "ts": ..., "actor": ..., "action": ..., "resource": ..., "decision": ...,
     "rule": ..., "detail": {...}, "prev_hash": <hash of entry n-1>, "hash": ...}

with ``hash = SHA-256(canonical JSON of the entry without "hash")`` and
``prev_hash`` of the first entry 64 zeros. Editing any field breaks that entry's
hash; deleting or inserting an entry breaks the next entry's ``prev_hash`` (or the
sequence); and the two copies must agree, so a tail cut from one of them shows too.
The chain cannot show a tail cut from *both* copies alike: anchor the latest hash
elsewhere (print it in a ticket, a WORM bucket) if that matters.

Details never hold key material: key operations record KEK ids and roles only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from synthgen.catalog import AccessLog, Catalog
from synthgen.crypto.canonical import canonical_json
from synthgen.errors import CatalogError

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "actor", "action", "resource", "decision", "rule", "detail", "prev_hash")


def audit_path() -> Path:
    """``SYNTHGEN_AUDIT_FILE``, else ``<home>/audit/audit.jsonl``."""
    from synthgen.zones import home_dir

    env = os.environ.get("SYNTHGEN_AUDIT_FILE")
    return Path(env) if env else home_dir() / "audit" / "audit.jsonl"


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({k: entry.get(k) for k in _FIELDS})).hexdigest()


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
    """Appends hash-chained entries to the catalog and the JSONL file."""

    def __init__(self, catalog: Catalog, path: Path | None = None) -> None:
        self.catalog = catalog
        self.path = path or audit_path()

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
        with _locked(self.path), self.catalog.session() as s:
            last = s.execute(select(AccessLog).order_by(AccessLog.seq.desc()).limit(1)).scalar_one_or_none()
            entry: dict[str, Any] = {
                "seq": (last.seq + 1) if last else 1,
                "ts": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "actor": actor,
                "action": action,
                "resource": resource,
                "decision": decision,
                "rule": rule,
                "detail": json.loads(canonical_json(detail or {})),
                "prev_hash": last.hash if last else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            s.add(
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
            s.flush()  # a conflicting seq (another writer on a shared catalog) fails here, before the file
            # The file line is written before the catalog commits: if the commit then fails the
            # file holds an extra entry, which verify_audit reports; a silent gap is never possible.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, canonical_json(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
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


def verify_audit(catalog: Catalog | None = None, path: Path | None = None) -> AuditReport:
    """Check the JSONL chain and that the catalog copy matches it entry for entry."""
    path = path or audit_path()
    problems: list[str] = []
    file_entries: list[dict[str, Any]] = []
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
                if entry.get("hash") != entry_hash(entry):
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
    return AuditReport(ok=not problems, entries=len(file_entries), head=prev, problems=problems)
