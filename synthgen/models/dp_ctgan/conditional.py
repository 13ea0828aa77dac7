"""Conditional vectors: category frequencies of every one-hot block, exact or released with the
discrete Gaussian mechanism, and the sampler that draws a (block, category) condition per row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from synthgen.errors import ModelError, PrivacyError
from synthgen.models.dp_ctgan.config import Block
from synthgen.privacy.discrete import discrete_gaussian, sampled_variance

#: Variance ``r^2`` of the smoothing kernel in the accounting argument of
#: :func:`count_release_multiplier`. At ``r = 2`` the kernel's normaliser is 1 within
#: ``eta = 2 exp(-8 pi^2) / (1 - exp(-8 pi^2)) < 1e-34``.
_KERNEL_VARIANCE = 4.0


@dataclass
class CondSampler:
    """Draws conditional vectors from (DP) category frequencies of the one-hot blocks.

    A vector picks one block uniformly, then one of its categories with the block's
    frequency. The frequencies are DP outputs (exact ones only in non-DP mode); no
    real row is ever looked up.
    """

    blocks: list[Block]
    frequencies: list[list[float]]
    offsets: list[int] = field(init=False)
    width: int = field(init=False)

    def __post_init__(self) -> None:
        if len(self.blocks) != len(self.frequencies):
            raise ModelError("one frequency vector per conditional block is needed")
        self.offsets = []
        w = 0
        for b, f in zip(self.blocks, self.frequencies, strict=True):
            if len(f) != b.width:
                raise ModelError(f"block of width {b.width} has {len(f)} frequencies")
            self.offsets.append(w)
            w += b.width
        self.width = w
        self._probs = [torch.tensor(f, dtype=torch.float) for f in self.frequencies]

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(one-hot conditions ``(n, width)``, chosen block ``(n,)``, category ``(n,)``) on the CPU."""
        cond = torch.zeros(n, self.width)
        cat = torch.zeros(n, dtype=torch.long)
        if not self.blocks:
            return cond, torch.zeros(n, dtype=torch.long), cat
        which = torch.randint(len(self.blocks), (n,), generator=generator)
        for i, p in enumerate(self._probs):
            rows = (which == i).nonzero(as_tuple=True)[0]
            if rows.numel() == 0:
                continue
            k = torch.multinomial(p, rows.numel(), replacement=True, generator=generator)
            cat[rows] = k
            cond[rows, self.offsets[i] + k] = 1.0
        return cond, which, cat


def _block_counts(data: Tensor, b: Block) -> Tensor:
    # argmax, so that every row adds exactly 1 to one count whatever the matrix holds:
    # the sensitivity argument of dp_frequencies relies on it.
    return torch.bincount(data[:, b.start : b.start + b.width].argmax(1), minlength=b.width).double()


def exact_frequencies(data: Tensor, blocks: Sequence[Block]) -> list[list[float]]:
    """Exact category frequencies. NOT DP: only for ``dp=False`` runs."""
    out = []
    for b in blocks:
        counts = _block_counts(data, b)
        out.append((counts / counts.sum()).tolist())
    return out


def dp_frequencies(
    data: Tensor, blocks: Sequence[Block], *, noise_multiplier: float, rng: np.random.Generator
) -> list[list[float]]:
    """Category frequencies of every one-hot block, released with the discrete Gaussian mechanism.

    One row adds exactly one to one count per block, so the L2 sensitivity of all
    counts together is ``sqrt(len(blocks))`` under add/remove adjacency; every count gets
    integer discrete Gaussian noise (:mod:`synthgen.privacy.discrete`, sampled exactly: no
    floating-point draw whose low-order bits could tell the true count, Mironov 2012) of scale
    ``noise_multiplier * sqrt(len(blocks))``. The caller must charge one Gaussian step
    ``(count_release_multiplier(...), sample_rate=1, steps=1)`` to the accountant (not
    ``noise_multiplier`` itself: see there). Clamping, the floor and normalising are
    post-processing. ``rng`` must be seeded from OS entropy
    (:func:`synthgen.privacy.mechanisms.noise_rng`), never from the spec.
    """
    sigma = noise_multiplier * math.sqrt(len(blocks))
    out = []
    for b in blocks:
        counts = _block_counts(data, b).to(torch.int64).cpu().numpy()
        noisy = counts + discrete_gaussian(sigma, b.width, rng=rng)
        # The floor keeps every category reachable by the conditional vectors.
        shares = np.maximum(noisy, 0).astype(np.float64) + 1e-3
        out.append((shares / shares.sum()).tolist())
    return out


def count_release_multiplier(*, noise_multiplier: float, blocks: int) -> float:
    """The continuous Gaussian noise multiplier the accountant charges for :func:`dp_frequencies`.

    Opacus's accountants know the continuous Gaussian only, and the discrete Gaussian is not
    dominated by the continuous one of the same variance (its total variation between counts
    ``c`` and ``c + 1`` is larger: 0.03069 vs 0.03068 at sigma 13, measured). It is, up to a
    factor ``exp(+-2 k eta)`` on every probability, a post-processing of the continuous Gaussian
    of variance ``s^2 = sigma'^2 - r^2``: draw ``y ~ N(c, s^2)``, then the integer ``z`` with
    probability ``phi_r(z - y) / sum_w phi_r(w - y)``. The output is ``phi_sigma'(z - c)`` over
    the two normalisers, each 1 within ``eta`` (Poisson summation), so its law is within
    ``exp(+-2 eta)`` of ``N_Z(c, sigma'^2)`` per count (``sigma'^2`` the variance the sampler
    draws with, :func:`~synthgen.privacy.discrete.sampled_variance`). Over ``k = blocks`` counts
    the factor is ``exp(+-2 k eta)``, below 1e-30 for any table, which moves epsilon and delta by
    less than a float64 can hold. The charge is therefore ``sqrt(s^2 / k)``, a little below
    ``noise_multiplier`` (under RDP the discrete Gaussian's own ``k / (2 sigma'^2)``-zCDP would
    do; the one figure serves both accountants).
    """
    if blocks == 0:
        return noise_multiplier  # nothing is released; the charge stays as planned
    variance = sampled_variance(noise_multiplier * math.sqrt(blocks))
    if variance <= 2 * _KERNEL_VARIANCE:
        raise PrivacyError(
            f"DP-CTGAN count release: noise scale {math.sqrt(variance):.3g} is below "
            f"{math.sqrt(2 * _KERNEL_VARIANCE):.3g}; raise count_noise_multiplier"
        )
    return math.sqrt((variance - _KERNEL_VARIANCE) / blocks)
