"""The stage commands: ``ingest``, ``anonymize``, ``train``, ``generate``, ``evaluate``, ``publish``,
``run`` and ``demo``. Each calls the stage functions of :mod:`synthgen.stages`, as the DAGs do."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from synthgen.cli.console import err, fmt, out, plain, progress_bars
from synthgen.cli.options import SetOpt, SpecArg, WorkersOpt, load


def _context(progress: Any = None) -> Any:
    from synthgen.stage_log import StageLines
    from synthgen.stages import Context

    ctx = Context.from_env(progress=progress)
    if isinstance(progress, StageLines):
        ctx.stages = progress
    return ctx


def _log_epsilon(ctx: Any, spec: Any) -> None:
    """Stage lines show the source's ledger total (a DP figure) at the end of each stage."""
    from synthgen.source_identity import source_key

    if ctx.stages is not None:
        ctx.stages.epsilon = lambda: ctx.catalog.spent(source_key(spec))[0]


def ingest(spec: SpecArg, set_: SetOpt = None) -> None:
    """Snapshot the spec's source into the real zone (Parquet, content-hash id) and catalogue it."""
    from synthgen import stages

    s = load(spec, set_)
    with progress_bars() as cb:
        r = stages.ingest(s, _context(cb))
    verb = "already ingested" if r.reused else "ingested"
    out.print(f"{verb} {r.rows:,} rows of [bold]{s.name}[/bold] as {r.dataset_id} -> {r.path}")


def anonymize(spec: SpecArg, set_: SetOpt = None, workers: WorkersOpt = 1) -> None:
    """Ingest, then remove identifiers with Presidio (output stays in the real zone), one snapshot
    part per task on --workers local processes."""
    from synthgen import stages

    s = load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        snap = stages.ingest(s, ctx)
        r = stages.anonymize(s, ctx, snapshot_id=snap.dataset_id, workers=workers)
    out.print(f"anonymized {r.rows:,} rows as {r.dataset_id} (real zone) -> {r.path}")
    for line in r.extra.get("summary", []):
        out.print(f"  {plain(str(line))}")


DryRunOpt = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Print the plan (stages, epsilon split, budget, keys) and run the pre-flight checks: exit code "
        "as the real run's (1 budget, 2 configuration, 3 denied); no row read, nothing charged.",
    ),
]


def _dry_run(s: Any, ctx: Any, stage_names: list[str] | None = None, *, publish: bool = True) -> None:
    """Print the plan, then the pre-flight's verdict: the same checks, error line and exit code
    as the real run (1 budget, 2 configuration, 3 denied); no row read, nothing written or charged."""
    from synthgen import preflight
    from synthgen.errors import SynthgenError

    problem: SynthgenError | None = None
    try:
        preflight.check(s, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones, publish=publish)
    except SynthgenError as exc:
        problem = exc
    try:
        p = preflight.plan(s, catalog=ctx.catalog, stages=stage_names)
    except SynthgenError:
        p = None  # e.g. a missing source file: the pre-flight's line says it
    for line in p.lines() if p is not None else []:
        out.print(plain(line), highlight=False)
    if problem is not None:
        raise problem
    out.print(f"pre-flight: all checks pass for {plain(ctx.user)}", highlight=False)


def train(spec: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False) -> None:
    """Train the spec's synthesizer on the latest anonymized data, charging the privacy ledger."""
    from synthgen import preflight, stages
    from synthgen.orphans import sweep_train

    s = load(spec, set_)
    if dry_run:
        _dry_run(s, _context(), ["train"], publish=False)
        return
    with progress_bars() as cb:
        ctx = _context(cb)
        sweep_train(s, ctx)  # a killed run's reservation is charged before the budget check reads it
        preflight.check(s, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones, publish=False)
        anon = stages.latest_required(ctx, s, "anonymized", f"anonymize {spec}")
        r = stages.train(s, ctx, anonymized_id=anon.id, run_id=stages.new_run_id())
    eps = r.extra.get("epsilon")
    what = f"epsilon {eps:.3g}" if eps is not None else "NON-DP (dp: false)"
    out.print(f"trained {r.extra.get('model', s.model.kind)} as {r.dataset_id} ({what}) -> {r.path}")
    out.print(f"budget source: {plain(stages.source_key(s))} (synthgen budget show)", highlight=False)
    for warning in r.extra.get("warnings", []):
        err.print(f"[yellow]warning:[/yellow] {plain(warning)}", highlight=False)


def generate(
    spec: SpecArg,
    rows: Annotated[int | None, typer.Option(min=1, help="Rows to sample (default: output.rows).")] = None,
    set_: SetOpt = None,
) -> None:
    """Sample synthetic rows from the latest trained model into the synthetic zone's staging area."""
    from synthgen import stages

    overrides = list(set_ or []) + ([f"output.rows={rows}"] if rows else [])
    s = load(spec, overrides)
    with progress_bars() as cb:
        ctx = _context(cb)
        model = stages.latest_required(ctx, s, "model", f"train {spec}")
        shards = stages.generate_all(s, ctx, model_id=model.id, run_id=model.extra.get("run_id") or model.id)
    total = sum(r.rows or 0 for r in shards)
    out.print(f"generated {total:,} rows in {len(shards)} shard(s) from {model.id}:")
    for r in shards:
        out.print(f"  {r.path}")


def evaluate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Evaluate the latest generated data against real rows: fidelity, utility, privacy, PII leaks."""
    from synthgen import stages

    s = load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        model, run_id, shard_ids = stages.latest_run(ctx, s, hint=f"train {spec}")
        r = stages.evaluate(s, ctx, model_id=model.id, shard_ids=shard_ids, run_id=run_id)
    out.print(f"report {r.dataset_id} (restricted, real zone) -> {r.path}")
    for k, v in r.extra.get("headline", {}).items():
        out.print(f"  {k}: {fmt(v)}")
    for alert in r.extra.get("alerts", []):
        out.print(f"  [yellow]alert:[/yellow] {plain(str(alert))}")


def publish(spec: SpecArg, set_: SetOpt = None) -> None:
    """Encrypt the latest generated data into the synthetic zone, wrapped for the allowed roles."""
    from synthgen import stages

    s = load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        model, run_id, shard_ids = stages.latest_run(ctx, s, hint=f"train {spec}")
        report = stages.latest(ctx, s.synthetic_name, "report")
        r = stages.publish(
            s,
            ctx,
            model_id=model.id,
            shard_ids=shard_ids,
            run_id=run_id,
            report_id=report.id if report is not None else None,
        )
    out.print(f"published {r.rows:,} rows as {r.dataset_id} ({r.extra.get('name')}) -> {r.path}")


def run(spec: SpecArg, set_: SetOpt = None, dry_run: DryRunOpt = False, workers: WorkersOpt = 1) -> None:
    """Run every stage of a pipeline: ingest, anonymize, train, generate, evaluate, publish.

    A pre-flight comes first: the source file, the zones, the policy's publish right, a key for
    every output role and the source's remaining budget are checked before any row is read.
    """
    from synthgen import preflight, stages
    from synthgen.orphans import sweep_train

    s = load(spec, set_)
    if dry_run:
        _dry_run(s, _context())
        return
    with progress_bars() as cb:
        ctx = _context(cb)
        sweep_train(s, ctx)  # as in train: what killed runs left is settled before the budget check
        preflight.check(s, user=ctx.user, catalog=ctx.catalog, zones=ctx.zones)
        _log_epsilon(ctx, s)
        results = stages.run_pipeline(s, ctx, workers=workers)
    from synthgen import run_summary

    run_summary.render(run_summary.build(s, ctx, results, title=f"synthgen run {s.name}"), out)


DEMO_SPEC = Path(__file__).resolve().parent.parent / "demo" / "pipeline.yaml"


def demo(
    rows: Annotated[int, typer.Option(min=100, help="Rows of sample data to generate.")] = 5_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample data.")] = 0,
    set_: SetOpt = None,
) -> None:
    """Generate the sample patient data and run the whole pipeline on it, end to end."""
    from synthgen import stages
    from synthgen.demo import write_demo_csv
    from synthgen.spec import expand_vars

    spec = load(DEMO_SPEC, set_)
    csv_path = Path(expand_vars(spec.source.path or ""))
    csv_path, _truth = write_demo_csv(csv_path, rows, seed)
    out.print(f"generated {rows:,} patient visits (seed {seed}) -> {csv_path}")
    with progress_bars() as cb:
        ctx = _context(cb)
        ctx.user = os.environ.get("SYNTHGEN_USER", DEMO_PIPELINE_USER)
        _log_epsilon(ctx, spec)
        created = _demo_keys()
        if created:
            out.print(f"created role keys (as a data steward): {', '.join(created)}")
        results = stages.run_pipeline(spec, ctx)
    from synthgen import run_summary

    summary = run_summary.build(spec, ctx, results, title="synthgen demo")
    read_back = {}
    reader = _first_user_with_role("analyst")
    if reader is not None:
        import synthgen

        frame = synthgen.read_dataset(results["publish"].extra["name"], user=reader)
        read_back[f"read back as {reader} (analyst)"] = f"{frame.height:,} rows x {frame.width} columns"
    run_summary.render(summary, out, extra_facts=read_back)


DEMO_PIPELINE_USER = "synthgen-pipeline"


def _first_user_with_role(role: str) -> str | None:
    from synthgen.policy.engine import Policy

    policy = Policy.load()
    return next((u for u, roles in sorted(policy.users.items()) if role in roles), None)


def _demo_keys() -> list[str]:
    """Create missing role KEKs as the policy's first data steward (the demo's one-time set-up)."""
    from synthgen.access import init_keys

    steward = _first_user_with_role("data-steward")
    if steward is None:
        return []
    return [role for role, kek in init_keys(user=steward).items() if kek is not None]
