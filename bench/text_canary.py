"""Memorisation of the text model: canary exposure at the demo's text settings, DP vs no DP.

Data: the demo's 9,000 training notes (``bench.text``). A canary sentence with a random
six-digit secret is planted ``k`` times; for each setting, a model trained with it and one
trained without it (same settings) rank the secret among 1,000 random secrets by likelihood
(exposure in bits: about 1.44 when nothing is memorised, log2(1001) = 9.97 at most) and
complete the canary's prefix 200 times. Settings: the demo spec's ``model.text`` at text
epsilon 0.9 (DP), and the same network without DP trained for more epochs, to show that the
test does detect memorisation when there is some.

Run: ``python -m bench text_canary`` (``--quick``: 2,000 notes, k = 5).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.harness import benchmark
from bench.text import DELTA, EPSILON, _demo_notes


@benchmark("text_canary")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from synthgen.models.text import TextModelSettings, canary_exposure

    quick = bool(getattr(args, "quick", False))
    n, k = (2_000, 5) if quick else (10_000, 10)
    texts, cond, categories = _demo_notes(n)
    split = int(0.9 * n)
    demo_spec = Path(__file__).resolve().parent.parent / "synthgen/demo/pipeline.yaml"
    spec = yaml.safe_load(demo_spec.read_text())
    demo = TextModelSettings.model_validate(spec["model"]["text"])
    runs = {
        "dp": (demo, True),
        "non_dp_longer": (demo.model_copy(update={"epochs": 3 if quick else 8}), False),
    }
    out: dict[str, Any] = {"k": k, "train_texts": split, "epsilon": EPSILON, "delta": DELTA}
    for label, (settings, dp) in runs.items():
        result = canary_exposure(
            texts[:split],
            cond[:split],
            settings=settings,
            epsilon=EPSILON if dp else None,
            delta=DELTA if dp else None,
            dp=dp,
            categories={"diagnosis_category": categories},
            k=k,
            device="cpu",
        )
        out[label] = {"settings": settings.model_dump(exclude_none=True), **result}
    return out
