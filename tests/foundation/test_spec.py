from __future__ import annotations

from pathlib import Path

import pytest

from synthgen.errors import SpecError
from synthgen.spec import load_spec, spec_from_dict

BASE = {"name": "p", "source": {"kind": "csv", "path": "data.csv"}}


def test_minimal_spec_fills_defaults() -> None:
    spec = spec_from_dict(BASE)
    assert spec.privacy.dp is True
    assert spec.model.kind == "auto"
    assert spec.synthetic_name == "p-synthetic"


def test_wrong_type_names_the_path() -> None:
    with pytest.raises(SpecError, match=r"model\.epochs: expected int"):
        spec_from_dict({**BASE, "model": {"epochs": "many"}})


def test_unknown_key_names_the_path() -> None:
    with pytest.raises(SpecError, match=r"privacy\.epsilom: unknown key"):
        spec_from_dict({**BASE, "privacy": {"epsilom": 1}})


def test_missing_required_key() -> None:
    with pytest.raises(SpecError, match=r"source: required key is missing"):
        spec_from_dict({"name": "p"})


def test_epsilon_must_be_positive() -> None:
    with pytest.raises(SpecError, match=r"privacy\.epsilon"):
        spec_from_dict({**BASE, "privacy": {"epsilon": 0}})


def test_set_overrides_parse_yaml_scalars() -> None:
    spec = spec_from_dict(
        BASE, overrides=["model.epochs=7", "privacy.dp=false", "evaluate.sensitive=[sex, race]"]
    )
    assert spec.model.epochs == 7
    assert spec.privacy.dp is False
    assert spec.evaluate.sensitive == ["sex", "race"]


def test_bad_override_syntax_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="expected key=value"):
        spec_from_dict(BASE, overrides=["model.epochs"])


def test_override_into_a_scalar_is_refused() -> None:
    with pytest.raises(SpecError, match="is not a section"):
        spec_from_dict(BASE, overrides=["name.x=1"])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:secret@h/db",
        "postgresql://u:p/ss@h/db",  # a '/' in the password (SQLAlchemy reads it as 'p/ss')
        "postgresql://u@h/db?password=secret",
        "mysql://u@h/db?charset=utf8&PWD=secret",
    ],
)
def test_sql_url_with_password_is_refused(url: str) -> None:
    with pytest.raises(SpecError, match="password") as info:
        spec_from_dict({"name": "p", "source": {"kind": "sql", "url": url, "table": "t"}})
    assert "secret" not in str(info.value) and "p/ss" not in str(info.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u@h:5432/db", "sqlite:///x.db", "postgresql://h/db?sslmode=require"]
)
def test_sql_url_without_password_is_accepted(url: str) -> None:
    spec_from_dict({"name": "p", "source": {"kind": "sql", "url": url, "table": "t"}})


def test_sql_needs_table_or_query() -> None:
    with pytest.raises(SpecError, match="exactly one of"):
        spec_from_dict({"name": "p", "source": {"kind": "sql", "url": "sqlite:///x.db"}})


def test_bounds_must_be_ordered() -> None:
    with pytest.raises(SpecError, match=r"columns\.age\.bounds"):
        spec_from_dict({**BASE, "columns": {"age": {"bounds": [90, 17]}}})


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("name: p\nsource: {kind: csv, path: x.csv\n")
    with pytest.raises(SpecError, match=r"s\.yaml:\d+"):
        load_spec(p)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_relative_source_path_resolves_against_spec_dir(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("name: p\nsource: {kind: csv, path: data.csv}\n")
    assert load_spec(p).source_path() == tmp_path / "data.csv"


def test_shipped_pipeline_specs_validate() -> None:
    specs = sorted((Path(__file__).resolve().parents[2] / "pipelines").glob("*.yaml"))
    for p in specs:
        load_spec(p)


def test_every_error_is_listed_with_did_you_mean_for_unknown_keys(tmp_path: Path) -> None:
    from tests.conftest import run_synthgen

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\n"
        "source: {kind: csv, path: a.csv, pth: 1}\n"
        "columns:\n  age: {typ: numeric}\n"
        "model: {kind: auto, text: {epoch: 2}}\n"
        "privacy: {epsilom: 1}\n"
        "output: {zzzz: 2}\n"
    )
    r = run_synthgen(["spec", "validate", str(bad)])
    assert r.code == 2 and r.out == ""
    line = r.err.strip()
    assert "\n" not in line
    for part in (
        "source.pth: unknown key (did you mean 'path'?)",
        "columns.age.typ: unknown key (did you mean 'type'?)",
        "model.text.epoch: unknown key (did you mean 'epochs'?)",
        "privacy.epsilom: unknown key (did you mean 'epsilon'?)",
    ):
        assert part in line
    assert line.endswith("(and 1 more error)")  # output.zzzz: past the fourth, counted


def test_unknown_key_with_nothing_close_gets_no_suggestion() -> None:
    with pytest.raises(SpecError) as e:
        spec_from_dict({**BASE, "output": {"zzzz": 1}})
    assert str(e.value) == "spec: output.zzzz: unknown key"


def test_alias_keys_are_suggested_by_their_yaml_name() -> None:
    with pytest.raises(SpecError, match=r"privacy\.schem: unknown key \(did you mean 'schema'\?\)"):
        spec_from_dict({**BASE, "privacy": {"schem": "declared"}})
