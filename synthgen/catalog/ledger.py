"""The privacy budget ledger (P6): per source, append-only, cumulative across runs, capped.

A run declares what it will spend *before* it starts; :func:`check_budget` refuses it if
the source's cumulative epsilon plus the planned epsilon would exceed the cap. After the
run, :func:`charge` appends one entry per DP mechanism, in one transaction. Epsilons add
up by basic sequential composition, which is always valid (if loose) across runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from synthgen.catalog import BudgetEntry, Catalog
from synthgen.errors import BudgetError

#: Slack for floating-point sums when comparing against the cap.
_EPS_TOL = 1e-9


def remaining(catalog: Catalog, source: str, cap: float) -> float:
    spent, _ = catalog.spent(source)
    return max(cap - spent, 0.0)


def check_budget(catalog: Catalog, source: str, planned_epsilon: float, cap: float) -> None:
    """Refuse, before any work, a run that would push ``source`` past its cap."""
    spent, _ = catalog.spent(source)
    if spent + planned_epsilon > cap + _EPS_TOL:
        raise BudgetError(
            f"privacy budget exhausted for source {source}: spent epsilon {spent:.3g} + this run "
            f"{planned_epsilon:.3g} > cap {cap:.3g}; lower privacy.epsilon or raise privacy.budget_cap "
            f"(remaining {max(cap - spent, 0):.3g})"
        )


def charge(
    catalog: Catalog,
    *,
    source: str,
    run_id: str,
    mechanisms: Iterable[Mapping[str, Any]],
    accountant: str,
) -> list[BudgetEntry]:
    """Append one ledger entry per mechanism ``{step, mechanism, epsilon, delta, ...}``."""
    entries = []
    for m in mechanisms:
        detail = {
            k: v for k, v in m.items() if k not in {"step", "mechanism", "epsilon", "delta", "accountant"}
        }
        entries.append(
            BudgetEntry(
                source=source,
                run_id=run_id,
                step=str(m["step"]),
                mechanism=str(m["mechanism"]),
                epsilon=float(m["epsilon"]),
                delta=float(m.get("delta", 0.0) or 0.0),
                accountant=str(m.get("accountant") or accountant),
                detail=detail,
            )
        )
    if entries:
        catalog.charge(entries)
    return entries


def already_charged(catalog: Catalog, source: str, run_id: str) -> bool:
    return any(e.run_id == run_id for e in catalog.ledger(source))
