"""The ``synthgen`` command line (Typer + Rich).

Errors are one line on stderr; the exit code says what happened:
0 ok, 1 failure, 2 usage or spec error, 3 access denied. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthgen.errors import SpecError, SynthgenError

# Typer >= 0.29 vendors click; older releases raise click's own exceptions.
_CLICK_ERRORS: tuple[type[Exception], ...] = (typer.BadParameter.__mro__[2],)  # ClickException
try:
    import click as _click

    _CLICK_ERRORS += (_click.ClickException,)
except ImportError:  # pragma: no cover
    pass

app = typer.Typer(
    name="synthgen",
    help="Privacy-preserving synthetic data: anonymize with Presidio, train DP models with Opacus, "
    "publish encrypted datasets under role-based policies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # --install-completion / --show-completion for bash, zsh, fish and PowerShell.
    add_completion=True,
)
from synthgen.access_cli import UserOpt, audit_app, keys_app, policy_app, read_cmd, report_cmd  # noqa: E402
from synthgen.budget_cli import budget_app  # noqa: E402
from synthgen.inspect_cli import inspect_cmd  # noqa: E402

spec_app = typer.Typer(help="Validate and inspect pipeline specs.", no_args_is_help=True)
catalog_app = typer.Typer(help="List what the catalog records.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(catalog_app, name="catalog")
app.add_typer(keys_app, name="keys")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.command("read")(read_cmd)
app.command("report")(report_cmd)
app.command("eval-pii")(__import__("synthgen.anonymize.eval_cli", fromlist=["_"]).eval_pii_cmd)
app.command("inspect")(inspect_cmd)
app.add_typer(budget_app, name="budget")

out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {"debug": False}

SpecArg = Annotated[Path, typer.Argument(help="Pipeline spec (YAML).", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a spec value: key.path=value (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_version(value: bool) -> None:
    if value:
        from synthgen import __version__

        out.print(f"synthgen {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    _state["debug"] = debug


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Any]:
    """A Rich progress display, and a callback ``progress(stage, done, total, **info)`` for the stages."""
    if not enabled:
        yield None
        return
    if not err.is_terminal:
        # Piped or in CI: one line per stage start and end instead of bars nobody sees.
        from synthgen.stage_log import StageLines

        yield StageLines()
        return
    prog = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def callback(stage: str, done: float, total: float | None = None, **info: Any) -> None:
        text = " ".join(f"{k}={_fmt(v)}" for k, v in info.items())
        if stage not in tasks:
            tasks[stage] = prog.add_task(stage, total=total, info=text)
        prog.update(tasks[stage], completed=done, total=total, info=text)

    with prog:
        yield callback


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _context(progress: Any = None) -> Any:
    from synthgen.pipeline import Context
    from synthgen.stage_log import StageLines

    ctx = Context.from_env(progress=progress)
    if isinstance(progress, StageLines):
        ctx.stages = progress
    return ctx


def _log_epsilon(ctx: Any, spec: Any) -> None:
    """Stage lines show the source's ledger total (a DP figure) at the end of each stage."""
    from synthgen.pipeline import source_key

    if ctx.stages is not None:
        ctx.stages.epsilon = lambda: ctx.catalog.spent(source_key(spec))[0]


def _load(spec: Path, overrides: list[str] | None) -> Any:
    from synthgen.spec import load_spec

    return load_spec(spec, overrides or [])


# -- spec ---------------------------------------------------------------------


@spec_app.command("validate")
def spec_validate(
    spec: SpecArg,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    show: Annotated[
        bool, typer.Option("--show", help="Print the resolved spec (defaults and --set filled in) as YAML.")
    ] = False,
) -> None:
    """Validate a pipeline spec; with --show or --json, print it with defaults filled in."""
    s = _load(spec, set_)
    if as_json:
        out.print_json(s.model_dump_json())
    elif show:
        import yaml

        sys.stdout.write(yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    else:
        out.print(f"[green]ok[/green] {spec}: pipeline [bold]{s.name}[/bold] ({s.source.kind} source)")


# -- ingest / catalog ---------------------------------------------------------


@app.command()
def ingest(spec: SpecArg, set_: SetOpt = None) -> None:
    """Snapshot the spec's source into the real zone (Parquet, content-hash id) and catalogue it."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        r = pipeline.ingest(s, _context(cb))
    verb = "already ingested" if r.reused else "ingested"
    out.print(f"{verb} {r.rows:,} rows of [bold]{s.name}[/bold] as {r.dataset_id} -> {r.path}")


@catalog_app.command("list")
def catalog_list(
    user: UserOpt,
    zone: Annotated[str | None, typer.Option(help="real | synthetic")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List catalogued datasets. Exact real row counts only for users who may read restricted reports."""
    if zone not in (None, "real", "synthetic"):
        raise typer.BadParameter("expected real or synthetic", param_hint="--zone")
    from synthgen.catalog import Catalog
    from synthgen.disclosure import catalog_row, may_see_restricted
    from synthgen.policy import Policy

    policy = Policy.load()
    data = [
        catalog_row(d, restricted_ok=may_see_restricted(policy, user, d))
        for d in Catalog.from_env().list_datasets(zone=zone)
    ]
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table("id", "name", "zone", "kind", "rows", "dp", "created")
    for d in data:
        rows = (
            "withheld"
            if d["restricted_fields"] == "withheld"
            else f"{d['rows']:,}"
            if d["rows"] is not None
            else ""
        )
        table.add_row(
            d["id"],
            d["name"],
            d["zone"],
            d["kind"],
            rows,
            "" if d["dp"] is None else str(d["dp"]).lower(),
            d["created_at"][:16].replace("T", " "),
        )
    out.print(table)


# -- stages -------------------------------------------------------------------


@app.command()
def anonymize(spec: SpecArg, set_: SetOpt = None) -> None:
    """Ingest, then remove identifiers with Presidio (output stays in the real zone)."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        snap = pipeline.ingest(s, ctx)
        r = pipeline.anonymize(s, ctx, snapshot_id=snap.dataset_id)
    out.print(f"anonymized {r.rows:,} rows as {r.dataset_id} (real zone) -> {r.path}")
    for line in r.extra.get("summary", []):
        out.print(f"  {escape(str(line))}")


@app.command()
def train(spec: SpecArg, set_: SetOpt = None) -> None:
    """Train the spec's synthesizer on the latest anonymized data, charging the privacy ledger."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        anon = pipeline.latest_required(ctx, s, "anonymized", f"anonymize {spec}")
        r = pipeline.train(s, ctx, anonymized_id=anon.id, run_id=pipeline.new_run_id())
    eps = r.extra.get("epsilon")
    what = f"epsilon {eps:.3g}" if eps is not None else "NON-DP (dp: false)"
    out.print(f"trained {r.extra.get('model', s.model.kind)} as {r.dataset_id} ({what}) -> {r.path}")
    out.print(f"budget source: {escape(pipeline.source_key(s))} (synthgen budget show)", highlight=False)
    for warning in r.extra.get("warnings", []):
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@app.command()
def generate(
    spec: SpecArg,
    rows: Annotated[int | None, typer.Option(min=1, help="Rows to sample (default: output.rows).")] = None,
    set_: SetOpt = None,
) -> None:
    """Sample synthetic rows from the latest trained model into the synthetic zone's staging area."""
    from synthgen import pipeline

    overrides = list(set_ or []) + ([f"output.rows={rows}"] if rows else [])
    s = _load(spec, overrides)
    with progress_bars() as cb:
        ctx = _context(cb)
        model = pipeline.latest_required(ctx, s, "model", f"train {spec}")
        shards = pipeline.generate_all(
            s, ctx, model_id=model.id, run_id=model.extra.get("run_id") or model.id
        )
    total = sum(r.rows or 0 for r in shards)
    out.print(f"generated {total:,} rows in {len(shards)} shard(s) from {model.id}:")
    for r in shards:
        out.print(f"  {r.path}")


@app.command()
def evaluate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Evaluate the latest generated data against real rows: fidelity, utility, privacy, PII leaks."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        model, run_id, shard_ids = pipeline.latest_run(ctx, s, hint=f"train {spec}")
        r = pipeline.evaluate(s, ctx, model_id=model.id, shard_ids=shard_ids, run_id=run_id)
    out.print(f"report {r.dataset_id} (restricted, real zone) -> {r.path}")
    for k, v in r.extra.get("headline", {}).items():
        out.print(f"  {k}: {_fmt(v)}")
    for alert in r.extra.get("alerts", []):
        out.print(f"  [yellow]alert:[/yellow] {escape(str(alert))}")


@app.command()
def publish(spec: SpecArg, set_: SetOpt = None) -> None:
    """Encrypt the latest generated data into the synthetic zone, wrapped for the allowed roles."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        model, run_id, shard_ids = pipeline.latest_run(ctx, s, hint=f"train {spec}")
        report = pipeline.latest(ctx, s.synthetic_name, "report")
        r = pipeline.publish(
            s,
            ctx,
            model_id=model.id,
            shard_ids=shard_ids,
            run_id=run_id,
            report_id=report.id if report is not None else None,
        )
    out.print(f"published {r.rows:,} rows as {r.dataset_id} ({r.extra.get('name')}) -> {r.path}")


@app.command()
def run(spec: SpecArg, set_: SetOpt = None) -> None:
    """Run every stage of a pipeline: ingest, anonymize, train, generate, evaluate, publish."""
    from synthgen import pipeline

    s = _load(spec, set_)
    with progress_bars() as cb:
        ctx = _context(cb)
        _log_epsilon(ctx, s)
        results = pipeline.run_pipeline(s, ctx)
    from synthgen import run_summary

    run_summary.render(run_summary.build(s, ctx, results, title=f"synthgen run {s.name}"), out)


@app.command("scan-pii")
def scan_pii(
    file: Annotated[Path, typer.Argument(help="A CSV, Parquet or JSON Lines file.", show_default=False)],
    limit: Annotated[int, typer.Option(min=1, help="Non-empty values analysed per column.")] = 1000,
    config: Annotated[str | None, typer.Option(help="Presidio analyzer config (YAML).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print the PII entities Presidio finds in each column of a file."""
    import polars as pl

    from synthgen.anonymize import scan_pii as scan
    from synthgen.errors import SourceError

    if not file.is_file():
        raise SourceError(f"file not found: {file}")
    suffix = file.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl", ".ndjson"):
        raise SpecError(f"{file}: unsupported file type {file.suffix!r}; use .csv, .parquet or .jsonl")
    try:
        if suffix == ".csv":
            frame = pl.read_csv(file, n_rows=limit * 4)
        elif suffix == ".parquet":
            frame = pl.scan_parquet(file).head(limit * 4).collect()
        else:
            frame = pl.read_ndjson(file, n_rows=limit * 4)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {file}: {str(exc).strip().splitlines()[0]}") from None
    found = scan(frame, config=config, limit=limit)
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    table = Table("column", "entities found", title=f"PII in {file} (first {limit:,} values per column)")
    for col, ents in found.items():
        table.add_row(col, ", ".join(f"{k}: {v}" for k, v in ents.items()) or "-")
    out.print(table)


# -- demo ---------------------------------------------------------------------

DEMO_SPEC = Path(__file__).resolve().parent / "demo" / "pipeline.yaml"


@app.command()
def demo(
    rows: Annotated[int, typer.Option(min=100, help="Rows of sample data to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the sample data.")] = 0,
    set_: SetOpt = None,
) -> None:
    """Generate the sample patient data and run the whole pipeline on it, end to end."""
    from synthgen import pipeline
    from synthgen.demo import write_demo_csv
    from synthgen.spec import expand_vars

    spec = _load(DEMO_SPEC, set_)
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
        results = pipeline.run_pipeline(spec, ctx)
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


# -- entry point ----------------------------------------------------------------


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """An error as one line of at most ``limit`` characters: a message never reprints a large input."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning synthgen errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    if not debug:
        # Library warnings (Opacus, SDV, torch) are for developers; --debug shows them. The one
        # that matters for privacy (Opacus's non-cryptographic noise RNG) is documented in the README.
        warnings.filterwarnings("ignore")
    try:
        # standalone_mode=False makes click *return* a typer.Exit's code instead of exiting with it.
        code = app(args=args, standalone_mode=False)
    except SynthgenError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {escape(_one_line(exc))}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = exc.code if isinstance(exc, SystemExit) else 0
        raise SystemExit(code) from None
    except Exception as exc:
        if isinstance(exc, _CLICK_ERRORS):
            exc.show()  # type: ignore[attr-defined]
            raise SystemExit(exc.exit_code) from None  # type: ignore[attr-defined]
        if debug:
            raise
        err.print(
            f"[red]error:[/red] {type(exc).__name__}: {escape(_one_line(exc))} "
            "(run with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(1) from None
    if isinstance(code, int) and code != 0:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
