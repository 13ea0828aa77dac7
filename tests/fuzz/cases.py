"""Seeded generator of malformed specs, sources and policy files (every case must be refused).

Each case is a command line for ``synthgen`` plus the files it needs. The generator mutates the
seed corpus in ``corpus/`` with mutations that are invalid by construction (an unknown key, a
value of the wrong type or out of range, broken YAML, an alias bomb, a malformed source file,
...), so a case that exits 0 is a bug, not bad luck. Same seed, same cases.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclass
class Case:
    id: str
    #: Arguments after ``synthgen``; ``{dir}`` is replaced by the case's folder.
    args: list[str]
    #: Files to write into the case's folder: name -> bytes.
    files: dict[str, bytes] = field(default_factory=dict)
    #: Extra environment variables for this case.
    env: dict[str, str] = field(default_factory=dict)


def _seed_spec() -> dict[str, Any]:
    return yaml.safe_load((CORPUS / "spec.yaml").read_text())


def _seed_policy() -> dict[str, Any]:
    return yaml.safe_load((CORPUS / "policy.yaml").read_text())


def _dump(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False).encode()


# -- values that are wrong for every field of a given kind -----------------------------

_BAD_NUMBERS = [-1, 0, -1e-9, 1e300, -1e300, float("inf"), float("-inf"), float("nan"), "lots", [], {}, True]
_BAD_INTS = [-5, 0, 10**12, 1.5, "ten", [1], {"a": 1}, float("inf")]
_BAD_STRINGS = [["a", "b"], {"k": "v"}, 12, None]
_SPEC_NUMERIC = {
    ("privacy", "epsilon"): [-1, 0, 1e300, 1e-300, float("inf"), float("nan"), "lots", [], {}],
    ("privacy", "delta"): [0, -1, 0.5, 1, 2, float("nan"), "x"],
    ("privacy", "budget_cap"): [0, -3, float("inf"), "x", 1e300],
    ("model", "epochs"): _BAD_INTS,
    ("model", "batch_size"): [-5, 0, 1, 10**12, 2.5, "x"],
    ("model", "max_grad_norm"): [0, -1, float("inf"), float("nan"), 1e300, "x"],
    ("model", "learning_rate"): [0, -1, float("inf"), 1e9],
    ("output", "rows"): [0, -1, 10**12, 2.5, "many"],
}


def _spec_cases(rng: random.Random, n: int) -> list[Case]:
    out: list[Case] = []
    csv = (CORPUS / "visits.csv").read_bytes()
    mutations = [
        _unknown_key,
        _bad_number,
        _bad_bounds,
        _bad_name,
        _bad_type,
        _missing_required,
        _broken_yaml,
        _not_a_mapping,
        _alias_bomb,
        _deep_nesting,
        _secret_path,
        _bad_source,
        _bad_override,
        _not_utf8,
    ]
    for i in range(n):
        mutate = mutations[i % len(mutations)]
        spec, set_args, env = mutate(rng, _seed_spec())
        raw = spec if isinstance(spec, bytes) else _dump(spec)
        cmd = rng.choice(["validate", "validate", "ingest", "train"])
        args = ["spec", "validate", "{dir}/spec.yaml"] if cmd == "validate" else [cmd, "{dir}/spec.yaml"]
        out.append(
            Case(
                f"spec-{i:03d}-{mutate.__name__[1:]}",
                args + set_args,
                {"spec.yaml": raw, "visits.csv": csv},
                env,
            )
        )
    return out


def _unknown_key(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    section = rng.choice(["", "source", "privacy", "model", "output", "columns.age"])
    key = rng.choice(["epochz", "epsilom", "passwd", "x" * rng.randint(1, 40), "__class__"])
    node = s
    for part in filter(None, section.split(".")):
        node = node[part]
    node[key] = rng.choice([1, "v", [1, 2]])
    return s, [], {}


def _bad_number(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    (section, key), values = rng.choice(list(_SPEC_NUMERIC.items()))
    s.setdefault(section, {})[key] = rng.choice(values)
    return s, [], {}


def _bad_bounds(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    s["columns"]["age"]["bounds"] = rng.choice(
        [[5, 1], [1, 1], [0, float("inf")], [float("nan"), 1], [-1e300, 1e300], [1], [1, 2, 3], "0..120"]
    )
    return s, [], {}


def _bad_name(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    bad = rng.choice(["../../evil", "/etc/passwd", "a/b", "", " lead", "x" * 300, "na\nme", "-dash"])
    if rng.random() < 0.5:
        s["name"] = bad
    else:
        s["output"]["name"] = bad
    return s, [], {}


def _bad_type(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    choice = rng.randrange(6)
    if choice == 0:
        s["source"]["kind"] = rng.choice(["xls", "CSV", "", 3])
    elif choice == 1:
        s["model"]["kind"] = rng.choice(["gan", "dp_tvae2", 7])
    elif choice == 2:
        s["columns"]["job"]["categories"] = rng.choice([[], "clerk", {"a": 1}])
    elif choice == 3:
        s["columns"]["age"]["type"] = rng.choice(["number", "int", 1])
    elif choice == 4:
        s["output"]["access"]["classification"] = rng.choice(["public", "secret", 0])
    else:
        s["source"]["separator"] = rng.choice([";;", "", "\n", '"', "tab", "é"])
    return s, [], {}


def _missing_required(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    choice = rng.randrange(3)
    if choice == 0:
        del s["name"]
    elif choice == 1:
        del s["source"]
    else:
        del s["source"]["path"]
    return s, [], {}


def _broken_yaml(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    lines = _dump(s).decode().splitlines()
    at = rng.randrange(1, len(lines))
    junk = rng.choice(["  - [unclosed", "key: {a: 1", ": : :", "\tbad: tab", "name: [a, b]]", "@reserved"])
    lines.insert(at, junk)
    return "\n".join(lines).encode(), [], {}


def _not_a_mapping(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    return rng.choice([b"- a\n- b\n", b"just a string\n", b"42\n", b"", b"null\n", b"[]\n"]), [], {}


def _alias_bomb(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    levels, fanout = rng.choice([(9, 9), (6, 10), (5, 8), (4, 15), (12, 5)])
    lines = ["name: visits", "source: {kind: csv, path: visits.csv}"]
    lines.append(f"a0: &a0 [{', '.join(['lol'] * fanout)}]")
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    lines.append(f"model: {{epochs: *a{levels - 1}}}")
    return ("\n".join(lines) + "\n").encode(), [], {}


def _deep_nesting(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    depth = rng.randint(60, 5000)
    open_, close = rng.choice([("[", "]"), ("{a: ", "}")])
    head = "name: visits\nsource: {kind: csv, path: visits.csv}\n"
    return (
        f"{head}x: {open_ * depth}1{close * depth}\n".encode(),
        [],
        {},
    )


def _secret_path(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    var = rng.choice(["SYNTHGEN_KEK_ANALYST", "DB_PASSWORD", "API_TOKEN", "MY_SECRET", "HOME", "USER"])
    s["source"]["path"] = f"/nonexistent/${{{var}}}/visits.csv"
    if rng.random() < 0.3:
        s["source"]["path_vars"] = [var] if var.isupper() and var not in ("HOME", "USER") else ["BAD-NAME"]
    return s, [], {var: "fuzz-secret-value-0123456789"}


def _bad_source(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    choice = rng.randrange(4)
    if choice == 0:
        s["source"] = {"kind": "sql", "url": "postgresql://u:hunter2@db/x", "table": "t"}
    elif choice == 1:
        s["source"] = {"kind": "sql", "url_env": "WAREHOUSE_URL", "table": "t", "query": "select 1"}
    elif choice == 2:
        s["source"] = {"kind": "sql", "table": "t"}
    else:
        s["source"] = {"kind": rng.choice(["parquet", "jsonl"])}
    return s, [], {}


def _bad_override(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    item = rng.choice(
        [
            "model.epochs",
            "=3",
            "model.epochs=lots",
            "privacy.epsilon=-1",
            "name.x=1",
            "model.nope=1",
            "privacy.epsilon=.inf",
            "output.rows=0",
            "x" * 500 + "=1",
        ]
    )
    return s, ["--set", item], {}


def _not_utf8(rng: random.Random, s: dict[str, Any]) -> tuple[Any, list[str], dict[str, str]]:
    return _dump(s) + bytes([0xFF, 0xFE, 0x80]) + rng.randbytes(16), [], {}


# -- sources -------------------------------------------------------------------------

_GOOD_HEADER = b"age,job,email\n"


def _source_cases(rng: random.Random, n: int) -> list[Case]:
    out: list[Case] = []
    for i in range(n):
        choice = i % 8
        kind, name, data = "csv", "data.csv", b""
        extra: dict[str, Any] = {}
        if choice == 0:
            data = b""  # empty
        elif choice == 1:
            rows = [f"{rng.randint(0, 99)},clerk,a@x.org" for _ in range(rng.randint(1, 50))]
            at = rng.randrange(len(rows))
            rows[at] += ",extra" * rng.randint(1, 3)  # a ragged line
            data = _GOOD_HEADER + "\n".join(rows).encode() + b"\n"
        elif choice == 2:
            data = _GOOD_HEADER + b"34,cl\xffrk,a@x.org\n" + rng.randbytes(8).replace(b"\n", b"") + b"\n"
            data = data.replace(b"\xff", bytes([0xFF, 0xC3]))
        elif choice == 3:
            kind, name, data = "parquet", "data.parquet", b"PAR1" + rng.randbytes(rng.randint(0, 200))
        elif choice == 4:
            kind, name = "jsonl", "data.jsonl"
            data = b'{"text": "a"}\n{"text": broken\n' + rng.randbytes(4).replace(b"\n", b"") + b"\n"
        elif choice == 5:
            kind, name, data = "jsonl", "data.jsonl", b'{"body": "no text field"}\n{"body": "x"}\n'
            extra = {"text_field": "text"}
        elif choice == 6:
            name = "missing.csv"  # never written
        else:
            name = "adir"  # a folder, not a file
        spec = {"name": "src", "source": {"kind": kind, "path": name, **extra}}
        files = {"spec.yaml": _dump(spec)}
        if choice == 7:
            files["adir/keep"] = b""
        elif choice != 6:
            files[name] = data
        out.append(Case(f"source-{i:03d}-{kind}-{choice}", ["ingest", "{dir}/spec.yaml"], files))
    return out


# -- policies --------------------------------------------------------------------------


def _policy_cases(rng: random.Random, n: int) -> list[Case]:
    out: list[Case] = []
    for i in range(n):
        p = _seed_policy()
        choice = i % 11
        raw: bytes | None = None
        if choice == 0:
            p["rules"][0]["effect"] = rng.choice(["maybe", "ALLOW", "", 1])
        elif choice == 1:
            p["rules"][0]["actions"] = [rng.choice(["raed", "write", "delete", "*"])]
        elif choice == 2:
            p["users"]["mallory"] = [rng.choice(["root", "admin", "ghost"])]
        elif choice == 3:
            p["rules"].append(copy.deepcopy(p["rules"][0]))  # duplicate rule id
        elif choice == 4:
            p["version"] = rng.choice([2, 0, "one", None])
        elif choice == 5:
            p[rng.choice(["rulez", "extra", "groups"])] = []
        elif choice == 6:
            p["rules"][1]["roles"] = ["undefined-role"]
        elif choice == 7:
            raw = rng.choice([b"- not\n- a mapping\n", b"rules: [unclosed\n", b"\xff\xfe garbage", b"42\n"])
        elif choice == 8:
            fan = rng.choice([9, 12])
            lines = ["version: 1", f"a0: &a0 [{', '.join(['x'] * fan)}]"]
            lines += [f"a{k}: &a{k} [{', '.join([f'*a{k - 1}'] * fan)}]" for k in range(1, 8)]
            raw = ("\n".join(lines) + "\nroles: *a7\n").encode()
        elif choice == 9:
            depth = rng.randint(60, 3000)
            raw = ("version: 1\nroles: " + "{a: " * depth + "x" + "}" * depth + "\n").encode()
        else:
            p["rules"][0]["conditions"] = {rng.choice(["max_epsilon", "dp"]): rng.choice(["lots", [1], -1])}
        data = raw if raw is not None else _dump(p)
        if rng.random() < 0.5:
            args = ["policy", "validate", "{dir}/policy.yaml"]
            env: dict[str, str] = {}
        else:
            args = ["policy", "check", "-u", "bob", "-a", "read", "-d", "anything"]
            env = {"SYNTHGEN_POLICY_DIR": "{dir}/policy.yaml"}
        out.append(Case(f"policy-{i:03d}-{choice}", args, {"policy.yaml": data}, env))
    return out


def _known_cases() -> list[Case]:
    """The red team's inputs, kept verbatim in ``corpus/known``."""
    return [
        Case(
            f"known-{p.stem}",
            ["spec", "validate", "{dir}/spec.yaml"],
            {"spec.yaml": p.read_bytes()},
            {"SYNTHGEN_KEK_ANALYST": "fuzz-secret-value-0123456789"},
        )
        for p in sorted((CORPUS / "known").glob("*.yaml"))
    ]


def generate(seed: int, *, specs: int = 120, sources: int = 48, policies: int = 66) -> list[Case]:
    """All cases for ``seed``: the known inputs, then mutated specs, sources and policies."""
    rng = random.Random(seed)
    return [
        *_known_cases(),
        *_spec_cases(rng, specs),
        *_source_cases(rng, sources),
        *_policy_cases(rng, policies),
    ]
