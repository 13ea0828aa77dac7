"""The sampler's UTF-8 grammar and its top-k / top-p filters."""

from __future__ import annotations

import torch

from synthgen.models.text.sampling import Utf8State, sample_next, state_masks
from synthgen.models.text.tokenizer import EOS, strip_partial_tail


def test_sampling_from_uniform_logits_always_yields_valid_utf8() -> None:
    vocab, batch = 263, 400
    masks = state_masks(vocab, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    state = Utf8State(batch, torch.device("cpu"))
    rows: list[list[int]] = [[] for _ in range(batch)]
    for _ in range(40):
        nxt = sample_next(
            torch.zeros(batch, vocab), masks[state.state], temperature=1.0, top_k=0, top_p=1.0, generator=gen
        )
        assert (nxt < 256).logical_or(nxt == EOS).all()
        state.advance(nxt)
        for r, t in zip(rows, nxt.tolist()):
            r.append(t)
    n_multibyte = 0
    for r in rows:
        body = bytes(t for t in r if t < 256)  # EOS dropped; only complete characters may end a row
        text = strip_partial_tail(body).decode("utf-8")  # strict: raises on any invalid sequence
        n_multibyte += sum(ord(c) > 0x7F for c in text)
    assert n_multibyte > 100  # the grammar allowed many multi-byte characters, all valid


def test_top_k_one_is_greedy_and_top_p_keeps_the_nucleus() -> None:
    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0]])
    allowed = torch.ones(1, 4, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    picks = {
        int(sample_next(logits, allowed, temperature=1.0, top_k=1, top_p=1.0, generator=gen))
        for _ in range(50)
    }
    assert picks == {1}
    picks = {
        int(sample_next(logits, allowed, temperature=1.0, top_k=0, top_p=0.9, generator=gen))
        for _ in range(200)
    }
    assert picks == {1, 2}


def test_dropping_finished_rows_from_the_cache_leaves_the_others_logits_unchanged() -> None:
    from synthgen.models.text.network import TextTransformer

    torch.manual_seed(0)
    net = TextTransformer(vocab_size=300, n_positions=12, d_model=16, n_layers=2, n_heads=2).eval()
    ids = torch.randint(0, 256, (4, 5))
    nxt = torch.randint(0, 256, (4, 1))
    with torch.no_grad():
        full = net.new_cache(4, 12)
        net.step(ids, full)
        keep = torch.tensor([1, 3])
        full.keep(keep)
        kept = net.step(nxt[keep], full)
        alone = net.new_cache(2, 12)
        net.step(ids[keep], alone)
        expected = net.step(nxt[keep], alone)
    assert full.k[0].shape[0] == 2 and full.length == 6
    torch.testing.assert_close(kept, expected)


def test_a_cached_sampling_step_gives_the_logits_of_the_full_forward_pass() -> None:
    from synthgen.models.text.network import TextTransformer

    torch.manual_seed(1)
    net = TextTransformer(vocab_size=300, n_positions=16, d_model=16, n_layers=2, n_heads=2).eval()
    ids = torch.randint(0, 256, (3, 9))
    with torch.no_grad():
        cache = net.new_cache(3, 16)
        net.step(ids[:, :6], cache)
        steps = [net.step(ids[:, i : i + 1], cache)[:, -1] for i in range(6, 9)]
        full = net(ids)
    for j, logits in enumerate(steps):
        torch.testing.assert_close(logits, full[:, 6 + j], atol=1e-5, rtol=1e-4)
