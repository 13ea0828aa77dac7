"""Fit time of a 30,000-row, 25-column table at default settings, beside ctgan's TVAE.

The table is the first 25 columns of :func:`bench.utility.wide_table` (credit-like: limits,
codes, repayment states, bills and payments month by month, income and the default flag),
30,000 rows to fit and 7,500 held out, nothing declared (types inferred, as a new user runs
it). synthgen runs ``model.kind: auto`` (the default) at the default epsilon 3 with every other
setting at its default, through the same ``make_synthesizer`` as the pipeline, and is timed
fit + sample of 30,000 rows. The baseline in the same run is ctgan's non-private TVAE on the
same rows (ctgan's defaults except ``epochs``: 30, DP-TVAE's default, from
``SYNTHGEN_BENCH_TVAE_EPOCHS``; ctgan's own 300 would take over an hour here).
Both are also scored (TSTR ROC AUC on the held-out rows, target ``default.next``; mean 1-way
TVD) so that a fast fit cannot hide a useless one. Goal: synthgen's fit + sample <= 300 s
on 2 cores.

Run: ``python -m bench fit_time`` (``--quick``: 6,000 rows, TVAE 3 epochs).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from bench.harness import benchmark

ROWS = 30_000
COLUMNS = 25
TARGET = "default.next"


@benchmark("fit_time")
def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.peers import run_tvae
    from bench.utility import tstr, tvd_1way, wide_table
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings
    from synthgen.sources import infer_schema

    rows = 6_000 if args.quick else ROWS
    whole = wide_table(rows + rows // 4, seed=5)
    whole = whole.select(whole.columns[:COLUMNS])
    train, test = whole.head(rows), whole.tail(rows // 4)
    schema = infer_schema(train)
    privacy = PrivacySettings()
    synth: Any = make_synthesizer("auto", schema=schema, model=ModelSettings(), privacy=privacy)
    t0 = time.perf_counter()
    synth.fit(train)
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    out = synth.sample(rows, seed=0)
    sample_s = time.perf_counter() - t1
    record = synth.privacy_record_
    assert record is not None
    ours = {
        "kind": synth.choice_[0],
        "why": synth.choice_[1],
        "fit_s": round(fit_s, 1),
        "sample_s": round(sample_s, 1),
        "fit_plus_sample_s": round(fit_s + sample_s, 1),
        "epsilon": privacy.epsilon,
        "spent_epsilon": round(record.spent_epsilon, 4),
        "tstr_auc": round(tstr(out, test, TARGET, 1), 4),
        "tvd_1way": tvd_1way(train, out),
    }
    epochs = 3 if args.quick else int(os.environ.get("SYNTHGEN_BENCH_TVAE_EPOCHS", "30"))
    tvae_out, tvae = run_tvae(train, schema, epochs=epochs)
    baseline = {
        **tvae,
        "fit_plus_sample_s": round(tvae["fit_s"] + tvae["sample_s"], 1),
        "tstr_auc": round(tstr(tvae_out, test, TARGET, 1), 4),
        "tvd_1way": tvd_1way(train, tvae_out),
    }
    return {
        "table": f"bench.utility.wide_table(seed=5), first {COLUMNS} columns: {rows:,} rows fitted, "
        f"{test.height:,} held out; nothing declared",
        "synthgen_auto_defaults": ours,
        "baseline": "ctgan TVAE, non-private, ctgan's defaults except epochs, same rows, same run",
        "ctgan_tvae": baseline,
        "trtr_auc": round(tstr(train, test, TARGET, 1), 4),
        "ratio_synthgen_vs_tvae_time": round(ours["fit_plus_sample_s"] / baseline["fit_plus_sample_s"], 2),
        "goal": "synthgen fit + sample <= 300 s on 2 cores",
        "goal_met": ours["fit_plus_sample_s"] <= 300,
    }
