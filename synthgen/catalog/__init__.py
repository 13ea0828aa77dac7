"""The catalog: datasets, lineage, privacy ledger, scores and access log.

SQLite under ``SYNTHGEN_HOME`` by default; any SQLAlchemy URL (PostgreSQL in
production) through ``SYNTHGEN_CATALOG_URL``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from synthgen.catalog.models import (
    SCHEMA_VERSION,
    AccessLog,
    Base,
    BudgetCap,
    BudgetEntry,
    BudgetReservation,
    BudgetSourceClaim,
    Dataset,
    Lineage,
    Meta,
    Score,
)
from synthgen.errors import CatalogError

__all__ = [
    "SCHEMA_VERSION",
    "AccessLog",
    "BudgetCap",
    "BudgetEntry",
    "BudgetReservation",
    "BudgetSourceClaim",
    "Catalog",
    "Dataset",
    "Lineage",
    "Score",
]


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class Catalog:
    """Thin, typed access to the catalog database."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise CatalogError(f"cannot open catalog {_redact(url)}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:":
                from synthgen.zones import check_outside_zones

                check_outside_zones(database, "the catalog database")
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._init_schema()

    # -- schema -----------------------------------------------------------------
    def _init_schema(self) -> None:
        try:
            Base.metadata.create_all(self.engine)
            with self._sessions.begin() as s:
                row = s.get(Meta, "schema_version")
                if row is None:
                    s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                elif int(row.value) != SCHEMA_VERSION:
                    raise CatalogError(
                        f"catalog schema version {row.value} does not match this synthgen "
                        f"({SCHEMA_VERSION}); migrate it or point SYNTHGEN_CATALOG_URL elsewhere"
                    )
        except OperationalError as exc:
            msg = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise CatalogError(f"cannot reach catalog {_redact(self.url)}: {msg}") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as s:
            yield s

    @classmethod
    def from_env(cls) -> Catalog:
        """The catalog named by ``SYNTHGEN_CATALOG_URL`` (default: SQLite under ``SYNTHGEN_HOME``)."""
        return cls(catalog_url_from_env())

    def dispose(self) -> None:
        self.engine.dispose()

    # -- datasets ---------------------------------------------------------------
    def add_dataset(
        self, ds: Dataset, parents: Sequence[str] = (), *, session: Session | None = None
    ) -> Dataset:
        """Catalogue ``ds`` (an existing id is kept as it is); inside ``session`` when given.

        Two processes adding one id at once (two runs of a pipeline build the same
        content-addressed dataset): without ``session`` the loser gets the winner's row, as if
        it had come second; inside a caller's transaction a one-line CatalogError (no SQL).
        """
        try:
            with nullcontext(session) if session is not None else self.session() as s:
                existing = s.get(Dataset, ds.id)
                if existing is not None:
                    return existing
                s.add(ds)
                s.flush()
                for p in parents:
                    s.add(Lineage(child_id=ds.id, parent_id=p))
        except IntegrityError as exc:
            winner = self.get_dataset(ds.id)
            if session is None and winner is not None:
                return winner
            if winner is not None:
                raise CatalogError(
                    f"dataset {ds.id} ({ds.name}) was catalogued by another process at the same time "
                    "(another run of this pipeline in progress?); retry once it has finished"
                ) from None
            why = str(exc.orig).splitlines()[0] if exc.orig is not None else "constraint failed"
            raise CatalogError(f"cannot catalogue dataset {ds.id} ({ds.name}): {why}") from None
        return ds

    def get_dataset(self, dataset_id: str) -> Dataset | None:
        with self.session() as s:
            return s.get(Dataset, dataset_id)

    def find_dataset(self, name_or_id: str, zone: str | None = None) -> Dataset | None:
        """By id, else the newest dataset of that name (optionally in one zone)."""
        with self.session() as s:
            ds = s.get(Dataset, name_or_id)
            if ds is not None and (zone is None or ds.zone == zone):
                return ds
            q = select(Dataset).where(Dataset.name == name_or_id)
            if zone is not None:
                q = q.where(Dataset.zone == zone)
            return s.scalars(q.order_by(Dataset.created_at.desc()).limit(1)).first()

    def list_datasets(self, zone: str | None = None, kind: str | None = None) -> list[Dataset]:
        with self.session() as s:
            q = select(Dataset)
            if zone is not None:
                q = q.where(Dataset.zone == zone)
            if kind is not None:
                q = q.where(Dataset.kind == kind)
            return list(s.scalars(q.order_by(Dataset.created_at)))

    def update_dataset(self, dataset_id: str, **fields: Any) -> None:
        with self.session() as s:
            ds = s.get(Dataset, dataset_id)
            if ds is None:
                raise CatalogError(f"dataset {dataset_id} is not in the catalog")
            for k, v in fields.items():
                setattr(ds, k, v)

    def parents(self, dataset_id: str) -> list[str]:
        with self.session() as s:
            return list(s.scalars(select(Lineage.parent_id).where(Lineage.child_id == dataset_id)))

    # -- privacy ledger ---------------------------------------------------------
    def ledger(self, source: str) -> list[BudgetEntry]:
        with self.session() as s:
            q = select(BudgetEntry).where(BudgetEntry.source == source).order_by(BudgetEntry.seq)
            return list(s.scalars(q))

    def spent(self, source: str) -> tuple[float, float]:
        """Cumulative (epsilon, delta) of ``source``'s settled ledger entries (basic composition).

        Open reservations are not included: :func:`synthgen.privacy.budget.standing` adds them."""
        with self.session() as s:
            eps, delta = s.execute(
                select(
                    func.coalesce(func.sum(BudgetEntry.epsilon), 0.0),
                    func.coalesce(func.sum(BudgetEntry.delta), 0.0),
                ).where(BudgetEntry.source == source)
            ).one()
            return float(eps), float(delta)

    # -- scores -----------------------------------------------------------------
    def add_scores(
        self, dataset_id: str, scores: dict[str, float | None], detail: dict | None = None
    ) -> None:
        with self.session() as s:
            for metric, value in scores.items():
                s.add(Score(dataset_id=dataset_id, metric=metric, value=value, detail=detail or {}))

    def scores(self, dataset_id: str) -> dict[str, float | None]:
        with self.session() as s:
            rows = s.scalars(select(Score).where(Score.dataset_id == dataset_id).order_by(Score.id))
            return {r.metric: r.value for r in rows}


def _redact(url: str) -> str:
    """Drop any password from a database URL before it reaches a message."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown without its credentials part
        return url.split("@")[-1]


def catalog_url_from_env() -> str:
    """``SYNTHGEN_CATALOG_URL``, else a SQLite file under the synthgen home."""
    import os

    from synthgen.zones import home_dir

    url = os.environ.get("SYNTHGEN_CATALOG_URL")
    if url:
        return url
    home = home_dir()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'catalog.db'}"


def open_catalog() -> Catalog:
    return Catalog(catalog_url_from_env())
