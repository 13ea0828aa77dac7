"""CLI commands for keys, policies, the audit trail, and reading encrypted datasets.

``keys_app``, ``policy_app`` and ``audit_app`` are Typer sub-apps; ``read_cmd`` and
``report_cmd`` are command bodies for the main app. They raise
:class:`synthgen.errors.SynthgenError` subclasses; the main CLI turns those into one
line and the error's exit code (3 for a denied access).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from synthgen.errors import AccessDenied

out = Console()
err = Console(stderr=True)


def _default_user() -> str:
    try:
        return os.environ.get("SYNTHGEN_USER") or getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


UserOpt = Annotated[
    str,
    typer.Option(
        "--user",
        "-u",
        envvar="SYNTHGEN_USER",
        default_factory=_default_user,
        help="Who is acting (policy user). Default: $SYNTHGEN_USER, else your login name.",
        show_default=False,
    ),
]

# -- keys ----------------------------------------------------------------------------

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
            err.print(f"not re-wrapped: {escape(str(where))}: {escape(str(why))}", highlight=False)
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


# -- policy --------------------------------------------------------------------------

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
    out.print(decision.explain(), highlight=False, soft_wrap=True)
    out.print(f"policies: {policy_origin()}", highlight=False, soft_wrap=True)
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


# -- audit ---------------------------------------------------------------------------

audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the keyed audit chain (JSONL file, catalog copy, catalog anchor); exit 1 if anything was
    edited, deleted, inserted or cut. Needs the platform secret (the chain's key)."""
    from synthgen.catalog import Catalog
    from synthgen.errors import AuditError
    from synthgen.policy import verify_audit

    report = verify_audit(Catalog.from_env())
    if report.ok:
        out.print(f"{report.summary()} (head {report.head})", highlight=False)
        return
    for problem in report.problems:
        err.print(escape(str(problem)), highlight=False, soft_wrap=True)
    raise AuditError(report.summary())


# -- read ----------------------------------------------------------------------------


def read_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset name (newest version) or id.")],
    user: UserOpt,
    out_path: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the decrypted data here (outside the zones).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet | csv (with --out).")] = "parquet",
    rows: Annotated[int, typer.Option("--rows", help="Rows to print without --out.")] = 10,
) -> None:
    """Decrypt a published dataset you may read: policy check, key unwrap, verification, audit."""
    from synthgen.access import read_dataset, read_to_file
    from synthgen.errors import SpecError

    if fmt not in ("parquet", "csv"):
        raise SpecError(f"--format {fmt!r}: expected parquet or csv")
    if out_path is not None:
        path = read_to_file(dataset, user=user, out=out_path, format=fmt)  # type: ignore[arg-type]
        out.print(f"wrote {path}")
        return
    frame = read_dataset(dataset, user=user)
    out.print(f"{dataset}: {frame.height:,} rows x {frame.width} columns", highlight=False)
    out.print(str(frame.head(rows)), highlight=False)


def report_cmd(
    name: Annotated[str, typer.Argument(help="Pipeline name or report id.")],
    user: UserOpt,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="Copy the report here.")] = None,
) -> None:
    """Open a restricted evaluation report (policy-checked, audited): prints its path or copies it."""
    from synthgen.access import read_report

    out.print(str(read_report(name, user=user, out=out_path)), highlight=False)
