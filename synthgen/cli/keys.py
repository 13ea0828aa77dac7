"""``synthgen keys``: role key-encryption keys (create, rotate, list, revoke a role from a dataset)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from synthgen.cli.console import err, out, plain
from synthgen.cli.options import UserOpt

keys_app = typer.Typer(
    help="Role key-encryption keys (KEKs): create, rotate, list, revoke a role from a dataset.",
    no_args_is_help=True,
)


@keys_app.command("init")
def keys_init(
    user: UserOpt,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Only this role (repeatable). Default: every policy role."),
    ] = None,
) -> None:
    """Create a KEK for each role that has none (files under <home>/keys, mode 0600). Needs admin."""
    from synthgen.access import init_keys
    from synthgen.catalog import Catalog

    created = init_keys(user=user, roles=role or None, catalog=Catalog.from_env())
    for r, kek_id in created.items():
        out.print(f"{r}: {'created ' + kek_id if kek_id else 'already has a key'}")


@keys_app.command("rotate")
def keys_rotate(
    role: Annotated[str, typer.Argument(help="The role whose KEK to rotate.")], user: UserOpt
) -> None:
    """New KEK version for ROLE; re-wrap every data key wrapped for it (no data re-encryption)."""
    from synthgen.access import rotate_role_key

    r = rotate_role_key(role, user=user)
    out.print(
        f"{role}: now {r.new_kek_id}; re-wrapped {len(r.rewrapped)} dataset(s); retired {r.retired or 'none'}"
    )
    if r.failed:
        for where, why in r.failed.items():
            err.print(f"not re-wrapped: {plain(str(where))}: {plain(str(why))}", highlight=False)
        err.print("old KEK versions were kept; fix the files above and run the rotation again")
        raise typer.Exit(1)


@keys_app.command("list")
def keys_list() -> None:
    """Roles and their KEK ids (never key material)."""
    from synthgen.crypto import provider_from_env

    provider = provider_from_env()
    table = Table("role", "KEK ids (current last)", title=f"key provider: {provider.name}")
    for role in provider.roles():
        table.add_row(role, ", ".join(provider.kek_ids(role)))
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    dataset: Annotated[str, typer.Argument(help="Dataset name or id.")],
    role: Annotated[str, typer.Argument(help="Role to remove from the dataset's keyring.")],
    user: UserOpt,
) -> None:
    """Remove ROLE's wrapped key from DATASET: its KEK no longer opens the dataset."""
    from synthgen.access import revoke_role

    removed = revoke_role(dataset, role, user=user)
    out.print(f"{dataset}: {'revoked ' + role if removed else role + ' held no key'}")
