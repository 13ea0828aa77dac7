"""The audit chain detects edited and deleted entries in the file and in the catalog copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from synthgen.catalog import AccessLog, Catalog
from synthgen.policy import AuditLog, verify_audit
from synthgen.policy.audit import GENESIS


@pytest.fixture
def trail(tmp_path: Path, home: Path):  # type: ignore[no-untyped-def]
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.db'}")
    log = AuditLog(catalog, tmp_path / "audit" / "audit.jsonl")
    for i in range(5):
        log.record(
            actor=f"user{i}",
            action="read",
            resource=f"synthetic:d{i}",
            decision="allow" if i % 2 else "deny",
            rule="r",
            detail={"i": i},
        )
    yield catalog, log.path
    catalog.dispose()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_intact_chain_verifies(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    report = verify_audit(catalog, path)
    assert report.ok and report.entries == 5, report.problems
    first = json.loads(_lines(path)[0])
    assert first["prev_hash"] == GENESIS and first["seq"] == 1
    assert json.loads(_lines(path)[1])["prev_hash"] == first["hash"]


def test_edited_line_is_detected(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry["decision"] = "allow" if entry["decision"] == "deny" else "deny"
    lines[2] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    report = verify_audit(catalog, path)
    assert not report.ok
    assert any(":3: entry 3 was edited" in p for p in report.problems)
    assert "BROKEN" in report.summary()


def test_a_wrong_secret_is_named_as_the_likely_cause_not_only_edits(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    report = verify_audit(catalog, path, key=b"another platform secret, 32 bytes")
    assert not report.ok
    assert "most likely it is not the secret that wrote the trail" in report.summary()
    # One edited entry under the right key is still reported as an edit, not as a wrong secret.
    lines = _lines(path)
    entry = json.loads(lines[0])
    entry["actor"] = "mallory"
    lines[0] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    assert "most likely" not in verify_audit(catalog, path).summary()


def test_edited_line_with_recomputed_hash_is_still_detected(trail) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from synthgen.crypto.canonical import canonical_json
    from synthgen.policy.audit import _FIELDS, entry_hash

    catalog, path = trail
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry["actor"] = "somebody-else"
    # A forger without the platform key recomputes the hash the only way they can...
    entry["hash"] = hashlib.sha256(canonical_json({k: entry.get(k) for k in _FIELDS})).hexdigest()
    lines[2] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_audit(catalog, path).problems
    assert any(":3: entry 3 was edited" in p for p in problems)  # ...which is not the keyed hash
    assert any("entry 4 does not follow" in p for p in problems)
    assert any("catalog entry 3 differs" in p for p in problems)
    # Even a forger who had the key recomputes in vain when the next link and the catalog disagree.
    entry["hash"] = entry_hash(entry, AuditLog(catalog, path).key)
    lines[2] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    assert any("entry 4 does not follow" in p for p in verify_audit(catalog, path).problems)


def test_deleted_line_is_detected(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    lines = _lines(path)
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    problems = verify_audit(catalog, path).problems
    assert any("does not follow" in p for p in problems)
    assert any("catalog holds 5 entries" in p for p in problems)


def test_deleted_last_line_is_detected_through_the_catalog(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    path.write_text("\n".join(_lines(path)[:-1]) + "\n")
    report = verify_audit(catalog, path)
    assert not report.ok and any("missing from audit.jsonl" in p for p in report.problems)


def test_edited_catalog_row_is_detected(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    with catalog.session() as s:
        s.execute(update(AccessLog).where(AccessLog.seq == 2).values(decision="allow", actor="x"))
    report = verify_audit(catalog, path)
    assert not report.ok and any("catalog entry 2 differs" in p for p in report.problems)


def test_appends_continue_the_chain_across_logger_instances(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    AuditLog(catalog, path).record(actor="z", action="publish", resource="synthetic:x", decision="allow")
    report = verify_audit(catalog, path)
    assert report.ok and report.entries == 6


@pytest.mark.postgres
def test_audit_chain_on_postgresql_catalog(pg_database: str, tmp_path: Path, home: Path) -> None:
    catalog = Catalog(pg_database)
    try:
        log = AuditLog(catalog, tmp_path / "audit.jsonl")
        for i in range(3):
            log.record(actor="u", action="read", resource=f"synthetic:{i}", decision="allow", detail={"n": i})
        assert verify_audit(catalog, log.path).ok
        with catalog.session() as s:
            s.execute(update(AccessLog).where(AccessLog.seq == 2).values(resource="synthetic:other"))
        assert not verify_audit(catalog, log.path).ok
    finally:
        catalog.dispose()


def _truncate_both(catalog: Catalog, path: Path, keep: int) -> None:
    from sqlalchemy import delete

    path.write_text("".join(line + "\n" for line in _lines(path)[:keep]))
    with catalog.session() as s:
        s.execute(delete(AccessLog).where(AccessLog.seq > keep))


def test_a_tail_cut_from_both_copies_is_caught_by_the_catalog_anchor(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    _truncate_both(catalog, path, 3)
    report = verify_audit(catalog, path)
    assert not report.ok and any("anchor names entry 5" in p for p in report.problems), report.problems


def test_emptying_both_copies_is_caught(trail) -> None:  # type: ignore[no-untyped-def]
    catalog, path = trail
    _truncate_both(catalog, path, 0)
    assert not verify_audit(catalog, path).ok


def test_a_wholesale_replacement_without_the_key_is_caught(trail) -> None:  # type: ignore[no-untyped-def]
    # An attacker replaces both copies with a consistent chain of their own (plain SHA-256 links).
    import hashlib
    from datetime import datetime

    from sqlalchemy import delete

    from synthgen.crypto.canonical import canonical_json
    from synthgen.policy.audit import _FIELDS

    catalog, path = trail
    prev, lines = GENESIS, []
    with catalog.session() as s:
        s.execute(delete(AccessLog))
        for seq in (1, 2):
            e: dict = dict(seq=seq, ts="2026-01-01T00:00:00+00:00", actor="x", action="read")
            e.update(resource="synthetic:d", decision="allow", rule=None, detail={}, prev_hash=prev)
            e["hash"] = prev = hashlib.sha256(canonical_json({k: e.get(k) for k in _FIELDS})).hexdigest()
            lines.append(canonical_json(e).decode())
            fields = {k: v for k, v in e.items() if k != "ts"}
            s.add(AccessLog(ts=datetime.fromisoformat(e["ts"]), **fields))
    path.write_text("\n".join(lines) + "\n")
    report = verify_audit(catalog, path)
    assert not report.ok and any("entry 1 was edited" in p for p in report.problems)


def test_audit_verify_exits_1_on_a_broken_chain_through_the_console_script(trail, home: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    catalog, path = trail
    env = {**os.environ, "SYNTHGEN_CATALOG_URL": catalog.url, "SYNTHGEN_AUDIT_FILE": str(path)}
    exe = Path(sys.executable).with_name("synthgen")
    ok = subprocess.run([str(exe), "audit", "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    _truncate_both(catalog, path, 4)
    bad = subprocess.run([str(exe), "audit", "verify"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "BROKEN" in bad.stderr
