"""End-to-end behaviour of the stage functions shared by the CLI and the DAGs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from synthgen import stages as pipeline
from synthgen.errors import AccessDenied, BudgetError
from synthgen.spec import PipelineSpec, load_spec

from ._home import DEMO_SPEC, demo_home

FAST = [
    "model.epochs=1",
    "model.batch_size=128",
    "model.text.enabled=false",
    "output.rows=400",
    "output.shard_rows=150",
    "evaluate.plots=false",
]


def _spec(*extra: str) -> PipelineSpec:
    return load_spec(DEMO_SPEC, [*FAST, *extra])


@pytest.fixture(scope="module")
def home_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with demo_home(tmp_path_factory.mktemp("home"), rows=800, seed=0) as home:
        yield home


def _ctx() -> pipeline.Context:
    ctx = pipeline.Context.from_env()
    ctx.user = "synthgen-pipeline"
    return ctx


@pytest.fixture(scope="module")
def run(home_env: Path) -> dict[str, Any]:
    ctx = _ctx()
    results = pipeline.run_pipeline(_spec(), ctx, run_id="t-1")
    results["ctx"] = ctx
    return results


def test_run_publishes_an_encrypted_dp_dataset(run: dict[str, Any]) -> None:
    ctx, pub = run["ctx"], run["publish"]
    ds = ctx.catalog.get_dataset(pub.dataset_id)
    assert ds is not None and ds.zone == "synthetic" and ds.dp is True and ds.rows == 400
    assert ctx.zones.synthetic.contains(ds.path)
    assert b"PAR1" not in Path(ds.path).read_bytes()[:4096]  # not a plaintext Parquet file
    assert len(run["generate"]) == 3  # 400 rows in shards of 150


def test_real_derived_outputs_stay_in_the_real_zone(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    for stage in ("ingest", "anonymize", "evaluate"):
        assert ctx.zones.real.contains(run[stage].path), stage
    report = ctx.catalog.get_dataset(run["evaluate"].dataset_id)
    assert report.classification == "restricted" and report.zone == "real"
    # Nothing in the synthetic zone is plaintext real-derived data: only DP models and envelopes.
    for p in ctx.zones.synthetic.root.rglob("*.parquet"):
        raise AssertionError(f"plaintext parquet left in the synthetic zone: {p}")


def test_the_training_holdout_is_the_keyed_hash_of_each_row(run: dict[str, Any]) -> None:
    # P10: the stage splits with holdout_mask (1-stable: see tests/evaluate/test_holdout.py),
    # keyed by the pipeline secret, not with a seeded draw over the exact row count.
    from synthgen.evaluate.holdout import holdout_key, holdout_mask

    ctx, spec = run["ctx"], _spec()
    anon = ctx.catalog.get_dataset(run["anonymize"].dataset_id)
    model = ctx.catalog.get_dataset(run["train"].dataset_id)
    frame = pl.read_parquet(anon.path)
    mask = holdout_mask(
        frame, fraction=spec.evaluate.holdout, key=holdout_key(pipeline.pipeline_secret(spec))
    )
    stored = pl.read_parquet(model.extra["holdout_path"])
    assert 0 < stored.height < frame.height
    assert stored.equals(frame.filter(mask))


def test_identifiers_are_gone_before_training(run: dict[str, Any]) -> None:
    anon = pl.read_parquet(run["anonymize"].path)
    for col in ("name", "email", "phone", "ssn", "street_address", "zip", "visit_id"):
        assert col not in anon.columns
    raw = pl.read_csv(Path(os.environ["SYNTHGEN_HOME"]) / "demo" / "patients.csv")
    emails = set(raw["email"].to_list())
    assert not any(e in note for note in anon["notes"].to_list() for e in emails)


def test_ledger_charged_within_target(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    source = pipeline.source_key(_spec())
    entries = ctx.catalog.ledger(source)
    assert entries and {e.step for e in entries} >= {"preprocessing", "training"}
    eps, _delta = ctx.catalog.spent(source)
    assert 0 < eps <= 3.0 + 1e-9
    assert all(e.run_id == "t-1" for e in entries)


def test_rerunning_a_stage_is_idempotent_and_charges_nothing(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    source = pipeline.source_key(_spec())
    before = ctx.catalog.spent(source)
    again = pipeline.train(_spec(), ctx, anonymized_id=run["anonymize"].dataset_id, run_id="t-1")
    assert again.reused and again.dataset_id == run["train"].dataset_id
    assert ctx.catalog.spent(source) == before


def test_analyst_reads_unknown_user_is_denied(run: dict[str, Any]) -> None:
    from synthgen.access import read_dataset

    name = run["publish"].extra["name"]
    frame = read_dataset(name, user="bob")
    assert frame.height == 400 and "email" not in frame.columns
    with pytest.raises(AccessDenied):
        read_dataset(name, user="mallory")


def test_budget_cap_refuses_before_training(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    spec = _spec("privacy.budget_cap=4")  # 3 already spent; another 3 would exceed 4
    source = pipeline.source_key(spec)
    before = (ctx.catalog.spent(source), len(ctx.catalog.list_datasets(kind="model")))
    with pytest.raises(BudgetError, match="budget exhausted"):
        pipeline.train(spec, ctx, anonymized_id=run["anonymize"].dataset_id, run_id="t-2")
    assert (ctx.catalog.spent(source), len(ctx.catalog.list_datasets(kind="model"))) == before


def test_non_dp_output_is_not_published_without_a_policy_rule(run: dict[str, Any]) -> None:
    ctx = run["ctx"]
    spec = _spec("privacy.dp=false")
    model = pipeline.train(spec, ctx, anonymized_id=run["anonymize"].dataset_id, run_id="t-nodp")
    ds = ctx.catalog.get_dataset(model.dataset_id)
    assert ds.dp is False and ctx.zones.real.contains(ds.path)  # non-DP model: real zone (P1, P7)
    shards = pipeline.generate_all(spec, ctx, model_id=model.dataset_id, run_id="t-nodp")
    assert all(ctx.zones.real.contains(s.path) for s in shards)
    published_before = len(ctx.catalog.list_datasets(zone="synthetic"))
    with pytest.raises(AccessDenied):
        pipeline.publish(
            spec, ctx, model_id=model.dataset_id, shard_ids=[s.dataset_id for s in shards], run_id="t-nodp"
        )
    assert len(ctx.catalog.list_datasets(zone="synthetic")) == published_before


def test_cli_budget_evaluate_read_and_denied_read(
    run: dict[str, Any], cli: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    import json

    sets = [x for item in FAST for x in ("--set", item)]
    code, out, _ = cli(["budget", "show", str(DEMO_SPEC), "--json"])
    ledger = json.loads(out)
    assert (
        code == 0 and 0 < ledger["spent_epsilon"] <= 3.0 + 1e-9 and ledger["remaining_epsilon"] >= 7.0 - 1e-9
    )
    code, out, _ = cli(["evaluate", str(DEMO_SPEC), *sets])
    assert code == 0 and "restricted, real zone" in out
    name = run["publish"].extra["name"]
    code, out, _ = cli(["read", name, "--user", "bob", "--rows", "2"])
    assert code == 0 and "400 rows" in out
    code, _, err = cli(["read", name, "--user", "mallory"])
    assert code == 3 and "denied" in err and err.strip().count("\n") == 0


def test_cli_train_with_a_declared_schema_refuses_an_untyped_column(
    run: dict[str, Any], cli: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    # privacy.schema: declared removes the type inference read: an untyped column is refused
    # in one line (exit 2) before any budget is reserved.
    sets = [x for item in FAST for x in ("--set", item)]
    ctx, source = run["ctx"], pipeline.source_key(_spec())
    before = ctx.catalog.spent(source)
    code, _, err = cli(["train", str(DEMO_SPEC), *sets, "--set", "privacy.schema=declared"])
    assert code == 2 and "privacy.schema is declared" in err and err.strip().count("\n") == 0
    assert ctx.catalog.spent(source) == before


#: Every key the shareable manifest may hold (synthgen.manifest): public or DP-derived facts only.
_MANIFEST_KEYS = {
    "schema", "rows", "lineage", "privacy", "anonymization", "tags", "format", "dataset_id", "name",
    "dp", "epsilon", "classification", "access_tags", "key_id", "published_by", "published_at",
}  # fmt: skip


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return []


def test_shareable_manifest_read_through_inspect_holds_no_real_derived_figure(run: dict[str, Any]) -> None:
    import json
    import subprocess
    import sys

    ctx, pub = run["ctx"], run["publish"]
    exe = Path(sys.executable).with_name("synthgen")
    proc = subprocess.run(
        [str(exe), "inspect", pub.path, "--json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["authentication"].startswith("not checked")
    manifest = doc["manifest"]
    assert set(manifest) <= _MANIFEST_KEYS, set(manifest) - _MANIFEST_KEYS
    # No evaluation figure: the report's headline scores (TRTR, exact-match rate, DCR, AUC...)
    # appear nowhere in the header, under any key.
    report = ctx.catalog.get_dataset(run["evaluate"].dataset_id)
    headline = {
        k: v
        for k, v in report.extra["headline"].items()
        if v is not None and not k.startswith(("epsilon", "delta"))  # the DP guarantee itself is public
    }
    assert headline  # the report did compute real-derived figures
    numbers = _numbers(manifest)
    for metric, value in headline.items():
        if value not in (0.0, 1.0):
            assert all(abs(n - value) > 1e-12 for n in numbers), metric
    text = json.dumps(manifest)
    for word in ("trtr", "exact_match", "dcr", "auc", "tvd", "quality", "scores", "perplexity"):
        assert word not in text.lower(), word
    # No exact real row count (snapshot, anonymized table) and no PII types found in the text.
    real_counts = {d.rows for d in ctx.catalog.list_datasets(zone="real") if d.rows}
    assert real_counts and not real_counts & {int(n) for n in numbers if n == int(n)}
    assert "entity_types_replaced" not in text and "PERSON" not in text
    anon = manifest["anonymization"]
    assert set(anon["declared_identifier_columns"]) == {
        "visit_id", "name", "email", "phone", "ssn", "street_address", "zip"
    }  # fmt: skip
    assert manifest["privacy"]["dp"] is True and 0 < manifest["privacy"]["epsilon"] <= 3.0 + 1e-9
    assert ctx.catalog.scores(pub.dataset_id) == {}  # the scores stay with the restricted report


def test_the_demo_runs_auto_and_the_summary_says_which_model_and_why(run: dict[str, Any]) -> None:
    model = run["train"].extra["model"]
    assert model.startswith("dp_mst (") and "rows (DP count)" in model
    summary = pipeline.summarize(_spec(), run["ctx"], run)
    assert summary["model"] == model


def test_rerun_of_publish_returns_the_same_result(run: dict[str, Any]) -> None:
    ctx, first = run["ctx"], run["publish"]
    shard_ids = [s.dataset_id for s in run["generate"]]
    again = pipeline.publish(
        _spec(), ctx, model_id=run["train"].dataset_id, shard_ids=shard_ids, run_id="t-1"
    )
    assert again.reused and again.dataset_id == first.dataset_id
    assert again.extra == first.extra and again.extra["name"] == "demo-patients-synthetic"


def test_a_dp_run_that_fails_after_reading_the_data_is_charged(run: dict[str, Any]) -> None:
    # Runs last: it adds to the ledger the tests above read. The DP row count (about 640
    # training rows) is below the batch size, so the run fails after a DP mechanism ran;
    # its error depends on that count, so the run pays its preprocessing share (training
    # never started).
    ctx = run["ctx"]
    # DP-SGD needs a batch below the DP row count (the demo itself uses dp_mst, which has no batch).
    spec = _spec("model.kind=dp_tvae", "model.batch_size=5000", "privacy.preprocessing_share=0.1")
    source = pipeline.source_key(spec)
    spent, models = ctx.catalog.spent(source)[0], len(ctx.catalog.list_datasets(kind="model"))
    from synthgen.errors import ModelError

    with pytest.raises(ModelError, match="DP count"):
        pipeline.train(spec, ctx, anonymized_id=run["anonymize"].dataset_id, run_id="t-fail")
    failed = [e for e in ctx.catalog.ledger(source) if e.run_id == "t-fail"]
    charged = spec.privacy.epsilon * spec.privacy.preprocessing_share
    assert [(e.step, e.epsilon) for e in failed] == [("failed_run", pytest.approx(charged))]
    assert failed[0].detail == {"error": "ModelError"}
    # The spec gives no delta: the failed run still pays the delta it may have released (its
    # reservation's), not 0.
    from synthgen.privacy.budget import RUN_DELTA_CEILING

    assert failed[0].delta == pytest.approx(RUN_DELTA_CEILING)
    assert ctx.catalog.spent(source)[0] == pytest.approx(spent + charged)
    assert len(ctx.catalog.list_datasets(kind="model")) == models  # nothing half-written
    holdouts = ctx.zones.real.resolve(f"holdout/{spec.name}")
    assert not [p for p in holdouts.glob("*.parquet") if not ctx.catalog.get_dataset(p.stem)]
    assert not list(ctx.zones.synthetic.resolve("models").glob(f"{spec.name}/.tmp-*"))

    # A non-DP run that fails the same way releases nothing DP and is not charged.
    with pytest.raises(ModelError, match="batch_size"):
        pipeline.train(
            _spec("model.kind=dp_tvae", "model.batch_size=5000", "privacy.dp=false"),
            ctx,
            anonymized_id=run["anonymize"].dataset_id,
            run_id="t-fail-nodp",
        )
    assert not [e for e in ctx.catalog.ledger(source) if e.run_id == "t-fail-nodp"]


def test_run_summary_gives_verdict_rows_and_full_paths_on_their_own_lines(run: dict[str, Any]) -> None:
    import io

    from rich.console import Console

    from synthgen import run_summary

    summary = run_summary.build(_spec(), run["ctx"], run, title="synthgen run demo-patients")
    buf = io.StringIO()
    run_summary.render(summary, Console(file=buf, width=60, force_terminal=False))
    text = buf.getvalue()
    facts = dict(summary.facts)
    assert "trained on" in facts["real rows"] and "held out" in facts["real rows"]
    assert summary.verdict in ("pass", "warn", "fail") and f"verdict: {summary.verdict.upper()}" in text
    report = run["evaluate"].path
    assert f"  {report}\n" in text  # whole, on its own line, in a 60-column console
    assert f"  {run['publish'].path}\n" in text
    assert summary.open_command is not None and report in summary.open_command
    assert "epsilon remaining" in facts
    # The ledger key the run was charged to, as the budget commands take it.
    from synthgen.source_identity import source_key

    assert facts["budget source (ledger key)"] == source_key(_spec())
    assert "budget source" in text
