"""Bias: does synthesis change who is in the data, or how well models work for each group?

For each sensitive attribute named in the spec: subgroup shares in the real training rows
and in the synthetic rows, and the utility metric within each subgroup of the holdout for
the model trained on real rows (TRTR) and on synthetic rows (TSTR). A disparity gap
(best minus worst subgroup) that grows from TRTR to TSTR means synthesis amplified it.
"""

from __future__ import annotations

import numpy as np

from synthgen.evaluate import plots
from synthgen.evaluate.encoding import Binning, fit_binning
from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Figure,
    Section,
    SectionError,
    SectionResult,
    SectionSkipped,
    Table,
    rounded,
)
from synthgen.evaluate.sections.utility import (
    Predictions,
    UtilityOutcome,
    classification_scores,
    primary_metric,
    regression_scores,
)

#: Most frequent subgroups shown per attribute (the rest are pooled as "(other)").
MAX_GROUPS = 20
#: A TSTR disparity gap larger than the TRTR one by more than this raises an alert.
GAP_ALERT = 0.05


def _subset_metric(outcome: UtilityOutcome, pred: Predictions, mask: np.ndarray) -> tuple[str, float | None]:
    y = outcome.y_true[mask]
    sub = Predictions(predicted=pred.predicted[mask], proba=None if pred.proba is None else pred.proba[mask])
    if outcome.task == "classification":
        scores = classification_scores(y, sub, outcome.labels, outcome.positive)
        if scores["roc_auc"] is not None:
            return "roc_auc", scores["roc_auc"]
        return "accuracy", scores["accuracy"]
    return "r2", regression_scores(y.astype(float), sub)["r2"]


class BiasSection(Section):
    name = "bias"
    title = "Bias across sensitive attributes"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data, st = ctx.data, ctx.settings
        if not st.sensitive:
            raise SectionSkipped(
                "no sensitive attributes named: set evaluate.sensitive (for example [sex, race])"
            )
        missing = [a for a in st.sensitive if a not in data.kinds]
        usable = [a for a in st.sensitive if a in data.kinds]
        if missing:
            reasons = [f"{a} ({data.excluded.get(a, 'not in the real data')})" for a in missing]
            out.note("Not evaluated: " + "; ".join(reasons) + ".")
        if not usable:
            raise SectionError(f"none of the sensitive attributes can be compared: {out.message}")
        if data.synthetic.height == 0 or data.train.height == 0:
            raise SectionError("no synthetic or training rows to compare")
        outcome: UtilityOutcome | None = ctx.shared.get("utility")
        if outcome is None:
            out.note("No per-subgroup utility: the utility section did not run (set evaluate.target).")

        worst_share_gap = 0.0
        for attr in usable:
            binning = fit_binning(data.train[attr], data.kinds[attr], bins=4, max_categories=MAX_GROUPS)
            codes_r = binning.codes(data.train[attr])
            codes_s = binning.codes(data.synthetic[attr])
            share_r = np.bincount(codes_r, minlength=binning.n_levels) / codes_r.size
            share_s = np.bincount(codes_s, minlength=binning.n_levels) / codes_s.size
            present = (share_r > 0) | (share_s > 0)
            groups = [g for g, p in zip(binning.labels, present, strict=True) if p]
            rows = [
                [g, rounded(r), rounded(s), rounded(s - r)]
                for g, r, s, p in zip(binning.labels, share_r, share_s, present, strict=True)
                if p
            ]
            gap = float(np.abs(share_s - share_r).max())
            worst_share_gap = max(worst_share_gap, gap)
            out.metrics[f"{attr}_share_tvd"] = rounded(float(0.5 * np.abs(share_s - share_r).sum()))
            out.metrics[f"{attr}_max_share_gap"] = rounded(gap)
            out.tables.append(
                Table(f"{attr}: subgroup shares", ["group", "real", "synthetic", "difference"], rows)
            )
            if st.plots:
                out.figures.append(
                    Figure(
                        f"{attr}: subgroup shares",
                        plots.grouped_bars(
                            groups,
                            [
                                ("real", share_r[present].tolist(), plots.REAL),
                                ("synthetic", share_s[present].tolist(), plots.SYNTHETIC),
                            ],
                            ylabel="share of rows",
                            title=attr,
                        ),
                    )
                )
            if outcome is not None:
                self._group_utility(ctx, attr, binning, outcome, out)
        out.headline["bias_max_share_gap"] = rounded(worst_share_gap)

    def _group_utility(
        self, ctx: EvaluationContext, attr: str, binning: Binning, outcome: UtilityOutcome, out: SectionResult
    ) -> None:
        st = ctx.settings
        trtr = outcome.predictions.get(("hgb", "trtr"))
        tstr = outcome.predictions.get(("hgb", "tstr"))
        if trtr is None:
            return
        codes = binning.codes(ctx.data.holdout[attr])[outcome.rows]
        rows: list[list[object]] = []
        values: dict[str, list[float]] = {"trtr": [], "tstr": []}
        small = []
        for level, label in enumerate(binning.labels):
            mask = codes == level
            n = int(mask.sum())
            if n == 0:
                continue
            if n < st.min_subgroup_rows:
                small.append(label)
                continue
            metric, real_score = _subset_metric(outcome, trtr, mask)
            syn_score = _subset_metric(outcome, tstr, mask)[1] if tstr is not None else None
            rows.append([label, n, metric, rounded(real_score), rounded(syn_score)])
            if real_score is not None:
                values["trtr"].append(real_score)
            if syn_score is not None:
                values["tstr"].append(syn_score)
        if small:
            out.note(
                f"{attr}: {len(small)} subgroup(s) under {st.min_subgroup_rows} holdout rows"
                " get no utility score."
            )
        if not rows:
            return
        out.tables.append(
            Table(
                f"{attr}: HistGradientBoosting utility within each subgroup (holdout)",
                ["group", "holdout rows", "metric", "TRTR", "TSTR"],
                rows,
            )
        )
        gap_real = max(values["trtr"]) - min(values["trtr"]) if len(values["trtr"]) >= 2 else None
        gap_syn = max(values["tstr"]) - min(values["tstr"]) if len(values["tstr"]) >= 2 else None
        out.metrics[f"{attr}_disparity_gap_trtr"] = rounded(gap_real)
        out.metrics[f"{attr}_disparity_gap_tstr"] = rounded(gap_syn)
        if gap_real is not None and gap_syn is not None and gap_syn > gap_real + GAP_ALERT:
            out.alerts.append(
                f"{attr}: the {primary_metric(outcome.task)} gap between subgroups grows from"
                f" {gap_real:.3f} (real) to {gap_syn:.3f} (synthetic)"
            )
