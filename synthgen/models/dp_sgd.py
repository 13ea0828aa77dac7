"""One DP-SGD step and epoch with Opacus, shared by one process and by the ranks of several.

:class:`DPSGDPlan` fixes a run before it starts (every figure in it is public);
:func:`make_dp_sgd` wraps a module with Opacus for it (Poisson-sampling loader, per-sample
clipping, Gaussian noise from OS entropy); :func:`dp_sgd_epoch` runs one pass. Every gradient
the optimizer sees passes through Opacus's clipping: the model has no loss term outside the
per-sample loss. Using the wrapped module, optimizer or loader for anything else invalidates
the privacy guarantee.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class DPSGDPlan:
    """One DP-SGD run, fixed before any rank starts (every figure here is public)."""

    #: Noise multiplier from the accountant (std of the noise = sigma * max_grad_norm).
    sigma: float
    #: Poisson sampling rate of each row per step (global: the same on every rank).
    sample_rate: float
    steps_per_epoch: int
    epochs: int
    max_grad_norm: float
    #: The divisor of the noisy clipped sum: round(q * DP row count), over all ranks.
    expected_batch_size: int
    grad_sample_mode: str
    accountant: str
    learning_rate: float
    kl_weight: float


def noise_step(module: nn.Module, optimizer: torch.optim.Optimizer, *, ghost: bool) -> None:
    """The DP-SGD step of an empty Poisson batch: a zero clipped sum plus the optimizer's noise.

    Skipping it would make the released weights depend on whether a batch was empty, which the
    accountant (charged for every step) does not cover.
    """
    optimizer.zero_grad(set_to_none=True)
    for p in module.parameters():
        if p.requires_grad:
            if ghost:
                p.grad = torch.zeros_like(p)  # the clipped sum the ghost optimizer noises
            else:
                p.grad_sample = torch.zeros((1, *p.shape), dtype=p.dtype, device=p.device)  # type: ignore[attr-defined]
    optimizer.step()


@dataclass
class DPSGD:
    """A model made private by Opacus, with what one DP-SGD step needs."""

    engine: Any
    model: nn.Module
    optimizer: Any
    #: Opacus's ghost-clipping criterion; None in hooks mode.
    criterion: Any
    loader: Any


def make_dp_sgd(
    module: nn.Module,
    *,
    loader: torch.utils.data.DataLoader[Any],
    plan: DPSGDPlan,
    device: str,
    world_size: int,
) -> DPSGD:
    """Wrap ``module`` (a DPDDP when ``world_size > 1``) with Opacus for ``plan``.

    The loader must already Poisson-sample at ``plan.sample_rate`` with ``plan.steps_per_epoch``
    batches (Opacus's accountant reads ``1/len(loader)`` as the rate). Under ``world_size``
    ranks each divides by ``expected_batch_size / world_size`` before the gradients are
    averaged over ranks: together, ``(clipped sum + noise) / expected_batch_size``.
    """
    from opacus import PrivacyEngine

    engine = PrivacyEngine(accountant=plan.accountant)
    optimizer = torch.optim.Adam(module.parameters(), lr=plan.learning_rate)
    common: dict[str, Any] = dict(
        module=module,
        optimizer=optimizer,
        data_loader=loader,
        noise_multiplier=plan.sigma,
        max_grad_norm=plan.max_grad_norm,
        poisson_sampling=False,  # the loader already samples by Poisson with our q
        grad_sample_mode=plan.grad_sample_mode,
        noise_generator=torch.Generator(device=device).manual_seed(secrets.randbits(63)),
    )
    if plan.grad_sample_mode == "ghost":
        model, dp_opt, dp_crit, loader = engine.make_private(criterion=_PerSampleLoss(), **common)
    else:
        model, dp_opt, loader = engine.make_private(**common)
        dp_crit = None
    dp_opt.expected_batch_size = plan.expected_batch_size / world_size
    return DPSGD(engine=engine, model=model, optimizer=dp_opt, criterion=dp_crit, loader=loader)


def dp_sgd_epoch(dp: DPSGD, loader: Any, *, kl_weight: torch.Tensor, device: str) -> tuple[float, int]:
    """One pass of the Poisson loader: one DP-SGD step per batch. Returns (loss sum, rows)."""
    dp.model.train()
    total, seen = 0.0, 0
    for (batch,) in loader:
        if batch.shape[0] == 0:
            # Probability exp(-batch_size): still a DP-SGD step, charged; release pure noise
            # (under several ranks: this rank adds a zero clipped sum to the others').
            noise_step(dp.model, dp.optimizer, ghost=dp.criterion is not None)
            continue
        batch = batch.to(device)
        dp.optimizer.zero_grad(set_to_none=True)
        per_sample = dp.model(batch, kl_weight)
        loss = dp.criterion(per_sample, None) if dp.criterion is not None else per_sample.mean()
        loss.backward()
        dp.optimizer.step()
        total += float(per_sample.detach().sum())
        seen += batch.shape[0]
    return total, seen


class _PerSampleLoss(nn.Module):
    """Criterion for Opacus's ghost clipping: the model already returns per-sample losses."""

    def __init__(self) -> None:
        super().__init__()
        self.reduction = "mean"

    def forward(self, per_sample: torch.Tensor, _target: torch.Tensor | None = None) -> torch.Tensor:
        return per_sample if self.reduction == "none" else per_sample.mean()


class _Codes(torch.utils.data.Dataset[tuple[torch.Tensor]]):
    """Token codes as a dataset whose batch fetch is one tensor gather (no per-row Python calls).

    The codes may be held in a compact integer dtype (int8: an eighth of int64's memory); each
    fetch gives int64, which one-hot and cross-entropy need.
    """

    def __init__(self, codes: torch.Tensor) -> None:
        self.codes = codes

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor]:
        return (self.codes[i].long(),)

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        # torch's fetcher hands the whole Poisson-sampled index list here; an empty list
        # gives a (0, C) tensor, for which the training loop takes a pure-noise step.
        return [self.codes[torch.as_tensor(indices, dtype=torch.long)].long()]


def _collate_gathered(batch: list[torch.Tensor]) -> tuple[torch.Tensor]:
    return (batch[0],)
