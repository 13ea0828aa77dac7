"""The privacy budget (P6, P11): plan, reserve, settle and charge a run's (epsilon, delta).

This module is the only code that writes the ledger. The protocol of one run:

1. :func:`plan` says what the run may spend at most: the spec's epsilon, and its delta or
   :data:`RUN_DELTA_CEILING` when the spec leaves delta to the ``1/(10 n)`` rule (the rule
   needs a DP count that only exists later, so the run is held to that public ceiling).
2. :func:`reserve`, *before any DP mechanism reads data*, takes the source's lock, reads its
   cap (creating it from the policy's default on the first run), and adds an ``open``
   reservation if settled + open + planned stays within the cap, for epsilon and delta.
   Otherwise it refuses and nothing is charged. The lock is ``pg_advisory_xact_lock`` on
   PostgreSQL and ``BEGIN IMMEDIATE`` on SQLite, so two concurrent runs cannot both pass.
3. :func:`settle` appends the run's ledger entries (one per DP mechanism) and closes the
   reservation in one transaction, together with whatever catalog rows the caller commits
   with it (the model). A failed run settles to an upper bound of what it released.

An open reservation counts as spent. A run that is killed never settles, so it stays
charged at its planned amount, an upper bound of anything it could have released; it is
never released silently. Epsilons and deltas add up by basic sequential composition,
valid (if loose) across runs.

The cap belongs to the source (:func:`set_cap`, the policy's ``admin`` action). A spec's
``privacy.budget_cap`` may only lower it for that spec's runs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from synthgen.catalog import BudgetCap, BudgetEntry, BudgetReservation, BudgetSourceClaim, Catalog
from synthgen.errors import BudgetError, SpecError
from synthgen.privacy.accountant import planned_epsilon
from synthgen.privacy.settings import PrivacySettings

#: Slack for floating-point sums when comparing against the cap.
_TOL = 1e-9
#: The most delta one run may spend when the spec leaves delta to the ``1/(10 n)`` rule:
#: the run uses ``min(1/(10 n), RUN_DELTA_CEILING)``, so its reservation is known up front.
RUN_DELTA_CEILING = 1e-4
#: The cap of a source's first run when no policy is given (the policies' ``budget:`` default).
DEFAULT_EPSILON_CAP = 10.0
DEFAULT_DELTA_CAP = 1e-3


@dataclass(frozen=True)
class Standing:
    """Where a source's budget stands: cap, settled spend, and open reservations."""

    source: str
    cap_epsilon: float
    cap_delta: float
    #: False when the source has no cap row yet (no run so far): the cap shown is the default.
    cap_set: bool
    spent_epsilon: float
    spent_delta: float
    reserved_epsilon: float
    reserved_delta: float

    @property
    def charged_epsilon(self) -> float:
        return self.spent_epsilon + self.reserved_epsilon

    @property
    def charged_delta(self) -> float:
        return self.spent_delta + self.reserved_delta

    @property
    def remaining_epsilon(self) -> float:
        return max(self.cap_epsilon - self.charged_epsilon, 0.0)

    @property
    def remaining_delta(self) -> float:
        return max(self.cap_delta - self.charged_delta, 0.0)


@dataclass(frozen=True)
class Reservation:
    """An open hold on a source's budget for one run (see :func:`reserve`)."""

    id: int
    source: str
    run_id: str
    epsilon: float
    delta: float


def plan(privacy: PrivacySettings) -> tuple[float, float]:
    """The (epsilon, delta) one run may spend at most; (0, 0) without DP.

    The models calibrate noise so that they never spend more than the target epsilon; delta
    is the spec's, or :data:`RUN_DELTA_CEILING` when the spec gives none (see :func:`run_privacy`).
    """
    if not privacy.dp:
        return 0.0, 0.0
    eps = planned_epsilon(privacy)
    delta = RUN_DELTA_CEILING if privacy.delta is None else min(float(privacy.delta), 1.0)
    return eps, delta


def run_privacy(privacy: PrivacySettings) -> PrivacySettings:
    """The settings a run trains with: delta held to what :func:`plan` reserved.

    With no spec delta the models still apply ``1/(10 n)`` from a DP count
    (:func:`synthgen.privacy.accountant.resolve_delta` takes the minimum), capped here.
    """
    if not privacy.dp or privacy.delta is not None:
        return privacy
    return privacy.model_copy(update={"delta": RUN_DELTA_CEILING})


# -- reading ------------------------------------------------------------------------------


def _sums(s: Session, source: str) -> tuple[float, float, float, float]:
    """(spent eps, spent delta, reserved eps, reserved delta) in one statement (one snapshot)."""

    def total(col: Any, *where: Any) -> Any:
        return select(func.coalesce(func.sum(col), 0.0)).where(*where).scalar_subquery()

    led = BudgetEntry.source == source
    held = (BudgetReservation.source == source, BudgetReservation.state == "open")
    row = s.execute(
        select(
            total(BudgetEntry.epsilon, led),
            total(BudgetEntry.delta, led),
            total(BudgetReservation.epsilon, *held),
            total(BudgetReservation.delta, *held),
        )
    ).one()
    return float(row[0]), float(row[1]), float(row[2]), float(row[3])


def standing(catalog: Catalog, source: str, *, default_cap: tuple[float, float] | None = None) -> Standing:
    """The source's cap (or the default it would get), settled spend and open reservations."""
    with catalog.session() as s:
        return _standing(s, source, default_cap)


def _standing(s: Session, source: str, default_cap: tuple[float, float] | None) -> Standing:
    cap = s.get(BudgetCap, source)
    if cap is not None:
        cap_eps, cap_delta = cap.epsilon, cap.delta
    else:
        cap_eps, cap_delta = default_cap or (DEFAULT_EPSILON_CAP, DEFAULT_DELTA_CAP)
    spent_e, spent_d, res_e, res_d = _sums(s, source)
    return Standing(source, cap_eps, cap_delta, cap is not None, spent_e, spent_d, res_e, res_d)


def open_reservations(catalog: Catalog, source: str | None = None) -> list[BudgetReservation]:
    with catalog.session() as s:
        q = select(BudgetReservation).where(BudgetReservation.state == "open")
        if source is not None:
            q = q.where(BudgetReservation.source == source)
        return list(s.scalars(q.order_by(BudgetReservation.id)))


def policy_default_cap() -> tuple[float, float]:
    """The loaded policy's ``budget:`` default (the cap a source gets on its first run)."""
    from synthgen.policy import Policy

    b = Policy.load().budget
    return float(b.epsilon_cap), float(b.delta_cap)


# -- the per-source lock ---------------------------------------------------------------------


@contextmanager
def _locked(catalog: Catalog, source: str, first_cap: tuple[float, float] | None = None) -> Iterator[Session]:
    """One transaction holding ``source``'s budget lock; committed on success, rolled back on error.

    PostgreSQL: a transaction-scoped advisory lock keyed by the source (held until commit), on a
    connection forced to READ COMMITTED: under the server's or role's REPEATABLE READ default the
    transaction's snapshot would be taken before the lock wait ends, and the sums would miss the
    reservation of the run that held it (review F5). SQLite: ``BEGIN IMMEDIATE`` takes the
    database's write lock before anything is read. Any other database: the cap row is locked
    ``FOR UPDATE``; on a source's first run (``first_cap``) it is created first, in its own
    transaction, so there is a row to lock.
    """
    with catalog.engine.connect() as conn:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect == "postgresql":
            conn.execution_options(isolation_level="READ COMMITTED")
            key = int.from_bytes(hashlib.sha256(b"synthgen-budget:" + source.encode()).digest()[:8], "big")
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key - (1 << 63)})
        elif first_cap is not None:
            _ensure_cap_row(catalog, source, first_cap)
        session = Session(bind=conn, expire_on_commit=False)
        try:
            if dialect not in ("sqlite", "postgresql"):  # any other database: lock the cap row
                session.execute(select(BudgetCap).where(BudgetCap.source == source).with_for_update())
            yield session
            session.flush()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            session.close()


def _ensure_cap_row(catalog: Catalog, source: str, cap: tuple[float, float]) -> None:
    """Create ``source``'s cap row from the default if it has none (a concurrent creator wins)."""
    try:
        with catalog.session() as s:
            if s.get(BudgetCap, source) is None:
                s.add(BudgetCap(source=source, epsilon=cap[0], delta=cap[1], set_by="default"))
    except IntegrityError:
        pass


# -- reserve / settle -----------------------------------------------------------------------


def reserve(
    catalog: Catalog,
    *,
    source: str,
    run_id: str,
    privacy: PrivacySettings,
    default_cap: tuple[float, float] | None = None,
    detail: Mapping[str, Any] | None = None,
    location: Sequence[str] = (),
) -> Reservation | None:
    """Hold the run's planned (epsilon, delta) against ``source``'s cap, or refuse. None without DP.

    Call before any DP mechanism reads data. Raises :class:`SpecError` (exit 2) when the spec's
    ``budget_cap`` is above the source's cap, :class:`BudgetError` (exit 1) when the source has
    too little left; either way nothing is reserved. ``default_cap`` is the cap a source gets on
    its first run (default: the policy's, see :func:`policy_default_cap`). ``location`` are the
    data's canonical identities (:func:`synthgen.source_identity.claims`): the first reservation
    binds them to ``source``; a key bound elsewhere, or data bound to another key, is a
    :class:`SpecError` naming the existing key (see :func:`_bind`).
    """
    eps, delta = plan(privacy)
    if not privacy.dp:
        return None
    if not (math.isfinite(eps) and eps > 0):
        raise SpecError(f"privacy.epsilon must be a finite number > 0, got {eps}")
    default = default_cap or policy_default_cap()
    try:
        return _reserve(catalog, source, run_id, privacy, default, detail, location, eps, delta)
    except IntegrityError:  # another key bound the same data at the same moment
        owner = _owner(catalog, location)
        raise SpecError(_bound_elsewhere(source, owner or "another source")) from None


def _reserve(
    catalog: Catalog,
    source: str,
    run_id: str,
    privacy: PrivacySettings,
    default: tuple[float, float],
    detail: Mapping[str, Any] | None,
    location: Sequence[str],
    eps: float,
    delta: float,
) -> Reservation:
    with _locked(catalog, source, default) as s:
        _bind(s, source, location)
        now = _standing(s, source, default)
        if not now.cap_set:  # every source is capped from its first run
            s.add(BudgetCap(source=source, epsilon=now.cap_epsilon, delta=now.cap_delta, set_by="default"))
        cap_eps = now.cap_epsilon
        if privacy.budget_cap is not None:
            if privacy.budget_cap > now.cap_epsilon + _TOL:
                raise SpecError(
                    f"privacy.budget_cap {privacy.budget_cap:g} is above the cap of source {source} "
                    f"({now.cap_epsilon:g}); a spec may only lower its source's cap"
                )
            cap_eps = float(privacy.budget_cap)
        why = refusal(now, cap_eps, eps, delta)
        if why is not None:
            raise BudgetError(why)
        row = BudgetReservation(
            source=source, run_id=run_id, epsilon=eps, delta=delta, state="open", detail=dict(detail or {})
        )
        s.add(row)
        s.flush()
        return Reservation(row.id, source, run_id, eps, delta)


def _bound_elsewhere(source: str, owner: str) -> str:
    use = f"source.id {owner.removeprefix('id:')!r}" if owner.startswith("id:") else "no source.id"
    return (
        f"source {source} names the same data as registered source {owner}; use {use}, "
        "or ask an admin (`synthgen budget unbind`)"
    )


def _owner(catalog: Catalog, location: Sequence[str]) -> str | None:
    with catalog.session() as s:
        return s.scalar(select(BudgetSourceClaim.source).where(BudgetSourceClaim.claim.in_(list(location))))


def _bind(s: Session, source: str, location: Sequence[str]) -> None:
    """Bind ``location`` to ``source`` on its first reservation; refuse a key or data bound elsewhere.

    A source that matches one of its bound identities keeps its key and records the others it
    now has (a hardlink's path, a rewritten file's new inode; a path's old inode is dropped, as
    the number may be reused by an unrelated file).
    """
    if not location:
        return
    claimed = dict(
        s.execute(
            select(BudgetSourceClaim.claim, BudgetSourceClaim.source).where(
                BudgetSourceClaim.claim.in_(list(location))
            )
        ).all()
    )
    others = sorted({owner for owner in claimed.values() if owner != source})
    if others:
        raise SpecError(_bound_elsewhere(source, others[0]))
    mine = list(s.scalars(select(BudgetSourceClaim.claim).where(BudgetSourceClaim.source == source)))
    if mine and not claimed:
        raise SpecError(
            f"source {source} is registered for other data than this spec names; point the spec at that "
            "data, choose another source.id, or ask an admin (`synthgen budget unbind`)"
        )
    if any(c.startswith("path:") for c in claimed):  # the bound path now holds this file
        stale = [c for c in mine if c.startswith("inode:") and c not in location]
        if stale:
            s.execute(delete(BudgetSourceClaim).where(BudgetSourceClaim.claim.in_(stale)))
    for c in location:
        if c not in claimed:
            s.add(BudgetSourceClaim(claim=c, source=source, bound_by="first reservation"))
    s.flush()


def refusal(now: Standing, cap_eps: float, eps: float, delta: float) -> str | None:
    """Why a run planning ``(eps, delta)`` does not fit ``now`` under ``cap_eps``; None when it fits.

    The one wording of a budget refusal: the reservation and the run's pre-flight both use it.
    """
    over_eps = now.charged_epsilon + eps > cap_eps + _TOL
    if not over_eps and now.charged_delta + delta <= now.cap_delta * (1 + 1e-9):
        return None
    if over_eps:
        what = (
            f"spent epsilon {now.spent_epsilon:.4g} + reserved {now.reserved_epsilon:.4g} + this run "
            f"{eps:.4g} > cap {cap_eps:.4g}"
        )
        fix = "lower privacy.epsilon"
    else:
        what = (
            f"spent delta {now.spent_delta:.3g} + reserved {now.reserved_delta:.3g} + this run "
            f"{delta:.3g} > delta cap {now.cap_delta:.3g}"
        )
        fix = "lower privacy.delta"
    return (
        f"privacy budget exhausted for source {now.source}: {what}; nothing was charged. {fix}, "
        "wait for a running run to settle, or ask an admin (`synthgen budget set-cap`)"
    )


def _entries(
    reservation: Reservation,
    mechanisms: Iterable[Mapping[str, Any]],
    accountant: str,
    extra: Mapping[str, Any],
) -> list[BudgetEntry]:
    out = []
    for m in mechanisms:
        detail = {
            k: v for k, v in m.items() if k not in {"step", "mechanism", "epsilon", "delta", "accountant"}
        }
        out.append(
            BudgetEntry(
                source=reservation.source,
                run_id=reservation.run_id,
                step=str(m["step"]),
                mechanism=str(m["mechanism"]),
                epsilon=float(m["epsilon"]),
                delta=float(m.get("delta") or 0.0),
                accountant=str(m.get("accountant") or accountant),
                detail=detail | dict(extra),
            )
        )
    return out


def settle(
    catalog: Catalog,
    reservation: Reservation | None,
    *,
    mechanisms: Iterable[Mapping[str, Any]] = (),
    accountant: str = "basic",
    detail: Mapping[str, Any] | None = None,
    rows: Sequence[Any] = (),
) -> list[BudgetEntry]:
    """Charge what the run actually spent and close its reservation, in one transaction.

    ``mechanisms`` are ``{step, mechanism, epsilon, delta, ...}`` (one ledger entry each);
    ``rows`` are catalog rows that must commit with the charge (added and flushed in order),
    so a crash leaves either both or neither. Without a reservation (a non-DP run) only
    ``rows`` are written. A charge above the reservation is recorded as spent (the ledger
    never under-states what ran) but its ``rows`` are not written: what overspent is never
    catalogued, and :class:`BudgetError` says so.
    """
    if reservation is None:
        with catalog.session() as s:
            for r in rows:
                s.add(r)
                s.flush()
        return []
    entries = _entries(reservation, mechanisms, accountant, detail or {})
    eps, delta = sum(e.epsilon for e in entries), sum(e.delta for e in entries)
    over = eps > reservation.epsilon * (1 + _TOL) + _TOL or delta > reservation.delta * (1 + _TOL) + _TOL
    with _locked(catalog, reservation.source) as s:
        for r in () if over else rows:
            s.add(r)
            s.flush()
        closed = s.execute(
            update(BudgetReservation)
            .where(BudgetReservation.id == reservation.id, BudgetReservation.state == "open")
            .values(state="settled", settled_at=datetime.now(timezone.utc))
        )
        if closed.rowcount != 1:  # type: ignore[attr-defined]
            raise BudgetError(f"reservation {reservation.id} of run {reservation.run_id} is already settled")
        s.add_all(entries)
    if over:
        raise BudgetError(
            f"run {reservation.run_id} spent epsilon={eps:.6g}, delta={delta:.3g}, above its reservation "
            f"(epsilon={reservation.epsilon:.6g}, delta={reservation.delta:.3g}): the spend is charged to "
            f"source {reservation.source} and nothing from the run is catalogued"
        )
    return entries


def settle_failed(
    catalog: Catalog, reservation: Reservation | None, *, epsilon: float, delta: float, error: BaseException
) -> list[BudgetEntry]:
    """Settle a DP run that failed: charge an upper bound of what it released (nothing if nothing ran).

    A failure after a DP mechanism read the data may depend on its result (a DP row count below
    the batch size), so the run released something and pays ``(epsilon, delta)``, itemised as one
    ``failed_run`` entry; the mechanisms are not. The error's type is kept, never its message
    (it may quote data).
    """
    mechanisms = []
    if epsilon > 0:
        mechanisms.append(
            {
                "step": "failed_run",
                "mechanism": "upper bound of a failed DP run",
                "epsilon": epsilon,
                "delta": delta,
                "error": type(error).__name__,
            }
        )
    return settle(catalog, reservation, mechanisms=mechanisms)


def charge_killed(catalog: Catalog, reservation_id: int, *, reason: str) -> list[BudgetEntry]:
    """Turn the open reservation of a run that died (killed, crashed) into a ledger entry.

    It charges exactly the reserved amount, the upper bound the run was held to; the
    source's total does not change, the ledger just says why. Used by the orphan sweep.
    """
    with catalog.session() as s:
        row = s.get(BudgetReservation, reservation_id)
        if row is None or row.state != "open":
            return []
        res = Reservation(row.id, row.source, row.run_id, row.epsilon, row.delta)
    entry = {
        "step": "killed_run",
        "mechanism": "reservation of a run that never settled",
        "epsilon": res.epsilon,
        "delta": res.delta,
        "reason": reason,
    }
    try:
        return settle(catalog, res, mechanisms=[entry])
    except BudgetError:  # settled meanwhile by its own run
        return []


# -- the source's cap -------------------------------------------------------------------------


def cap_resource(source: str) -> Any:
    """The policy's view of a source's budget: the ``admin`` action on it changes the cap."""
    from synthgen.policy import Resource

    return Resource(zone="real", name=source, classification="restricted", kind="budget")


def set_cap(
    catalog: Catalog,
    source: str,
    *,
    epsilon: float,
    delta: float | None,
    user: str,
    policy: Any = None,
) -> tuple[Standing, Standing]:
    """Set ``source``'s cap (epsilon, and delta when given) as ``user``. Returns (before, after).

    Needs the policy's ``admin`` action on the source (:func:`cap_resource`); the decision, allow
    or deny, and the change are audited. A cap below what is already charged is allowed: it
    refuses every further run. Raises :class:`AccessDenied` (exit 3) or :class:`SpecError` (exit 2).
    """
    from synthgen.policy import AuditLog, Policy

    if not (math.isfinite(epsilon) and 0 < epsilon <= 1e6):
        raise SpecError(f"the epsilon cap must be a number in (0, 1e6], got {epsilon:g}")
    if delta is not None and not (math.isfinite(delta) and 0 < delta < 1):
        raise SpecError(f"the delta cap must be in (0, 1), got {delta:g}")
    policy = policy or Policy.load()
    audit = AuditLog(catalog)
    label = f"budget:{source}"
    _require_admin(audit, policy, user, source, "budget.set-cap", "change the budget cap of")
    default = (float(policy.budget.epsilon_cap), float(policy.budget.delta_cap))
    with _locked(catalog, source, default) as s:
        before = _standing(s, source, default)
        row = s.get(BudgetCap, source)
        new_delta = before.cap_delta if delta is None else float(delta)
        if row is None:
            s.add(BudgetCap(source=source, epsilon=float(epsilon), delta=new_delta, set_by=user))
        else:
            row.epsilon, row.delta, row.set_by = float(epsilon), new_delta, user
            row.updated_at = datetime.now(timezone.utc)
        s.flush()
        after = _standing(s, source, default)
    audit.record(
        actor=user,
        action="budget.set-cap",
        resource=label,
        decision="ok",
        detail={
            "epsilon": [before.cap_epsilon, after.cap_epsilon],
            "delta": [before.cap_delta, after.cap_delta],
        },
    )
    return before, after


def _require_admin(audit: Any, policy: Any, user: str, source: str, operation: str, what: str) -> None:
    """The policy's ``admin`` action on ``source``'s budget, audited allow or deny; else AccessDenied."""
    from synthgen.errors import AccessDenied

    decision = policy.check(user, "admin", cap_resource(source))
    audit.record(
        actor=user,
        action="admin",
        resource=f"budget:{source}",
        decision=decision.effect,
        rule=decision.rule,
        detail={"operation": operation, "role": decision.role, "source": decision.source},
    )
    if not decision.allowed:
        raise AccessDenied(
            f"access denied: {user} may not {what} source {source} "
            f"(needs the admin action; rule {decision.rule})"
        )


def unbind(catalog: Catalog, source: str, *, user: str, policy: Any = None) -> list[str]:
    """Remove ``source``'s data bindings as ``user`` (the policy's ``admin`` action; audited).

    Its next reservation binds whatever data its spec then names; another key may then claim
    the data it had. Returns the removed identities (never printed: a path may be private).
    """
    from synthgen.policy import AuditLog, Policy

    policy = policy or Policy.load()
    audit = AuditLog(catalog)
    _require_admin(audit, policy, user, source, "budget.unbind", "unbind")
    with _locked(catalog, source) as s:
        gone = list(s.scalars(select(BudgetSourceClaim.claim).where(BudgetSourceClaim.source == source)))
        s.execute(delete(BudgetSourceClaim).where(BudgetSourceClaim.source == source))
    audit.record(
        actor=user,
        action="budget.unbind",
        resource=f"budget:{source}",
        decision="ok",
        detail={"claims": len(gone)},
    )
    return gone
