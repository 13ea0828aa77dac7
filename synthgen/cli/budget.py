"""``synthgen budget``: show a source's ledger, set its cap (the policy's ``admin`` action)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from synthgen.cli.console import err, out, plain
from synthgen.cli.options import UserOpt

budget_app = typer.Typer(
    help="The privacy budget: ledger, reservations and caps per source.", no_args_is_help=True
)

SourceArg = Annotated[
    str,
    typer.Argument(help="A pipeline spec file, or a source key as the ledger prints it (id:..., csv:...)."),
]


def _key(source: str) -> str:
    """The ledger key of a spec file's source, or ``source`` itself."""
    if source.endswith((".yaml", ".yml")) and Path(source).is_file():
        from synthgen.source_identity import source_key
        from synthgen.spec import load_spec

        return source_key(load_spec(Path(source), []))
    return source


@budget_app.command("show")
def budget_show(
    source: SourceArg, as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Print a source's ledger key, cap, every DP mechanism charged, and open reservations."""
    from synthgen.catalog import Catalog
    from synthgen.privacy import budget

    key = _key(source)
    cat = Catalog.from_env()
    entries = cat.ledger(key)
    now = budget.standing(cat, key, default_cap=budget.policy_default_cap())
    held = budget.open_reservations(cat, key)
    if not entries and not held and key == source and not now.cap_set:
        err.print(
            f"note: no ledger entry for source {plain(key)!r}; the ledger is keyed by source "
            "(id:<source.id>, or e.g. csv:/path/to/file.csv), not pipeline name: pass the spec file",
            highlight=False,
        )
    if as_json:
        sys.stdout.write(json.dumps(_as_json(now, entries, held), indent=2) + "\n")
        return
    table = Table("seq", "run", "step", "mechanism", "epsilon", "delta", "accountant", "when")
    table.title = f"privacy ledger: {key}"
    for e in entries:
        table.add_row(
            str(e.seq),
            e.run_id,
            e.step,
            e.mechanism,
            f"{e.epsilon:.4g}",
            f"{e.delta:.2g}",
            e.accountant,
            e.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    for r in held:
        when = r.created_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(
            "-", r.run_id, "reserved", "open reservation", f"{r.epsilon:.4g}", f"{r.delta:.2g}", "-", when
        )
    out.print(table)
    cap_note = "" if now.cap_set else " (default; set on the first run)"
    out.print(
        f"source {key}: spent epsilon {now.spent_epsilon:.4g} + reserved {now.reserved_epsilon:.4g}, "
        f"remaining {now.remaining_epsilon:.4g} of cap {now.cap_epsilon:.4g}{cap_note}; "
        f"delta {now.charged_delta:.3g} of cap {now.cap_delta:.3g}",
        highlight=False,
    )


def _as_json(now: Any, entries: list[Any], held: list[Any]) -> dict[str, Any]:
    return {
        "source": now.source,
        "cap": now.cap_epsilon,
        "cap_delta": now.cap_delta,
        "cap_set": now.cap_set,
        "spent_epsilon": now.spent_epsilon,
        "spent_delta": now.spent_delta,
        "reserved_epsilon": now.reserved_epsilon,
        "reserved_delta": now.reserved_delta,
        "remaining_epsilon": now.remaining_epsilon,
        "remaining_delta": now.remaining_delta,
        "entries": [
            {
                "seq": e.seq,
                "run_id": e.run_id,
                "step": e.step,
                "mechanism": e.mechanism,
                "epsilon": e.epsilon,
                "delta": e.delta,
                "accountant": e.accountant,
                "created_at": e.created_at.isoformat(),
                "detail": e.detail,
            }
            for e in entries
        ],
        "reservations": [
            {
                "run_id": r.run_id,
                "epsilon": r.epsilon,
                "delta": r.delta,
                "created_at": r.created_at.isoformat(),
            }
            for r in held
        ],
    }


@budget_app.command("set-cap")
def budget_set_cap(
    source: SourceArg,
    epsilon: Annotated[float, typer.Argument(help="The source's cumulative epsilon cap.")],
    user: UserOpt,
    delta: Annotated[
        float | None, typer.Option("--delta", help="The source's cumulative delta cap (default: unchanged).")
    ] = None,
) -> None:
    """Set a source's cumulative (epsilon, delta) cap. Needs the policy's admin action; audited."""
    from synthgen.catalog import Catalog
    from synthgen.privacy import budget

    key = _key(source)
    before, after = budget.set_cap(Catalog.from_env(), key, epsilon=epsilon, delta=delta, user=user)
    out.print(
        f"source {key}: cap epsilon {before.cap_epsilon:.4g} -> {after.cap_epsilon:.4g}, "
        f"delta {before.cap_delta:.3g} -> {after.cap_delta:.3g} "
        f"(charged epsilon {after.charged_epsilon:.4g}, delta {after.charged_delta:.3g})",
        highlight=False,
    )


@budget_app.command("unbind")
def budget_unbind(source: SourceArg, user: UserOpt) -> None:
    """Release a source key's binding to its data, so it (or another key) can be bound anew.

    Needs the policy's admin action; audited. The key's ledger and cap stay.
    """
    from synthgen.catalog import Catalog
    from synthgen.privacy import budget

    key = _key(source)
    gone = budget.unbind(Catalog.from_env(), key, user=user)
    out.print(f"source {key}: {len(gone)} data binding(s) removed", highlight=False)
