"""Findings 8 and 9: bounded YAML (aliases, nesting, size), bounded numbers, and everything that can
be checked from the spec refused by ``spec validate`` with one short line, before any DP mechanism."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Cli = Callable[..., Any]
HEAD = "name: visits\nsource: {kind: csv, path: d.csv}\n"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def _alias_bomb(levels: int, fanout: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * fanout)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return HEAD + "\n".join(lines) + f"\nmodel: {{epochs: *a{levels - 1}}}\n"


@pytest.mark.parametrize(
    "text, expect",
    [
        (_alias_bomb(9, 9), "YAML aliases"),  # the red team's 9-level bomb: 81 aliases
        (_alias_bomb(5, 8), "expand to more than"),  # 32 aliases, 8^5 values
        (HEAD + "x: " + "[" * 500 + "]" * 500 + "\n", "nested more than"),  # was a RecursionError
        ("name: x\nsource: &s {kind: csv, path: a.csv, x: [*s]}\n", "refers to its own anchor"),
        (HEAD + "# " + "a" * 300_000 + "\n", "byte limit"),
    ],
    ids=["bomb-aliases", "bomb-expansion", "deep", "recursive", "huge"],
)
def test_yaml_bombs_and_huge_specs_are_refused_in_one_short_line(
    tmp_path: Path, home: Path, synthgen_cli: Cli, text: str, expect: str
) -> None:
    start = time.monotonic()
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, text))], timeout=60)
    assert time.monotonic() - start < 60
    assert r.code == 2 and expect in r.err, r.err[:300]
    assert r.err.strip().count("\n") == 0 and len(r.err) < 400 and "Traceback" not in r.err


def test_a_type_error_quotes_at_most_a_short_piece_of_the_input(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, _alias_bomb(4, 4)))])
    assert r.code == 2 and "model.epochs: expected int" in r.err and len(r.err) < 300


@pytest.mark.parametrize(
    "section, field",
    [
        ("privacy: {epsilon: 1.0e+300}", "privacy.epsilon"),
        ("privacy: {epsilon: 1.0e-300}", "privacy.epsilon"),
        ("privacy: {epsilon: .nan}", "privacy.epsilon"),
        ("privacy: {delta: 0.5}", "privacy.delta"),
        ("privacy: {budget_cap: .inf}", "privacy.budget_cap"),
        ("model: {epochs: 100000000}", "model.epochs"),
        ("model: {batch_size: 1000000000}", "model.batch_size"),
        ("model: {max_grad_norm: .inf}", "model.max_grad_norm"),
        ("model: {learning_rate: 1.0e+10}", "model.learning_rate"),
        ("output: {rows: 100000000000}", "output.rows"),
        ("columns: {age: {bounds: [0, .inf]}}", "columns.age.bounds"),
        ("columns: {age: {bounds: [-1.0e+300, 1]}}", "columns.age.bounds"),
        ("output: {name: ../../evil}", "output.name"),
        ("output: {name: /etc/passwd}", "output.name"),
        ("output: {name: staging}", "output.name"),
        ("output: {name: models}", "output.name"),
        ("model: {seed: 1000000000000000000000000000000}", "model.seed"),
        ("model: {kl_weight: 1.0e+300}", "model.kl_weight"),
        ("model: {pac: 1000000000}", "model.pac"),
        ("model: {max_categories: 1000000000000000}", "model.max_categories"),
        ("model: {max_marginal_cells: 1000000000000000000}", "model.max_marginal_cells"),
    ],
)
def test_out_of_range_spec_values_fail_validation_in_one_line(
    tmp_path: Path, home: Path, synthgen_cli: Cli, section: str, field: str
) -> None:
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, HEAD + section + "\n"))])
    assert r.code == 2 and f"spec.yaml: {field}" in r.err, r.err
    assert r.err.strip().count("\n") == 0 and "Traceback" not in r.err


def test_a_pipeline_name_too_long_for_its_dataset_name_fails_validation(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    spec = _write(tmp_path, HEAD.replace("name: ", "name: " + "p" * 88, 1))
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2 and "output.name" in r.err and r.err.strip().count("\n") == 0, r.err


def test_an_unsafe_output_name_stops_the_run_before_any_epsilon_is_spent(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    (tmp_path / "d.csv").write_text("age,job\n" + "".join(f"{20 + i % 40},j{i % 3}\n" for i in range(200)))
    spec = _write(tmp_path, HEAD + "output: {name: ../../evil}\nmodel: {epochs: 1}\n")
    r = synthgen_cli(["run", str(spec)])
    assert r.code == 2 and "output.name" in r.err
    r = synthgen_cli(["budget", "show", f"csv:{tmp_path / 'd.csv'}", "--json"])
    assert r.code == 0 and '"entries": []' in r.out
    assert not (home / "zones").exists() or not any(p.is_file() for p in (home / "zones").rglob("*"))
