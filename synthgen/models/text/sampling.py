"""Next-byte sampling: temperature, top-k, top-p, and a UTF-8 constraint.

The constraint keeps every generated text valid UTF-8 without post-hoc repair: after a
lead byte only continuation bytes may follow, and a continuation byte may never start a
character. Special and condition tokens are never sampled (EOS is, when a character is complete).
"""

from __future__ import annotations

import torch

from synthgen.models.text.tokenizer import EOS, N_BYTES


def byte_masks(vocab_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Allowed next tokens ``(at a character start, inside a multi-byte character)``."""
    start = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    start[:0x80] = True
    start[0xC2:0xF5] = True  # lead bytes of 2-4 byte characters (C0, C1, F5-FF never occur)
    start[EOS] = True
    cont = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    cont[0x80:0xC0] = True
    return start, cont


def continuation_bytes(ids: torch.Tensor) -> torch.Tensor:
    """How many continuation bytes must follow each sampled id (0 for ASCII, EOS and continuations)."""
    out = torch.zeros_like(ids)
    is_byte = ids < N_BYTES
    out = torch.where(is_byte & (ids >= 0xC2) & (ids < 0xE0), 1, out)
    out = torch.where(is_byte & (ids >= 0xE0) & (ids < 0xF0), 2, out)
    out = torch.where(is_byte & (ids >= 0xF0) & (ids < 0xF5), 3, out)
    return out


def sample_next(
    logits: torch.Tensor,
    allowed: torch.Tensor,
    *,
    temperature: float,
    top_k: int,
    top_p: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Draw one id per row from ``logits`` ``(batch, vocab)`` restricted to ``allowed`` ``(batch, vocab)``."""
    logits = logits.float().masked_fill(~allowed, float("-inf")) / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass before it already reaches top_p (the top token always stays).
        drop_sorted = (probs.cumsum(dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
