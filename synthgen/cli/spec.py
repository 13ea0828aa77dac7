"""``synthgen spec``: validate and inspect pipeline specs."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from synthgen.cli.console import out
from synthgen.cli.options import JsonOpt, SetOpt, SpecArg, load

spec_app = typer.Typer(help="Validate and inspect pipeline specs.", no_args_is_help=True)


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
