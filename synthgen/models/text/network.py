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


class KVCache:
    """Keys and values of the tokens generated so far, preallocated for ``max_len`` positions.

    Writing in place (instead of concatenating every step) keeps a sampling step's cost
    independent of how much has been generated, apart from attention itself.
    """

    def __init__(
        self, *, n_layers: int, batch: int, n_heads: int, head_dim: int, max_len: int, like: torch.Tensor
    ) -> None:
        shape = (batch, n_heads, max_len, head_dim)
        self.k = [like.new_empty(shape) for _ in range(n_layers)]
        self.v = [like.new_empty(shape) for _ in range(n_layers)]
        self.length = 0

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` (indices), e.g. once the others have finished."""
        n = self.length
        for store in (self.k, self.v):
            for i, t in enumerate(store):
                kept = t.new_empty((len(rows), *t.shape[1:]))
                kept[:, :, :n] = t[rows, :, :n]
                store[i] = kept


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        n_past = 0
        if cache is not None:
            n_past = cache.length
            cache.k[layer][:, :, n_past : n_past + t] = k
            cache.v[layer][:, :, n_past : n_past + t] = v
            k = cache.k[layer][:, :, : n_past + t]
            v = cache.v[layer][:, :, : n_past + t]
        # New tokens come after every cached one, so only the new block needs a causal mask;
        # one new token (a sampling step) attends to everything before it.
        if n_past == 0 or t == 1:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=n_past == 0 and t > 1)
        else:
            mask = torch.ones(t, n_past + t, dtype=torch.bool, device=x.device).tril(n_past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, layer)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TextTransformer(nn.Module):
    """Causal language model over the tokenizer's ids; the condition prefix is part of the sequence."""

    def __init__(self, *, vocab_size: int, n_positions: int, d_model: int, n_layers: int, n_heads: int):
        super().__init__()
        self.n_positions = n_positions
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
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
        return self.step(ids, None)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        """An empty cache for generating up to ``max_len`` positions in a batch of ``batch``."""
        return KVCache(
            n_layers=len(self.blocks),
            batch=batch,
            n_heads=self.n_heads,
            head_dim=self.head_dim,
            max_len=max_len,
            like=self.pos.weight,
        )

    def step(self, ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor:
        """Logits for ``ids`` placed after the tokens already in ``cache`` (which is then extended)."""
        b, t = ids.shape
        start = 0 if cache is None else cache.length
        # Positions carry the batch dimension so Opacus sees one index row per record.
        positions = torch.arange(start, start + t, device=ids.device).unsqueeze(0).expand(b, t).contiguous()
        x = self.tok(ids) + self.pos(positions)
        for i, block in enumerate(self.blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += t
        return self.head(self.ln_f(x))
