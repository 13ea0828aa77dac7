"""The holdout: real rows the synthesizer never sees.

Privacy metrics (DCR share, membership attack) compare synthetic rows with training
rows *and* with rows that were never trained on; without a holdout they have no
baseline. Utility is also tested on it (train on synthetic, test on real).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from synthgen.errors import SpecError


def split_holdout(frame: pl.DataFrame, fraction: float, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` at random into ``(train, holdout)``, reproducibly for a given seed.

    ``fraction`` is the share of rows held out, in ``[0, 1)``; 0 gives an empty holdout
    (with the same columns). When ``fraction > 0`` and the frame has at least two rows,
    both parts get at least one row. Row order inside each part follows the input order,
    so the split does not depend on how the caller later sorts.
    """
    if not 0 <= fraction < 1:
        raise SpecError(f"evaluate.holdout must be in [0, 1), got {fraction}")
    n = frame.height
    n_hold = round(n * fraction)
    if fraction > 0 and n >= 2:
        n_hold = min(max(n_hold, 1), n - 1)
    if n_hold == 0:
        return frame, frame.clear()
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=n_hold, replace=False)] = True
    is_hold = pl.Series("__holdout", mask)
    return frame.filter(~is_hold), frame.filter(is_hold)
