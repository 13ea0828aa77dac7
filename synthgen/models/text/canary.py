"""Memorisation test: canary exposure (Carlini et al., "The Secret Sharer", USENIX Security 2019).

A canary is a sentence with a random secret (``"... code is 482913."``) planted ``k`` times
in the training text. After training, the canary's log-likelihood is ranked among the same
sentence with random secrets in its place:

    exposure = log2(|candidates| + 1) - log2(rank)

A model that has not memorised the secret ranks it like any other candidate (expected
exposure about 1.44 bits); one that has, ranks it first (the maximum, ``log2(|candidates| + 1)``;
this sampled estimate cannot show more). The same canary is also measured on a model
trained on the same data without it, and both models are asked to complete the canary's
prefix and to generate freely, counting how often the secret comes out.

Both models are fitted outside the budget ledger, so give this only text that is not
private: synthetic text (the pipeline passes the released model's output, a DP result) or
public text. Fitted on real text it would spend an uncharged budget twice over. Its figures
go to the restricted report all the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from synthgen.errors import ModelError
from synthgen.models.text.accounting import AccountantName
from synthgen.models.text.model import DPTextModel
from synthgen.models.text.settings import TextModelSettings

DEFAULT_FORMAT = "The patient's reference code is {secret}."


def _secrets(rng: np.random.Generator, digits: int, count: int, exclude: str) -> list[str]:
    out: set[str] = set()
    space = 10**digits
    if count >= space:
        raise ModelError(f"canary: {count} candidates do not fit in a space of {space} secrets")
    while len(out) < count:
        for v in rng.integers(0, space, size=count):
            s = str(int(v)).zfill(digits)
            if s != exclude:
                out.add(s)
    return sorted(out)[:count]


def exposure(
    model: DPTextModel,
    *,
    canary_format: str,
    secret: str,
    candidates: Sequence[str],
    conditions: pl.DataFrame | None = None,
) -> dict[str, float]:
    """Rank of ``secret`` among ``candidates`` by the model's likelihood, as exposure in bits.

    ``conditions`` is one row of condition values used for every candidate.
    """
    texts = pl.Series("text", [canary_format.format(secret=s) for s in [secret, *candidates]])
    cond = None
    if conditions is not None:
        cond = pl.concat([conditions.head(1)] * len(texts))
    nll, _ = model.score(texts, cond)
    canary_nll = float(nll[0])
    rank = 1 + int(np.sum(nll[1:] < canary_nll))
    total = len(candidates) + 1
    return {
        "rank": rank,
        "candidates": len(candidates),
        "canary_nll": canary_nll,
        "median_candidate_nll": float(np.median(nll[1:])),
        "exposure": float(np.log2(total) - np.log2(rank)),
        "max_exposure": float(np.log2(total)),
    }


def _reproductions(
    model: DPTextModel,
    *,
    canary_format: str,
    secret: str,
    probe_conditions: pl.DataFrame | None,
    conditions: pl.DataFrame | None,
    n_generate: int,
    seed: int,
) -> dict[str, int]:
    """Prompted completions (with the canary's conditions) and free generations (random rows' conditions)."""
    prompt = canary_format.split("{secret}")[0]
    cond_one = pl.concat([probe_conditions.head(1)] * n_generate) if probe_conditions is not None else None
    completed = model.generate(cond_one, n_generate, seed=seed, prompt=prompt)
    free_cond = (
        conditions.sample(n_generate, with_replacement=True, seed=seed) if conditions is not None else None
    )
    free = model.generate(free_cond, n_generate, seed=seed + 1)
    canary = canary_format.format(secret=secret)
    return {
        "completions_with_secret": int(completed.str.contains(secret, literal=True).sum()),
        "generated_with_secret": int(free.str.contains(secret, literal=True).sum()),
        "generated_with_canary": int(free.str.contains(canary, literal=True).sum()),
    }


def canary_exposure(
    texts: pl.Series,
    conditions: pl.DataFrame | None = None,
    *,
    settings: TextModelSettings,
    epsilon: float | None,
    delta: float | None,
    dp: bool = True,
    categories: Mapping[str, Sequence[str]] | None = None,
    k: int = 10,
    canary_format: str = DEFAULT_FORMAT,
    secret_digits: int = 6,
    n_candidates: int = 1000,
    n_generate: int = 200,
    seed: int = 0,
    device: str = "auto",
    accountant: AccountantName = "prv",
) -> dict[str, Any]:
    """Plant a canary ``k`` times, train with and without it, and report exposure and reproduction.

    ``texts`` must be synthetic or public: nothing here is charged to a budget (see the module
    docstring). The sampling rate comes from ``len(texts)``, a public count for such text.

    Both models use the same settings, budget and data (the canary-free one trains on the
    data alone). The planted rows copy the condition values of ``k`` random real rows.
    Returns ``{"with_canary": {...}, "without_canary": {...}, ...}``; each side holds the
    exposure figures of :func:`exposure` and the reproduction counts (prompted completions
    of the canary's prefix, and free generations, that contain the secret).
    """
    if "{secret}" not in canary_format:
        raise ModelError("canary: canary_format must contain {secret}")
    if k < 1:
        raise ModelError("canary: k must be at least 1")
    rng = np.random.default_rng(seed)
    secret = str(int(rng.integers(0, 10**secret_digits))).zfill(secret_digits)
    candidates = _secrets(rng, secret_digits, n_candidates, exclude=secret)
    canary = canary_format.format(secret=secret)
    base = texts.cast(pl.String)
    planted_rows = rng.integers(0, len(base), size=k)
    planted_text = pl.concat([base, pl.Series(base.name, [canary] * k, dtype=pl.String)])
    planted_cond = None
    probe_cond = None
    if conditions is not None:
        extra = conditions[planted_rows.tolist()]
        planted_cond = pl.concat([conditions, extra])
        probe_cond = extra.head(1)

    results: dict[str, Any] = {
        "k": k,
        "canary_format": canary_format,
        "secret_digits": secret_digits,
        "dp": dp,
        "epsilon": epsilon if dp else None,
    }
    for label, train_text, train_cond in (
        ("with_canary", planted_text, planted_cond),
        ("without_canary", base, conditions),
    ):
        model = DPTextModel(
            settings=settings,
            epsilon=epsilon,
            delta=delta,
            dp=dp,
            device=device,
            categories=categories,
            accountant=accountant,
            seed=seed,
        ).fit(train_text, train_cond)
        side: dict[str, Any] = exposure(
            model, canary_format=canary_format, secret=secret, candidates=candidates, conditions=probe_cond
        )
        side.update(
            _reproductions(
                model,
                canary_format=canary_format,
                secret=secret,
                probe_conditions=probe_cond,
                conditions=conditions,
                n_generate=n_generate,
                seed=seed,
            )
        )
        side["spent_epsilon"] = model.privacy_record_.epsilon if dp else None
        results[label] = side
    return results
