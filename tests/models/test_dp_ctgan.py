"""DP-CTGAN: the privacy contract (P3-P5) and the synthesizer's behaviour, on small data."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from pydantic import ValidationError
from torch.func import functional_call, grad, vmap
from torch.utils.data import TensorDataset

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.base import Progress, Synthesizer
from synthgen.models.dp_ctgan import (
    DPCTGAN,
    Block,
    CondSampler,
    CTGANConfig,
    DPPlan,
    Generator,
    calibrate_with_prior,
    history_epsilon,
    make_discriminator,
)
from synthgen.models.dp_ctgan import training as mod
from synthgen.models.settings import ModelSettings
from synthgen.privacy.settings import PrivacySettings
from synthgen.schema import ColumnSchema, ColumnType, TableSchema

SMALL = CTGANConfig(embedding_dim=16, generator_dims=(32,), discriminator_dims=(32,))


def _frame(n: int = 800, seed: int = 0) -> pl.DataFrame:
    """Two strongly linked categoricals and a numeric that depends on them."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2])
    b = np.where(rng.random(n) < 0.9, np.char.add("b_", a), "b_other")
    v = np.where(a == "x", 10, 50) + rng.integers(0, 5, size=n)
    return pl.DataFrame({"a": a, "b": b, "v": v})


SCHEMA = TableSchema(
    columns=[
        ColumnSchema(name="a", type=ColumnType.categorical),
        ColumnSchema(name="b", type=ColumnType.categorical),
        ColumnSchema(name="v", type=ColumnType.numeric, integer=True),
    ]
)


def _synth(
    *,
    dp: bool = True,
    epsilon: float = 3.0,
    epochs: int = 2,
    batch: int = 100,
    accountant: str = "rdp",
    **cfg: object,
) -> DPCTGAN:
    model = ModelSettings(kind="dp_ctgan", epochs=epochs, batch_size=batch, device="cpu", numeric_bins=5)
    privacy = PrivacySettings(dp=dp, epsilon=epsilon, delta=1e-5, accountant=accountant)  # type: ignore[arg-type]
    config = CTGANConfig(**{**SMALL.to_json(), "generator_dims": (32,), "discriminator_dims": (32,), **cfg})
    return DPCTGAN(schema=SCHEMA, model=model, privacy=privacy, config=config)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny networks: one thread is as fast, and far faster on a shared, busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


PROGRESS: list[Progress] = []


@pytest.fixture(scope="module")
def fitted_dp() -> DPCTGAN:
    return _synth(dp=True, epochs=2, accountant="prv").fit(_frame(), progress=PROGRESS.append)


# -- P4: pac ------------------------------------------------------------------------------


def test_pac_is_forced_to_one_under_dp() -> None:
    s = _synth(dp=True, epochs=1, pac=10).fit(_frame())
    assert s.config.pac == 10  # what was asked
    assert s.pac_ == 1  # what was used


def test_pac_is_kept_without_dp() -> None:
    s = _synth(dp=False, epochs=1, pac=4).fit(_frame())
    assert s.pac_ == 4
    assert s.privacy_record_ is not None and s.privacy_record_.dp is False


# -- P4: the discriminator's gradient is exactly the clipped per-pair gradient ---------------


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_discriminator_update_is_exactly_the_mean_of_clipped_per_pair_gradients(mode: str) -> None:
    """With zero noise, Opacus's gradient must equal sum_i clip(grad of pair loss i) / expected batch.

    Any loss term outside the per-pair loss (a gradient penalty, a regulariser) would
    make the two differ.
    """
    torch.manual_seed(0)
    d = 6
    blocks = [Block(0, 3, "softmax"), Block(3, 2, "softmax"), Block(5, 1, "sigmoid")]
    cond = CondSampler(blocks[:2], [[0.5, 0.3, 0.2], [0.5, 0.5]])
    config = CTGANConfig(embedding_dim=4, generator_dims=(8,), discriminator_dims=(8,), dropout=0.0)
    generator = Generator(4 + cond.width, (8,), d)
    critic = make_discriminator(d, (8,), 0.0)
    plain = copy.deepcopy(critic)
    real = torch.rand(40, d)
    engine = PrivacyEngine(accountant="rdp")
    clip = 1e-3  # small: every pair is clipped
    kwargs = dict(
        module=critic,
        optimizer=torch.optim.SGD(critic.parameters(), lr=0.0),
        data_loader=DPDataLoader(TensorDataset(real), sample_rate=0.5),
        noise_multiplier=0.0,
        max_grad_norm=clip,
        poisson_sampling=False,
        grad_sample_mode=mode,
    )
    if mode == "ghost":
        d_module, d_opt, _, _ = engine.make_private(criterion=torch.nn.BCEWithLogitsLoss(), **kwargs)
    else:
        d_module, d_opt, _ = engine.make_private(**kwargs)
    d_opt.expected_batch_size = 20
    seen: list[torch.Tensor] = []
    d_module._module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))

    mod._discriminator_step(
        real, generator, d_module, d_opt, cond, blocks, config, 1, mode == "ghost", torch.device("cpu")
    )

    pairs = seen[0]
    params = {k: v.detach() for k, v in plain.named_parameters()}

    def pair_loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logit = functional_call(plain, p, (x.unsqueeze(0),)).squeeze(-1)[0]
        return F.softplus(-logit[0]) + F.softplus(logit[1])

    per = vmap(grad(pair_loss), in_dims=(None, 0))(params, pairs)
    norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per.values()))
    scale = (clip / (norms + 1e-6)).clamp(max=1.0)
    for name, p in d_module._module.named_parameters():
        expected = (per[name] * scale.view(-1, *[1] * (per[name].dim() - 1))).sum(0) / 20
        assert torch.allclose(p.grad, expected, atol=1e-6), name


def test_generator_step_leaves_the_discriminator_and_accountant_untouched() -> None:
    torch.manual_seed(0)
    blocks = [Block(0, 3, "softmax"), Block(3, 1, "sigmoid")]
    cond = CondSampler(blocks[:1], [[0.2, 0.3, 0.5]])
    config = CTGANConfig(embedding_dim=4, generator_dims=(8,), discriminator_dims=(8,))
    generator = Generator(4 + cond.width, (8,), 4)
    critic = make_discriminator(4, (8,), 0.5)
    twin = copy.deepcopy(critic).requires_grad_(False)
    engine = PrivacyEngine(accountant="rdp")
    d_module, _opt, _, _ = engine.make_private(
        module=critic,
        optimizer=torch.optim.Adam(critic.parameters()),
        criterion=torch.nn.BCEWithLogitsLoss(),
        data_loader=DPDataLoader(TensorDataset(torch.rand(30, 4)), sample_rate=0.5),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode="ghost",
    )
    before = {k: v.detach().clone() for k, v in d_module._module.named_parameters()}
    g_before = [p.detach().clone() for p in generator.parameters()]
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-2)
    mod._generator_step(
        generator, g_opt, twin, mod._critic_params(d_module), cond, blocks, config, 16, 1, torch.device("cpu")
    )
    assert all(p.grad is None for p in d_module.parameters())
    assert engine.accountant.history == []
    for k, v in d_module._module.named_parameters():
        assert torch.equal(v, before[k])
    assert any(not torch.equal(a, b) for a, b in zip(g_before, generator.parameters(), strict=True))


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_empty_poisson_batch_still_releases_a_charged_noise_step(mode: str) -> None:
    torch.manual_seed(0)
    blocks = [Block(0, 2, "softmax")]
    cond = CondSampler(blocks, [[0.5, 0.5]])
    config = CTGANConfig(embedding_dim=4, generator_dims=(8,), discriminator_dims=(8,))
    critic = make_discriminator(2, (8,), 0.0)
    engine = PrivacyEngine(accountant="rdp")
    kwargs = dict(
        module=critic,
        optimizer=torch.optim.SGD(critic.parameters(), lr=1.0),
        data_loader=DPDataLoader(TensorDataset(torch.rand(30, 2)), sample_rate=0.5),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode=mode,
    )
    if mode == "ghost":
        d_module, d_opt, _, _ = engine.make_private(criterion=torch.nn.BCEWithLogitsLoss(), **kwargs)
    else:
        d_module, d_opt, _ = engine.make_private(**kwargs)
    before = [p.detach().clone() for p in d_module.parameters()]
    generator = Generator(4 + 2, (8,), 2)
    cpu = torch.device("cpu")
    loss = mod._discriminator_step(
        torch.zeros(0, 2), generator, d_module, d_opt, cond, blocks, config, 1, mode == "ghost", cpu
    )
    assert loss == 0.0
    assert engine.accountant.history == [(1.0, 0.5, 1)]
    assert any(not torch.equal(a, b) for a, b in zip(before, d_module.parameters(), strict=True))


def _small_private_critic() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A 2-feature critic made private by Opacus (expected batch 4), for single critic steps."""
    critic = make_discriminator(2, (8,), 0.0)
    engine = PrivacyEngine(accountant="rdp")
    d_module, d_opt, _ = engine.make_private(
        module=critic,
        optimizer=torch.optim.SGD(critic.parameters(), lr=1.0),
        data_loader=DPDataLoader(TensorDataset(torch.rand(40, 2)), sample_rate=0.1),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode="hooks",
    )
    return d_module, d_opt


def test_critic_fakes_come_in_chunks_of_the_public_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 12 point 6: BatchNorm couples the fakes of one draw; their number must not be the
    # Poisson batch's size (data-dependent), so each fake row's distribution is data-independent.
    torch.manual_seed(0)
    blocks = [Block(0, 2, "softmax")]
    cond = CondSampler(blocks, [[0.5, 0.5]])
    config = CTGANConfig(embedding_dim=4, generator_dims=(8,), discriminator_dims=(8,))
    d_module, d_opt = _small_private_critic()
    sizes: list[int] = []
    real_fake = mod._fake

    def spy(generator, cond, blocks, n, config, device):  # type: ignore[no-untyped-def]
        sizes.append(n)
        return real_fake(generator, cond, blocks, n, config, device)

    monkeypatch.setattr(mod, "_fake", spy)
    generator = Generator(4 + 2, (8,), 2)
    for b in (3, 9):
        mod._discriminator_step(
            torch.rand(b, 2), generator, d_module, d_opt, cond, blocks, config, 1, False, torch.device("cpu")
        )
    assert set(sizes) == {d_opt.expected_batch_size}


def test_critic_steps_leave_the_generators_batchnorm_statistics_as_they_were() -> None:
    # Issue 12 point 6: the running statistics are saved with the model. Drawn in train mode,
    # every chunk of critic fakes moved them, so their value told the Poisson batch sizes.
    blocks = [Block(0, 2, "softmax")]
    cond = CondSampler(blocks, [[0.5, 0.5]])
    config = CTGANConfig(embedding_dim=4, generator_dims=(8,), discriminator_dims=(8,))
    buffers = []
    for b in (3, 5):
        torch.manual_seed(0)
        d_module, d_opt = _small_private_critic()
        generator = Generator(4 + 2, (8,), 2)
        generator.train()
        before = [t.clone() for t in generator.buffers()]
        assert before, "the generator has BatchNorm buffers"
        mod._discriminator_step(
            torch.rand(b, 2), generator, d_module, d_opt, cond, blocks, config, 1, False, torch.device("cpu")
        )
        after = [t.clone() for t in generator.buffers()]
        assert all(torch.equal(x, y) for x, y in zip(before, after, strict=True))
        buffers.append(after)
    assert all(torch.equal(x, y) for x, y in zip(*buffers, strict=True))


# -- P4/P5: conditional vectors from DP counts, Poisson sampling ------------------------------


def test_conditional_vectors_come_from_dp_counts_charged_to_the_accountant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[list[list[float]]] = []
    real_dp = mod.dp_frequencies

    def spy(*args: object, **kwargs: object) -> list[list[float]]:
        out = real_dp(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(out)
        return out

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("exact frequencies read in DP mode")

    monkeypatch.setattr(mod, "dp_frequencies", spy)
    monkeypatch.setattr(mod, "exact_frequencies", forbidden)
    s = _synth(dp=True, epochs=1).fit(_frame())
    assert len(calls) == 1
    assert s.cond_ is not None and s.cond_.frequencies == calls[0]
    # Every one-hot block is conditionable, and only with the DP frequencies.
    assert len(s.cond_.blocks) == sum(1 for b in s.blocks_ or [] if b.kind == "softmax")
    record = s.privacy_record_
    assert record is not None
    assert any(m.mechanism.endswith("+gaussian_counts") for m in record.mechanisms)


def test_dp_frequencies_add_calibrated_gaussian_noise() -> None:
    data = F.one_hot(torch.tensor([0] * 5000 + [1] * 5000), 2).float()
    blocks = [Block(0, 2, "softmax")]
    draws = [
        mod.dp_frequencies(data, blocks, noise_multiplier=100.0, rng=np.random.default_rng(i))[0][0]
        for i in range(200)
    ]
    # sigma = 100 on a count of 5000 out of ~10000: the frequency's sd is about 0.01.
    assert 0.005 < float(np.std(draws)) < 0.02
    assert abs(float(np.mean(draws)) - 0.5) < 0.005


def test_dp_frequencies_are_whole_noisy_counts_normalised() -> None:
    # No floating-point noise reaches the artifact: each released frequency is (a whole
    # count clamped at 0, plus the public floor) over their sum.
    data = F.one_hot(torch.tensor([0] * 700 + [1] * 300 + [2] * 5), 3).float()
    blocks = [Block(0, 3, "softmax")]
    for i in range(20):
        f = np.array(mod.dp_frequencies(data, blocks, noise_multiplier=3.0, rng=np.random.default_rng(i))[0])
        total = None
        for k in range(1, 5000):  # the sum of the noisy whole counts: find it from the smallest share
            cand = f * (k + 3e-3)
            if np.allclose(cand - 1e-3, np.round(cand - 1e-3), atol=1e-6):
                total = cand
                break
        assert total is not None, f"frequencies {f} are not whole counts normalised"


def test_dp_frequencies_draw_exact_discrete_gaussian_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    # The count noise is synthgen.privacy.discrete's integer sampler at sigma = z sqrt(#blocks),
    # never torch's floating-point normal.
    from synthgen.models.dp_ctgan import conditional

    calls: list[tuple[float, int]] = []
    real = conditional.discrete_gaussian

    def spy(sigma: float, size: int, *, rng: np.random.Generator) -> np.ndarray:
        out = real(sigma, size, rng=rng)
        assert out.dtype.kind == "i"
        calls.append((sigma, size))
        return out

    def no_float_noise(*_a: object, **_k: object) -> None:
        raise AssertionError("floating-point Gaussian noise on the counts")

    monkeypatch.setattr(conditional, "discrete_gaussian", spy)
    monkeypatch.setattr(torch, "randn", no_float_noise)
    data = F.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()
    blocks = [Block(0, 3, "softmax"), Block(0, 2, "softmax")]
    conditional.dp_frequencies(data, blocks, noise_multiplier=15.0, rng=np.random.default_rng(0))
    assert calls == [(15.0 * math.sqrt(2), 3), (15.0 * math.sqrt(2), 2)]


def test_count_release_is_charged_as_the_continuous_gaussian_it_post_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from synthgen.models.dp_ctgan.conditional import count_release_multiplier
    from synthgen.privacy.discrete import sampled_variance

    for k in (1, 3, 40):
        z = count_release_multiplier(noise_multiplier=15.0, blocks=k)
        # s^2 = sigma'^2 - 4, with sigma'^2 the variance the sampler draws (rounded up).
        assert z == pytest.approx(math.sqrt((sampled_variance(15.0 * math.sqrt(k)) - 4.0) / k), rel=1e-12)
        assert 15.0 * (1 - 0.01) < z < 15.0
    with pytest.raises(PrivacyError, match="count_noise_multiplier"):
        count_release_multiplier(noise_multiplier=1.0, blocks=2)
    # The fit puts exactly that multiplier first in the accountant's history.
    seen: list[list[tuple[float, float, int]]] = []
    real = mod.calibrate_with_prior

    def spy(**kwargs: Any) -> float:
        seen.append(list(kwargs["prior"]))
        return real(**kwargs)

    monkeypatch.setattr(mod, "calibrate_with_prior", spy)
    s = _synth(dp=True, epochs=1).fit(_frame())
    k = sum(1 for b in s.blocks_ or [] if b.kind == "softmax")
    assert seen == [
        [(count_release_multiplier(noise_multiplier=s.config.count_noise_multiplier, blocks=k), 1.0, 1)]
    ]


def test_real_batches_are_poisson_sampled(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    loaders: list[object] = []
    real_step = mod._discriminator_step

    def step(real: torch.Tensor, *args: object, **kwargs: object) -> float:
        sizes.append(real.shape[0])
        return real_step(real, *args, **kwargs)  # type: ignore[arg-type]

    class SpyLoader(DPDataLoader):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            loaders.append(self)

    monkeypatch.setattr(mod, "_discriminator_step", step)
    monkeypatch.setattr("opacus.data_loader.DPDataLoader", SpyLoader)
    _synth(dp=True, epochs=3, batch=100).fit(_frame())
    assert len(loaders) == 1
    assert abs(loaders[0].sample_rate - 100 / 800) < 0.03  # type: ignore[attr-defined]
    assert len(set(sizes)) > 3  # Poisson: the batch size varies
    assert 70 < float(np.mean(sizes)) < 130


# -- P3: accounting ---------------------------------------------------------------------------


def test_spent_epsilon_never_exceeds_the_target(fitted_dp: DPCTGAN) -> None:
    record = fitted_dp.privacy_record_
    assert record is not None and record.dp
    assert record.spent_epsilon <= 3.0 + 1e-9
    assert record.target_epsilon == 3.0
    training = [m for m in record.mechanisms if m.step == "training"]
    assert len(training) == 1 and training[0].epsilon > 0
    assert record.noise_multiplier is not None and record.noise_multiplier > 0
    assert record.steps == 2 * int(1 / record.sample_rate)


def test_progress_reports_the_epsilon_spent_so_far(fitted_dp: DPCTGAN) -> None:
    assert [p.epoch for p in PROGRESS] == [1, 2]
    eps = [p.epsilon for p in PROGRESS]
    assert None not in eps
    assert 0 < eps[0] < eps[1]  # type: ignore[operator]
    record = fitted_dp.privacy_record_
    assert record is not None and eps[1] == pytest.approx(record.spent_epsilon)


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_calibration_with_the_count_release_stays_under_target(accountant: str) -> None:
    prior = [(15.0, 1.0, 1)]
    sigma = calibrate_with_prior(
        target_epsilon=1.0, delta=1e-5, sample_rate=1 / 32, steps=320, prior=prior, accountant=accountant
    )
    spent = history_epsilon([*prior, (sigma, 1 / 32, 320)], delta=1e-5, accountant=accountant)
    assert 0.95 < spent <= 1.0
    # The count release costs something: without it, less noise would do.
    alone = calibrate_with_prior(
        target_epsilon=1.0, delta=1e-5, sample_rate=1 / 32, steps=320, prior=[], accountant=accountant
    )
    assert alone < sigma


def test_calibration_refuses_a_budget_the_counts_alone_exceed() -> None:
    with pytest.raises(PrivacyError, match="category counts"):
        calibrate_with_prior(
            target_epsilon=0.01,
            delta=1e-5,
            sample_rate=0.1,
            steps=10,
            prior=[(1.0, 1.0, 1)],
            accountant="rdp",
        )


# -- behaviour --------------------------------------------------------------------------------


def test_same_seed_gives_the_same_rows(fitted_dp: DPCTGAN) -> None:
    a = fitted_dp.sample(300, seed=7)
    b = fitted_dp.sample(300, seed=7)
    c = fitted_dp.sample(300, seed=8)
    assert a.equals(b)
    assert not a.equals(c)
    assert a.columns == ["a", "b", "v"] and a.height == 300


def test_sample_batches_are_bounded_and_complete(fitted_dp: DPCTGAN) -> None:
    frames = list(fitted_dp.sample_batches(250, seed=1, batch_rows=100))
    assert [f.height for f in frames] == [100, 100, 50]


def test_save_load_round_trip_gives_the_same_samples(fitted_dp: DPCTGAN, tmp_path: Path) -> None:
    fitted_dp.save(tmp_path / "m")
    loaded = Synthesizer.load(tmp_path / "m")
    assert isinstance(loaded, DPCTGAN)
    assert loaded.pac_ == 1
    assert loaded.privacy_record_ == fitted_dp.privacy_record_
    assert loaded.sample(200, seed=3).equals(fitted_dp.sample(200, seed=3))


def test_artifact_holds_no_training_row(tmp_path: Path) -> None:
    frame = _frame(n=800)
    canary = "canary-3f9a1c"
    frame = pl.concat([frame, pl.DataFrame({"a": ["x"], "b": [canary], "v": [987654321]})])
    s = _synth(dp=True, epochs=1).fit(frame)
    s.save(tmp_path / "m")
    for f in (tmp_path / "m").iterdir():
        raw = f.read_bytes()
        assert canary.encode() not in raw, f.name
        assert b"987654321" not in raw, f.name
    assert canary not in set(s.sample(2000, seed=0).get_column("b").to_list())


def test_dp_training_randomness_comes_from_os_entropy_not_the_spec_seed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 12 point 7: the seed initialises the networks; dropout on real rows and the fakes
    # they are scored against draw from a generator reseeded from OS entropy.
    seeds: list[int] = []
    real_seed = torch.manual_seed

    def spy(value: int) -> torch.Generator:
        seeds.append(int(value))
        return real_seed(value)

    monkeypatch.setattr(torch, "manual_seed", spy)
    s = _synth(dp=True, epochs=1)
    s.fit(_frame())
    spec_seed = s.model.seed
    assert seeds and seeds[0] == spec_seed
    assert any(v != spec_seed for v in seeds[1:])


def test_non_dp_mode_records_dp_false_and_is_reproducible() -> None:
    a = _synth(dp=False, epochs=1).fit(_frame())
    b = _synth(dp=False, epochs=1).fit(_frame())
    assert a.privacy_record_ is not None and a.privacy_record_.dp is False
    assert a.sample(100, seed=1).equals(b.sample(100, seed=1))


@pytest.mark.slow
@pytest.mark.parametrize("dp", [False, True])
def test_a_strong_correlation_is_recovered_at_large_epsilon(dp: bool) -> None:
    s = _synth(dp=dp, epsilon=1000.0, epochs=30, batch=200).fit(_frame(n=2000))
    out = s.sample(2000, seed=0)
    # In the data, b == "b_" + a for 90% of rows; independent columns with the same
    # marginals would agree on about 34%.
    agree = (out.get_column("b") == ("b_" + out.get_column("a"))).mean()
    assert agree is not None and float(agree) > (0.5 if dp else 0.7)


# -- bad input --------------------------------------------------------------------------------


def test_dataset_smaller_than_the_batch_is_refused() -> None:
    with pytest.raises(ModelError, match="batch_size"):
        _synth(dp=True, batch=500).fit(_frame(n=200))
    with pytest.raises(ModelError, match="batch_size"):
        _synth(dp=False, batch=500).fit(_frame(n=200))


def test_non_positive_epsilon_is_refused() -> None:
    with pytest.raises(ValidationError):
        PrivacySettings(epsilon=0.0)
    with pytest.raises(PrivacyError, match="epsilon"):
        DPPlan.from_count(epsilon=0.0, delta=1e-5, batch_size=10, n_estimate=1000, accountant="rdp")
    with pytest.raises(PrivacyError, match="epsilon"):
        DPPlan.from_count(epsilon=-1.0, delta=1e-5, batch_size=10, n_estimate=1000, accountant="rdp")


def test_unknown_device_is_refused() -> None:
    model = ModelSettings(kind="dp_ctgan", epochs=1, batch_size=100, device="tpu")
    s = DPCTGAN(schema=SCHEMA, model=model, privacy=PrivacySettings(epsilon=3.0))
    with pytest.raises(ModelError, match="device"):
        s.fit(_frame())


def test_sampling_before_fit_is_refused() -> None:
    with pytest.raises(ModelError, match="not fitted"):
        _synth().sample(10)


def test_generator_inference_path_is_the_same_function_as_forward() -> None:
    """Sampling folds BatchNorm into the Linears and skips the concatenations: same outputs."""
    torch.manual_seed(0)
    gen = mod.Generator(in_dim=10, dims=(16, 12), out_dim=7)
    gen.train()
    for _ in range(3):  # move the BatchNorm running statistics away from their defaults
        gen(torch.randn(64, 10) * 3 + 1)
    gen.eval()
    z, c = torch.randn(50, 6), torch.randn(50, 4)
    with torch.no_grad():
        expected = gen(torch.cat([z, c], dim=1))
    torch.testing.assert_close(gen.infer([z, c], chunk_rows=16), expected, rtol=1e-5, atol=1e-5)
