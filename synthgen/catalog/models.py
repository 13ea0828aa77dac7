"""Catalog tables (SQLAlchemy 2.0 declarative).

The schema is versioned by :data:`SCHEMA_VERSION`, stored in ``catalog_meta``;
:class:`synthgen.catalog.Catalog` refuses to open a catalog written by another
version instead of silently misreading it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "catalog_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    zone: Mapped[str] = mapped_column(String(16), index=True)  # real | synthetic
    kind: Mapped[str] = mapped_column(String(32))  # snapshot | anonymized | synthetic | report | ...
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schema_json: Mapped[dict] = mapped_column("schema", JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(80))
    classification: Mapped[str] = mapped_column(String(32), default="restricted")
    dp: Mapped[bool | None] = mapped_column(nullable=True)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))


class Lineage(Base):
    __tablename__ = "lineage"
    child_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    parent_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)


class BudgetEntry(Base):
    """Append-only privacy ledger: one row per DP mechanism charged to a source."""

    __tablename__ = "budget_ledger"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(80), index=True)
    step: Mapped[str] = mapped_column(String(64))  # preprocessing | training | text_training ...
    mechanism: Mapped[str] = mapped_column(String(120))
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    accountant: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BudgetCap(Base):
    """A source's cumulative (epsilon, delta) cap (P11): set on its first run, changed only by ``admin``."""

    __tablename__ = "budget_caps"
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    set_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BudgetSourceClaim(Base):
    """One identity of a source's data (a real path, a device+inode, a normalised SQL location),
    bound to the ledger key that first reserved on it (F1: a new ``source.id`` or another
    spelling of the location cannot start a fresh budget). Changed only by ``admin``."""

    __tablename__ = "budget_source_claims"
    claim: Mapped[str] = mapped_column(String(600), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    bound_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class BudgetReservation(Base):
    """A run's planned (epsilon, delta), held against the cap while it runs.

    ``open`` reservations count as spent: a run that crashes or is killed stays charged at its
    planned amount (an upper bound). Settling appends the run's ledger entries and closes it
    in the same transaction.
    """

    __tablename__ = "budget_reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(200), index=True)
    run_id: Mapped[str] = mapped_column(String(80), index=True)
    epsilon: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), index=True, default="open")  # open | settled
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Score(Base):
    __tablename__ = "scores"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(120))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AccessLog(Base):
    """Hash-chained audit entries (mirrors the JSONL audit file)."""

    __tablename__ = "access_log"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
