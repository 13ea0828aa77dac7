"""DP-CTGAN's training loop: DP-SGD critic steps on real/fake pairs, generator steps as
post-processing of the private critic (the privacy argument is in the package docstring)."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.dp_ctgan.accounting import DPPlan, History, calibrate_with_prior, history_epsilon
from synthgen.models.dp_ctgan.conditional import (
    CondSampler,
    count_release_multiplier,
    dp_frequencies,
    exact_frequencies,
)
from synthgen.models.dp_ctgan.config import Block, CTGANConfig
from synthgen.models.dp_ctgan.networks import Generator, make_discriminator
from synthgen.models.dp_sgd import noise_step
from synthgen.privacy.mechanisms import noise_rng


@dataclass
class TrainResult:
    """What training learned and, under DP, what it cost."""

    generator: Generator
    cond: CondSampler
    pac: int
    noise_multiplier: float | None
    epsilon_spent: float | None
    steps: int
    history: History
    losses: list[dict[str, float]]


EpochCallback = Callable[[dict[str, float]], None]


def activate(raw: Tensor, blocks: Sequence[Block], *, tau: float) -> Tensor:
    """Training-time output: Gumbel-softmax for one-hot blocks, sigmoid for offsets."""
    parts = []
    for b in blocks:
        x = raw[:, b.start : b.start + b.width]
        parts.append(torch.sigmoid(x) if b.kind == "sigmoid" else F.gumbel_softmax(x, tau=tau, hard=False))
    return torch.cat(parts, dim=1)


def _cond_loss(raw: Tensor, cond: CondSampler, which: Tensor, cat: Tensor) -> Tensor:
    """Cross-entropy making each generated row honour its conditional vector (generated rows only)."""
    total = raw.new_zeros(())
    for i, b in enumerate(cond.blocks):
        rows = (which == i).nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            continue
        total = total + F.cross_entropy(raw[rows, b.start : b.start + b.width], cat[rows], reduction="sum")
    return total / raw.shape[0]


def _marginal_loss(raw: Tensor, cond: CondSampler) -> Tensor:
    """Sum over one-hot blocks of KL(frequencies || mean generated distribution): generated rows only."""
    total = raw.new_zeros(())
    for b, f in zip(cond.blocks, cond._probs, strict=True):
        target = f.to(raw.device)
        mean = torch.softmax(raw[:, b.start : b.start + b.width], dim=1).mean(0)
        total = total + (target * (torch.log(target + 1e-8) - torch.log(mean + 1e-8))).sum()
    return total


def _os_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from OS entropy: for privacy noise and sampling, never from the spec's seed."""
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


def train(
    data: Tensor,
    blocks: Sequence[Block],
    *,
    config: CTGANConfig,
    epochs: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    plan: DPPlan | None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train DP-CTGAN on the encoded matrix ``data`` (rows x encoded columns).

    With a ``plan`` the result is (``plan.epsilon``, ``plan.delta``)-DP for the rows of
    ``data`` under add/remove adjacency, provided the layout ``blocks`` (and the
    encoding) is public or DP and nothing else reads ``data``. Without a plan it
    trains without noise (``dp: false``). The returned generator and frequencies are
    what the artifact keeps; ``data`` is not referenced by the result.
    """
    n, d = data.shape
    if not blocks or sum(b.width for b in blocks) != d or any(b.start >= d for b in blocks):
        raise ModelError(f"the blocks cover {sum(b.width for b in blocks)} encoded columns, the data has {d}")
    dp = plan is not None
    pac = 1 if dp else max(1, config.pac)
    if not dp and n < batch_size:
        raise ModelError(
            f"the data has {n} rows, fewer than model.batch_size={batch_size}: lower model.batch_size"
        )
    if not dp and batch_size < pac:
        raise ModelError(f"model.batch_size={batch_size} is smaller than pac={pac}")
    softmax_blocks = [b for b in blocks if b.kind == "softmax"]

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        # The seed drives initialisation and the generator's inputs; privacy noise does not use it.
        torch.manual_seed(seed)
        prior: History = []
        if plan is not None:
            freqs = dp_frequencies(
                data, softmax_blocks, noise_multiplier=config.count_noise_multiplier, rng=noise_rng()
            )
            count_z = count_release_multiplier(
                noise_multiplier=config.count_noise_multiplier, blocks=len(softmax_blocks)
            )
            prior.append((count_z, 1.0, 1))
        else:
            freqs = exact_frequencies(data, softmax_blocks)
        cond = CondSampler(softmax_blocks, freqs)

        generator = Generator(config.embedding_dim + cond.width, config.generator_dims, d).to(device)
        critic = make_discriminator(d * pac, config.discriminator_dims, config.dropout).to(device)
        # The twin evaluates the discriminator's (DP) weights for generator steps without
        # Opacus hooks: see the module docstring, point 2.
        twin = copy.deepcopy(critic).requires_grad_(False)
        g_opt = torch.optim.Adam(
            generator.parameters(), lr=config.generator_lr, betas=(0.5, 0.9), weight_decay=1e-6
        )
        d_opt: torch.optim.Optimizer = torch.optim.Adam(
            critic.parameters(), lr=config.discriminator_lr, betas=(0.5, 0.9)
        )
        if plan is not None:
            # Training randomness touches real rows (dropout on them, the fakes they are scored
            # against): under DP it comes from OS entropy; the seed stays for initialisation above.
            torch.manual_seed(secrets.randbits(63))

        engine = None
        noise_multiplier: float | None = None
        d_module: nn.Module = critic
        ghost = False
        loader: DataLoader[tuple[Tensor, ...]]
        if plan is None:
            loader = DataLoader(
                TensorDataset(data),
                batch_size=batch_size,
                shuffle=True,
                drop_last=True,
                generator=torch.Generator().manual_seed(seed + 1),
            )
            steps = epochs * len(loader)
        else:
            from opacus import PrivacyEngine
            from opacus.data_loader import DPDataLoader

            steps = epochs * round(1 / plan.accounted_rate)
            noise_multiplier = calibrate_with_prior(
                target_epsilon=plan.epsilon,
                delta=plan.delta,
                sample_rate=plan.accounted_rate,
                steps=steps,
                prior=prior,
                accountant=plan.accountant,
            )
            # Poisson sampling at the public rate q; Opacus yields int(1/q) batches per
            # epoch and charges 1/len(loader) = plan.accounted_rate per step.
            dp_loader = DPDataLoader(
                TensorDataset(data), sample_rate=plan.sample_rate, generator=_os_generator()
            )
            engine = PrivacyEngine(accountant=plan.accountant)
            ghost = config.grad_sample_mode == "ghost"
            common: dict[str, Any] = dict(
                module=critic,
                optimizer=d_opt,
                data_loader=dp_loader,
                noise_multiplier=noise_multiplier,
                max_grad_norm=config.max_grad_norm,
                poisson_sampling=False,  # the loader above already is Opacus's Poisson loader
                grad_sample_mode=config.grad_sample_mode,
                noise_generator=_os_generator(device),
            )
            if ghost:
                # The criterion is unused (pair losses are built by hand) but ghost mode wants one.
                d_module, d_opt, _unused_criterion, loader = engine.make_private(
                    criterion=nn.BCEWithLogitsLoss(), **common
                )
            else:
                d_module, d_opt, loader = engine.make_private(**common)
            # Average by the public expected batch size, not one derived from the exact n.
            d_opt.expected_batch_size = plan.expected_batch_size  # type: ignore[attr-defined]
            engine.accountant.history = list(prior)

        losses: list[dict[str, float]] = []
        generator.train()
        for epoch in range(epochs):
            d_sum = g_sum = 0.0
            k = 0
            for (real,) in loader:
                d_sum += _discriminator_step(
                    real.to(device), generator, d_module, d_opt, cond, blocks, config, pac, ghost, device
                )
                params = _critic_params(d_module)
                for _ in range(config.generator_steps):
                    g_sum += _generator_step(
                        generator, g_opt, twin, params, cond, blocks, config, batch_size, pac, device
                    )
                k += 1
            record = {"epoch": float(epoch + 1), "loss_d": d_sum / max(k, 1), "loss_g": g_sum / max(k, 1)}
            if engine is not None:
                assert plan is not None
                record["epsilon"] = history_epsilon(
                    list(engine.accountant.history), delta=plan.delta, accountant=plan.accountant
                )
            losses.append(record)
            if on_epoch is not None:
                on_epoch(record)

        history: History = []
        eps_spent: float | None = None
        if engine is not None:
            assert plan is not None
            history = [(float(z), float(q), int(s)) for z, q, s in engine.accountant.history]
            eps_spent = history_epsilon(history, delta=plan.delta, accountant=plan.accountant)
            steps = sum(s for _, q, s in history if q < 1.0)
            if eps_spent > plan.epsilon * (1 + 1e-9):
                # Cannot happen while calibration and loader agree; if it ever does, the
                # model's guarantee would be weaker than promised: refuse it.
                raise PrivacyError(
                    f"DP-CTGAN spent epsilon {eps_spent:.4f} over its target {plan.epsilon:.4f}; "
                    "model discarded"
                )
        generator.eval()
    return TrainResult(generator, cond, pac, noise_multiplier, eps_spent, steps, history, losses)


def _critic_params(d_module: nn.Module) -> dict[str, Tensor]:
    """The discriminator's current weights, detached, keyed as in the plain critic."""
    inner: nn.Module = getattr(d_module, "_module", d_module)
    return {k: v.detach() for k, v in inner.named_parameters()}


def _fake(
    generator: Generator,
    cond: CondSampler,
    blocks: Sequence[Block],
    n: int,
    config: CTGANConfig,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    c, which, cat = cond.sample(n)
    z = torch.randn(n, config.embedding_dim)
    raw = generator(torch.cat([z, c], dim=1).to(device))
    return activate(raw, blocks, tau=config.tau), raw, which.to(device), cat.to(device)


@contextmanager
def _buffers_kept(module: nn.Module) -> Iterator[None]:
    """Run the block, then put ``module``'s buffers (BatchNorm's running statistics) back."""
    saved = [b.clone() for b in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, old in zip(module.buffers(), saved, strict=True):
                buf.copy_(old)


def _pairs(real: Tensor, fake: Tensor, pac: int) -> Tensor:
    """``(B/pac, 2, pac*d)``: real and fake side by side, one Opacus sample per pair."""
    m = (real.shape[0] // pac) * pac
    return torch.stack([real[:m].reshape(m // pac, -1), fake[:m].reshape(m // pac, -1)], dim=1)


def _discriminator_step(
    real: Tensor,
    generator: Generator,
    d_module: nn.Module,
    d_opt: torch.optim.Optimizer,
    cond: CondSampler,
    blocks: Sequence[Block],
    config: CTGANConfig,
    pac: int,
    ghost: bool,
    device: torch.device,
) -> float:
    """One discriminator update. Under DP the only gradient applied is Opacus's noised
    sum of per-pair clipped gradients."""
    b = real.shape[0]
    d_opt.zero_grad(set_to_none=True)
    if b < pac:
        # Only reachable under DP (pac = 1): an empty Poisson batch. It still is a
        # DP-SGD step, charged by the accountant: release pure noise rather than skip.
        noise_step(d_module, d_opt, ghost=ghost)
        return 0.0
    # The generator's BatchNorm ties each fake to the batch it is drawn in: draw in chunks of the
    # public expected batch size, never of the Poisson batch's (data-dependent) size b. The
    # number of chunks still depends on b, and every train-mode draw would move BatchNorm's
    # running statistics (saved with the model): they are put back, so the released buffers
    # come from the generator steps alone, whose batch size is public.
    chunk = max(2, int(getattr(d_opt, "expected_batch_size", 0) or b))
    with torch.no_grad(), _buffers_kept(generator):
        parts = [_fake(generator, cond, blocks, chunk, config, device)[0] for _ in range(-(-b // chunk))]
        fake = torch.cat(parts)[:b]
    logits = d_module(_pairs(real, fake, pac)).squeeze(-1)  # (B/pac, 2)
    # Non-saturating GAN loss of each pair: nothing else enters the discriminator's loss.
    loss_per_pair = F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1])
    if ghost:
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        DPTensorFastGradientClipping(d_module, d_opt, loss_per_pair, "mean").backward()  # type: ignore[arg-type]
    else:
        loss_per_pair.mean().backward()
    d_opt.step()
    return float(loss_per_pair.detach().mean())


def _generator_step(
    generator: Generator,
    g_opt: torch.optim.Optimizer,
    twin: nn.Module,
    critic_params: dict[str, Tensor],
    cond: CondSampler,
    blocks: Sequence[Block],
    config: CTGANConfig,
    n: int,
    pac: int,
    device: torch.device,
) -> float:
    """One generator update from generated rows only (post-processing of the DP critic)."""
    g_opt.zero_grad(set_to_none=True)
    n = max(pac, (n // pac) * pac)
    fake, raw, which, cat = _fake(generator, cond, blocks, n, config, device)
    logits = functional_call(twin, critic_params, (fake.reshape(n // pac, -1),)).squeeze(-1)
    loss = F.softplus(-logits).mean() + _cond_loss(raw, cond, which, cat)
    if config.marginal_weight:
        loss = loss + config.marginal_weight * _marginal_loss(raw, cond)
    loss.backward()
    g_opt.step()
    return float(loss.detach())
