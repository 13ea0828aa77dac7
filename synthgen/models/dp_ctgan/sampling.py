"""DP-CTGAN's sampling path: rows from the trained generator and the DP conditional frequencies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from synthgen.models.dp_ctgan.conditional import CondSampler
from synthgen.models.dp_ctgan.config import Block
from synthgen.models.dp_ctgan.networks import Generator


@torch.no_grad()
def generate(
    generator: Generator,
    cond: CondSampler,
    blocks: Sequence[Block],
    n: int,
    *,
    embedding_dim: int,
    device: torch.device,
    rng: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """``n`` rows as ``(codes, offsets)`` for :meth:`TableEncoder.decode`, on the CPU.

    Blocks follow the encoder's spans: each softmax block is the next column's token, drawn
    from the generator's softmax; a sigmoid block is that (numeric) column's offset in its bin.
    """
    generator.eval()
    c, _, _ = cond.sample(n, generator=rng)
    z = torch.randn(n, embedding_dim, generator=rng)
    raw = generator.infer([z.to(device), c.to(device)]).cpu()
    n_cols = sum(b.kind == "softmax" for b in blocks)
    codes = torch.empty(n, n_cols, dtype=torch.long)
    offsets = torch.full((n, n_cols), 0.5)
    j = -1
    for b in blocks:
        x = raw[:, b.start : b.start + b.width]
        if b.kind == "sigmoid":
            offsets[:, j] = torch.sigmoid(x[:, 0])
        else:
            # A draw from softmax(x), as during training (argmax would collapse every block
            # onto its mode): inverse CDF on unnormalised probabilities, one uniform per row.
            j += 1
            cum = (x - x.amax(dim=1, keepdim=True)).exp_().cumsum_(dim=1)
            u = torch.rand(n, 1, generator=rng)
            codes[:, j] = torch.searchsorted(cum, u * cum[:, -1:], right=True).squeeze_(1)
    return codes, offsets
