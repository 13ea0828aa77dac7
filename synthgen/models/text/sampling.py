"""Next-byte sampling: temperature, top-k, top-p, and a UTF-8 grammar constraint.

The constraint keeps every generated text valid UTF-8 without post-hoc repair. Each row
carries a state: at a character start any ASCII byte, a valid lead byte or EOS may follow;
inside a multi-byte character only the continuation bytes the UTF-8 grammar allows there
(RFC 3629, which excludes overlong forms, surrogates and code points above U+10FFFF).
Word tokens (complete characters) may come only at a character start. Special and
condition tokens are never sampled.
"""

from __future__ import annotations

import torch

from synthgen.models.text.tokenizer import EOS, N_BYTES

#: States: which bytes may come next.
START, CONT, CONT_A0_BF, CONT_80_9F, CONT_90_BF, CONT_80_8F = range(6)
_FIRST_CONT = {0xE0: CONT_A0_BF, 0xED: CONT_80_9F, 0xF0: CONT_90_BF, 0xF4: CONT_80_8F}


def state_masks(vocab_size: int, device: torch.device, *, word_start: int | None = None) -> torch.Tensor:
    """Allowed next tokens for each state, shape ``(6, vocab)``.

    Word tokens (ids from ``word_start``) are whole characters, so they may follow only at a
    character start.
    """
    m = torch.zeros(6, vocab_size, dtype=torch.bool, device=device)
    if word_start is not None:
        m[START, word_start:] = True
    m[START, :0x80] = True
    m[START, 0xC2:0xF5] = True  # lead bytes (C0, C1, F5-FF never occur in UTF-8)
    m[START, EOS] = True
    m[CONT, 0x80:0xC0] = True
    m[CONT_A0_BF, 0xA0:0xC0] = True
    m[CONT_80_9F, 0x80:0xA0] = True
    m[CONT_90_BF, 0x90:0xC0] = True
    m[CONT_80_8F, 0x80:0x90] = True
    return m


def _lead_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each token id below 256+: continuation bytes owed after it, and the state that follows."""
    owed = torch.zeros(N_BYTES + 1, dtype=torch.long, device=device)
    owed[0xC2:0xE0] = 1
    owed[0xE0:0xF0] = 2
    owed[0xF0:0xF5] = 3
    first = torch.full((N_BYTES + 1,), CONT, dtype=torch.long, device=device)
    for lead, state in _FIRST_CONT.items():
        first[lead] = state
    return owed, first


class Utf8State:
    """Per-row UTF-8 position for a batch being generated."""

    def __init__(self, batch: int, device: torch.device) -> None:
        self.state = torch.full((batch,), START, dtype=torch.long, device=device)
        self.owed = torch.zeros(batch, dtype=torch.long, device=device)
        self._owed_after, self._first = _lead_tables(device)

    def advance(self, ids: torch.Tensor) -> None:
        """Move every row past the token it just produced."""
        idx = ids.clamp(max=N_BYTES)  # specials (EOS) index the zero row
        inside = self.owed > 0
        owed = torch.where(inside, self.owed - 1, self._owed_after[idx])
        state = torch.where(inside, torch.full_like(owed, CONT), self._first[idx])
        self.owed = owed
        self.state = torch.where(owed > 0, state, torch.full_like(owed, START))


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
    if 0 < top_k < logits.shape[-1]:
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
