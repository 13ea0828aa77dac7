"""Policy files: deny wins, default deny, globs, conditions, and broken files rejected with a line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from synthgen.errors import PolicyError
from synthgen.policy import Policy, Resource

REPO = Path(__file__).resolve().parents[2]

BASE = """
version: 1
roles:
  analyst: {}
  steward: {}
users:
  bob: [analyst]
  alice: [steward]
rules:
"""


def _policy(tmp_path: Path, rules: str, base: str = BASE) -> Policy:
    f = tmp_path / "p.yaml"
    f.write_text(textwrap.dedent(base) + textwrap.indent(textwrap.dedent(rules), "  "))
    return Policy.load([f])


def syn(
    name: str = "adult-synthetic",
    cls: str = "shareable",
    dp: bool | None = True,
    eps: float | None = 1.0,
    zone: str = "synthetic",
    kind: str = "synthetic",
) -> Resource:
    return Resource(zone, name, cls, kind, dp, eps)


def test_default_is_deny(tmp_path: Path) -> None:
    p = _policy(tmp_path, "[]")
    d = p.check("bob", "read", syn())
    assert not d.allowed and d.rule == "default-deny"


def test_explicit_deny_beats_allow(tmp_path: Path) -> None:
    rules = """
    - {id: allow-all, effect: allow, roles: [analyst], actions: [read]}
    - {id: no-adult, effect: deny, roles: [analyst], actions: [read], resources: {name: "adult-*"}}
    """
    p = _policy(tmp_path, rules)
    d = p.check("bob", "read", syn("adult-synthetic"))
    assert not d.allowed and d.rule == "no-adult" and d.source.endswith("p.yaml:12")
    assert p.check("bob", "read", syn("census-synthetic")).rule == "allow-all"


def test_glob_resources_match_dataset_names(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        '- {id: g, effect: allow, roles: [analyst], actions: [read], resources: {name: "adult-*-v?"}}',
    )
    assert p.check("bob", "read", syn("adult-synthetic-v1")).allowed
    assert not p.check("bob", "read", syn("adult-synthetic-v10")).allowed
    assert not p.check("bob", "read", syn("census-synthetic-v1")).allowed


def test_zone_and_classification_and_kind_must_all_match(tmp_path: Path) -> None:
    rule = (
        "- {id: r, effect: allow, roles: [analyst], actions: [read], "
        "resources: {zone: synthetic, classification: [shareable, internal], kind: synthetic}}"
    )
    p = _policy(tmp_path, rule)
    assert p.check("bob", "read", syn(cls="internal")).allowed
    assert not p.check("bob", "read", syn(cls="restricted")).allowed
    assert not p.check("bob", "read", syn(zone="real")).allowed
    assert not p.check("bob", "read", syn(kind="report")).allowed
    assert not p.check("bob", "publish", syn()).allowed


def test_non_dp_output_needs_an_explicit_dp_false_rule(tmp_path: Path) -> None:
    p = _policy(tmp_path, "- {id: any, effect: allow, roles: [analyst], actions: [read]}")
    assert p.check("bob", "read", syn(dp=True)).allowed
    assert p.check("bob", "read", syn(dp=None)).allowed
    assert not p.check("bob", "read", syn(dp=False)).allowed
    p2 = _policy(
        tmp_path, "- {id: nondp, effect: allow, roles: [analyst], actions: [read], conditions: {dp: false}}"
    )
    assert p2.check("bob", "read", syn(dp=False)).allowed
    assert not p2.check("bob", "read", syn(dp=True)).allowed


def test_max_epsilon_condition(tmp_path: Path) -> None:
    p = _policy(
        tmp_path, "- {id: e, effect: allow, roles: [analyst], actions: [read], conditions: {max_epsilon: 3}}"
    )
    assert p.check("bob", "read", syn(eps=3.0)).allowed
    assert not p.check("bob", "read", syn(eps=3.5)).allowed
    assert not p.check("bob", "read", syn(eps=None)).allowed  # unknown epsilon never passes a cap


def test_unknown_user_and_unknown_action_are_denied(tmp_path: Path) -> None:
    p = _policy(tmp_path, "- {id: a, effect: allow, roles: ['*'], actions: [read]}")
    assert p.check("mallory", "read", syn()).rule == "unknown-user"
    assert p.check("bob", "delete", syn()).rule == "unknown-action"
    assert p.check("alice", "read", syn()).allowed  # '*' expands to every role


@pytest.mark.parametrize(
    ("rules", "line", "reason"),
    [
        (
            "- {id: a, effect: allow, roles: [analyst], actions: [read]}\n"
            "- {id: b, effect: permit, roles: [analyst], actions: [read]}",
            11,
            "effect",
        ),
        ("- {id: a, effect: allow, roles: [analyst], actions: [delete]}", 10, "actions"),
        ("- {id: a, effect: allow, roles: [nobody], actions: [read]}", 10, "undefined role 'nobody'"),
        (
            "- {id: a, effect: allow, roles: [analyst], actions: [read], resources: {zone: moon}}",
            10,
            "unknown zone",
        ),
        ("- {id: a, effect: allow, roles: [analyst], actions: [read], colour: red}", 10, "unknown key"),
        (
            "- {id: a, effect: allow, roles: [analyst], actions: [read]}\n"
            "- {id: a, effect: deny, roles: [analyst], actions: [read]}",
            11,
            "already used",
        ),
        (
            "- {id: a, effect: allow, roles: [analyst], actions: [read], conditions: {max_epsilon: -1}}",
            10,
            "max_epsilon",
        ),
    ],
)
def test_broken_policy_is_rejected_with_file_line_and_reason(
    tmp_path: Path, rules: str, line: int, reason: str
) -> None:
    with pytest.raises(PolicyError) as err:
        _policy(tmp_path, rules)
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'p.yaml'}:{line}:"), msg
    assert reason in msg and "\n" not in msg


def test_invalid_yaml_syntax_is_rejected_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("version: 1\nroles:\n  analyst: {}\nusers:\n  bob: [analyst\nrules: []\n")
    with pytest.raises(PolicyError, match=r"bad.yaml:6:"):
        Policy.load([f])


def test_user_with_undefined_role_is_rejected(tmp_path: Path) -> None:
    f = tmp_path / "u.yaml"
    f.write_text("version: 1\nroles:\n  analyst: {}\nusers:\n  bob: [analyst]\n  eve: [root]\n")
    with pytest.raises(PolicyError, match=r"u.yaml:6: user 'eve' has undefined role 'root'"):
        Policy.load([f])


def test_policies_in_several_files_are_merged(tmp_path: Path) -> None:
    (tmp_path / "a-roles.yaml").write_text("version: 1\nroles:\n  analyst: {}\nusers:\n  bob: [analyst]\n")
    (tmp_path / "b-rules.yaml").write_text(
        "version: 1\nrules:\n  - {id: r, effect: allow, roles: [analyst], actions: [read]}\n"
    )
    p = Policy.load([tmp_path])
    assert p.check("bob", "read", syn()).allowed and len(p.files) == 2


def test_no_policy_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no policy files"):
        Policy.load([tmp_path])


# -- the shipped defaults --------------------------------------------------------------


@pytest.fixture(scope="module")
def default() -> Policy:
    return Policy.load([REPO / "policies"])


def test_default_policy_roles_and_users(default: Policy) -> None:
    assert {"data-steward", "ml-engineer", "analyst", "auditor"} <= set(default.roles)
    assert default.roles_of("alice") == ["data-steward"] and default.roles_of("dave") == ["auditor"]
    assert default.check("synthgen-pipeline", "publish", syn()).allowed


def test_default_real_zone_readable_only_by_stewards(default: Policy) -> None:
    snap = Resource("real", "adult", "restricted", "snapshot")
    assert default.check("alice", "read", snap).allowed
    for user in ("bob", "carol", "dave", "synthgen-pipeline"):
        assert not default.check(user, "read", snap).allowed, user
    assert default.check("bob", "read", snap).rule == "deny-real-zone-to-consumers"


def test_default_restricted_reports_readable_by_steward_and_auditor_only(default: Policy) -> None:
    report = Resource("real", "adult-report", "restricted", "report")
    assert [
        u
        for u in ("alice", "bob", "carol", "dave", "synthgen-pipeline")
        if default.check(u, "read", report).allowed
    ] == ["alice", "dave"]


def test_default_non_dp_output_is_never_shareable(default: Policy) -> None:
    for user in ("alice", "bob", "carol", "synthgen-pipeline"):
        assert not default.check(user, "publish", syn(dp=False)).allowed
        assert not default.check(user, "read", syn(dp=False)).allowed


def test_default_analyst_reads_shareable_dp_only(default: Policy) -> None:
    assert default.check("bob", "read", syn()).allowed
    assert not default.check("bob", "read", syn(cls="internal")).allowed
    assert default.check("carol", "read", syn(cls="internal")).allowed


@pytest.mark.parametrize(
    "text",
    [
        "budget: {epsilon_cap: true}\n",
        "rules:\n  - {id: r, effect: allow, roles: [analyst], actions: [read],\n"
        "     conditions: {max_epsilon: yes}}\n",
    ],
)
def test_a_boolean_where_the_policy_wants_a_number_is_refused(tmp_path: Path, text: str) -> None:
    # YAML reads true/yes as booleans and pydantic would take them as 1: a cap of 1 nobody wrote.
    base = "version: 1\nroles: {analyst: {}}\nusers: {bob: [analyst]}\n"
    f = tmp_path / "p.yaml"
    f.write_text(base + text)
    with pytest.raises(PolicyError, match="expected a number"):
        Policy.load([f])
