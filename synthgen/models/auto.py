"""``model.kind: auto``: pick the synthesizer from public facts and DP results only.

The choice reads the DP row count (the same Laplace count the chosen model would release
first, made once at that model's count epsilon and handed to it, so nothing is paid twice),
the number of modelled columns, whether a text column shares the budget (public: the spec),
and epsilon. It never reads a raw statistic, so it is post-processing (P2), and the same
inputs always give the same choice.

The rule (:func:`choose_kind`) and the table behind it: ``bench/results/utility.json``
(``python -m bench utility``), summarised in the README.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import polars as pl

from synthgen.errors import ModelError
from synthgen.models.base import ProgressCallback, Synthesizer, make_synthesizer
from synthgen.privacy.accountant import split_budget
from synthgen.privacy.mechanisms import laplace_count, noise_rng

#: DP-TVAE from this many rows (DP count) up; dp_mst below. Measured (``bench/results/utility.json``,
#: one run, 2 shared cores): on the demo table (8,000 rows, 8 columns) dp_mst wins every figure at
#: epsilon 1, 2.1 and 3 (mean association gap 0.033 vs 0.12-0.13, TSTR 0.66-0.71 vs 0.53-0.66); on
#: Adult (32,561 rows, 15 columns, nothing declared) DP-TVAE wins ML utility (TSTR 0.879 vs 0.756
#: at epsilon 1) while dp_mst keeps the marginals closer at epsilon 3 and fits in seconds instead of
#: minutes. The cut sits between the two sizes measured; tables in between were not measured.
TVAE_MIN_ROWS = 20_000


def choose_kind(*, n_dp: float, columns: int, epsilon: float, dp: bool) -> tuple[str, str]:
    """The kind for a table, and why (one line for the run summary). Deterministic, public inputs."""
    if not dp:
        return "dp_mst", "non-DP run: dp_mst with exact marginals (fast, keeps the strongest pairs)"
    rows = max(int(n_dp), 0)
    if n_dp >= TVAE_MIN_ROWS:
        return "dp_tvae", (
            f"about {rows} rows (DP count) >= {TVAE_MIN_ROWS}, {columns} columns, epsilon {epsilon:g}: "
            "DP-SGD has rows enough to learn interactions beyond pairs"
        )
    return "dp_mst", (
        f"about {rows} rows (DP count) < {TVAE_MIN_ROWS}, {columns} columns, epsilon {epsilon:g}: "
        "noisy marginals on a DP tree keep the relationships that DP-SGD loses at this size"
    )


class AutoSynthesizer(Synthesizer):
    """Chooses a kind at fit time (see :func:`choose_kind`) and then behaves as that model."""

    kind = "auto"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chosen_: Synthesizer | None = None
        #: (kind, reason) once fitted: for the run summary.
        self.choice_: tuple[str, str] | None = None

    def _count(self, frame: pl.DataFrame) -> tuple[float, Any] | None:
        """The DP row count at the count epsilon every kind's preprocessing uses (schema only)."""
        if not self.privacy.dp:
            return None
        dp_cols, discovery, columns = self.dp_columns()
        pre = split_budget(
            self.privacy, total_delta=0.5, dp_columns=dp_cols, discovery_columns=discovery, columns=columns
        )
        rows = frame.select(self._tabular_schema().names)
        if self.model.drop_duplicates:
            rows = rows.unique()
        self.released_epsilon_ = pre.count_epsilon
        return laplace_count(rows.height, epsilon=pre.count_epsilon, rng=noise_rng())

    def fit(self, frame: pl.DataFrame, *, progress: ProgressCallback | None = None) -> Self:
        """Release the DP row count, choose, and fit the chosen kind with that count."""
        self._check_distributed()
        if frame.height == 0:
            raise ModelError("the training data has no rows")
        counted = self._count(frame)
        n = counted[0] if counted is not None else float(frame.height)
        columns = len(self._tabular_schema().columns)
        self.choice_ = choose_kind(n_dp=n, columns=columns, epsilon=self.privacy.epsilon, dp=self.privacy.dp)
        chosen = make_synthesizer(self.choice_[0], schema=self.schema, model=self.model, privacy=self.privacy)
        chosen.dp_count_ = counted
        try:
            chosen.fit(frame, progress=progress)
        finally:
            self.released_epsilon_ = max(self.released_epsilon_, chosen.released_epsilon_)
        self.chosen_ = chosen
        self.privacy_record_ = chosen.privacy_record_
        self.encoder_ = chosen.encoder_
        self.duplicates_ = chosen.duplicates_
        return self

    @property
    def chosen_kind(self) -> str | None:
        return self.choice_[0] if self.choice_ is not None else None

    def sample_batches(
        self, n: int, *, seed: int | None = None, batch_rows: int = 100_000
    ) -> Iterator[pl.DataFrame]:
        if self.chosen_ is None:
            raise ModelError("auto is not fitted: call fit() first")
        return self.chosen_.sample_batches(n, seed=seed, batch_rows=batch_rows)

    def save(self, directory: Path) -> None:
        """Saves the chosen model (its own kind): ``load`` returns that model."""
        if self.chosen_ is None:
            raise ModelError("auto is not fitted: call fit() first")
        self.chosen_.save(directory)

    def _save_state(self, directory: Path) -> None:  # pragma: no cover - save() delegates
        raise NotImplementedError

    def _load_state(self, directory: Path) -> None:  # pragma: no cover - artifacts hold the chosen kind
        raise NotImplementedError
