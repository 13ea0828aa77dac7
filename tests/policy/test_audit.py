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
def trail(tmp_path: Path):  # type: ignore[no-untyped-def]
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


def test_edited_line_with_recomputed_hash_is_still_detected(trail) -> None:  # type: ignore[no-untyped-def]
    from synthgen.policy.audit import entry_hash

    catalog, path = trail
    lines = _lines(path)
    entry = json.loads(lines[2])
    entry["actor"] = "somebody-else"
    entry["hash"] = entry_hash(entry)  # a forger recomputes this entry's hash...
    lines[2] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    problems = verify_audit(catalog, path).problems
    assert any("entry 4 does not follow" in p for p in problems)  # ...but the next link breaks
    assert any("catalog entry 3 differs" in p for p in problems)


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
def test_audit_chain_on_postgresql_catalog(pg_database: str, tmp_path: Path) -> None:
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
