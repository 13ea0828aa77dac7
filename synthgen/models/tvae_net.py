"""DP-TVAE's network: a VAE encoder and one autoregressive MLP head per column.

Pure torch, no privacy mechanism: DP-SGD is applied to it by :mod:`synthgen.models.dp_sgd`
(one process) or :mod:`synthgen.models.distributed` (several ranks); the synthesizer is
:mod:`synthgen.models.dp_tvae`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


class AutoregressiveVAE(nn.Module):
    """Encoder to a latent, and one MLP head per column reading ``[1, z, tokens of earlier columns]``."""

    def __init__(self, cardinalities: list[int], *, latent_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.cardinalities = list(cardinalities)
        self.latent_dim = latent_dim
        width = sum(cardinalities)
        # Offset of column j's one-hot block inside the token vector.
        self.offsets = [0, *np.cumsum(cardinalities).tolist()]
        self.encoder: nn.Module | None = None
        if latent_dim > 0:
            self.encoder = nn.Sequential(
                nn.Linear(width, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 2 * latent_dim)
            )
        self.heads = nn.ModuleList(
            nn.Sequential(
                nn.Linear(1 + latent_dim + self.offsets[j], hidden_dim),
                nn.ReLU(),
                nn.Linear(hidden_dim, card),
            )
            for j, card in enumerate(cardinalities)
        )

    def one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [F.one_hot(codes[:, j], c).to(torch.float32) for j, c in enumerate(self.cardinalities)], dim=1
        )

    def forward(self, codes: torch.Tensor, kl_weight: torch.Tensor) -> torch.Tensor:
        """Per-sample loss ``[B]``: sum of column cross-entropies + ``kl_weight`` * KL."""
        tokens = self.one_hot(codes)
        ones = torch.ones(codes.shape[0], 1, device=codes.device)
        loss = torch.zeros(codes.shape[0], device=codes.device)
        if self.encoder is not None:
            mu, logvar = self.encoder(tokens).chunk(2, dim=1)
            logvar = logvar.clamp(-8.0, 8.0)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            loss = loss + kl_weight * 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
            ctx = torch.cat([ones, z, tokens], dim=1)
        else:
            ctx = torch.cat([ones, tokens], dim=1)
        base = 1 + self.latent_dim
        for j, head in enumerate(self.heads):
            logits = head(ctx[:, : base + self.offsets[j]])
            loss = loss + F.cross_entropy(logits, codes[:, j], reduction="none")
        return loss

    @torch.no_grad()
    def sampling_tables(self) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each head's layers in the form the sampler uses (same function, cheaper to evaluate).

        A head's first layer reads ``[1, z, one-hot tokens]``; applied to a one-hot input it is
        a sum of weight rows, so it becomes an embedding table over every input slot (rows of
        the columns the head does not read are zero, and its bias is folded into the row of
        the constant 1). The second layer is kept as ``(weight.T, bias)``.
        """
        base = 1 + self.latent_dim
        width = base + self.offsets[-1]
        first: list[torch.Tensor] = []
        second: list[tuple[torch.Tensor, torch.Tensor]] = []
        for head in self.heads:
            assert isinstance(head, nn.Sequential)
            lin1, lin2 = head[0], head[2]
            assert isinstance(lin1, nn.Linear) and isinstance(lin2, nn.Linear)
            table = lin1.weight.new_zeros(width, lin1.out_features)
            table[: lin1.in_features] = lin1.weight.T
            table[0] += lin1.bias
            first.append(table)
            second.append((lin2.weight.T.contiguous(), lin2.bias.detach()))
        return first, second

    def sampling_slots(self, rows: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Input slots for :meth:`head_logits`: indices ``[0..base-1, first token of each column]``
        and weights ``[1, 0 * z, 1 per column]``; the sampler writes z and each drawn token in."""
        base = 1 + self.latent_dim
        start = list(range(base)) + [base + o for o in self.offsets[:-1]]
        index = torch.tensor(start, dtype=torch.long, device=device).repeat(rows, 1)
        weight = torch.ones(rows, len(start), device=device)
        weight[:, 1:base] = 0.0
        return index, weight

    @staticmethod
    def head_logits(
        j: int,
        tables: tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]],
        index: torch.Tensor,
        weight: torch.Tensor,
    ) -> torch.Tensor:
        """Column ``j``'s logits from the slots (equal to ``heads[j]`` on the one-hot context)."""
        first, second = tables
        hidden = F.embedding_bag(index, first[j], per_sample_weights=weight, mode="sum")
        w2, b2 = second[j]
        return torch.addmm(b2, hidden.relu_(), w2)

    @torch.inference_mode()
    def sample_codes(
        self,
        n: int,
        *,
        generator: torch.Generator,
        device: str,
        chunk_rows: int = 8192,
        never: dict[int, list[int]] | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` rows of codes, column by column, in chunks that stay in cache.

        Each head is evaluated through :meth:`head_logits`: its first layer as a sum of about
        ``1 + latent_dim + columns`` weight rows instead of a product with the whole one-hot
        context (the one-hot width is the sum of all cardinalities), which is what made the
        column-by-column draw slower than a one-shot decoder. ``never`` names tokens per column
        that are never drawn (their probability goes to the column's other tokens).
        """
        never = never or {}
        base = 1 + self.latent_dim
        n_cols = len(self.cardinalities)
        tables = self.sampling_tables()
        first_token = torch.tensor([base + o for o in self.offsets[:-1]], dtype=torch.long, device=device)
        codes = torch.empty(n, n_cols, dtype=torch.long, device=device)
        for start in range(0, n, chunk_rows):
            m = min(chunk_rows, n - start)
            index, weight = self.sampling_slots(m, device)
            if self.latent_dim:
                weight[:, 1:base] = torch.randn(m, self.latent_dim, generator=generator, device=device)
            u = torch.rand(n_cols, m, 1, generator=generator, device=device)
            for j in range(n_cols):
                logits = self.head_logits(j, tables, index, weight)
                if j in never:
                    logits[:, never[j]] = -torch.inf
                # Inverse-CDF draw on unnormalised probabilities: one uniform per row.
                cum = logits.sub_(logits.amax(dim=1, keepdim=True)).exp_().cumsum_(dim=1)
                index[:, base + j] += torch.searchsorted(cum, u[j] * cum[:, -1:], right=True).squeeze_(1)
            codes[start : start + m] = index[:, base:] - first_token
        return codes
