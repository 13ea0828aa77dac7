"""`read` of a dataset that does not exist is "not found" (exit 1), not a denial (exit 3)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_synthgen


def test_reading_a_name_nothing_was_published_under_is_not_found(home: Path) -> None:
    r = run_synthgen(["read", "never-published", "--user", "bob"])
    assert r.code == 1, r.err
    assert "no published dataset named 'never-published'" in r.err
    assert "denied" not in r.err
    assert r.err.count("\n") == 1


def test_a_user_outside_the_policy_is_still_denied_nothing(home: Path) -> None:
    # The name does not exist either way: the answer is the same for every user (no oracle).
    a = run_synthgen(["read", "never-published", "--user", "bob"])
    b = run_synthgen(["read", "never-published", "--user", "mallory"])
    assert (a.code, a.err) == (b.code, b.err)


def test_a_report_that_does_not_exist_is_not_found(home: Path) -> None:
    r = run_synthgen(["report", "never-evaluated", "--user", "alice"])
    assert r.code == 1, r.err
    assert "no report for 'never-evaluated'" in r.err
