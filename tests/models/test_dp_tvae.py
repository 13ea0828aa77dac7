"""DP-TVAE: privacy units (Poisson sampling, spent <= target, no rows in artifacts), function, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from synthgen.errors import ModelError, PrivacyError, SpecError
from synthgen.models import Progress, Synthesizer, make_synthesizer, resolve_device
from synthgen.models import encoding as encoding_module
from synthgen.models.settings import ModelSettings
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnSchema, TableSchema

from .conftest import numbers_near

FAST = {"epochs": 3, "batch_size": 256, "hidden_dim": 32, "latent_dim": 4, "learning_rate": 1e-2}


def _fit(frame, schema, *, privacy: PrivacySettings, **model: object) -> Synthesizer:
    settings = ModelSettings(**{**FAST, **model})  # type: ignore[arg-type]
    return make_synthesizer("dp_tvae", schema=schema, model=settings, privacy=privacy).fit(frame)


@pytest.fixture(scope="module")
def fitted_dp(small_frame, small_schema) -> Synthesizer:
    """One DP fit shared by the read-only tests below."""
    return _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, delta=1e-5, accountant="rdp"))


def test_spent_epsilon_is_at_most_the_target_and_split_is_recorded(fitted_dp) -> None:
    rec = fitted_dp.privacy_record_
    assert rec.dp is True
    assert rec.spent_epsilon <= rec.target_epsilon
    assert rec.spent_epsilon == pytest.approx(sum(m.epsilon for m in rec.mechanisms))
    assert rec.preprocessing_epsilon > 0 and rec.training_epsilon > 0
    steps = {m.step for m in rec.mechanisms}
    assert steps == {"preprocessing", "training"}
    assert rec.spent_delta <= rec.target_delta * (1 + 1e-9)
    assert rec.target_delta <= 1e-5
    assert rec.noise_multiplier is not None and rec.noise_multiplier > 0


def test_delta_follows_the_one_over_ten_n_rule_by_default(small_frame, small_schema) -> None:
    s = _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, accountant="rdp"), epochs=1)
    # n = 2000: the rule gives 1/(10 n) = 5e-5; the DP count's upper bound makes it a little smaller.
    assert s.privacy_record_.target_delta < 5e-5
    assert s.privacy_record_.target_delta > 2e-5


def test_training_uses_opacus_poisson_sampling(small_frame, small_schema, monkeypatch) -> None:
    import opacus.data_loader

    seen: list[float] = []
    original = opacus.data_loader.DPDataLoader.__init__

    def spy(self, dataset, *, sample_rate, **kw):  # type: ignore[no-untyped-def]
        seen.append(sample_rate)
        original(self, dataset, sample_rate=sample_rate, **kw)

    monkeypatch.setattr(opacus.data_loader.DPDataLoader, "__init__", spy)
    s = _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, accountant="rdp"), epochs=1)
    assert len(seen) == 1 and 0.1 < seen[0] < 0.15  # 256 / ~2000
    # The accountant is charged at 1/int(1/q) >= q.
    assert s.privacy_record_.sample_rate >= seen[0]


def test_dp_fit_reads_no_raw_statistic(small_frame, small_schema, monkeypatch) -> None:
    def spy(*_a: object, **_k: object) -> None:
        raise AssertionError("raw statistic requested in DP mode")

    monkeypatch.setattr(encoding_module, "_raw_quantiles", spy)
    monkeypatch.setattr(encoding_module, "_raw_categories", spy)
    s = _fit(small_frame, small_schema, privacy=PrivacySettings(epsilon=2.0, accountant="rdp"), epochs=1)
    assert s.privacy_record_.dp


def test_saved_artifacts_hold_no_training_row(small_frame, small_schema, tmp_path: Path) -> None:
    canary_cat = "CANARY-7f3a9c"
    canary_num = 987654.321
    frame = small_frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit(canary_cat)).otherwise(pl.col("x")).alias("x"),
        pl.when(pl.int_range(pl.len()) == 5)
        .then(pl.lit(canary_num))
        .otherwise(pl.col("score"))
        .alias("score"),
    )
    schema = TableSchema(
        columns=[
            c if c.name != "score" else ColumnSchema(name="score", type="numeric")
            for c in small_schema.columns
        ]
    )
    s = _fit(frame, schema, privacy=PrivacySettings(epsilon=2.0, accountant="rdp"), epochs=1)
    s.save(tmp_path)
    blob = b"".join(p.read_bytes() for p in sorted(tmp_path.rglob("*")) if p.is_file())
    assert canary_cat.encode() not in blob
    assert not numbers_near(blob, canary_num)
    assert not list(tmp_path.glob("*.pkl"))


def test_save_and_load_round_trip_gives_the_same_samples(fitted_dp, tmp_path: Path) -> None:
    fitted_dp.save(tmp_path / "m")
    loaded = Synthesizer.load(tmp_path / "m")
    assert loaded.privacy_record_ == fitted_dp.privacy_record_
    assert loaded.sample(300, seed=4).equals(fitted_dp.sample(300, seed=4))


def test_same_seed_same_rows_and_other_seed_other_rows(fitted_dp) -> None:
    a = fitted_dp.sample(500, seed=11)
    assert a.equals(fitted_dp.sample(500, seed=11))
    assert not a.equals(fitted_dp.sample(500, seed=12))
    assert a.columns == ["x", "y", "age", "flag", "when", "score"]
    assert (
        a.schema["flag"] == pl.Boolean
        and a.schema["age"] == pl.Int64
        and a.schema["when"] == pl.Datetime("us")
    )


def test_sample_batches_bound_the_batch_size(fitted_dp) -> None:
    sizes = [f.height for f in fitted_dp.sample_batches(1050, seed=1, batch_rows=400)]
    assert sizes == [400, 400, 250]


def test_correlation_is_recovered_at_large_epsilon(small_frame, small_schema) -> None:
    s = _fit(
        small_frame,
        small_schema,
        privacy=PrivacySettings(epsilon=20.0, accountant="rdp"),
        epochs=15,
        batch_size=200,
    )
    syn = s.sample(3000, seed=0)
    agree = (syn["x"] == syn["y"]).mean()
    assert agree is not None and agree > 0.75  # independent columns would give ~0.38
    means = syn.group_by("x").agg(pl.col("age").mean()).sort("x")
    a = means.filter(pl.col("x") == "a")["age"][0]
    b = means.filter(pl.col("x") == "b")["age"][0]
    assert a < b - 15  # age depends on x (20 vs 60)


def test_non_dp_mode_trains_the_same_model_and_says_dp_false(small_frame, small_schema) -> None:
    progress: list[Progress] = []
    settings = ModelSettings(**{**FAST, "epochs": 2})  # type: ignore[arg-type]
    s = make_synthesizer("dp_tvae", schema=small_schema, model=settings, privacy=PrivacySettings(dp=False))
    s.fit(small_frame, progress=progress.append)
    assert s.privacy_record_.dp is False and s.privacy_record_.mechanisms == []
    assert [p.epoch for p in progress] == [1, 2] and all(p.epsilon is None for p in progress)
    assert s.sample(10, seed=0).height == 10


def test_progress_reports_growing_epsilon(small_frame, small_schema) -> None:
    progress: list[Progress] = []
    settings = ModelSettings(**{**FAST, "epochs": 2})  # type: ignore[arg-type]
    s = make_synthesizer(
        "dp_tvae", schema=small_schema, model=settings, privacy=PrivacySettings(epsilon=2.0, accountant="rdp")
    )
    s.fit(small_frame, progress=progress.append)
    eps = [p.epsilon for p in progress]
    assert eps[0] is not None and eps[1] is not None and 0 < eps[0] < eps[1] <= 2.0


def test_duplicates_are_counted_and_optionally_dropped(small_frame, small_schema) -> None:
    frame = pl.concat([small_frame, small_frame.head(30)])
    s = _fit(frame, small_schema, privacy=PrivacySettings(dp=False), epochs=1, drop_duplicates=True)
    assert s.duplicates_ == 30


def test_duplicate_count_by_hash_equals_the_count_of_distinct_rows() -> None:
    from synthgen.models.base import count_duplicates

    nan2 = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), dtype=np.float64)[0]
    frames = [
        pl.DataFrame({"x": [0.0, -0.0, float("nan"), float("nan"), None, None, nan2, 1.5]}),
        pl.DataFrame({"s": ["", None, "", None, "a"], "b": [True, None, True, None, False]}),
        pl.DataFrame({"a": ["ab", "a", "ab"], "b": ["c", "bc", "c"]}),
        pl.DataFrame({"x": []}, schema={"x": pl.Int64}),
        pl.DataFrame(height=5),  # type: ignore[call-arg]
    ]
    for frame in frames:
        assert count_duplicates(frame) == frame.height - frame.unique().height


def test_dp_fit_trains_on_int8_codes_and_keeps_no_offsets(small_frame, small_schema) -> None:
    synth = make_synthesizer(
        "dp_tvae",
        schema=small_schema,
        model=ModelSettings(**FAST),  # type: ignore[arg-type]
        privacy=PrivacySettings(epsilon=2.0, accountant="rdp"),
    )
    prep = synth._prepare(small_frame)
    assert prep.codes.dtype == np.int8 and prep.offsets is None
    codes, _ = prep.encoder.encode(small_frame.select(prep.encoder.names), synth._tabular_schema())
    assert np.array_equal(prep.codes, codes)


def test_dataset_smaller_than_the_batch_is_refused(small_frame, small_schema) -> None:
    with pytest.raises(ModelError, match="batch_size"):
        _fit(small_frame.head(100), small_schema, privacy=PrivacySettings(epsilon=2.0), batch_size=1000)


def test_unset_batch_size_fits_small_data_from_the_dp_count(small_frame, small_schema) -> None:
    from synthgen.models.base import batch_size_for

    assert batch_size_for(None, 100_000) == 1024 and batch_size_for(None, 600.4) == 150
    assert batch_size_for(64, 100_000) == 64 and batch_size_for(None, 3) == 2
    small = small_frame.head(600)
    s = _fit(small, small_schema, privacy=PrivacySettings(epsilon=5.0, accountant="rdp"), batch_size=None)
    rec = s.privacy_record_
    # A quarter of the DP row count: its Laplace noise has scale ~18 rows at this epsilon,
    # so 600 +- 200 rows fails with probability ~1e-5.
    assert rec.expected_batch_size is not None and 100 <= rec.expected_batch_size <= 200
    assert s.sample(50, seed=0).height == 50
    plain = _fit(small, small_schema, privacy=PrivacySettings(dp=False), batch_size=None, epochs=1)
    assert plain.sample(50, seed=0).height == 50


def test_a_column_whose_dp_discovery_keeps_nothing_is_reported(
    small_frame, small_schema, monkeypatch
) -> None:
    # x's three values (~1,000, 600, 400 rows) against a tiny preprocessing budget: no value
    # clears the discovery threshold, so every synthetic x is "other"; the encoder says so.
    # At this budget the DP row count's noise has scale ~1,000, so with OS-entropy noise about
    # 1 fit in 11 counts fewer rows than one batch (CI hit it); a fixed noise seed keeps the
    # test about the encoder rather than about the draw.
    import synthgen.models.base as base_module

    monkeypatch.setattr(base_module, "noise_rng", lambda: np.random.default_rng(1))
    schema = TableSchema(
        columns=[
            c.model_copy(update={"bounds": (0.0, 100.0)}) if c.name == "age" else c
            for c in small_schema.columns
        ]
    )
    s = _fit(
        small_frame,
        schema,
        privacy=PrivacySettings(epsilon=1.0, preprocessing_share=0.01, accountant="rdp"),
        epochs=1,
    )
    assert s.encoder_ is not None and s.encoder_.all_other == ["x"]
    assert set(s.sample(100, seed=0)["x"].drop_nulls()) <= {"other"}


def test_entity_key_is_refused_under_record_level_dp(small_frame, small_schema) -> None:
    with pytest.raises(PrivacyError, match="entity_key"):
        _fit(small_frame, small_schema, privacy=PrivacySettings(entity_key="x"))


def test_unknown_device_and_missing_cuda_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="unknown device"):
        resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in ("cpu", "cuda")


def test_unknown_model_kind_is_a_spec_error(small_schema) -> None:
    with pytest.raises(SpecError, match="unknown model kind"):
        make_synthesizer("gan9000", schema=small_schema, model=ModelSettings(), privacy=PrivacySettings())


def test_constant_column_is_refused_without_dp_and_modelled_under_dp(small_frame, small_schema) -> None:
    # The refusal reads the raw column: under DP it would be an uncharged bit, so it goes.
    frame = small_frame.with_columns(pl.lit("k").alias("x"))
    with pytest.raises(ModelError, match="constant"):
        _fit(frame, small_schema, privacy=PrivacySettings(dp=False))
    _fit(frame, small_schema, privacy=PrivacySettings(epsilon=2.0))


def test_sampled_values_stay_inside_public_bounds(fitted_dp) -> None:
    syn = fitted_dp.sample(2000, seed=3)
    assert syn["score"].min() >= 0.0 and syn["score"].max() <= 10.0
    assert set(syn["y"].drop_nulls().unique().to_list()) <= {"a", "b", "c", "other"}
    assert np.isfinite(syn["score"].drop_nulls().to_numpy()).all()


def test_fast_sampler_heads_equal_the_trained_heads_on_one_hot_context() -> None:
    """The sampler's embedding-sum form of each head is the same function as the head itself."""
    import torch

    from synthgen.models.dp_tvae import AutoregressiveVAE

    torch.manual_seed(0)
    net = AutoregressiveVAE([3, 5, 2, 4], latent_dim=3, hidden_dim=16).eval()
    n = 64
    codes = torch.stack([torch.randint(0, c, (n,)) for c in net.cardinalities], dim=1)
    z = torch.randn(n, 3)
    ctx = torch.cat([torch.ones(n, 1), z, net.one_hot(codes)], dim=1)
    index, weight = net.sampling_slots(n, "cpu")
    weight[:, 1:4] = z
    index[:, 4:] += codes
    tables = net.sampling_tables()
    base = 1 + net.latent_dim
    with torch.no_grad():
        for j, head in enumerate(net.heads):
            expected = head(ctx[:, : base + net.offsets[j]])
            got = net.head_logits(j, tables, index, weight)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_fast_sampler_draws_from_the_heads_distribution() -> None:
    """Without a latent, column 0's draws follow softmax(head 0), column 1's its conditional."""
    import torch

    from synthgen.models.dp_tvae import AutoregressiveVAE

    torch.manual_seed(1)
    net = AutoregressiveVAE([3, 4], latent_dim=0, hidden_dim=8).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0)  # uneven distributions
        n = 200_000
        gen = torch.Generator().manual_seed(0)
        codes = net.sample_codes(n, generator=gen, device="cpu", chunk_rows=30_000)
        p0 = torch.softmax(net.heads[0](torch.ones(1, 1)), dim=1)[0]
        emp0 = torch.bincount(codes[:, 0], minlength=3).double() / n
        assert torch.allclose(emp0, p0.double(), atol=5 * (0.25 / n) ** 0.5)
        checked = 0
        for k in range(3):
            rows = codes[codes[:, 0] == k, 1]
            if rows.numel() < 5000:
                continue
            checked += 1
            ctx = torch.cat([torch.ones(1, 1), torch.nn.functional.one_hot(torch.tensor([k]), 3).float()], 1)
            p1 = torch.softmax(net.heads[1](ctx), dim=1)[0]
            emp1 = torch.bincount(rows, minlength=4).double() / rows.numel()
            # Five standard errors of a proportion estimated from these rows.
            assert torch.allclose(emp1, p1.double(), atol=5 * (0.25 / rows.numel()) ** 0.5)
        assert checked >= 2


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_an_empty_poisson_batch_takes_a_charged_noise_step(mode: str) -> None:
    import torch
    from opacus import PrivacyEngine
    from opacus.data_loader import DPDataLoader
    from torch.utils.data import TensorDataset

    from synthgen.models.dp_tvae import AutoregressiveVAE, _PerSampleLoss, noise_step

    net = AutoregressiveVAE([2, 3], latent_dim=2, hidden_dim=8)
    engine = PrivacyEngine(accountant="rdp")
    kwargs = dict(
        module=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
        data_loader=DPDataLoader(TensorDataset(torch.zeros(20, 2, dtype=torch.long)), sample_rate=0.5),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode=mode,
    )
    if mode == "ghost":
        model, opt, _, _ = engine.make_private(criterion=_PerSampleLoss(), **kwargs)
    else:
        model, opt, _ = engine.make_private(**kwargs)
    before = [p.detach().clone() for p in model.parameters()]
    noise_step(model, opt, ghost=mode == "ghost")
    assert engine.accountant.history == [(1.0, 0.5, 1)]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_no_null_is_sampled_in_a_column_whose_dp_histogram_counted_none(fitted_dp, small_frame) -> None:
    # x, when and score hold no null; their DP histograms (the same ones that fit the bins and
    # categories, no extra charge) counted none above the noise, so the sampler never draws one.
    # (age's 2% nulls, 40 rows, are under that level at this budget: sigma ~25 rows.)
    enc = fitted_dp.encoder_
    emits = {c.name: c.emit_null for c in enc.columns}
    assert emits["x"] is False and emits["when"] is False and emits["score"] is False
    assert emits["y"] is True and emits["flag"] is True  # public list, boolean: no histogram, no count
    syn = fitted_dp.sample(20_000, seed=1)
    assert syn["x"].null_count() == 0 and syn["when"].null_count() == 0 and syn["score"].null_count() == 0
