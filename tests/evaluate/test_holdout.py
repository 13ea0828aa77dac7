import polars as pl
import pytest

from synthgen.errors import SpecError
from synthgen.evaluate import split_holdout


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(n)), "v": [i % 7 for i in range(n)]})


def test_split_holdout_is_disjoint_complete_and_sized():
    train, hold = split_holdout(_frame(1000), 0.2, seed=3)
    assert hold.height == 200 and train.height == 800
    assert set(train["id"]).isdisjoint(set(hold["id"]))
    assert set(train["id"]) | set(hold["id"]) == set(range(1000))


def test_split_holdout_is_reproducible_for_a_seed_and_differs_across_seeds():
    a = split_holdout(_frame(500), 0.3, seed=7)[1]["id"].to_list()
    b = split_holdout(_frame(500), 0.3, seed=7)[1]["id"].to_list()
    c = split_holdout(_frame(500), 0.3, seed=8)[1]["id"].to_list()
    assert a == b
    assert a != c


def test_split_holdout_zero_fraction_gives_empty_holdout_with_same_columns():
    train, hold = split_holdout(_frame(10), 0.0)
    assert train.height == 10 and hold.height == 0
    assert hold.columns == ["id", "v"]


def test_split_holdout_keeps_one_row_on_each_side_for_tiny_tables():
    train, hold = split_holdout(_frame(2), 0.1)
    assert train.height == 1 and hold.height == 1


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_holdout_rejects_fraction_outside_unit_interval(fraction):
    with pytest.raises(SpecError, match=r"evaluate\.holdout"):
        split_holdout(_frame(10), fraction)
