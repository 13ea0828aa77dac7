from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from synthgen.catalog import BudgetEntry, Catalog, Dataset
from synthgen.errors import CatalogError


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Catalog]:
    if request.param == "sqlite":
        cat = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    else:
        cat = Catalog(request.getfixturevalue("pg_database"))
        with cat.session() as s:  # the PostgreSQL database lives for the whole run: start clean
            for t in (
                "lineage",
                "scores",
                "budget_ledger",
                "budget_reservations",
                "budget_caps",
                "access_log",
                "datasets",
            ):
                s.execute(text(f"DELETE FROM {t}"))
    yield cat
    cat.dispose()


def _ds(i: str, name: str = "n", zone: str = "real") -> Dataset:
    return Dataset(
        id=i,
        name=name,
        zone=zone,
        kind="snapshot",
        format="parquet",
        path=f"/x/{i}",
        rows=3,
        schema_json={"columns": []},
        content_hash="h" + i,
        created_by="t",
    )


def test_datasets_and_lineage_round_trip(catalog: Catalog) -> None:
    catalog.add_dataset(_ds("a"))
    catalog.add_dataset(_ds("b", zone="synthetic"), parents=["a"])
    assert [d.id for d in catalog.list_datasets(zone="synthetic")] == ["b"]
    assert catalog.parents("b") == ["a"]
    assert catalog.find_dataset("n", zone="real").id == "a"  # type: ignore[union-attr]


def test_adding_the_same_id_twice_is_idempotent(catalog: Catalog) -> None:
    catalog.add_dataset(_ds("a"))
    catalog.add_dataset(_ds("a"))
    assert len(catalog.list_datasets()) == 1


def test_ledger_sums_per_source(catalog: Catalog) -> None:
    with catalog.session() as s:  # the ledger's table as synthgen.privacy.budget writes it
        s.add_all(
            [
                BudgetEntry(
                    source="s1",
                    run_id="r1",
                    step="preprocessing",
                    mechanism="m",
                    epsilon=0.3,
                    delta=0.0,
                    accountant="basic",
                ),
                BudgetEntry(
                    source="s1",
                    run_id="r1",
                    step="training",
                    mechanism="dpsgd",
                    epsilon=2.7,
                    delta=1e-6,
                    accountant="prv",
                ),
                BudgetEntry(
                    source="s2",
                    run_id="r2",
                    step="training",
                    mechanism="dpsgd",
                    epsilon=1.0,
                    delta=1e-6,
                    accountant="prv",
                ),
            ]
        )
    eps, delta = catalog.spent("s1")
    assert eps == pytest.approx(3.0) and delta == pytest.approx(1e-6)
    assert [e.step for e in catalog.ledger("s1")] == ["preprocessing", "training"]
    assert catalog.spent("nobody") == (0.0, 0.0)


def test_scores(catalog: Catalog) -> None:
    catalog.add_dataset(_ds("a"))
    catalog.add_scores("a", {"quality": 0.8, "auc": None})
    assert catalog.scores("a") == {"quality": 0.8, "auc": None}


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    cat = Catalog(url)
    with cat.session() as s:
        s.execute(text("UPDATE catalog_meta SET value = '999' WHERE key = 'schema_version'"))
    cat.dispose()
    with pytest.raises(CatalogError, match="schema version 999"):
        Catalog(url)


def test_unreachable_catalog_is_one_line() -> None:
    with pytest.raises(CatalogError, match="cannot reach catalog") as info:
        Catalog("postgresql://nobody:pw@127.0.0.1:1/none")
    assert "pw" not in str(info.value).replace("postgresql", "")


def test_a_dataset_added_by_another_process_between_check_and_insert_is_returned_not_an_sql_error(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.orm import Session

    winner = catalog.add_dataset(_ds("snap-same", name="winner"))
    real_get = Session.get
    calls = {"n": 0}

    def racing_get(self, entity, ident, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            return None  # the loser's existence check ran before the winner committed
        return real_get(self, entity, ident, *a, **k)

    monkeypatch.setattr(Session, "get", racing_get)
    got = catalog.add_dataset(_ds("snap-same", name="loser"))
    assert got.id == winner.id and got.name == "winner"
    # Inside a caller's transaction the loser cannot be given the row: one line, no SQL text.
    calls["n"] = 0
    with pytest.raises(CatalogError) as e, catalog.session() as s:
        catalog.add_dataset(_ds("snap-same", name="loser"), session=s)
    assert "another process" in str(e.value) and "INSERT" not in str(e.value)
