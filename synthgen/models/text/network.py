"""A small decoder-only transformer built only from layers Opacus computes per-sample gradients for.

Parameters live in ``nn.Embedding``, ``nn.Linear`` and ``nn.LayerNorm`` modules only (all
supported by Opacus hooks and, for Linear/Embedding, by ghost clipping). Attention itself
has no parameters and never mixes rows of a batch, so per-sample gradients stay per record.
There is no dropout (it would add nothing under DP noise) and no weight tying (Opacus would
see one parameter through two modules).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        # With a cache the new tokens come after every cached one, so only the new block needs
        # a causal mask; one new token (the sampling step) attends to everything.
        if past is None or t == 1:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=past is None and t > 1)
        else:
            n_past = past[0].shape[2]
            mask = torch.ones(t, n_past + t, dtype=torch.bool, device=x.device).tril(n_past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.proj(y), (k, v)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), past)
        x = x + a
        x = x + self.out(F.gelu(self.fc(self.ln2(x))))
        return x, kv


class TextTransformer(nn.Module):
    """Byte-level causal language model; the condition prefix is part of the token sequence."""

    def __init__(self, *, vocab_size: int, n_positions: int, d_model: int, n_layers: int, n_heads: int):
        super().__init__()
        self.n_positions = n_positions
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(n_positions, d_model)
        self.blocks = nn.ModuleList([Block(d_model, n_heads) for _ in range(n_layers)])
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, time, vocab)`` for a batch of right-padded sequences."""
        logits, _ = self.step(ids, None)
        return logits

    def step(self, ids: torch.Tensor, cache: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        """Forward ``ids`` after the tokens already in ``cache``; returns logits and the new cache."""
        b, t = ids.shape
        start = 0 if cache is None else cache[0][0].shape[2]
        # Positions carry the batch dimension so Opacus sees one index row per record.
        positions = torch.arange(start, start + t, device=ids.device).unsqueeze(0).expand(b, t).contiguous()
        x = self.tok(ids) + self.pos(positions)
        new_cache: KVCache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if cache is None else cache[i])
            new_cache.append(kv)
        return self.head(self.ln_f(x)), new_cache
