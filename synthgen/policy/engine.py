"""Policy decisions: YAML policy files compiled into an in-memory pycasbin enforcer.

Each rule expands into casbin policy lines ``(role, zone, name-pattern, classification,
kind, dp, max_epsilon, action, effect, rule-id)``; users become ``g`` (role) links.
Name patterns are matched by ``nameMatch`` (:mod:`synthgen.policy.names`: ``*`` crosses ``/``),
not casbin's path-style ``globMatch``.
The effect is deny-overrides with default deny::

    some(where (p.eft == allow)) && !some(where (p.eft == deny))

and ``enforce_ex`` names the policy line, hence the rule, behind each decision.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import casbin
import yaml
from pydantic import ValidationError

from synthgen import safe_yaml
from synthgen.errors import PolicyError
from synthgen.policy.model import ACTIONS, BudgetDefaults, PolicyFile, Rule
from synthgen.policy.names import compile_name_pattern

_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, zone, name, cls, kind, dp, maxeps, act, eft, rule

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && r.act == p.act \
 && (p.zone == "*" || r.obj.zone == p.zone) \
 && nameMatch(r.obj.name, p.name) \
 && (p.cls == "*" || r.obj.cls == p.cls) \
 && (p.kind == "*" || r.obj.kind == p.kind) \
 && dpMatch(r.obj.dp, p.dp) \
 && epsMatch(r.obj.eps, p.maxeps)
"""

_ROLE = "role:"
DEFAULT_DENY = "default-deny"


def _dp_match(resource_dp: str, rule_dp: str) -> bool:
    # A rule silent about DP never reaches a non-DP output (P7): that takes an explicit `dp: false`.
    if rule_dp == "*":
        return resource_dp != "false"
    return resource_dp == rule_dp


def _eps_match(resource_eps: str, rule_max: str) -> bool:
    if rule_max == "*":
        return True
    return resource_eps != "" and float(resource_eps) <= float(rule_max)


@dataclass(frozen=True)
class Resource:
    """What an action is applied to. ``dp`` None means "not a model output" (real data, reports)."""

    zone: str
    name: str
    classification: str = "restricted"
    kind: str = "synthetic"
    dp: bool | None = None
    epsilon: float | None = None

    def describe(self) -> str:
        dp = "n/a" if self.dp is None else str(self.dp).lower()
        eps = "" if self.epsilon is None else f", epsilon={self.epsilon:g}"
        return f"{self.zone}:{self.name} ({self.kind}, {self.classification}, dp={dp}{eps})"

    def _casbin(self) -> _Obj:
        return _Obj(
            zone=self.zone,
            name=self.name,
            cls=self.classification,
            kind=self.kind,
            dp="na" if self.dp is None else str(self.dp).lower(),
            eps="" if self.epsilon is None else repr(float(self.epsilon)),
        )


@dataclass(frozen=True)
class _Obj:
    zone: str
    name: str
    cls: str
    kind: str
    dp: str
    eps: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    user: str
    action: str
    resource: Resource
    #: The rule id that decided, or ``default-deny`` / ``unknown-user``.
    rule: str
    #: ``file:line`` of that rule (empty for the defaults).
    source: str = ""
    #: The role through which the rule matched, if any.
    role: str | None = None

    @property
    def effect(self) -> str:
        return "allow" if self.allowed else "deny"

    def explain(self) -> str:
        """One line: decision, who, what, and the rule that made it."""
        where = f" ({self.source})" if self.source else ""
        via = f" via role {self.role}" if self.role else ""
        return (
            f"{self.effect}: {self.user} {self.action} {self.resource.describe()}{via}; "
            f"rule {self.rule}{where}"
        )


@dataclass
class Policy:
    """Loaded, validated policy files and the enforcer built from them."""

    files: list[Path]
    roles: dict[str, str] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    #: rule id -> "file:line"
    sources: dict[str, str] = field(default_factory=dict)
    #: The cap a source gets on its first run, from the files' ``budget:`` sections.
    budget: BudgetDefaults = field(default_factory=BudgetDefaults)
    _enforcer: Any = None

    # -- construction ------------------------------------------------------------
    @classmethod
    def load(cls, paths: Sequence[str | os.PathLike[str]] | None = None) -> Policy:
        """Load policy files (a directory means its ``*.yaml`` / ``*.yml``). Default: :func:`policy_paths`.

        Raises :class:`PolicyError` naming the file, line and reason of the first problem.
        """
        files = _expand(paths if paths is not None else policy_paths())
        if not files:
            raise PolicyError("no policy files found; set SYNTHGEN_POLICY_DIR to a folder of *.yaml policies")
        policy = cls(files=files)
        role_lines: dict[str, str] = {}
        pending_users: list[tuple[str, list[str], str]] = []
        pending_rules: list[tuple[Rule, str, int]] = []
        budgets: list[BudgetDefaults] = []
        for f in files:
            parsed, root = _parse_file(f)
            if parsed.budget is not None:
                budgets.append(parsed.budget)
            for name, role_def in parsed.roles.items():
                policy.roles.setdefault(name, role_def.description if role_def else "")
                role_lines.setdefault(name, f"{f}:{_line(root, ('roles', name))}")
            for user, roles in parsed.users.items():
                pending_users.append((str(user), roles, f"{f}:{_line(root, ('users', user))}"))
            for i, rule in enumerate(parsed.rules):
                pending_rules.append((rule, str(f), _line(root, ("rules", i))))
        for user, roles, where in pending_users:
            for r in roles:
                if r not in policy.roles:
                    raise PolicyError(
                        f"{where}: user {user!r} has undefined role {r!r}; define it under roles:"
                    )
            merged = policy.users.setdefault(user, [])
            merged.extend(r for r in roles if r not in merged)
        for rule, fname, line in pending_rules:
            where = f"{fname}:{line}"
            if rule.id in policy.sources:
                raise PolicyError(
                    f"{where}: rule id {rule.id!r} is already used at {policy.sources[rule.id]}"
                )
            for r in rule.roles:
                if r != "*" and r not in policy.roles:
                    raise PolicyError(f"{where}: rule {rule.id!r} names undefined role {r!r}")
            policy.sources[rule.id] = where
            policy.rules.append(rule)
        if budgets:  # several files: the tightest default of each kind
            policy.budget = BudgetDefaults(
                epsilon_cap=min(b.epsilon_cap for b in budgets), delta_cap=min(b.delta_cap for b in budgets)
            )
        policy._build()
        return policy

    def _build(self) -> None:
        model = casbin.model.Model()
        model.load_model_from_text(_MODEL)
        enforcer = casbin.Enforcer(model)
        enforcer.add_function("dpMatch", _dp_match)
        enforcer.add_function("epsMatch", _eps_match)
        # Every pattern was checked when its file loaded; compile each once, here.
        matchers = {p: compile_name_pattern(p) for rule in self.rules for p in rule.resources.name}
        enforcer.add_function("nameMatch", lambda name, pattern: matchers[pattern](name))
        lines: list[list[str]] = []
        for rule in self.rules:
            roles = sorted(self.roles) if "*" in rule.roles else rule.roles
            dp = "*" if rule.conditions.dp is None else str(rule.conditions.dp).lower()
            eps = "*" if rule.conditions.max_epsilon is None else repr(float(rule.conditions.max_epsilon))
            res = rule.resources
            for role, zone, name, cls_, kind, act in product(
                roles, res.zone, res.name, res.classification, res.kind, rule.actions
            ):
                lines.append([_ROLE + role, zone, name, cls_, kind, dp, eps, act, rule.effect, rule.id])
        if lines:
            enforcer.add_policies(lines)
        links = [[user, _ROLE + r] for user, roles in self.users.items() for r in roles]
        if links:
            enforcer.add_grouping_policies(links)
        self._enforcer = enforcer

    # -- queries -----------------------------------------------------------------
    def roles_of(self, user: str) -> list[str]:
        return list(self.users.get(user, []))

    def check(self, user: str, action: str, resource: Resource) -> Decision:
        """May ``user`` do ``action`` on ``resource``? Unknown users and unknown actions are denied."""
        if user not in self.users:
            return Decision(False, user, action, resource, "unknown-user")
        return self._enforce(user, user, action, resource)

    def role_check(self, role: str, action: str, resource: Resource) -> Decision:
        """The same question for a role rather than a user (which roles may read a dataset)."""
        if role not in self.roles:
            return Decision(False, f"role {role}", action, resource, "unknown-role")
        return self._enforce(_ROLE + role, f"role {role}", action, resource)

    def readers(self, resource: Resource, candidates: Iterable[str]) -> list[str]:
        """The subset of ``candidates`` (roles) the policy allows to read ``resource``."""
        return [r for r in candidates if self.role_check(r, "read", resource).allowed]

    def _enforce(self, subject: str, shown: str, action: str, resource: Resource) -> Decision:
        if action not in ACTIONS:
            return Decision(False, shown, action, resource, "unknown-action")
        allowed, explain = self._enforcer.enforce_ex(subject, resource._casbin(), action)
        if not explain:
            return Decision(bool(allowed), shown, action, resource, DEFAULT_DENY)
        rule_id = explain[-1]
        role = explain[0].removeprefix(_ROLE)
        return Decision(bool(allowed), shown, action, resource, rule_id, self.sources.get(rule_id, ""), role)


# -- files -------------------------------------------------------------------------


#: The policies shipped with synthgen (the repository's ``policies/``, beside the package).
SHIPPED_POLICIES = Path(__file__).resolve().parents[2] / "policies"


def policy_paths() -> list[Path]:
    """Where policies come from: ``SYNTHGEN_POLICY_DIR`` (``:``-separated files or folders), else
    the shipped ``policies/``. Never the working directory's ``./policies``: whoever controls the
    directory a command runs in must not be able to grant themselves access."""
    env = os.environ.get("SYNTHGEN_POLICY_DIR")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [SHIPPED_POLICIES] if SHIPPED_POLICIES.is_dir() else []


def policy_origin() -> str:
    """Which policies :func:`policy_paths` picks, in words (for ``synthgen policy check``)."""
    env = os.environ.get("SYNTHGEN_POLICY_DIR")
    if env:
        return f"SYNTHGEN_POLICY_DIR ({env})"
    return f"the shipped policies ({SHIPPED_POLICIES})"


def _expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted([*p.glob("*.yaml"), *p.glob("*.yml")]))
        elif p.is_file():
            out.append(p)
        else:
            raise PolicyError(f"policy path {p} does not exist")
    return out


def _parse_file(path: Path) -> tuple[PolicyFile, yaml.Node | None]:
    try:
        data, root = safe_yaml.load(safe_yaml.read_text(path))
    except UnicodeDecodeError:
        raise PolicyError(f"{path}: not a UTF-8 text file") from None
    except safe_yaml.YamlLimitError as exc:
        raise PolicyError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"{path}{line}: {problem}") from None
    if not isinstance(data, dict):
        raise PolicyError(f"{path}:1: expected a mapping with version, roles, users, rules")
    try:
        return PolicyFile.model_validate(data), root
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        typ = err["type"]
        if typ == "extra_forbidden":
            reason = "unknown key"
        elif typ == "missing":
            reason = "required key is missing"
        else:
            reason = err["msg"].removeprefix("Value error, ")
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        raise PolicyError(f"{path}:{_line(root, loc)}: {dotted}: {reason}") from None


def _line(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """1-based line of the YAML node at ``loc`` (its nearest existing ancestor if absent)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if str(k.value) == str(key)), None)
            key_node = next((k for k, _ in node.value if str(k.value) == str(key)), None)
            if match is None:
                return line
            line = (key_node or match).start_mark.line + 1
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_policy(paths: Sequence[str | os.PathLike[str]] | None = None) -> Policy:
    """Shorthand for :meth:`Policy.load`."""
    return Policy.load(paths)
