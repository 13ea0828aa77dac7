"""Conditional vectors: category frequencies of every one-hot block, exact or released with the
Gaussian mechanism, and the sampler that draws a (block, category) condition per row."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from synthgen.errors import ModelError
from synthgen.models.dp_ctgan.config import Block


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
    data: Tensor, blocks: Sequence[Block], *, noise_multiplier: float, generator: torch.Generator
) -> list[list[float]]:
    """Category frequencies of every one-hot block, released with the Gaussian mechanism.

    One row adds exactly one to one count per block, so the L2 sensitivity of all
    counts together is ``sqrt(len(blocks))`` under add/remove adjacency; the noise
    standard deviation is ``noise_multiplier * sqrt(len(blocks))``. The caller must
    charge one Gaussian step ``(noise_multiplier, sample_rate=1, steps=1)`` to the
    accountant. Rounding to whole counts, clamping, the floor and normalising are
    post-processing.
    """
    sigma = noise_multiplier * math.sqrt(len(blocks))
    out = []
    for b in blocks:
        noise = sigma * torch.randn(b.width, generator=generator, dtype=torch.double)
        # Rounded to whole counts (post-processing): the low-order bits of floating-point noise,
        # which can tell the true count apart (Mironov 2012), never reach the artifact.
        noisy = torch.round(_block_counts(data, b) + noise)
        # The floor keeps every category reachable by the conditional vectors.
        noisy = noisy.clamp(min=0.0) + 1e-3
        out.append((noisy / noisy.sum()).tolist())
    return out
