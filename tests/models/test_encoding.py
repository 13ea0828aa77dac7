"""Encoding: round trips, layout, and no raw statistics in DP mode (P2, P5)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from synthgen.errors import ModelError
from synthgen.models import encoding
from synthgen.models.encoding import TableEncoder, validate_frame
from synthgen.privacy.mechanisms import noise_rng
from synthgen.schema import ColumnSchema, ColumnType, TableSchema


def test_non_dp_encoding_round_trips_categories_booleans_and_nulls(small_frame, small_schema) -> None:
    enc, entries = TableEncoder.fit(small_frame, small_schema, dp=False)
    assert entries == []
    codes, offsets = enc.encode(small_frame, small_schema)
    back = enc.decode(codes, offsets=offsets, rng=np.random.default_rng(0))
    for name in ("x", "y", "flag"):
        assert back[name].to_list() == small_frame[name].to_list()
    assert back["age"].null_count() == small_frame["age"].null_count()
    # Integer values sit at their within-bin offsets: exact round trip.
    assert back["age"].to_list() == small_frame["age"].to_list()
    assert back["when"].dtype == pl.Datetime("us")
    diff = (back["when"] - small_frame["when"]).dt.total_seconds().abs().max()
    assert diff is not None and diff < 5


def test_matrix_layout_follows_the_spans(small_frame, small_schema) -> None:
    enc, _ = TableEncoder.fit(small_frame, small_schema, dp=False)
    m = enc.transform(small_frame, small_schema)
    assert m.shape == (small_frame.height, enc.width)
    for span in enc.spans:
        block = m[:, span.start : span.end]
        if span.activation == "softmax":
            assert np.allclose(block.sum(axis=1), 1.0)
        else:
            assert span.end - span.start == 1 and block.min() >= 0 and block.max() <= 1
    back = enc.inverse_transform(m, rng=np.random.default_rng(0))
    assert back["x"].to_list() == small_frame["x"].to_list()


def test_dp_encoding_never_computes_raw_statistics(small_frame, small_schema, monkeypatch) -> None:
    def spy(*_a: object, **_k: object) -> None:
        raise AssertionError("raw statistic requested in DP mode")

    monkeypatch.setattr(encoding, "_raw_quantiles", spy)
    monkeypatch.setattr(encoding, "_raw_categories", spy)
    _, entries = TableEncoder.fit(
        small_frame, small_schema, dp=True, column_epsilon=1.0, discovery_delta=1e-6, rng=noise_rng()
    )
    # x (discovery), age, when, score (quantile bins): one mechanism each; y is public, flag is boolean.
    assert sorted(e.column or "" for e in entries) == ["age", "score", "when", "x"]
    assert all(e.epsilon == 1.0 for e in entries)


def test_dp_bins_are_not_the_exact_min_and_max() -> None:
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({"v": rng.normal(1000.0, 100.0, 5000)})
    schema = TableSchema(columns=[ColumnSchema(name="v", type="numeric", nullable=False)])
    exact = (frame["v"].min(), frame["v"].max())
    for _ in range(5):
        enc, _ = TableEncoder.fit(frame, schema, dp=True, column_epsilon=1.0, rng=noise_rng())
        edges = enc.columns[0].edges  # type: ignore[union-attr]
        assert edges[0] != exact[0] and edges[-1] != exact[1]
        assert 500 < edges[len(edges) // 2] < 1500


def test_dp_categories_are_not_exact_frequency_order_of_rare_values() -> None:
    frame = pl.DataFrame({"c": ["a"] * 3000 + ["b"] * 2000 + ["rare-canary"] * 2})
    schema = TableSchema(columns=[ColumnSchema(name="c", type="categorical", nullable=False)])
    enc, _ = TableEncoder.fit(
        frame, schema, dp=True, column_epsilon=1.0, discovery_delta=1e-6, rng=noise_rng()
    )
    col = enc.columns[0]
    assert "rare-canary" not in col.categories  # type: ignore[union-attr]
    codes, _ = enc.encode(frame, schema)
    # The rare value maps to the "other" token.
    assert codes[-1, 0] == len(col.categories)  # type: ignore[union-attr]


def test_encoder_json_round_trip_holds_no_rows(small_frame, small_schema) -> None:
    enc, _ = TableEncoder.fit(
        small_frame, small_schema, dp=True, column_epsilon=1.0, discovery_delta=1e-6, rng=noise_rng()
    )
    again = TableEncoder.from_json(enc.to_json())
    assert again.cardinalities == enc.cardinalities
    assert len(enc.to_json()) < 20_000


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"c": ["same"] * 10}), "constant"),
        (pl.DataFrame({"c": pl.Series([None] * 10, dtype=pl.String)}), "entirely null"),
        (pl.DataFrame({"c": [f"v{i}" for i in range(20_000)]}), "more than 1000 distinct"),
    ],
)
def test_unusable_columns_are_refused_with_a_clear_error(frame: pl.DataFrame, message: str) -> None:
    schema = TableSchema(columns=[ColumnSchema(name="c", type="categorical")])
    with pytest.raises(ModelError, match=message):
        validate_frame(frame, schema, max_categories=1000)


def test_declared_boolean_and_datetime_accept_common_spellings_and_refuse_the_rest() -> None:
    schema = TableSchema(
        columns=[
            ColumnSchema(name="yn", type="boolean", nullable=True),
            ColumnSchema(name="zo", type="boolean"),
            ColumnSchema(name="ts", type="datetime"),
        ]
    )
    frame = pl.DataFrame(
        {
            "yn": ["Y", "n", None, "yes", "No"] * 20,
            "zo": [0, 1, 1, 0, 1] * 20,
            "ts": ["2021-01-01T10:00:00+02:00", "2021-01-02T00:00:00Z"] * 50,
        }
    )
    validate_frame(frame, schema, max_categories=10)
    enc, _ = TableEncoder.fit(frame, schema, dp=False)
    codes, offsets = enc.encode(frame, schema)
    out = enc.decode(codes, offsets=offsets, rng=np.random.default_rng(0))
    assert out["yn"].to_list()[:5] == [True, False, None, True, False]
    assert out["zo"].to_list()[:5] == [False, True, True, False, True]
    assert str(out["ts"][0]) == "2021-01-01 08:00:00"  # UTC
    bad = [
        (frame.with_columns(pl.Series("yn", ["Y", "maybe"] * 50)), "'yn' is declared boolean"),
        (frame.with_columns(pl.Series("zo", [0, 2] * 50)), "'zo' is declared boolean"),
        (frame.with_columns(pl.Series("ts", ["2021-01-01", "10:30"] * 50)), "'ts' is declared datetime"),
    ]
    for broken, match in bad:
        with pytest.raises(ModelError, match=match):
            validate_frame(broken, schema, max_categories=10)


def test_a_narrow_integer_column_gets_one_token_per_integer_of_its_range() -> None:
    frame = pl.DataFrame({"code": [1, 2, 3, 4] * 250, "amount": list(range(1000))})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="code", type="numeric", integer=True),
            ColumnSchema(name="amount", type="numeric", integer=True),
        ]
    )
    enc, entries = TableEncoder.fit(frame, schema, dp=True, column_epsilon=1.0, rng=noise_rng())
    code, amount = enc.columns
    assert code.kind == "categorical" and code.dtype == "int" and not code.other
    assert len(code.categories) <= encoding.SMALL_INTEGER_VALUES
    assert amount.kind == "numeric"  # a wide range keeps its quantile bins
    assert [e.mechanism for e in entries] == ["dp_quantiles", "dp_quantiles"]  # same charges as before
    lo, hi = int(code.categories[0]), int(code.categories[-1])
    # A value outside the DP range is encoded at its nearest end; decoding gives only range values.
    outside = pl.DataFrame({"code": [lo - 5, hi + 5, None], "amount": [1, 2, 3]})
    codes, _ = enc.encode(outside, schema)
    assert codes[:, 0].tolist() == [0, len(code.categories) - 1, len(code.categories)]
    every = np.arange(code.tokens).repeat(3)
    out = enc.decode(np.stack([every, np.zeros_like(every)], axis=1), rng=np.random.default_rng(0))
    assert out["code"].dtype == pl.Int64
    assert set(out["code"].drop_nulls()) == set(range(lo, hi + 1))
    assert out["code"].null_count() == 3


def test_a_spike_holding_a_quantile_step_is_its_own_exact_token() -> None:
    rng = np.random.default_rng(5)
    amount = np.where(rng.random(5000) < 0.3, 0.0, np.round(rng.lognormal(7, 1, 5000), 2))
    frame = pl.DataFrame({"amount": amount})
    schema = TableSchema(columns=[ColumnSchema(name="amount", type="numeric")])
    for dp in (True, False):
        enc, _ = TableEncoder.fit(frame, schema, dp=dp, column_epsilon=1.0, rng=noise_rng())
        (code,) = enc.columns
        assert code.points == [0.0], dp
        codes, _ = enc.encode(frame, schema)
        assert set(codes[amount == 0, 0]) == {code.bins}  # every zero in the point token
        out = enc.decode(codes, rng=np.random.default_rng(0))
        assert ((out["amount"] == 0) == (amount == 0)).all()
        assert ((out["amount"] > 0) & (out["amount"] < 1e-3)).sum() == 0  # was 0.0003 and the like


def test_a_column_with_fine_public_bounds_is_not_snapped_to_zero() -> None:
    rng = np.random.default_rng(2)
    frame = pl.DataFrame({"p": rng.random(5000) * 1e-3})  # all under 1e-3, bounds say so
    schema = TableSchema(columns=[ColumnSchema(name="p", type="numeric", bounds=(0.0, 1e-3))])
    enc, _ = TableEncoder.fit(frame, schema, dp=True, column_epsilon=1.0, rng=noise_rng())
    (code,) = enc.columns
    assert code.bins >= 5 and code.points == []
    out = enc.decode(enc.encode(frame, schema)[0], rng=np.random.default_rng(0))
    assert out["p"].n_unique() > 1000 and float(out["p"].max()) <= 1e-3


def test_dp_null_counts_stop_nulls_in_columns_without_any() -> None:
    from synthgen.privacy.accountant import split_budget
    from synthgen.privacy.settings import PrivacySettings

    rng = np.random.default_rng(2)
    n = 10_000
    frame = pl.DataFrame(
        {
            "full_num": rng.normal(0, 1, n),
            "gappy_num": pl.Series(rng.normal(0, 1, n)).scatter(np.arange(0, n, 10).tolist(), None),
            "full_cat": rng.choice(["a", "b", "c"], size=n),
            "gappy_cat": pl.Series(rng.choice(["a", "b"], size=n)).scatter(
                np.arange(0, n, 20).tolist(), None
            ),
        }
    )
    schema = TableSchema(
        columns=[
            ColumnSchema(
                name=c, type=ColumnType.numeric if "num" in c else ColumnType.categorical, nullable=True
            )
            for c in frame.columns
        ]
    )
    split = split_budget(
        PrivacySettings(epsilon=3.0), total_delta=1e-5, dp_columns=4, discovery_columns=2, columns=4
    )
    enc, entries = TableEncoder.fit(
        frame,
        schema,
        dp=True,
        column_epsilon=split.column_epsilon,
        column_sigma=split.column_sigma,
        column_delta=split.column_delta,
        discovery_delta=split.discovery_delta,
        n_public=float(n),
        rng=noise_rng(),
    )
    emits = {c.name: c.emit_null for c in enc.columns}
    assert emits == {"full_num": False, "gappy_num": True, "full_cat": False, "gappy_cat": True}
    assert len(entries) == 4  # the null counts ride in the columns' own histograms: no extra charge
    never = enc.never_emitted
    assert never[0] == [enc.columns[0].tokens - 1] and never[2] == [enc.columns[2].tokens - 1]
    # A matrix model (DP-CTGAN) whose null slot wins the argmax still decodes no null there.
    codes, offsets = enc.encode(frame.head(50), schema)
    matrix = enc.to_matrix(codes, offsets)
    for span in enc.spans:
        if span.activation == "softmax":
            matrix[:, span.end - 1] = 10.0  # every column's last token is <null>
    out = enc.inverse_transform(matrix, rng=np.random.default_rng(0))
    assert out["full_num"].null_count() == 0 and out["full_cat"].null_count() == 0
    assert out["gappy_num"].null_count() == 50 and out["gappy_cat"].null_count() == 50


def test_encode_codes_are_the_codes_of_encode_in_the_smallest_dtype(small_frame, small_schema) -> None:
    enc, _ = TableEncoder.fit(small_frame, small_schema, dp=False)
    codes, _ = enc.encode(small_frame, small_schema)
    compact = enc.encode_codes(small_frame, small_schema)
    assert compact.dtype == np.int8 and codes.dtype == np.int64
    assert np.array_equal(compact, codes)


@pytest.mark.parametrize(
    ("tokens", "dtype"), [([2, 128], np.int8), ([129], np.int16), ([32_769], np.int32), ([], np.int8)]
)
def test_code_dtype_holds_every_token(tokens, dtype) -> None:
    assert encoding.code_dtype(tokens) == dtype


def test_calibration_moves_sampled_categories_to_the_released_noisy_counts() -> None:
    frame = pl.DataFrame({"c": ["a"] * 6000 + ["b"] * 3000 + ["c"] * 1000, "pub": ["x", "y"] * 5000})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="c", type="categorical", nullable=True),
            ColumnSchema(name="pub", type="categorical", nullable=False, categories=["x", "y"]),
        ]
    )
    # epsilon 0.05: every count takes noise (at 1.0 each discrete Laplace draw is 0 with probability 0.46)
    enc, _ = TableEncoder.fit(
        frame, schema, dp=True, column_epsilon=0.05, discovery_delta=1e-6, rng=noise_rng()
    )
    col, pub = enc.columns
    assert isinstance(col, encoding.CategoricalCode) and col.counts is not None and pub.counts is None
    assert len(col.counts) == len(col.categories) and col.counts != [6000.0, 3000.0, 1000.0]  # noisy
    # A sampler's codes: shares off by 10 points, plus rows on other (3) and null (4), and the public column.
    rng = np.random.default_rng(0)
    index = {v: i for i, v in enumerate(col.categories)}
    drawn = [index["a"]] * 5000 + [index["b"]] * 4000 + [index["c"]] * 700 + [3] * 200 + [4] * 100
    codes = np.stack([np.array(drawn), rng.integers(0, 2, len(drawn))], axis=1)
    out = enc.calibrate(codes, np.random.default_rng(1))
    released = np.flatnonzero(codes[:, 0] < 3)
    want = np.asarray(col.counts) / sum(col.counts) * len(released)
    assert np.abs(np.bincount(out[released, 0], minlength=3) - want).max() <= 1.0
    assert (out[codes[:, 0] >= 3, 0] == codes[codes[:, 0] >= 3, 0]).all()  # other and null rows stay
    assert (out[:, 1] == codes[:, 1]).all()  # a public list has no released counts: untouched
    # Only the surplus moves: rows of the short categories keep their values.
    assert (out[codes[:, 0] == index["c"], 0] == index["c"]).all()
    have, got = np.bincount(drawn, minlength=5)[:3], np.bincount(out[released, 0], minlength=3)
    assert (codes[:, 0] != out[:, 0]).sum() == np.clip(have - got, 0, None).sum()
