"""The notebook API (docs/notebook.md) runs as written, on pandas and on polars, with a DP record."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import synthgen

DOC = Path(__file__).resolve().parents[2] / "docs" / "notebook.md"


def _people(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    return pd.DataFrame(
        {
            "age": age,
            "income": age * 1000.0 + rng.normal(0, 5000, n),
            "city": rng.choice(["Oslo", "Rome", "Lima"], n, p=[0.5, 0.3, 0.2]),
            "patient_id": [f"P{seed}-{i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize("flavour", ["pandas", "polars"])
def test_the_notebook_page_runs_as_written(flavour: str, tmp_path: Path) -> None:
    df, holdout = _people(2000, 1), _people(500, 2)
    if flavour == "polars":
        df, holdout = pl.from_pandas(df), pl.from_pandas(holdout)
    result = doctest.testfile(
        str(DOC),
        module_relative=False,
        globs={"df": df, "holdout": holdout, "tmp": tmp_path},
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
    )
    assert result.attempted >= 10 and result.failed == 0


def test_the_privacy_record_adds_up_and_says_no_cap_governed_it() -> None:
    synth = synthgen.Synthesizer(epsilon=0.5).fit(_people(1500, 3), metadata={"patient_id": "id"})
    p = synth.privacy_
    assert p["dp"] is True and p["governed_by_cap"] is False
    assert p["epsilon"] == pytest.approx(sum(m["epsilon"] for m in p["mechanisms"]))
    assert p["epsilon"] <= 0.5 + 1e-9
    assert any(m["column"] == "income" and m["step"] == "preprocessing" for m in p["mechanisms"])


def test_wrong_input_and_unfitted_use_say_what_to_do() -> None:
    from synthgen.errors import SpecError

    with pytest.raises(SpecError, match="pandas or polars DataFrame"):
        synthgen.Synthesizer().fit([[1, 2]])
    with pytest.raises(SpecError, match=r"call \.fit\(df\) first"):
        synthgen.Synthesizer().sample(5)


def test_the_three_names_resolve_in_a_fresh_interpreter() -> None:
    import subprocess
    import sys

    code = (
        "import synthgen; "
        "print(callable(synthgen.evaluate), synthgen.Synthesizer.__name__, synthgen.anonymize.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["True", "Synthesizer", "anonymize"]
