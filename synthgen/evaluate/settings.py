"""Evaluation section of the pipeline spec (owned by :mod:`synthgen.evaluate`).

The evaluation compares synthetic rows with real rows, so everything it produces is
real-derived and not DP: the pipeline keeps reports in the real zone or under a
restricted classification. The size caps below bound run time (an Adult-sized table
must evaluate in under a minute on two cores); they sample rows, never change a metric's
definition.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from synthgen.spec_section import SpecSection


class EvaluateSettings(SpecSection):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    #: Run the evaluation stage at all.
    enabled: bool = True
    #: Expected share of real rows held out from training (never seen by the synthesizer);
    #: each row's side is a keyed hash of that row, so adding a row moves no other row.
    holdout: float = Field(default=0.2, ge=0, lt=1)
    #: Column predicted in the utility section (TSTR vs TRTR); None skips that section.
    target: str | None = None
    #: Utility task; "auto" = classification for categorical targets or <= 10 distinct values.
    task: Literal["auto", "classification", "regression"] = "auto"
    #: Sensitive attributes for the bias section (subgroup shares and per-subgroup utility).
    sensitive: list[str] = []
    #: Seed for every sample drawn by the evaluation (not the holdout: that is keyed); 0 to 2^32-1.
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    #: Rows sampled from each table for the fidelity and correlation sections.
    max_rows: int = Field(default=50_000, ge=100, le=10_000_000)
    #: Quantile bins per numeric column for marginal total variation distances.
    bins: int = Field(default=20, ge=2, le=1000)
    #: Column pairs scored for 2-way marginals (sampled beyond this).
    max_pairs: int = Field(default=500, ge=1, le=100_000)
    #: Columns given to SDMetrics' QualityReport (sampled beyond this; its cost grows with pairs).
    max_report_columns: int = Field(default=40, ge=2, le=1_000)
    #: Most frequent categories kept per column in encodings and plots (the rest share one level).
    max_categories: int = Field(default=100, ge=2, le=250)
    #: Training rows (real and synthetic each) for the utility models.
    utility_rows: int = Field(default=50_000, ge=100, le=10_000_000)
    #: Members and non-members each (equal-sized train sample and holdout) for DCR and the attack.
    privacy_rows: int = Field(default=5_000, ge=10, le=1_000_000)
    #: Training rows for the size-corrected DCR share against all training rows (sampled beyond this).
    privacy_train_rows: int = Field(default=100_000, ge=10, le=10_000_000)
    #: Synthetic rows the membership attack measures distances to.
    privacy_reference_rows: int = Field(default=20_000, ge=10, le=10_000_000)
    #: Subgroups with fewer holdout rows than this get no per-subgroup utility score.
    min_subgroup_rows: int = Field(default=30, ge=1, le=10_000_000)
    #: Native threads (OpenMP/BLAS) for models and distances. 1 on purpose: on a busy 2-core host,
    #: multi-threaded HistGradientBoosting measured 15-40x slower than single-threaded.
    threads: int = Field(default=1, ge=1, le=256)
    #: Memorisation test for text columns: plant a canary sentence this many times in the
    #: *synthetic* text (a DP output, so no uncharged model sees real text), train the text
    #: model with and without it (same settings and epsilon), and report the canary's exposure
    #: for both. 0 = off: it trains two extra text models. The figures stay in the restricted
    #: report; the two models are discarded and charge nothing to the ledger.
    text_canary: int = Field(default=0, ge=0, le=1_000)
    #: Embed PNG plots in the HTML report (off = tables only, faster).
    plots: bool = True
