from __future__ import annotations

from pathlib import Path

from synthgen.spec_reference import render

ROOT = Path(__file__).resolve().parents[2]


def test_spec_reference_is_current() -> None:
    committed = (ROOT / "docs" / "spec-reference.md").read_text()
    assert committed == render(), "regenerate: python -m synthgen.spec_reference > docs/spec-reference.md"


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
