"""``synthgen policy``: check a decision (what-if, not audited) and validate policy files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synthgen.cli.console import out
from synthgen.errors import AccessDenied

policy_app = typer.Typer(help="Access policies (policies/*.yaml).", no_args_is_help=True)


@policy_app.command("check")
def policy_check(
    user: Annotated[str, typer.Option("--user", "-u", help="Policy user to check.")],
    action: Annotated[str, typer.Option("--action", "-a", help="read | publish | train | generate | admin")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Catalogued dataset name or id.")],
) -> None:
    """Print the decision for USER doing ACTION on DATASET and the rule behind it (exit 3 if denied).

    A what-if query: it is not an access, so it is not audited.
    """
    from synthgen.access import dataset_resource
    from synthgen.catalog import Catalog
    from synthgen.errors import SpecError
    from synthgen.policy import Policy, policy_origin
    from synthgen.policy.model import ACTIONS

    if action not in ACTIONS:
        raise SpecError(f"--action {action!r}: expected one of {', '.join(ACTIONS)}")
    policy = Policy.load()  # a broken policy file is reported before anything else
    catalog = Catalog.from_env()
    ds = catalog.find_dataset(dataset, zone="synthetic") or catalog.find_dataset(dataset)
    if ds is None:
        raise SpecError(f"dataset {dataset!r} is not in the catalog")
    decision = policy.check(user, action, dataset_resource(ds))
    out.print(decision.explain(), highlight=False)
    out.print(f"policies: {policy_origin()}", highlight=False)
    if not decision.allowed:
        raise typer.Exit(AccessDenied.exit_code)


@policy_app.command("validate")
def policy_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders. Default: the active policies.")
    ] = None,
) -> None:
    """Load policy files and report roles, users and rules (or the first problem, with its line)."""
    from synthgen.policy import Policy

    p = Policy.load(paths or None)
    out.print(
        f"ok: {len(p.files)} file(s), {len(p.roles)} roles, {len(p.users)} users, {len(p.rules)} rules",
        highlight=False,
    )
