"""Pre-flight of a run, and the plan ``--dry-run`` prints: everything checkable before any row is read.

``run`` (and the DAG's first task) calls :func:`check` before ingest: it reads the spec, the
policy, the key store, the zones' folders, the catalog's ledger and, for a file source, the
file's *header* (column names, for the plan), never a data row. Nothing is written, charged or
audited. The first failing check raises one line naming the fix and who must apply it:

- :class:`~synthgen.errors.SpecError` (exit 2): configuration a user can fix (a missing key
  for an output role, a zone that cannot be written, a missing source file, no role that may
  read the output);
- :class:`~synthgen.errors.AccessDenied` (exit 3): the policy refuses this user the run's
  ``publish``;
- :class:`~synthgen.errors.BudgetError` (exit 1, as the ledger's own refusal at ``train``):
  the source's remaining budget is below the run's planned (epsilon, delta).

:func:`plan` describes the run without checking it (``train --dry-run`` / ``run --dry-run``):
stages, the planned epsilon split, the ledger's standing for the source, what ``model.kind:
auto`` will decide and from what, and each output role with whether its key exists.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthgen.errors import AccessDenied, BudgetError, CryptoError, SourceError, SpecError
from synthgen.schema import ColumnType
from synthgen.spec import PipelineSpec
from synthgen.storage import is_url

#: Stages of ``synthgen run``, in order.
RUN_STAGES = ("ingest", "anonymize", "train", "generate", "evaluate", "publish")
#: Free space below which a zone is refused before the run (the snapshot alone needs the source's size).
MIN_FREE_BYTES = 64 * 1024 * 1024


@dataclass
class RolePlan:
    role: str
    #: The policy lets this role read the output.
    may_read: bool
    #: A key-encryption key exists for the role.
    has_key: bool


@dataclass
class RunPlan:
    """What a run would do, from the spec, the policy, the keys and the ledger only."""

    pipeline: str
    stages: list[str]
    dp: bool
    epsilon: float
    delta: float
    #: Ledger key of the source, and its standing.
    source: str
    cap_epsilon: float
    charged_epsilon: float
    remaining_epsilon: float
    cap_delta: float
    remaining_delta: float
    #: Planned epsilon per part: preprocessing (count, bins, discovery), tabular model, and with a
    #: text column the text row count, text model and text quality gate.
    split: dict[str, float | str]
    #: Columns whose ranges or category lists a DP mechanism will find (they pay a preprocessing share).
    dp_discovery: list[str]
    #: Columns whose types are not declared (inferred from the first rows at ingest).
    undeclared: list[str]
    model: str
    roles: list[RolePlan] = field(default_factory=list)
    columns: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan as the CLI prints it (one fact a line)."""
        out = [f"plan for pipeline {self.pipeline} (dry run: no row read, nothing charged or written)"]
        out.append("stages: " + " -> ".join(self.stages))
        if self.dp:
            out.append(f"privacy: epsilon {self.epsilon:g}, delta {self.delta:.3g} reserved for this run")
            parts = ", ".join(f"{k} {_fmt(v)}" for k, v in self.split.items())
            out.append(f"epsilon split: {parts}")
        else:
            out.append("privacy: dp false (no differential privacy; nothing is charged)")
        out.append(
            f"budget of source {self.source}: charged {self.charged_epsilon:.4g} "
            f"of cap {self.cap_epsilon:.4g}, remaining {self.remaining_epsilon:.4g} "
            f"(delta remaining {self.remaining_delta:.3g})"
        )
        if self.dp:
            after = self.remaining_epsilon - self.epsilon
            out.append(
                f"after this run: {max(after, 0):.4g} remaining"
                if after >= -1e-12
                else f"this run does not fit: {self.epsilon:g} planned, "
                f"{self.remaining_epsilon:.4g} remaining"
            )
        out.append(f"model: {self.model}")
        if self.columns is not None:
            out.append(f"source columns ({len(self.columns)}): {', '.join(self.columns)}")
        if self.dp_discovery:
            out.append("DP discovery (pays part of the preprocessing share): " + ", ".join(self.dp_discovery))
        if self.undeclared:
            out.append(
                "types inferred from the first rows at ingest (not declared): " + ", ".join(self.undeclared)
            )
        for r in self.roles:
            key = "key ok" if r.has_key else "NO KEY (a data steward runs `synthgen keys init`)"
            read = "may read" if r.may_read else "policy refuses read (left out at publish)"
            out.append(f"output role {r.role}: {read}, {key}")
        out.extend(self.notes)
        return out

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _fmt(v: float | str) -> str:
    return f"{v:.4g}" if isinstance(v, float) else v


# -- the parts ---------------------------------------------------------------------------


def header_columns(spec: PipelineSpec) -> list[str] | None:
    """Column names of a file source from its header or metadata alone (no data row); None for SQL.

    Raises :class:`SourceError` when the file is missing or unreadable.
    """
    from synthgen.sources import open_source

    if spec.source.kind == "sql":
        return None
    src = open_source(spec)  # checks existence, kind of file and emptiness (no read)
    path = spec.source_path()
    try:
        if spec.source.kind == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        if spec.source.kind == "csv":
            import csv

            with open(path, "rb") as fh:  # the first line only: no data row is decoded
                line = fh.readline(1 << 20).decode("utf-8-sig")
            first = next(csv.reader([line], delimiter=spec.source.separator), [])
            return [c.strip() for c in first]
        if spec.source.kind == "jsonl":
            return None  # a document source: one text field (source.text_field) per line
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SourceError(f"{src.describe()}: cannot read its header ({type(exc).__name__})") from None
    return None


def _modelled(spec: PipelineSpec) -> dict[str, Any]:
    """Declared columns that reach the model (dropped identifiers and ids left out)."""
    out = {}
    for name, c in spec.columns.items():
        if c.operator == "drop" or c.type == ColumnType.id or c.pii is not None:
            continue
        out[name] = c
    return out


def _split(
    spec: PipelineSpec, columns: list[str] | None
) -> tuple[dict[str, float | str], list[str], list[str]]:
    """Planned epsilon per part, the columns paying DP discovery, the columns with undeclared types."""
    from synthgen.privacy.accountant import preprocessing_share

    p = spec.privacy
    declared = _modelled(spec)
    names = list(columns) if columns is not None else list(spec.columns)
    dropped = {n for n, c in spec.columns.items() if c.operator == "drop" or c.type == ColumnType.id or c.pii}
    modelled = [n for n in names if n not in dropped]
    undeclared = [n for n in modelled if n not in declared or declared[n].type is None]
    discovery = []
    for n in modelled:
        c = declared.get(n)
        if c is None or c.type is None:
            continue
        ranged = c.type in (ColumnType.numeric, ColumnType.datetime) and c.bounds is None
        if ranged or (c.type == ColumnType.categorical and c.categories is None):
            discovery.append(n)
    text_cols = [n for n in modelled if (c := declared.get(n)) is not None and c.type == ColumnType.text]
    text_cols += [n for n in spec.anonymize.text_columns if n not in text_cols]
    tabular = [n for n in modelled if n not in text_cols]
    if not p.dp:
        return {}, discovery, undeclared
    eps = float(p.epsilon)
    text = bool(text_cols and spec.model.text.enabled)
    # As the train stage splits it: the tabular synthesizer gets 1 - text_share of epsilon (its
    # DP preprocessing included); the text share pays the text models' row count, their quality
    # gates (when rows are held out) and the text models themselves.
    tab_eps = eps * (1 - p.text_share) if text else eps
    if p.preprocessing_share is not None or not undeclared:
        share = preprocessing_share(p, dp_columns=len(discovery), columns=len(tabular))
        pre: float | str = tab_eps * share
        train = tab_eps - tab_eps * share
    else:
        lo = preprocessing_share(p, dp_columns=len(discovery), columns=len(tabular))
        hi = preprocessing_share(p, dp_columns=len(discovery) + len(undeclared), columns=len(tabular))
        pre = f"{tab_eps * lo:.4g} to {tab_eps * hi:.4g} (depends on the inferred types)"
        train = tab_eps - tab_eps * hi
    split: dict[str, float | str] = {"preprocessing": pre, "tabular model": train}
    if text:
        from synthgen.models.text.gate import GATE_SHARE
        from synthgen.stages.train import TEXT_COUNT_SHARE

        text_eps = eps * p.text_share
        gate = text_eps * GATE_SHARE if spec.evaluate.holdout > 0 else 0.0
        split["text row count"] = text_eps * TEXT_COUNT_SHARE
        split["text model"] = text_eps - text_eps * TEXT_COUNT_SHARE - gate
        if gate:
            split["text quality gate"] = gate
    if isinstance(pre, str):
        split["tabular model"] = f"at least {_fmt(split['tabular model'])}"
    return split, discovery, undeclared


def _model_line(spec: PipelineSpec) -> str:
    from synthgen.models.auto import TVAE_MIN_ROWS

    kind = spec.model.kind
    if kind != "auto":
        return kind
    return (
        f"auto: chosen at train time from a DP row count (dp_mst below {TVAE_MIN_ROWS:,} rows, "
        "dp_tvae from there up); the count is the preprocessing's first release"
    )


def _resource(spec: PipelineSpec, dp: bool) -> Any:
    """The resource the publish stage checks: every output, DP or not, is published (encrypted)
    into the synthetic zone, so it is always ``synthetic:<name>``, with the run's DP flag; a
    non-DP output (P7) matches only a rule that says ``dp: false``."""
    from synthgen.policy.engine import Resource

    return Resource(
        "synthetic",
        spec.synthetic_name,
        spec.output.access.classification,
        "synthetic",
        dp,
        float(spec.privacy.epsilon) if dp else None,
    )


def _roles(spec: PipelineSpec, policy: Any, provider: Any, dp: bool) -> tuple[list[RolePlan], Any]:
    resource = _resource(spec, dp)
    readers = set(policy.readers(resource, list(dict.fromkeys(spec.output.access.roles))))
    plans = []
    for role in dict.fromkeys(spec.output.access.roles):
        try:
            provider.current_kek_id(role)
            has = True
        except CryptoError:
            has = False
        plans.append(RolePlan(role, role in readers, has))
    return plans, resource


def _stewards(policy: Any, resource_role: str) -> list[str]:
    """Users the policy lets create the key of ``resource_role`` (``admin`` on ``keys:<role>``)."""
    from synthgen.policy.engine import Resource

    res = Resource("keys", resource_role, kind="kek")
    return [u for u in sorted(policy.users) if policy.check(u, "admin", res).allowed]


def _standing(spec: PipelineSpec, catalog: Any) -> Any:
    from synthgen.privacy.budget import policy_default_cap, standing
    from synthgen.source_identity import source_key

    return standing(catalog, source_key(spec), default_cap=policy_default_cap())


def plan(
    spec: PipelineSpec,
    *,
    catalog: Any,
    policy: Any = None,
    provider: Any = None,
    stages: list[str] | None = None,
) -> RunPlan:
    """The dry run's plan (reads the file source's header at most)."""
    from synthgen.crypto.providers import provider_from_env
    from synthgen.policy.engine import Policy
    from synthgen.privacy.budget import plan as budget_plan

    policy = policy or Policy.load()
    provider = provider or provider_from_env()
    columns = header_columns(spec)
    eps, delta = budget_plan(spec.privacy)
    split, discovery, undeclared = _split(spec, columns)
    now = _standing(spec, catalog)
    cap_eps = (
        now.cap_epsilon if spec.privacy.budget_cap is None else min(now.cap_epsilon, spec.privacy.budget_cap)
    )
    roles, _ = _roles(spec, policy, provider, spec.privacy.dp)
    notes = []
    if spec.evaluate.enabled and spec.evaluate.holdout > 0:
        notes.append(
            f"holdout: about {spec.evaluate.holdout:.0%} of real rows held out for evaluation "
            "(never trained on)"
        )
    return RunPlan(
        pipeline=spec.name,
        stages=stages or [s for s in RUN_STAGES if s != "evaluate" or spec.evaluate.enabled],
        dp=spec.privacy.dp,
        epsilon=eps,
        delta=delta,
        source=now.source,
        cap_epsilon=cap_eps,
        charged_epsilon=now.charged_epsilon,
        remaining_epsilon=max(cap_eps - now.charged_epsilon, 0.0),
        cap_delta=now.cap_delta,
        remaining_delta=now.remaining_delta,
        split=split,
        dp_discovery=discovery,
        undeclared=undeclared,
        model=_model_line(spec),
        roles=roles,
        columns=columns,
        notes=notes,
    )


def _writable(root: Path) -> str | None:
    """Why ``root`` cannot take a run's files, or None. Creates nothing."""
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return None
    if free < MIN_FREE_BYTES:
        return f"only {free // (1024 * 1024)} MiB free under {probe}"
    return None


def check(
    spec: PipelineSpec,
    *,
    user: str,
    catalog: Any,
    zones: Any,
    policy: Any = None,
    provider: Any = None,
    publish: bool = True,
) -> RunPlan:
    """Raise on the first thing that would stop the run later; return the plan when all pass.

    ``publish=False`` (``train`` alone) skips the output checks (roles, keys, publish right).
    """
    from synthgen.crypto.providers import provider_from_env
    from synthgen.policy.engine import Policy

    policy = policy or Policy.load()
    provider = provider or provider_from_env()
    # The source: a missing file fails here, before anything is written.
    try:
        header_columns(spec)
    except SourceError as exc:
        raise SpecError(f"pre-flight: {exc}") from None
    for zone in (zones.real, zones.synthetic):
        if is_url(str(zone.root)):
            continue  # an object-store zone: opening it checked credentials, reachability and bucket
        why = _writable(Path(zone.root))
        if why is not None:
            raise SpecError(f"pre-flight: the {zone.name} zone ({zone.root}) cannot be written: {why}")
    result = plan(spec, catalog=catalog, policy=policy, provider=provider)
    if publish:
        _, resource = _roles(spec, policy, provider, spec.privacy.dp)
        decision = policy.check(user, "publish", resource)
        if not decision.allowed:
            hint = (
                "; user not in any policy file (set --user / SYNTHGEN_USER)"
                if decision.rule == "unknown-user"
                else ""
            )
            raise AccessDenied(
                f"pre-flight: {user} may not publish synthetic:{spec.synthetic_name} "
                f"(rule {decision.rule}{hint}); nothing was read or charged"
            )
        readers = [r for r in result.roles if r.may_read]
        if not readers:
            roles = ", ".join(r.role for r in result.roles)
            raise SpecError(
                f"pre-flight: none of the output roles ({roles}) may read {resource.describe()} under the "
                "policy; change output.access.roles or the policy"
            )
        missing = [r.role for r in readers if not r.has_key]
        if missing:
            who = _stewards(policy, missing[0])
            by = f"a data steward ({', '.join(who[:3])})" if who else "a user the policy lets administer keys"
            raise SpecError(
                f"pre-flight: no key-encryption key for output role{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)}; {by} must run `synthgen keys init` first "
                "(nothing was read or charged)"
            )
    if result.dp:
        from synthgen.privacy.budget import refusal

        why = refusal(_standing(spec, catalog), result.cap_epsilon, result.epsilon, result.delta)
        if why is not None:
            raise BudgetError(f"pre-flight: {why}")
    return result
