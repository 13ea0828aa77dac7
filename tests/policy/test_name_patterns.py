"""Rule name patterns (``resources.name``): ``*`` crosses ``/``, braces, ``?``, classes, whole-name and
case-sensitive matching, and malformed patterns refused when the file loads (``file:line``, exit 2).

casbin's ``globMatch`` let ``*`` stop at ``/``: a deny on ``patients*`` missed ``patients/2024`` and a
budget cap keyed ``csv:/data/x.csv`` matched no ``*`` rule at all (not even the stewards')."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from synthgen.catalog import Catalog, Dataset
from synthgen.errors import PolicyError
from synthgen.policy import Policy, Resource
from synthgen.privacy.budget import cap_resource

REPO = Path(__file__).resolve().parents[2]

BASE = """\
version: 1
roles:
  analyst: {}
  steward: {}
users:
  bob: [analyst]
  alice: [steward]
rules:
"""
ALLOW_ALL = '- {id: allow-all, effect: allow, roles: [analyst], actions: [read], resources: {name: "*"}}\n'


def _write(tmp_path: Path, rules: str, file: str = "p.yaml") -> Path:
    f = tmp_path / file
    f.write_text(BASE + textwrap.indent(textwrap.dedent(rules), "  "))
    return f


def _policy(tmp_path: Path, rules: str) -> Policy:
    return Policy.load([_write(tmp_path, rules)])


def syn(name: str) -> Resource:
    return Resource("synthetic", name, "shareable", "synthetic", True, 1.0)


def _rule_for(p: Policy, name: str) -> tuple[bool, str]:
    d = p.check("bob", "read", syn(name))
    return d.allowed, d.rule


def test_deny_on_a_prefix_denies_a_name_with_a_slash(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        ALLOW_ALL + "- {id: no-patients, effect: deny, roles: [analyst], actions: [read], "
        'resources: {name: "patients*"}}\n',
    )
    assert _rule_for(p, "patients/2024") == (False, "no-patients")
    assert _rule_for(p, "patients") == (False, "no-patients")
    assert _rule_for(p, "census/2024") == (True, "allow-all")


def test_allow_star_reaches_a_slash_name_that_a_specific_deny_still_refuses(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        ALLOW_ALL + "- {id: no-2024, effect: deny, roles: [analyst], actions: [read], "
        'resources: {name: "*/2024"}}\n',
    )
    assert _rule_for(p, "census/2023") == (True, "allow-all")
    assert _rule_for(p, "/leading/slash") == (True, "allow-all")
    assert _rule_for(p, ".hidden") == (True, "allow-all")
    assert _rule_for(p, "census/2024") == (False, "no-2024")
    assert _rule_for(p, "a/b/2024") == (False, "no-2024")  # '*' crosses any number of '/'
    assert _rule_for(p, "census/20245") == (True, "allow-all")  # whole-name match


def test_braces_are_alternatives(tmp_path: Path) -> None:
    p = _policy(
        tmp_path,
        "- {id: two, effect: allow, roles: [analyst], actions: [read],"
        ' resources: {name: "{adult,census}-*"}}\n',
    )
    assert _rule_for(p, "adult-synthetic") == (True, "two")
    assert _rule_for(p, "census-a/b") == (True, "two")
    assert _rule_for(p, "patients-synthetic") == (False, "default-deny")
    assert _rule_for(p, "{adult,census}-x") == (False, "default-deny")


def test_question_mark_is_exactly_one_character_slash_included(tmp_path: Path) -> None:
    p = _policy(
        tmp_path, '- {id: q, effect: allow, roles: [analyst], actions: [read], resources: {name: "v?-x"}}\n'
    )
    assert _rule_for(p, "v1-x") == (True, "q")
    assert _rule_for(p, "v/-x") == (True, "q")
    assert _rule_for(p, "v10-x") == (False, "default-deny")
    assert _rule_for(p, "v-x") == (False, "default-deny")


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("adult", ["adult"], ["Adult", "adult-x", "my-adult", "adul"]),  # case-sensitive, whole name
        ("[a-c]*", ["adult", "census"], ["diabetes", "Adult"]),
        ("[!a]*", ["census"], ["adult"]),
        ("x\\*", ["x*"], ["xy"]),  # an escaped wildcard is the character
        ("!x", ["!x"], ["y"]),  # '!' is not negation
        ("csv:*", ["csv:/data/x.csv"], ["sql:x"]),
    ],
)
def test_classes_escapes_case_and_whole_name(
    tmp_path: Path, pattern: str, matches: list[str], misses: list[str]
) -> None:
    rule = (
        f"- {{id: r, effect: allow, roles: [analyst], actions: [read], resources: {{name: '{pattern}'}}}}\n"
    )
    p = _policy(tmp_path, rule)
    assert [n for n in matches if not _rule_for(p, n)[0]] == []
    assert [n for n in misses if _rule_for(p, n)[0]] == []


def test_default_policy_budget_caps_of_file_and_slash_keyed_sources() -> None:
    # A source key holds '/' (id:hospital-a/visits, csv:/data/x.csv): stewards' '*' rule must reach
    # it, and the consumers' deny must be what refuses bob (not a default deny that an allow could lift).
    p = Policy.load([REPO / "policies"])
    for key in ("id:hospital-a/visits", "csv:/data/visits.csv", "sql:postgresql://db:5432/x#table:t"):
        steward = p.check("alice", "admin", cap_resource(key))
        assert steward.allowed and steward.rule == "steward-all", steward.explain()
        analyst = p.check("bob", "admin", cap_resource(key))
        assert not analyst.allowed and analyst.rule == "deny-real-zone-to-consumers", analyst.explain()


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("adult-[", "'[' at position 7 is never closed"),
        ("adult-]", "closes no '['"),
        ("{adult,census", "'{' is never closed"),
        ("adult}", "closes no '{'"),
        ("{1..3}", "two or more alternatives"),
        ("[z-a]", "runs backwards"),
        ("[]", "empty class"),
        ("adult\\\\", "lone '\\'"),
        ("x{[a,b],c}", "inside [...]"),
        ("", "empty"),
        ("{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}", "more than 1000"),
    ],
)
def test_malformed_name_pattern_is_refused_at_load_with_file_and_line(
    tmp_path: Path, pattern: str, reason: str
) -> None:
    rule = f"""\
    - id: r
      effect: deny
      roles: [analyst]
      actions: [read]
      resources:
        zone: synthetic
        name: "{pattern}"
    """
    with pytest.raises(PolicyError) as err:
        _policy(tmp_path, ALLOW_ALL + textwrap.dedent(rule))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'p.yaml'}:16: rules.1.resources.name: name pattern"), msg
    assert reason in msg and "\n" not in msg


def test_malformed_pattern_in_a_list_is_refused(tmp_path: Path) -> None:
    rule = '- {id: r, effect: allow, roles: [analyst], actions: [read], resources: {name: [ok-*, "bad["]}}\n'
    with pytest.raises(PolicyError, match=r"p\.yaml:9: rules\.0\.resources\.name: name pattern 'bad\['"):
        _policy(tmp_path, rule)


# -- through the installed console script ---------------------------------------------------------


def test_policy_validate_refuses_a_malformed_pattern_with_exit_2(
    tmp_path: Path, synthgen_cli: Callable[..., Any]
) -> None:
    bad = _write(
        tmp_path, '- {id: r, effect: deny, roles: [analyst], actions: [read], resources: {name: "a[b"}}\n'
    )
    r = synthgen_cli(["policy", "validate", str(bad)])
    assert r.code == 2, (r.out, r.err)
    err = r.err.strip()
    assert err.count("\n") == 0 and f"{bad}:9:" in err and "never closed" in err, err
    good = _write(tmp_path, ALLOW_ALL, file="good.yaml")
    r = synthgen_cli(["policy", "validate", str(good)])
    assert r.code == 0 and "1 rules" in r.out, r.err


def test_policy_check_explains_decisions_on_slash_names(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthgen_cli: Callable[..., Any]
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    _write(
        policies,
        ALLOW_ALL + "- {id: no-patients, effect: deny, roles: [analyst], actions: [read], "
        'resources: {name: "patients*"}}\n',
    )
    monkeypatch.setenv("SYNTHGEN_POLICY_DIR", str(policies))
    catalog = Catalog.from_env()
    for i, name in enumerate(["patients/2024", "census/2024"]):
        catalog.add_dataset(
            Dataset(
                id=f"ds-{i}",
                name=name,
                zone="synthetic",
                kind="synthetic",
                format="synthgen-envelope",
                path=f"{name}/ds-{i}.sgenc",
                content_hash="h",
                classification="shareable",
                dp=True,
                extra={"epsilon": 1.0},
                created_by="t",
            )
        )
    catalog.dispose()
    r = synthgen_cli(["policy", "check", "--user", "bob", "--action", "read", "--dataset", "patients/2024"])
    assert r.code == 3, (r.out, r.err)
    assert r.out.startswith("deny: bob read synthetic:patients/2024") and "rule no-patients" in r.out
    assert f"{policies / 'p.yaml'}:10" in r.out
    r = synthgen_cli(["policy", "check", "--user", "bob", "--action", "read", "--dataset", "census/2024"])
    assert r.code == 0 and r.out.startswith("allow:") and "rule allow-all" in r.out, r.out


def test_budget_set_cap_on_a_slash_keyed_source_follows_the_default_policy(
    home: Path, monkeypatch: pytest.MonkeyPatch, synthgen_cli: Callable[..., Any]
) -> None:
    monkeypatch.setenv("SYNTHGEN_POLICY_DIR", str(REPO / "policies"))
    monkeypatch.setenv("SYNTHGEN_PIPELINE_SECRET", "name-pattern-test-secret-0123456789")
    r = synthgen_cli(["budget", "set-cap", "id:hospital-a/visits", "6", "--user", "alice"])
    assert r.code == 0 and "cap epsilon" in r.out and "-> 6" in r.out, r.err
    r = synthgen_cli(["budget", "set-cap", "id:hospital-a/visits", "60", "--user", "bob"])
    assert r.code == 3 and "deny-real-zone-to-consumers" in r.err, r.err
