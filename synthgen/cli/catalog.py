"""``synthgen catalog``: list what the catalog records (restricted fields only for who may see them)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from synthgen.cli.console import out
from synthgen.cli.options import JsonOpt, UserOpt

catalog_app = typer.Typer(help="List what the catalog records.", no_args_is_help=True)


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
