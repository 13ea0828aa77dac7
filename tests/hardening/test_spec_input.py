"""Spec input that used to crash late (after epsilon was charged) or was accepted silently:
a category listed twice, a YAML key given twice (spec, policy, analyzer config, --set), a
boolean where a number belongs, and unbounded sizes. Each is refused in one line, exit 2,
before anything is written or charged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hardening._input import HEAD, STEWARD, Cli
from tests.hardening._input import one_line as _one_line
from tests.hardening._input import write as _write


def _visits_csv(path: Path, header: str = "age,dx,flag", rows: int = 300) -> Path:
    dx = ("flu", "cold", "covid")
    body = "".join(f"{20 + i % 60},{dx[i % 3]},{'yes' if i % 4 else 'no'}\n" for i in range(rows))
    path.write_text(header + "\n" + body)
    return path


def _nothing_charged_or_written(cli: Cli, home: Path, data: Path) -> None:
    r = cli(["budget", "show", f"csv:{data}", "--json"], env=STEWARD)
    assert r.code == 0 and json.loads(r.out)["entries"] == [], r.out
    zones = home / "zones"
    assert not zones.exists() or not any(p.is_file() for p in zones.rglob("*")), list(zones.rglob("*"))


# -- 1. repeated categories ---------------------------------------------------------------


def test_a_repeated_declared_category_stops_the_run_before_any_epsilon_is_charged(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    data = _visits_csv(tmp_path / "d.csv")
    spec = _write(
        tmp_path,
        HEAD + "columns:\n  dx: {type: categorical, categories: [flu, cold, flu, covid]}\n"
        "privacy: {epsilon: 1.0}\nmodel: {kind: dp_tvae, epochs: 1}\noutput: {rows: 50}\n",
    )
    r = synthgen_cli(["spec", "validate", str(spec)])
    assert r.code == 2, r.err
    assert "columns.dx.categories: 'flu' is listed more than once" in _one_line(r.err)
    r = synthgen_cli(["run", str(spec)], env=STEWARD)  # was: exit 1 in train, after the charge
    assert r.code == 2 and "'flu' is listed more than once" in _one_line(r.err), r.err
    _nothing_charged_or_written(synthgen_cli, home, data)


# -- 2. duplicate YAML keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expect",
    [
        (
            HEAD + "privacy:\n  epsilon: 1\n  epsilon: 10\n",
            "spec.yaml:5: duplicate key 'epsilon' (first on line 4)",
        ),
        (HEAD + "privacy: {epsilon: 1}\nprivacy: {epsilon: 9}\n", "spec.yaml:4: duplicate key 'privacy'"),
        (HEAD + "columns:\n  age: {type: numeric}\n  age: {type: id}\n", "spec.yaml:5: duplicate key 'age'"),
        ("name: a\nname: b\nsource: {kind: csv, path: d.csv}\n", "spec.yaml:2: duplicate key 'name'"),
    ],
    ids=["nested", "top-level", "column", "name"],
)
def test_a_spec_repeating_a_key_is_refused_with_its_line(
    tmp_path: Path, home: Path, synthgen_cli: Cli, text: str, expect: str
) -> None:
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, text))])
    assert r.code == 2 and expect in _one_line(r.err), r.err


def test_a_merge_key_may_still_be_overridden(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    spec = _write(
        tmp_path,
        HEAD + "columns:\n  age: &age {type: numeric, bounds: [0, 10]}\n"
        "  weight:\n    <<: *age\n    bounds: [0, 300]\n",
    )
    r = synthgen_cli(["spec", "validate", str(spec), "--show"])
    assert r.code == 0, r.err
    assert "300" in r.out


def test_a_set_override_repeating_a_key_is_refused(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    r = synthgen_cli(
        ["spec", "validate", str(_write(tmp_path, HEAD)), "--set", "privacy={epsilon: 1, epsilon: 5}"]
    )
    assert r.code == 2 and "--set privacy: duplicate key 'epsilon'" in _one_line(r.err), r.err


def test_a_policy_file_repeating_a_key_is_refused_with_its_line(
    tmp_path: Path, home: Path, synthgen_cli: Cli
) -> None:
    default = (Path(__file__).resolve().parents[2] / "policies" / "default.yaml").read_text()
    assert "\nusers:\n  alice: [data-steward]\n" in default
    policies = tmp_path / "policies"
    policies.mkdir()
    # alice listed twice: the second entry (an analyst) would silently win.
    edited = default.replace(
        "\nusers:\n  alice: [data-steward]\n", "\nusers:\n  alice: [data-steward]\n  alice: [analyst]\n"
    )
    (policies / "default.yaml").write_text(edited)
    line = edited.splitlines().index("  alice: [analyst]") + 1
    r = synthgen_cli(["policy", "validate"], env={"SYNTHGEN_POLICY_DIR": str(policies)})
    assert r.code == 2, r.err
    assert f"default.yaml:{line}: duplicate key 'alice'" in _one_line(r.err)


def test_an_analyzer_config_repeating_a_key_is_refused(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    shipped = (Path(__file__).resolve().parents[2] / "synthgen" / "anonymize" / "presidio.yaml").read_text()
    config = tmp_path / "presidio.yaml"
    config.write_text(shipped + "\nsupported_languages: [en]\n")
    assert "supported_languages" in shipped
    _visits_csv(tmp_path / "d.csv")
    spec = _write(tmp_path, HEAD + f"anonymize: {{config: {config}}}\nprivacy: {{dp: false}}\n")
    r = synthgen_cli(["anonymize", str(spec)], env=STEWARD)
    assert r.code == 1 and "duplicate key 'supported_languages'" in _one_line(r.err), r.err


# -- 3. booleans and unbounded numbers ------------------------------------------------------


@pytest.mark.parametrize(
    "section, field",
    [
        ("privacy: {epsilon: true}", "privacy.epsilon"),
        ("privacy: {delta: false}", "privacy.delta"),
        ("privacy: {budget_cap: yes}", "privacy.budget_cap"),
        ("output: {rows: true}", "output.rows"),
        ("model: {epochs: on}", "model.epochs"),
        ("model: {text: {epochs: true}}", "model.text.epochs"),
        ("evaluate: {holdout: false}", "evaluate.holdout"),
        ("anonymize: {n_process: true}", "anonymize.n_process"),
        ("columns: {age: {bounds: [true, 5]}}", "columns.age.bounds"),
    ],
)
def test_a_boolean_where_a_number_is_expected_is_refused(
    tmp_path: Path, home: Path, synthgen_cli: Cli, section: str, field: str
) -> None:
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, HEAD + section + "\n"))])
    assert r.code == 2, r.err
    assert f"spec.yaml: {field}: expected a number" in _one_line(r.err)


def test_integers_are_still_numbers_for_float_fields(tmp_path: Path, home: Path, synthgen_cli: Cli) -> None:
    spec = _write(
        tmp_path,
        HEAD + "privacy: {epsilon: 3, dp: true}\nevaluate: {holdout: 0}\nmodel: {learning_rate: 1}\n",
    )
    r = synthgen_cli(["spec", "validate", str(spec), "--set", "privacy.budget_cap=8"])
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    "section, field",
    [
        ("anonymize: {n_process: 100000}", "anonymize.n_process"),
        ("anonymize: {batch_size: 1000000000}", "anonymize.batch_size"),
        ("anonymize: {max_doc_chars: 2000000}", "anonymize.max_doc_chars"),
        ("anonymize: {stream_rows: 1000000000000}", "anonymize.stream_rows"),
        ("anonymize: {sample_size: 1000000000}", "anonymize.sample_size"),
        ("evaluate: {seed: -1}", "evaluate.seed"),
        ("evaluate: {threads: 100000}", "evaluate.threads"),
        ("evaluate: {max_rows: 1000000000000}", "evaluate.max_rows"),
        ("evaluate: {text_canary: 1000000000}", "evaluate.text_canary"),
        ("model: {text: {max_length: 100000000}}", "model.text.max_length"),
        ("model: {text: {n_layers: 100000}}", "model.text.n_layers"),
        ("model: {text: {generate_batch_size: 1000000000000}}", "model.text.generate_batch_size"),
        ("privacy: {count_weight: 1.0e+300}", "privacy.count_weight"),
    ],
)
def test_unbounded_sizes_are_refused(
    tmp_path: Path, home: Path, synthgen_cli: Cli, section: str, field: str
) -> None:
    r = synthgen_cli(["spec", "validate", str(_write(tmp_path, HEAD + section + "\n"))])
    assert r.code == 2 and f"spec.yaml: {field}" in _one_line(r.err), r.err
