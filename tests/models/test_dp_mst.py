"""DP-MST: the privacy record sums to the spent epsilon, no row in the artifact, function, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synthgen.errors import ModelError, PrivacyError
from synthgen.models import Synthesizer, make_synthesizer
from synthgen.models import encoding as encoding_module
from synthgen.models.settings import ModelSettings
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnSchema, TableSchema

from .conftest import numbers_near


def _fit(frame, schema, *, privacy: PrivacySettings, **model: object) -> Synthesizer:
    settings = ModelSettings(kind="dp_mst", **model)  # type: ignore[arg-type]
    return make_synthesizer("dp_mst", schema=schema, model=settings, privacy=privacy).fit(frame)


@pytest.fixture(scope="module")
def fitted(small_frame, small_schema) -> Synthesizer:
    return _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, delta=1e-5))


def test_privacy_record_lists_every_marginal_and_sums_to_the_spent_epsilon(fitted, small_schema) -> None:
    rec = fitted.privacy_record_
    assert rec.dp and rec.accountant == "zcdp"
    assert rec.spent_epsilon == pytest.approx(sum(m.epsilon for m in rec.mechanisms), rel=1e-12)
    assert rec.spent_delta == pytest.approx(sum(m.delta for m in rec.mechanisms), rel=1e-12)
    assert rec.spent_epsilon <= rec.target_epsilon * (1 + 1e-9)
    assert rec.spent_epsilon > 0.99 * rec.target_epsilon  # the budget is used, not wasted
    assert rec.spent_delta <= rec.target_delta * (1 + 1e-9)
    marginals = [m.column for m in rec.mechanisms if m.mechanism == "gaussian_marginal_zcdp"]
    names = [c.name for c in small_schema.columns]
    d = len(names)
    assert sorted(c for c in marginals if " x " not in c) == sorted(names)  # every 1-way
    pairs = [c for c in marginals if " x " in c]
    assert len(pairs) == d - 1  # a spanning tree's edges
    assert pairs == [f"{names[i]} x {names[j]}" for i, j in fitted.measurements_.edges]
    assert sum(m.mechanism == "exponential_tree_selection_zcdp" for m in rec.mechanisms) == 1


def test_saved_artifact_holds_no_training_row(small_frame, small_schema, tmp_path: Path) -> None:
    canary_cat = "CANARY-7f3a9c"
    frame = small_frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(canary_cat)).otherwise(pl.col("x")).alias("x"),
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit(987654.321))
        .otherwise(pl.col("score"))
        .alias("score"),
    )
    schema = TableSchema(
        columns=[
            c if c.name != "score" else ColumnSchema(name="score", type="numeric")
            for c in small_schema.columns
        ]
    )
    s = _fit(frame, schema, privacy=PrivacySettings(epsilon=2.0))
    s.save(tmp_path)
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert {p.name for p in files} == {"config.json", "privacy.json", "encoding.json", "marginals.json"}
    blob = b"".join(p.read_bytes() for p in files)
    assert canary_cat.encode() not in blob
    assert not numbers_near(blob, 987654.321)
    # The state is noisy tables only: integer counts plus exact discrete Gaussian noise
    # (no floating-point draw), not the data's counts.
    exact = frame["x"].value_counts()["count"].to_list()
    one_way_x = s.measurements_.one_way[0]
    assert all(float(v).is_integer() for v in one_way_x)
    assert set(np.round(one_way_x).astype(int)) != set(exact)


def test_a_planted_strong_relationship_is_kept_on_a_small_table(small_frame, small_schema) -> None:
    s = _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0))
    syn = s.sample(4000, seed=0)
    agree = (syn["x"] == syn["y"]).mean()
    assert agree is not None and agree > 0.8  # real: ~0.96; independent columns: ~0.38
    means = syn.drop_nulls("age").group_by("x").agg(pl.col("age").mean())
    a = means.filter(pl.col("x") == "a")["age"][0]
    b = means.filter(pl.col("x") == "b")["age"][0]
    assert a < b - 20  # real: 20 vs 60


def test_dp_fit_reads_no_raw_statistic(small_frame, small_schema, monkeypatch) -> None:
    def spy(*_a: object, **_k: object) -> None:
        raise AssertionError("raw statistic requested in DP mode")

    monkeypatch.setattr(encoding_module, "_raw_quantiles", spy)
    monkeypatch.setattr(encoding_module, "_raw_categories", spy)
    assert _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0)).privacy_record_.dp


def test_save_load_round_trip_and_seeds(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path)
    loaded = Synthesizer.load(tmp_path)
    assert loaded.sample(500, seed=3).equals(fitted.sample(500, seed=3))
    assert not fitted.sample(500, seed=4).equals(fitted.sample(500, seed=3))
    assert sum(f.height for f in fitted.sample_batches(1000, seed=1, batch_rows=300)) == 1000


def test_non_dp_mode_says_dp_false_and_keeps_the_relationship(small_frame, small_schema) -> None:
    s = _fit(small_frame, small_schema, privacy=PrivacySettings(dp=False))
    assert s.privacy_record_.dp is False
    syn = s.sample(3000, seed=0)
    assert (syn["x"] == syn["y"]).mean() > 0.9


def test_a_table_too_small_for_epsilon_names_what_would_work(small_frame) -> None:
    tiny = small_frame.head(60)
    schema_public = TableSchema(
        columns=[
            ColumnSchema(name="x", type="categorical", categories=["a", "b", "c"]),
            ColumnSchema(name="y", type="categorical", categories=["a", "b", "c"]),
        ]
    )
    s = make_synthesizer(
        "dp_mst",
        schema=schema_public,
        model=ModelSettings(kind="dp_mst"),
        privacy=PrivacySettings(epsilon=0.5, delta=1e-5, preprocessing_share=0.5),
    )
    msg = r"raise privacy\.epsilon to at least [0-9.]+, or give at least \d+ rows"
    with pytest.raises(ModelError, match=msg) as err:
        s.fit(tiny)
    assert "\n" not in str(err.value)
    # Only the preprocessing ran: the failed run is charged that much, not the whole epsilon.
    assert 0 < s.released_epsilon_ < 0.5


def test_a_marginal_over_the_memory_budget_is_refused_before_any_dp_mechanism(
    small_frame, small_schema, monkeypatch
) -> None:
    def spy(*_a: object, **_k: object) -> None:
        raise AssertionError("a DP mechanism ran")

    monkeypatch.setattr("synthgen.models.base.laplace_count", spy)
    with pytest.raises(ModelError, match=r"coarsen 'x'.*model\.max_marginal_cells"):
        _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0), max_marginal_cells=1000)


def test_a_public_category_list_never_gets_other(small_frame, small_schema) -> None:
    # y's list is public; a real row outside it is still encoded, but never sampled back.
    frame = small_frame.with_columns(
        pl.when(pl.int_range(pl.len()) < 30).then(pl.lit("zzz")).otherwise(pl.col("y")).alias("y")
    )
    for kind in ("dp_mst", "dp_tvae"):
        extra = {"epochs": 1, "batch_size": 256} if kind == "dp_tvae" else {}
        s = make_synthesizer(
            kind,
            schema=small_schema,
            model=ModelSettings(kind=kind, **extra),  # type: ignore[arg-type]
            privacy=PrivacySettings(epsilon=2.0),
        ).fit(frame)
        assert set(s.sample(3000, seed=0)["y"].drop_nulls().unique()) <= {"a", "b", "c"}, kind


def test_an_integer_spike_whose_tail_is_under_the_noise_stays_a_spike() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    gain = np.where(rng.random(n) < 0.93, 0, rng.integers(100, 99_999, n))  # zeros and a thin tail
    frame = pl.DataFrame({"gain": gain, "g": rng.choice(["u", "v"], n)})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="gain", type="numeric", integer=True, nullable=False),
            ColumnSchema(name="g", type="categorical", categories=["u", "v"], nullable=False),
        ]
    )
    s = _fit(frame, schema, privacy=PrivacySettings(epsilon=0.3))
    syn = s.sample(4000, seed=0)
    assert syn["gain"].dtype == pl.Int64
    zeros = float((syn["gain"] == 0).mean())
    assert zeros > 0.85  # before the fix a lost tail made it 0 or 1, half and half
    code = s.encoder_.columns[0]
    one_value = len(code.categories) == 1 if code.kind == "categorical" else code.edges[0] == code.edges[-1]
    if one_value:
        assert any("'gain'" in w for w in s.encoder_.collapsed)


@pytest.fixture(scope="module")
def credit() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A 3,000-row credit-like table, types inferred as a new user gets them, and a DP-MST sample."""
    from synthgen.demo.tables import credit_like
    from synthgen.sources import infer_schema

    real = credit_like(3000, seed=11).drop("client id")
    s = _fit(real, infer_schema(real), privacy=PrivacySettings(epsilon=2.0))
    return real, s.sample(3000, seed=0)


def test_a_zero_one_target_and_small_integer_codes_yield_only_values_of_their_range(credit) -> None:
    real, syn = credit
    assert set(syn["default.next"].drop_nulls().unique()) <= {0, 1}  # was 2 in 10% of rows
    assert abs(float(syn["default.next"].mean()) - float(real["default.next"].mean())) < 0.08
    assert set(syn["SEX"].drop_nulls().unique()) <= {1, 2}
    # EDUCATION holds 0-6 (4-6 rare): before, its bins reached 9 and 7-9 held 5% of rows.
    assert set(syn["EDUCATION"].drop_nulls().unique()) <= {0, 1, 2, 3, 4, 5, 6}
    assert set(syn["PAY_0"].drop_nulls().unique()) <= set(range(-2, 9))
    for c in ("SEX", "EDUCATION", "MARRIAGE", "default.next"):
        assert syn[c].dtype == pl.Int64, c


def test_a_column_without_nulls_yields_almost_none_and_a_real_null_rate_is_kept(credit) -> None:
    real, syn = credit
    for c in real.columns:
        if c != "income":
            assert syn[c].null_count() / syn.height < 0.005, c  # SEX was 4.9% null
    real_rate = real["income"].null_count() / real.height  # 6%
    # 4.1-6.1% over 10 fits; 1.1-8.3% before the edge tables were fitted to the node marginals.
    assert abs(syn["income"].null_count() / syn.height - real_rate) < 0.025


def test_exact_zeros_of_an_amount_stay_exact_zeros(credit) -> None:
    real, syn = credit
    for c in ("PAY_AMT1", "PAY_AMT2"):  # 27% and 20% exact zeros, then a long tail
        real_zeros = float((real[c] == 0).mean())
        zeros = float((syn[c] == 0).mean())
        assert abs(zeros - real_zeros) < 0.1, c  # was 0: zeros came out as 0.0003
        tiny = syn[c].filter((syn[c] > 0) & (syn[c] < 1)).len() / syn.height
        assert tiny < 0.01, c


def _undeclared_table(n: int, seed: int) -> pl.DataFrame:
    """16 columns nothing is declared for: a zero-inflated heavy-tailed amount, a 40-value long-tail
    categorical, integer codes, and fillers (a new user's table, wide enough to split the budget)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 41) ** 1.3
    cols: dict[str, object] = {
        "amount": np.where(rng.random(n) < 0.9, 0, np.round(rng.lognormal(8.0, 1.1, n))).astype(np.int64),
        "country": np.array([f"c{i}" for i in range(40)])[rng.choice(40, size=n, p=p / p.sum())],
        "code": rng.choice([1, 2, 3, 4], size=n, p=[0.5, 0.3, 0.15, 0.05]),
    }
    for i in range(7):
        cols[f"x{i}"] = np.round(rng.normal(50 + i, 10, n), 2)
        cols[f"k{i}"] = rng.choice(["a", "b", "c", "d", "e"], size=n)
    return pl.DataFrame(cols)


def test_undeclared_table_keeps_zero_share_heavy_categories_and_no_invented_nulls() -> None:
    from synthgen.sources import infer_schema

    real = _undeclared_table(10_000, seed=4)
    schema = infer_schema(real)
    m = _fit(real, schema, privacy=PrivacySettings(epsilon=3.0))
    syn = m.sample(10_000, seed=0)
    zero_real = float((real["amount"] == 0).mean())
    zero_syn = float((syn["amount"] == 0).mean())
    assert abs(zero_syn - zero_real) <= 0.05
    assert float((syn["amount"] > 2 * np.quantile(real["amount"].to_numpy(), 0.95)).mean()) > 0.005  # a tail
    share = real["country"].value_counts(normalize=True)
    heavy = [v for v, s in zip(share["country"], share["proportion"], strict=True) if s >= 0.02]
    kept = syn.filter(pl.col("country").is_in(heavy))["country"].n_unique()
    assert len(heavy) >= 8 and kept == len(heavy)
    assert all(syn[c].null_count() == 0 for c in real.columns)  # no column has a null in the data
    rec = m.privacy_record_
    assert rec.spent_epsilon == pytest.approx(sum(e.epsilon for e in rec.mechanisms), rel=1e-12)
    assert rec.spent_epsilon <= 3.0 * (1 + 1e-9) and rec.spent_delta <= rec.target_delta * (1 + 1e-9)


def test_a_fit_whose_dp_columns_miscount_the_histograms_is_refused(
    small_frame, small_schema, monkeypatch
) -> None:
    # The Gaussian histograms' sigma is sized for dp_columns() of them: one more than counted
    # would spend a column's rho that no entry of the record or the ledger charges.
    real = Synthesizer.dp_columns

    def one_less(self: Synthesizer) -> tuple[int, int, int]:
        n, d, c = real(self)
        return n - 1, d, c

    monkeypatch.setattr(Synthesizer, "dp_columns", one_less)
    with pytest.raises(PrivacyError, match="sized for"):
        _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, delta=1e-5))


def test_sampled_counts_follow_the_model_within_one_row_per_parent_value(fitted) -> None:
    # Stratified draws (one per stratum, in random order): every column's count of each token is
    # n * p within one row per value of its parent; independent draws scattered by sqrt(n p (1-p))
    # (about 40 rows at n 8,000, p 0.2), which was most of the demo's 1-way TVD.
    sampler = fitted.sampler_
    rng = np.random.default_rng(3)
    n = 5_000
    codes = sampler.sample(n, rng)
    root = np.bincount(codes[:, 0], minlength=sampler.cards[0])
    assert np.all(np.abs(root - n * sampler.marginals[0]) <= 1.0), root
    for child, parent, cum in sampler.order:
        for v in np.unique(codes[:, parent]):
            rows = codes[:, parent] == v
            p = np.diff(np.r_[0.0, cum[v]]) / cum[v, -1]
            got = np.bincount(codes[rows, child], minlength=len(p))
            assert np.all(np.abs(got - rows.sum() * p) <= 1.0), (child, v, got, rows.sum() * p)
    # Each row alone still has the model's distribution: a second seed gives other rows.
    assert not np.array_equal(codes, sampler.sample(n, np.random.default_rng(4)))


def test_the_cell_threshold_is_high_for_a_table_of_empty_cells_and_low_for_one_of_small_cells() -> None:
    from synthgen.models.dp_mst import MAX_THRESHOLD, THRESHOLD, cell_threshold

    rng = np.random.default_rng(0)
    sigma = 19.0
    # 8,000 rows on the diagonal of a 21 x 21 table (two amounts that move together): 420 empty
    # cells, whose noise passing one scale would carry about a quarter of the rows.
    diagonal = np.diag(np.full(21, 8_000 / 21)) + rng.normal(0.0, sigma, (21, 21))
    high = cell_threshold(diagonal, sigma)
    assert 2.0 < high <= MAX_THRESHOLD
    passed = np.where(diagonal >= high * sigma, diagonal, 0.0)
    assert passed.sum() - np.trace(passed) < 0.03 * 8_000  # little mass left off the diagonal
    # 8,000 rows spread evenly over 400 cells of 20 each (about one noise scale): no cell is empty,
    # and cutting high would throw real rows away.
    spread = np.full((20, 20), 20.0) + rng.normal(0.0, sigma, (20, 20))
    assert cell_threshold(spread, sigma) < high and cell_threshold(spread, sigma) <= 1.5
    # No noise scale, no cut beyond the floor.
    assert cell_threshold(spread, 0.0) == THRESHOLD


def test_two_near_identical_amounts_keep_their_correlation() -> None:
    # A table of two amounts with a long tail, one a noisy copy of the other (Pearson ~0.99):
    # wide top bins filled independently, and the noise of many empty cells, brought it to ~0.8.
    rng = np.random.default_rng(0)
    n = 8_000
    a = rng.lognormal(10.0, 1.0, n)
    frame = pl.DataFrame({"a": a, "b": a * rng.normal(1.0, 0.03, n), "g": rng.choice(["u", "v"], n)})
    schema = TableSchema(
        columns=[
            ColumnSchema(name="a", type="numeric"),
            ColumnSchema(name="b", type="numeric"),
            ColumnSchema(name="g", type="categorical", categories=["u", "v"]),
        ]
    )
    s = _fit(frame, schema, privacy=PrivacySettings(epsilon=3.0, delta=1e-5))
    syn = s.sample(n, seed=0).drop_nulls(["a", "b"])
    real_r = float(np.corrcoef(frame["a"], frame["b"])[0, 1])
    syn_r = float(np.corrcoef(syn["a"], syn["b"])[0, 1])
    assert real_r > 0.98 and syn_r > 0.93, syn_r
    # The coupling moves values within their bins only: the tokens are the sampler's.
    assert s.sampler_.coupling and all(abs(r) <= 1.0 for r in s.sampler_.coupling.values())


def _lab_panel(n: int, seed: int) -> pl.DataFrame:
    """A small numeric table nobody declared: cholesterol and LDL move together (r ~0.88)."""
    rng = np.random.default_rng(seed)
    chol = np.round(190 + 35 * rng.normal(size=n))
    age = np.round(np.clip(50 + 13 * rng.normal(size=n), 19, 80))
    return pl.DataFrame(
        {
            "age": age.astype(np.int64),
            "bp": np.round(75 + 0.35 * age + 10 * rng.normal(size=n)).astype(np.int64),
            "chol": chol.astype(np.int64),
            "ldl": np.round(0.65 * chol - 10 + 12 * rng.normal(size=n), 1),
            "glucose": np.round(np.exp(4.5 + 0.12 * rng.normal(size=n))).astype(np.int64),
            "bmi": np.round(np.exp(3.25 + 0.15 * rng.normal(size=n)), 1),
        }
    )


def test_a_small_numeric_table_keeps_its_strong_pair_through_grouped_edges() -> None:
    # 500 rows at epsilon 3: 20 x 20 bins per edge held about one row per cell under a noise scale
    # of ~9, and the pair (real r 0.88) came out at r 0.19 on average over 48 fits (means of 8 fits:
    # 0.15-0.25); in groups of adjacent bins at 0.51 (sd 0.15 a fit; means of 8: 0.45-0.56).
    from synthgen.sources import infer_schema

    real = _lab_panel(500, seed=3)
    rs = []
    for f in range(8):
        s = _fit(real, infer_schema(real), privacy=PrivacySettings(epsilon=3.0))
        sizes = [int(g.max()) + 1 for g in s.measurements_.group_maps()]
        assert max(sizes) < min(c.tokens for c in s.encoder_.columns)  # every column was grouped
        syn = s.sample(2000, seed=f)
        rs.append(float(np.corrcoef(syn["chol"], syn["ldl"])[0, 1]))
    assert np.mean(rs) >= 0.35, rs  # 3 sd of a mean of 8 below 0.51; the ungrouped mean is 0.19


def test_edge_groups_join_adjacent_bins_only_where_the_noise_needs_it(fitted) -> None:
    from synthgen.models.dp_mst import edge_groups

    enc = fitted.encoder_
    big = edge_groups(enc, 1e7, 5.0)
    assert all(np.array_equal(g, np.arange(c.tokens)) for g, c in zip(big, enc.columns, strict=True))
    assert all(
        np.array_equal(g, np.arange(c.tokens))
        for g, c in zip(edge_groups(enc, 50, None), enc.columns, strict=True)
    )
    small = edge_groups(enc, 400, 10.0)  # sqrt(400 / 20): 4 groups of each ordered column
    for g, c in zip(small, enc.columns, strict=True):
        if isinstance(c, encoding_module.NumericCode):
            head = g[: c.bins]
            assert head.max() == 3 and np.all(np.diff(head) >= 0)  # adjacent bins, in order
            assert list(g[c.bins :]) == list(range(4, 4 + c.tokens - c.bins))  # spikes, null: their own
        elif c.dtype != "int":
            assert np.array_equal(g, np.arange(c.tokens))  # unordered categories are never joined


def test_an_artifact_without_groups_loads_with_one_group_per_token(
    small_frame, small_schema, tmp_path
) -> None:
    import json

    from synthgen.models.dp_mst import STATE_FILE

    s = _fit(small_frame, small_schema, privacy=PrivacySettings(dp=False))  # exact tables: no groups
    s.save(tmp_path)
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["groups"] == [list(range(c)) for c in state["cards"]]
    del state["groups"]  # as written before edge tables had groups
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    loaded = Synthesizer.load(tmp_path)
    assert loaded.measurements_.groups is None
    assert loaded.sample(500, seed=3).equals(s.sample(500, seed=3))
