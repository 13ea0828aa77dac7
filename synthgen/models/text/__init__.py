"""DP synthesis of text columns: a small transformer over bytes and DP-selected words (DP-SGD).

Public API::

    model = DPTextModel(settings=spec.model.text, epsilon=eps_text, delta=delta,
                        categories={"diagnosis_category": [...public list...]}).fit(texts, conditions)
    texts = model.generate(synthetic_rows.select(spec.model.text.condition_on), seed=0)
    model.privacy_record_.entries   # charge each to the ledger
    model.save(path); DPTextModel.load(path)
    text_metrics(holdout, texts, model); canary_exposure(texts, conditions, settings=..., ...)

Names are imported lazily: the spec imports ``settings`` from this package, and loading a
spec (or parsing a DAG) must not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # real names for type checkers; at run time they load on first use
    from synthgen.models.text.accounting import PrivacyEntry, TextPrivacyRecord, calibrate_noise
    from synthgen.models.text.canary import canary_exposure, exposure
    from synthgen.models.text.metrics import distinct_n, holdout_perplexity, text_metrics
    from synthgen.models.text.model import DPTextModel
    from synthgen.models.text.settings import TextModelSettings
    from synthgen.models.text.tokenizer import InputStats, TextTokenizer, truncate_utf8
    from synthgen.models.text.vocabulary import dp_words, split_pieces

_EXPORTS = {
    "TextTokenizer": "tokenizer",
    "InputStats": "tokenizer",
    "truncate_utf8": "tokenizer",
    "dp_words": "vocabulary",
    "split_pieces": "vocabulary",
    "DPTextModel": "model",
    "PrivacyEntry": "accounting",
    "TextPrivacyRecord": "accounting",
    "calibrate_noise": "accounting",
    "canary_exposure": "canary",
    "exposure": "canary",
    "distinct_n": "metrics",
    "text_metrics": "metrics",
    "holdout_perplexity": "metrics",
    "TextModelSettings": "settings",
}

__all__ = [
    "DPTextModel",
    "InputStats",
    "PrivacyEntry",
    "TextModelSettings",
    "TextPrivacyRecord",
    "TextTokenizer",
    "calibrate_noise",
    "canary_exposure",
    "distinct_n",
    "dp_words",
    "exposure",
    "holdout_perplexity",
    "split_pieces",
    "text_metrics",
    "truncate_utf8",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
