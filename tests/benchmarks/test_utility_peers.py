"""The side-by-side utility bench's own code, without dpmm's venv (bench/peers.py, bench/utility.py).

None of these builds or runs the dpmm venv: a missing venv must be one clear line, and what
each peer is given, how its rows come back, the cache and the scoring are checked here.
"""

from __future__ import annotations

import argparse
import datetime as dt

import numpy as np
import polars as pl
import pytest

from bench import peers, utility
from synthgen.schema import ColumnSchema, TableSchema


@pytest.fixture
def no_venv(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHGEN_BENCH_DPMM_VENV", str(tmp_path / "no-such-venv"))
    monkeypatch.setenv("SYNTHGEN_BENCH_DPMM_CREATE", "0")
    return tmp_path / "no-such-venv"


def test_missing_dpmm_venv_is_one_line_naming_it(no_venv):
    with pytest.raises(peers.PeerUnavailable) as e:
        peers.dpmm_python()
    line = str(e.value)
    assert "\n" not in line
    assert str(no_venv) in line and "SYNTHGEN_BENCH_DPMM_CREATE=0" in line and "dpmm==0.1.9" in line


def test_bench_stops_on_a_missing_venv_before_any_fit(no_venv, monkeypatch):
    monkeypatch.setenv("SYNTHGEN_BENCH_PEERS", "dpmm_mst")
    monkeypatch.setattr(utility, "run_case", lambda *a, **k: pytest.fail("fitted without dpmm"))
    with pytest.raises(SystemExit) as e:
        utility.run(argparse.Namespace(quick=True, data=None))
    assert str(e.value).startswith("bench utility: dpmm venv ") and str(no_venv) in str(e.value)


def test_bench_without_dpmm_peers_never_asks_for_the_venv(no_venv, monkeypatch):
    monkeypatch.setenv("SYNTHGEN_BENCH_PEERS", "ctgan_tvae")
    monkeypatch.setenv("SYNTHGEN_BENCH_TABLES", "none")
    out = utility.run(argparse.Namespace(quick=True, data=None))
    assert out["peers"] == ["ctgan_tvae"] and not no_venv.exists()


def _schema() -> TableSchema:
    return TableSchema(
        columns=[
            ColumnSchema(name="sex", type="categorical", categories=["F", "M"], nullable=False),
            ColumnSchema(name="city", type="categorical", nullable=True),
            ColumnSchema(name="stay", type="numeric", bounds=(0, 60), integer=True, nullable=False),
            ColumnSchema(name="charge", type="numeric", nullable=True),
            ColumnSchema(name="flag", type="boolean", nullable=False),
            ColumnSchema(name="born", type="datetime", nullable=False),
        ]
    )


def _frame(n: int = 40) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    charge = pl.Series("charge", rng.normal(100, 10, n)).scatter([1, 5], None)
    return pl.DataFrame(
        [
            pl.Series("sex", rng.choice(["F", "M"], n)),
            pl.Series("city", rng.choice(["a", "b", "c"], n)).scatter([2], None),
            pl.Series("stay", rng.integers(0, 60, n)),
            charge,
            pl.Series("flag", rng.random(n) < 0.5),
            pl.Series(
                "born", [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 20_000, n)]
            ),
        ]
    )


def test_dpmm_gets_only_what_synthgen_has_as_public():
    kinds, domain, given = peers.dpmm_domain(_schema(), _frame())
    assert kinds == {
        "sex": "categorical",
        "city": "categorical",
        "stay": "integer",
        "charge": "float",
        "flag": "boolean",
        "born": "datetime",
    }
    assert domain == {
        "sex": {"categories": ["F", "M"]},
        "stay": {"lower": 0.0, "upper": 60.0},
        "flag": {"categories": [False, True]},
    }
    assert "without DP" in given["city"] and "DP bounds" in given["charge"] and "DP bounds" in given["born"]


def test_a_peers_csv_comes_back_with_the_train_dtypes(tmp_path):
    like = _frame()
    # as pandas writes what dpmm returns: True/False, floats for integers, datetimes with a time
    (tmp_path / "s.csv").write_text(
        "sex,city,stay,charge,flag,born\nM,,3.0,101.5,True,1970-02-03 00:00:00\nF,b,60.0,,False,1999-12-31\n"
    )
    back = peers.read_back(tmp_path / "s.csv", like)
    assert back.schema == like.schema
    assert back.row(0) == ("M", None, 3, 101.5, True, dt.date(1970, 2, 3))
    assert back.row(1) == ("F", "b", 60, None, False, dt.date(1999, 12, 31))


def test_tvae_frames_round_trip_nulls_dates_and_booleans():
    train = _frame()
    kinds = peers.column_kinds(_schema(), train)
    frame, discrete = peers.tvae_frames(train, kinds)
    assert set(discrete) == {"sex", "city", "flag", "charge__null"}
    assert not frame.isna().any().any()
    back = peers.tvae_back(frame, train, kinds)
    assert back.schema == train.schema
    assert back.equals(train)


def test_the_cache_keys_on_code_and_says_when_a_fit_is_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "CACHE_DIR", tmp_path)
    like = _frame()
    calls = []

    def fit():
        calls.append(1)
        return like, {"fit_s": 1.0}

    spec = {"table": "t", "kind": "k", "epsilon": 1.0}
    _, first = peers.cached_fit(spec, "code-a", like, fit)
    again, second = peers.cached_fit(spec, "code-a", like, fit)
    assert len(calls) == 1 and second["cached"] == first["when"] and again.equals(like)
    _, stale = peers.cached_fit(spec, "code-b", like, fit, stale_ok=True)
    assert len(calls) == 1 and "code-a" in stale["stale"]
    peers.cached_fit(spec, "code-b", like, fit)
    peers.cached_fit({**spec, "epsilon": 3.0}, "code-b", like, fit)
    peers.cached_fit(spec, None, like, fit)  # no code id: never read the cache
    assert len(calls) == 4
    with pytest.raises(peers.NotCached):
        peers.cached_fit({**spec, "epsilon": 9.0}, "code-b", like, fit, cache_only=True)
    _, hit = peers.cached_fit(spec, "code-b", like, fit, cache_only=True)
    assert len(calls) == 4 and hit["code"] == "code-b"


def test_scores_tell_a_copy_from_rows_that_lost_the_relationship():
    rng = np.random.default_rng(1)
    n = 1_500
    a = rng.choice(["x", "y", "z"], n)
    real = pl.DataFrame(
        {
            "a": a,
            "b": np.where(a == "x", rng.normal(10, 1, n), rng.normal(0, 1, n)),
            "t": (a == "x") | (rng.random(n) < 0.1),
        }
    )
    case = utility.Case("t", real.head(1_000), real.tail(500), None, "t", True, [1.0])
    trtr = utility.tstr(case.train, case.test, "t", True)
    copy = utility.score(case, case.train, trtr)
    broken = case.train.with_columns(pl.col("b").shuffle(seed=0), pl.col("t").shuffle(seed=1))
    lost = utility.score(case, broken, trtr)
    assert copy["mean_gap"] == 0 and copy["tvd_1way"] == 0 and copy["tstr_over_trtr"] == 1.0
    assert copy["tstr_auc"] > 0.9 and copy["top4_within_0.15"]
    assert lost["mean_gap"] > 0.3 and lost["tstr_auc"] < copy["tstr_auc"] - 0.2 and lost["tvd_1way"] < 0.05
    assert not lost["top4_within_0.15"]


def test_side_by_side_has_a_column_per_method_and_says_what_did_not_run():
    real_top = [{"pair": "a x b", "real": 0.9, "synth": 0.9}]
    row = {
        "top4": [{"pair": "a x b", "real": 0.9, "synth": 0.7}],
        "mean_gap": 0.1,
        "tstr_auc": 0.8,
        "fit_s": 2.0,
    }
    results = {
        "demo": {
            "rows": {"train": 8, "test": 2},
            "columns": 2,
            "trtr_auc": 0.85,
            "target": "t",
            "real": real_top,
            "runs": [
                {"kind": "dp_mst", "epsilon": 3.0, **row},
                {"kind": "dpmm_aim", "epsilon": 3.0, "skipped": "left out for time"},
                {"kind": "dpmm_mst", "epsilon": 3.0, "failed": "PeerFailed: boom"},
                {"kind": "ctgan_tvae", "epsilon": None, **row},
            ],
        }
    }
    table = utility.side_by_side(results)
    head = next(line for line in table.splitlines() if line.startswith("| figure"))
    assert head == "| figure | real | dp_mst | dpmm_aim | dpmm_mst | ctgan_tvae (non-DP) |"
    assert "| a x b | 0.900 | 0.700 | skipped | failed | 0.700 |" in table
    assert "| TSTR ROC AUC, t | 0.85 | 0.800 | skipped | failed | 0.800 |" in table


def test_the_wide_table_is_wide_seeded_and_related():
    a, b = utility.wide_table(2_000, seed=0), utility.wide_table(2_000, seed=0)
    assert a.width >= 40 and a.equals(b) and not a.equals(utility.wide_table(2_000, seed=1))
    assert "client id" not in a.columns and "h_ID" not in a.columns
    assert utility.association(a, "PAY_0", "score") > 0.3  # tied columns
    # independent ones: Cramer's V of 4 x 30 independent values at 2,000 rows is ~0.12 by chance
    assert utility.association(a, "channel", "city") < 0.2
