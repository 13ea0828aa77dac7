"""Pre-flight and dry-run plan: every failure before any row is read, nothing charged or written."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.errors import AccessDenied, BudgetError, SpecError
from synthgen.spec import load_spec
from tests.pipeline._home import DEMO_SPEC, demo_home


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def demo(home: Path):  # type: ignore[no-untyped-def]
    with demo_home(home, rows=200, seed=3) as h:
        from synthgen.stages import Context

        ctx = Context.from_env()
        ctx.user = "synthgen-pipeline"
        yield h, ctx
        ctx.catalog.dispose()


def _ledger(ctx) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from synthgen.privacy.budget import standing
    from synthgen.source_identity import source_key

    now = standing(ctx.catalog, source_key(load_spec(DEMO_SPEC)))
    return now.charged_epsilon, now.charged_delta


def test_passing_preflight_returns_the_plan_and_changes_nothing(demo) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import check

    home, ctx = demo
    before = _files(home / "zones")
    p = check(load_spec(DEMO_SPEC), user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
    assert _files(home / "zones") == before
    assert _ledger(ctx) == (0.0, 0.0)
    assert p.epsilon == 3.0 and p.remaining_epsilon == 10.0
    assert {r.role for r in p.roles} == {"analyst", "ml-engineer", "data-steward"}
    assert all(r.has_key and r.may_read for r in p.roles)
    assert "notes" in p.columns and "text model" in p.split
    # Two date columns have no declared type: the preprocessing share is known only as a range.
    assert set(p.undeclared) == {"date_of_birth", "admission_date"}
    assert "depends on the inferred types" in str(p.split["preprocessing"])
    declared = load_spec(DEMO_SPEC, [f"columns.{c}.type=datetime" for c in p.undeclared])
    q = check(declared, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
    assert q.dp_discovery == ["date_of_birth", "admission_date"] and not q.undeclared
    parts = list(q.split.values())
    parts_named = {"preprocessing", "tabular model", "text row count", "text model", "text quality gate"}
    assert set(q.split) == parts_named
    assert all(isinstance(x, float) for x in parts) and sum(parts) == pytest.approx(3.0)  # type: ignore[arg-type]
    # As the train stage splits it: the text share (0.3) pays the row count, the gate and the model.
    assert q.split["text quality gate"] == pytest.approx(3.0 * 0.3 * 0.10)
    text_parts = q.split["text row count"] + q.split["text model"] + q.split["text quality gate"]  # type: ignore[operator]
    assert text_parts == pytest.approx(0.9)
    no_holdout = load_spec(DEMO_SPEC, ["evaluate.holdout=0"])
    r = check(no_holdout, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
    assert "text quality gate" not in r.split  # nothing to gate, nothing planned for it
    text = "\n".join(p.lines())
    assert "no row read" in text and "auto: chosen at train time" in text


def test_missing_key_for_an_output_role_names_the_fix_and_who(demo) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import check

    home, ctx = demo
    import shutil

    shutil.rmtree(home / "keys" / "analyst")
    with pytest.raises(SpecError) as e:
        check(load_spec(DEMO_SPEC), user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
    msg = str(e.value)
    assert "analyst" in msg and "synthgen keys init" in msg and "alice" in msg
    assert e.value.exit_code == 2
    assert _ledger(ctx) == (0.0, 0.0)


def test_user_the_policy_refuses_publish_is_denied(demo) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import check

    _, ctx = demo
    with pytest.raises(AccessDenied) as e:
        check(load_spec(DEMO_SPEC), user="bob", catalog=ctx.catalog, zones=ctx.zones)
    assert e.value.exit_code == 3 and "publish" in str(e.value)


def test_run_that_does_not_fit_the_budget_is_refused(demo) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import check

    _, ctx = demo
    spec = load_spec(DEMO_SPEC, ["privacy.epsilon=12"])
    with pytest.raises(BudgetError, match="this run 12 > cap 10"):
        check(spec, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
    assert _ledger(ctx) == (0.0, 0.0)


def test_missing_source_file_is_a_config_error(demo) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import check

    home, ctx = demo
    (home / "demo" / "patients.csv").unlink()
    with pytest.raises(SpecError, match="source file not found"):
        check(load_spec(DEMO_SPEC), user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)


def test_a_zone_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    from synthgen.preflight import _writable

    (tmp_path / "file").write_text("x")
    assert "is not a folder" in (_writable(tmp_path / "file" / "zones" / "real") or "")
    assert _writable(tmp_path / "new" / "zones" / "real") is None
    assert not (tmp_path / "new").exists()  # the check creates nothing


def test_plan_reads_no_data_row(demo, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from synthgen.preflight import plan
    from synthgen.sources.base import FileSource

    _, ctx = demo

    def boom(*_a, **_k):  # type: ignore[no-untyped-def]
        raise AssertionError("the dry run read data rows")

    monkeypatch.setattr(FileSource, "sample", boom)
    monkeypatch.setattr(FileSource, "sink_parquet", boom)
    monkeypatch.setattr(FileSource, "scan", boom, raising=False)
    p = plan(load_spec(DEMO_SPEC), catalog=ctx.catalog)
    assert p.columns is not None and "visit_id" in p.columns
    assert _ledger(ctx) == (0.0, 0.0)
