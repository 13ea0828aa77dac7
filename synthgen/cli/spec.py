"""``synthgen spec``: validate and inspect pipeline specs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from synthgen.cli.console import out
from synthgen.cli.options import JsonOpt, SetOpt, SpecArg, load

spec_app = typer.Typer(help="Write, validate and inspect pipeline specs.", no_args_is_help=True)


@spec_app.command("init")
def spec_init(
    target: Annotated[
        Path | None,
        typer.Argument(
            metavar="[SOURCE | SPEC]",
            help="A data file (CSV, TSV, Parquet, JSONL) to start from, or the spec file to write.",
            show_default=False,
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="SPEC", help="Spec file to write (never overwritten; default SOURCE-NAME.yaml)."
        ),
    ] = None,
    from_data: Annotated[
        Path | None,
        typer.Option(
            "--from-data",
            metavar="FILE",
            help="CSV, TSV, Parquet or JSONL file whose column types fill in the spec (types only).",
        ),
    ] = None,
    url_env: Annotated[
        str | None,
        typer.Option("--url-env", metavar="VAR", help="SQL source: environment variable holding the URL."),
    ] = None,
    table: Annotated[str | None, typer.Option("--table", help="SQL source: the table to read.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Pipeline name (default: from the file).")
    ] = None,
) -> None:
    """Write a commented starter spec: `spec init SOURCE [--out SPEC]`, `spec init SPEC --from-data
    SOURCE`, or `spec init --url-env VAR --table TABLE --out SPEC` for a SQL table."""
    from synthgen.spec_init import init_spec, split_init_args

    path, data = split_init_args(target, out=out_path, from_data=from_data, sql=url_env is not None)
    r = init_spec(path, from_data=data, url_env=url_env, table=table, name=name)
    out.print(f"wrote {r.path} (pipeline {r.name})", highlight=False)
    if r.columns:
        out.print(
            f"{len(r.columns)} column types inferred from the first rows (types only, no values)",
            highlight=False,
        )
    if r.dialect is not None and r.dialect.source_keys():
        keys = ", ".join(f"{k} {v!r}" for k, v in r.dialect.source_keys().items())
        out.print(f"CSV layout read from the first lines: {keys}", highlight=False)
    if r.dropped:
        out.print(f"identifier columns it drops: {', '.join(r.dropped)}", highlight=False)
    if r.numeric_names:
        out.print(
            f"warning: {r.numeric_names} of {len(r.columns)} column names are numbers: is the first line "
            "a header? If it is data (or counts, as in scikit-learn's CSVs), write a header line first",
            highlight=False,
        )
    out.print(f"next: edit it, then `synthgen spec validate {r.path}` and `synthgen run {r.path} --dry-run`")


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
    s = load(spec, set_)
    if as_json:
        out.print_json(s.model_dump_json())
    elif show:
        import yaml

        sys.stdout.write(yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False, allow_unicode=True))
    else:
        out.print(f"[green]ok[/green] {spec}: pipeline [bold]{s.name}[/bold] ({s.source.kind} source)")
