import numpy as np
import polars as pl
import pytest

from synthgen.errors import SpecError
from synthgen.evaluate import split_holdout
from synthgen.evaluate.holdout import holdout_mask

KEY = b"holdout-test-key-0123"


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame({"id": list(range(n)), "v": [i % 7 for i in range(n)]})


def _random_table(rng: np.random.Generator, n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(10, 1, n)),
            "city": rng.choice(["a", "b", "c", None], n).tolist(),
            "flag": rng.random(n) < 0.3,
        }
    )


def _sides(frame: pl.DataFrame, fraction: float, key: bytes) -> dict[int, bool]:
    """Row id -> held out, hashing the rows without their ids (the id only follows a row)."""
    mask = holdout_mask(frame.drop("rid"), fraction=fraction, key=key)
    return dict(zip(frame["rid"].to_list(), mask.to_list(), strict=True))


@pytest.mark.parametrize("trial", range(6))
def test_adding_or_removing_one_row_changes_only_that_rows_side(trial):
    # P10: the holdout is 1-stable, so DP-SGD's epsilon over the training set carries over
    # to the source. With rng.choice(n, ...) one added row moved hundreds of others.
    rng = np.random.default_rng(trial)
    n = int(rng.integers(200, 2000))
    base = _random_table(rng, n + 1).with_row_index("rid")
    key = rng.bytes(32)
    fraction = float(rng.uniform(0.05, 0.5))
    removed = base.filter(pl.col("rid") != int(rng.integers(0, n + 1)))
    added = pl.concat([base, _random_table(rng, 1).with_row_index("rid", offset=n + 1)])
    sides = _sides(base, fraction, key)
    for neighbour in (removed, added):
        other = _sides(neighbour, fraction, key)
        assert [r for r in sides.keys() & other.keys() if sides[r] != other[r]] == []
    a = sides
    # And the split is a real split, near the requested share.
    assert abs(sum(a.values()) / len(a) - fraction) < 0.1


def test_an_integer_column_stored_as_float_hashes_the_same():
    # A neighbour whose one extra row turns an integer column into floats must not re-hash every row.
    ints = pl.DataFrame({"x": [1, 2, 3, 40], "s": ["a", "b", None, "d"]})
    floats = ints.with_columns(pl.col("x").cast(pl.Float64))
    assert (
        holdout_mask(ints, fraction=0.5, key=KEY).to_list()
        == holdout_mask(floats, fraction=0.5, key=KEY).to_list()
    )


def test_the_side_depends_on_the_key():
    frame = _frame(500)
    a = holdout_mask(frame, fraction=0.3, key=KEY)
    b = holdout_mask(frame, fraction=0.3, key=b"another-holdout-key-xyz")
    assert a.to_list() == holdout_mask(frame, fraction=0.3, key=KEY).to_list()
    assert a.to_list() != b.to_list()


def test_split_holdout_is_disjoint_complete_and_near_the_fraction():
    train, hold = split_holdout(_frame(2000), 0.2, key=KEY)
    assert 300 < hold.height < 500 and train.height + hold.height == 2000
    assert set(train["id"]).isdisjoint(set(hold["id"]))
    assert set(train["id"]) | set(hold["id"]) == set(range(2000))


def test_split_holdout_zero_fraction_gives_empty_holdout_with_same_columns():
    train, hold = split_holdout(_frame(10), 0.0, key=KEY)
    assert train.height == 10 and hold.height == 0
    assert hold.columns == ["id", "v"]


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_split_holdout_rejects_fraction_outside_unit_interval(fraction):
    with pytest.raises(SpecError, match=r"evaluate\.holdout"):
        split_holdout(_frame(10), fraction, key=KEY)


def test_holdout_mask_refuses_a_short_key():
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        holdout_mask(_frame(10), fraction=0.2, key=b"short")


def test_hashing_slice_by_slice_gives_the_sides_of_one_pass(monkeypatch):
    # The train stage hashes HASH_SLICE_ROWS rows at a time (memory); a row's side must not
    # depend on where the slices fall.
    from synthgen.evaluate import holdout

    frame = _random_table(np.random.default_rng(3), 1000)
    one_pass = holdout_mask(frame, fraction=0.3, key=KEY).to_list()
    monkeypatch.setattr(holdout, "HASH_SLICE_ROWS", 7)
    assert holdout_mask(frame, fraction=0.3, key=KEY).to_list() == one_pass
