"""The ``synthgen`` command line (Typer + Rich).

Errors are one line on stderr; the exit code says what happened:
0 ok, 1 failure, 2 usage or spec error, 3 access denied. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from synthgen.errors import SynthgenError

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
    add_completion=False,
)
spec_app = typer.Typer(help="Validate and inspect pipeline specs.", no_args_is_help=True)
catalog_app = typer.Typer(help="List what the catalog records.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(catalog_app, name="catalog")

out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {"debug": False}

SpecArg = Annotated[Path, typer.Argument(help="Pipeline spec (YAML).", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a spec value: key.path=value (repeatable)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Any]:
    """A Rich progress display, and a callback ``progress(stage, done, total, **info)`` for the stages."""
    if not enabled or not err.is_terminal:
        yield None
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

    return Context.from_env(progress=progress)


def _load(spec: Path, overrides: list[str] | None) -> Any:
    from synthgen.spec import load_spec

    return load_spec(spec, overrides or [])


# -- spec ---------------------------------------------------------------------


@spec_app.command("validate")
def spec_validate(spec: SpecArg, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Validate a pipeline spec; print it with defaults filled in."""
    s = _load(spec, set_)
    if as_json:
        out.print_json(s.model_dump_json())
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
    zone: Annotated[str | None, typer.Option(help="real | synthetic")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List catalogued datasets."""
    if zone not in (None, "real", "synthetic"):
        raise typer.BadParameter("expected real or synthetic", param_hint="--zone")
    from synthgen.catalog import Catalog

    rows = Catalog.from_env().list_datasets(zone=zone)
    if as_json:
        data = [
            {
                "id": d.id,
                "name": d.name,
                "zone": d.zone,
                "kind": d.kind,
                "format": d.format,
                "rows": d.rows,
                "dp": d.dp,
                "classification": d.classification,
                "content_hash": d.content_hash,
                "created_at": d.created_at.isoformat(),
                "created_by": d.created_by,
                "path": d.path,
            }
            for d in rows
        ]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    table = Table("id", "name", "zone", "kind", "rows", "dp", "created")
    for d in rows:
        table.add_row(
            d.id, d.name, d.zone, d.kind, f"{d.rows:,}" if d.rows is not None else "",
            "" if d.dp is None else str(d.dp).lower(), d.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


# -- entry point ----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning synthgen errors into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        app(args=args, standalone_mode=False)
    except SynthgenError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err.print("aborted")
        raise SystemExit(130) from None
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            code = exc.code if isinstance(exc, SystemExit) else 0
        raise SystemExit(code) from None
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if isinstance(exc, _CLICK_ERRORS):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if debug:
            raise
        err.print(f"[red]error:[/red] {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                  highlight=False, soft_wrap=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
