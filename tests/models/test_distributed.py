"""Multi-process DP-SGD (model.distributed): two gloo ranks on CPU, spawned on a free loopback port.

What must hold for the single-process guarantee to carry over: the ranks' clipped sums add up
to the one-process clipped sum, the noise is drawn once (not once per rank), and the accountant
is charged the global sampling rate and noise for every planned step.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from synthgen.errors import SpecError
from synthgen.models import distributed as dist_module
from synthgen.models import make_synthesizer
from synthgen.models.distributed import DPSGDPlan, RankPoissonSampler, shard
from synthgen.models.settings import ModelSettings
from synthgen.privacy.accountant import spent_epsilon
from synthgen.privacy.settings import PrivacySettings

FAST = {"epochs": 2, "batch_size": 256, "hidden_dim": 16, "latent_dim": 4, "learning_rate": 1e-2}
CARDS = [3, 5, 4, 6]
BATCH = 64


def _plan(sigma: float, mode: str) -> DPSGDPlan:
    return DPSGDPlan(
        sigma=sigma,
        sample_rate=0.5,
        steps_per_epoch=2,
        epochs=1,
        max_grad_norm=0.05,  # small, so that most rows are clipped
        expected_batch_size=BATCH,
        grad_sample_mode=mode,
        accountant="rdp",
        learning_rate=0.0,  # the step leaves p.grad and the weights as they are
        kl_weight=0.0,
    )


def _net() -> torch.nn.Module:
    from synthgen.models.tvae_net import AutoregressiveVAE

    torch.manual_seed(3)
    # latent_dim 0: the per-sample loss has no sampled z, so every process computes the same loss.
    return AutoregressiveVAE(CARDS, latent_dim=0, hidden_dim=128)


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.stack([torch.randint(0, c, (BATCH,), generator=g) for c in CARDS], dim=1)


def _one_step_grads(
    net: torch.nn.Module, rows: torch.Tensor, plan: DPSGDPlan, world_size: int
) -> list[torch.Tensor]:
    """The gradient one DP-SGD step hands to Adam, through synthgen's Opacus wrapping."""
    from synthgen.models.dp_sgd import _Codes, _collate_gathered, make_dp_sgd

    sampler = RankPoissonSampler(
        num_samples=rows.shape[0],
        sample_rate=plan.sample_rate,
        steps=plan.steps_per_epoch,
        generator=torch.Generator(),
    )
    loader = torch.utils.data.DataLoader(_Codes(rows), batch_sampler=sampler, collate_fn=_collate_gathered)
    module: torch.nn.Module = net
    if world_size > 1:
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel as DPDDP

        module = DPDDP(net)
    dp = make_dp_sgd(module, loader=loader, plan=plan, device="cpu", world_size=world_size)
    dp.optimizer.zero_grad(set_to_none=True)
    per_sample = dp.model(rows, torch.tensor(0.0))
    loss = dp.criterion(per_sample, None) if dp.criterion is not None else per_sample.mean()
    loss.backward()
    dp.optimizer.step()
    return [p.grad.detach().clone() for p in net.parameters()]


def _grad_rank(rank: int, world_size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        local = shard(_batch(), rank, world_size)
        found = {}
        for mode in ("ghost", "hooks"):
            found[f"{mode}/clean"] = _one_step_grads(_net(), local, _plan(0.0, mode), world_size)
            found[f"{mode}/noisy"] = _one_step_grads(_net(), local, _plan(1.0, mode), world_size)
        torch.save(found, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_grads(tmp_path_factory) -> list[dict[str, list[torch.Tensor]]]:
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_grad_rank, args=(2, dist_module.free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_two_ranks_clipped_sum_equals_the_single_process_clipped_sum(rank_grads, mode) -> None:
    single = _one_step_grads(_net(), _batch(), _plan(0.0, mode), 1)
    for rank in rank_grads:
        for got, want in zip(rank[f"{mode}/clean"], single, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    # The clipping bound was active: an unclipped gradient would differ.
    loose = dataclasses.replace(_plan(0.0, mode), max_grad_norm=1e6)
    unclipped = _one_step_grads(_net(), _batch(), loose, 1)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(unclipped, single, strict=True))


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_two_ranks_add_the_noise_once_and_apply_the_same_gradient(rank_grads, mode) -> None:
    r0, r1 = rank_grads
    for a, b in zip(r0[f"{mode}/noisy"], r1[f"{mode}/noisy"], strict=True):
        torch.testing.assert_close(a, b)  # every rank steps with the one reduced gradient
    plan = _plan(1.0, mode)
    noise = torch.cat(
        [(n - c).flatten() for n, c in zip(r0[f"{mode}/noisy"], r0[f"{mode}/clean"], strict=True)]
    ) * (plan.expected_batch_size / (plan.sigma * plan.max_grad_norm))
    # Standard normal if one rank draws N(0, (sigma C)^2); sqrt(2) if both ranks did.
    assert noise.numel() > 5000
    assert 0.95 < float(noise.std()) < 1.05
    assert abs(float(noise.mean())) < 0.05


def test_rank_sampler_yields_every_planned_step_even_when_empty() -> None:
    sampler = RankPoissonSampler(num_samples=3, sample_rate=1e-9, steps=5, generator=torch.Generator())
    assert list(sampler) == [[], [], [], [], []]


@pytest.fixture(scope="module")
def fitted_two_ranks(small_frame, small_schema):
    captured = {}
    original = dist_module.train_data_parallel

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        captured["result"] = original(*args, **kwargs)
        captured["world_size"] = kwargs["world_size"]
        return captured["result"]

    mp = pytest.MonkeyPatch()
    mp.setattr(dist_module, "train_data_parallel", spy)
    try:
        settings = ModelSettings(**FAST, distributed={"world_size": 2})  # type: ignore[arg-type]
        privacy = PrivacySettings(epsilon=2.0, delta=1e-5, accountant="rdp")
        synth = make_synthesizer("dp_tvae", schema=small_schema, model=settings, privacy=privacy)
        synth.fit(small_frame)
    finally:
        mp.undo()
    return synth, captured


def test_two_rank_fit_spends_the_single_process_epsilon(fitted_two_ranks) -> None:
    from opacus.accountants import RDPAccountant

    synth, captured = fitted_two_ranks
    rec = synth.privacy_record_
    assert captured["world_size"] == 2
    history = captured["result"].history
    assert sum(n for _, _, n in history) == rec.steps
    assert {(s, r) for s, r, _ in history} == {(rec.noise_multiplier, rec.sample_rate)}
    training = [m for m in rec.mechanisms if m.step == "training"]
    assert len(training) == 1
    single = spent_epsilon(
        noise_multiplier=rec.noise_multiplier,
        sample_rate=rec.sample_rate,
        steps=rec.steps,
        delta=training[0].delta,
        accountant="rdp",
    )
    acc = RDPAccountant()
    acc.history = list(history)
    assert training[0].epsilon == pytest.approx(single, rel=1e-9)
    assert acc.get_epsilon(delta=training[0].delta) == pytest.approx(single, rel=1e-9)
    assert rec.spent_epsilon <= rec.target_epsilon


def test_two_rank_fit_samples_rows_of_the_schema(fitted_two_ranks, small_schema) -> None:
    synth, _ = fitted_two_ranks
    rows = synth.sample(500, seed=1)
    assert rows.height == 500
    assert rows.columns == small_schema.names
    assert set(rows["y"].drop_nulls().unique().to_list()) <= {"a", "b", "c"}
    # The weights were trained: rank 0's state differs from the seeded initialisation.
    init = synth._build(synth.encoder_.cardinalities)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(init.state_dict().values(), synth.net_.state_dict().values(), strict=True)
    )


@pytest.mark.parametrize("kind", ["dp_mst", "auto"])
def test_world_size_above_one_is_refused_for_kinds_without_dp_sgd_ranks(
    small_frame, small_schema, kind
) -> None:
    settings = ModelSettings(**FAST, distributed={"world_size": 2})  # type: ignore[arg-type]
    synth = make_synthesizer(kind, schema=small_schema, model=settings, privacy=PrivacySettings(epsilon=1.0))
    with pytest.raises(SpecError, match=r"world_size > 1 needs model\.kind dp_tvae"):
        synth.fit(small_frame)
    assert synth.released_epsilon_ == 0.0  # refused before any DP mechanism


def test_nccl_backend_on_cpu_is_refused_before_any_dp_mechanism(small_frame, small_schema) -> None:
    from synthgen.errors import ModelError

    settings = ModelSettings(**FAST, device="cpu", distributed={"world_size": 2, "backend": "nccl"})  # type: ignore[arg-type]
    synth = make_synthesizer(
        "dp_tvae", schema=small_schema, model=settings, privacy=PrivacySettings(epsilon=1.0)
    )
    with pytest.raises(ModelError, match=r"nccl needs model\.device cuda"):
        synth.fit(small_frame)
    assert synth.released_epsilon_ == 0.0


def _as_torchrun_rank(rank: int, world_size: int, port: int) -> None:
    """The environment torchrun gives each rank of a one-host world."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)


def _torchrun_rank(rank: int, world_size: int, port: int, out: str, frame, schema) -> None:  # type: ignore[no-untyped-def]
    # rank 1 gets no rows at all.
    _as_torchrun_rank(rank, world_size, port)
    settings = ModelSettings(**FAST)  # type: ignore[arg-type]
    privacy = PrivacySettings(epsilon=2.0, delta=1e-5, accountant="rdp")
    synth = make_synthesizer("dp_tvae", schema=schema, model=settings, privacy=privacy)
    synth.fit(frame if rank == 0 else frame.head(0))
    synth.save(Path(out) / f"rank{rank}")


def test_torchrun_ranks_share_rank_zeros_dp_preprocessing_and_end_with_one_model(
    small_frame, small_schema, tmp_path
) -> None:
    import torch.multiprocessing as mp

    from synthgen.models import Synthesizer

    args = (2, dist_module.free_port(), str(tmp_path), small_frame, small_schema)
    mp.spawn(_torchrun_rank, args=args, nprocs=2, join=True)
    r0, r1 = (Synthesizer.load(tmp_path / f"rank{r}") for r in range(2))
    # Rank 1 never saw a row: its encoding, privacy record and weights are rank 0's.
    assert (tmp_path / "rank0" / "encoding.json").read_text() == (
        tmp_path / "rank1" / "encoding.json"
    ).read_text()
    assert r0.privacy_record_ == r1.privacy_record_
    for a, b in zip(r0.net_.state_dict().values(), r1.net_.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    rec = r0.privacy_record_
    training = next(m for m in rec.mechanisms if m.step == "training")
    single = spent_epsilon(
        noise_multiplier=rec.noise_multiplier,
        sample_rate=rec.sample_rate,
        steps=rec.steps,
        delta=training.delta,
        accountant="rdp",
    )
    assert training.epsilon == pytest.approx(single, rel=1e-9)
    assert r0.sample(200, seed=2).height == 200


def _torchrun_rank_own_clip(rank: int, world_size: int, port: int, frame, schema) -> None:  # type: ignore[no-untyped-def]
    _as_torchrun_rank(rank, world_size, port)
    settings = ModelSettings(**{**FAST, "max_grad_norm": 1.0 + rank})  # type: ignore[arg-type]
    privacy = PrivacySettings(epsilon=2.0, delta=1e-5, accountant="rdp")
    make_synthesizer("dp_tvae", schema=schema, model=settings, privacy=privacy).fit(frame)


def test_torchrun_ranks_with_their_own_clipping_norm_are_refused_on_every_rank(
    small_frame, small_schema
) -> None:
    # Rank 1's looser clipping would not be covered by rank 0's noise: no rank trains.
    import torch.multiprocessing as mp

    args = (2, dist_module.free_port(), small_frame, small_schema)
    with pytest.raises(Exception, match="differ from rank 0"):
        mp.spawn(_torchrun_rank_own_clip, args=args, nprocs=2, join=True)


def test_a_torchrun_world_over_several_hosts_is_refused(monkeypatch, small_frame, small_schema) -> None:
    from synthgen.errors import SpecError

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "10.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    settings = ModelSettings(**FAST)  # type: ignore[arg-type]
    privacy = PrivacySettings(epsilon=2.0, delta=1e-5, accountant="rdp")
    synth = make_synthesizer("dp_tvae", schema=small_schema, model=settings, privacy=privacy)
    with pytest.raises(SpecError, match="spans several hosts"):
        synth.fit(small_frame)
