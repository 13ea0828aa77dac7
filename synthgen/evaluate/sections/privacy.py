"""Privacy risk: how close synthetic rows sit to the rows the model was trained on.

All distances live in one mixed-type space (:class:`DistanceEncoder`). The key idea is
the *holdout baseline*: a model that memorises puts synthetic rows closer to training
rows than to equally many real rows it never saw; a model that generalises does not.

- DCR share: for each synthetic row, is its closest record in an equal-sized training
  sample nearer than its closest record in the holdout? Ties count one half. About 0.5
  means no memorisation; near 1 means copies of training rows.
  With a 20% holdout the equal-sized training sample holds only a quarter of the
  training rows, so a synthetic copy of a training row outside that sample looks like an
  ordinary row: copying every training row gives about 0.62, not 1. The *full* DCR
  share therefore also compares with all training rows (up to a cap), whose
  no-memorisation expectation is ``n_train / (n_train + n_holdout)`` by exchangeability
  (the closest of all real rows is equally likely to be any of them); copies drive it
  to 1.
- Nearest-neighbour distance ratio (NNDR): distance to the closest training record over
  distance to the second closest (1 when both are equal). Low values mean a synthetic
  row singles out one real record; compared with the same ratio against the holdout.
- Exact-match rate: share of synthetic rows equal to some training row on every
  compared column, beside the share equal to some holdout row.
- Membership inference: the attacker scores each real candidate by minus its distance
  to the closest synthetic row; the attack AUC over training members vs holdout
  non-members is 0.5 when membership cannot be told.

These are empirical checks of one attack each; they do not bound what a stronger attack
could do. The formal guarantee is the (ε, δ) of DP training, shown beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from synthgen.evaluate import plots
from synthgen.evaluate.encoding import DistanceEncoder, sample_rows
from synthgen.evaluate.neighbours import nearest, nearest_two
from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Figure,
    Section,
    SectionError,
    SectionResult,
    Table,
    rounded,
)

#: Alert thresholds: beyond these a data owner should look closer.
DCR_SHARE_ALERT = 0.6
ATTACK_AUC_ALERT = 0.6
#: Distinct nearest real records per synthetic query below which the DCR shares are unstable.
CROWDED_NEAREST = 0.05


def dcr_share(to_train: np.ndarray, to_holdout: np.ndarray) -> float:
    """Share of synthetic rows closer to the training sample than to the holdout (ties: half)."""
    closer = (to_train < to_holdout).mean()
    ties = (to_train == to_holdout).mean()
    return float(closer + 0.5 * ties)


def nndr(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """first / second nearest distance; 1 where both are 0 (no single closest record)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(second > 0, first / second, 1.0)
    return np.clip(ratio, 0.0, 1.0)


def exact_match_rate(synthetic: pl.DataFrame, real: pl.DataFrame) -> float:
    """Share of synthetic rows equal to at least one real row on every column (nulls equal)."""
    if synthetic.height == 0 or real.height == 0:
        return 0.0
    matched = synthetic.join(real.unique(), on=synthetic.columns, how="semi", nulls_equal=True)
    return matched.height / synthetic.height


def formal_guarantee(privacy: dict[str, Any] | None) -> dict[str, Any]:
    """ε, δ and the DP flag from the ledger summary the pipeline passes in."""
    if not privacy:
        return {"dp": None, "epsilon": None, "delta": None}
    eps = privacy.get("epsilon", privacy.get("eps"))
    return {
        "dp": privacy.get("dp"),
        "epsilon": None if eps is None else float(eps),
        "delta": None if privacy.get("delta") is None else float(privacy["delta"]),
    }


class PrivacySection(Section):
    name = "privacy"
    title = "Privacy risk"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data, st = ctx.data, ctx.settings
        guarantee = formal_guarantee(ctx.privacy)
        out.metrics.update(guarantee)
        out.headline.update(guarantee)
        for key, value in (ctx.privacy or {}).items():
            # Whatever else the ledger summary carries (accountant, cumulative spend, cap) is shown as is.
            if key not in ("dp", "epsilon", "eps", "delta") and isinstance(value, int | float | str | bool):
                out.metrics[f"ledger_{key}"] = value
        if guarantee["dp"] is False:
            out.alerts.append(
                "trained without differential privacy: no formal guarantee (P7: not shareable by default)"
            )
        if not data.kinds:
            raise SectionError("no comparable columns (see the schema check)")
        if data.holdout.height == 0:
            raise SectionError(
                "no holdout rows: the privacy metrics need them as baseline; set evaluate.holdout above 0"
            )
        if data.synthetic.height == 0 or data.train.height == 0:
            raise SectionError("no synthetic or training rows to compare")

        m = min(st.privacy_rows, data.holdout.height, data.train.height)
        members = sample_rows(data.train, m, st.seed + 10)
        non_members = sample_rows(data.holdout, m, st.seed + 11)
        queries = sample_rows(data.synthetic, st.privacy_rows, st.seed + 12)
        reference = sample_rows(data.synthetic, st.privacy_reference_rows, st.seed + 13)
        enc = DistanceEncoder(data.kinds, max_categories=st.max_categories).fit(
            pl.concat([data.train, data.holdout])
        )
        x_mem, x_non = enc.transform(members), enc.transform(non_members)
        x_q, x_ref = enc.transform(queries), enc.transform(reference)

        # DCR and NNDR of synthetic rows against equal-sized member and non-member sets.
        t1, t2, t_idx = nearest_two(x_q, x_mem)
        h1, h2, h_idx = nearest_two(x_q, x_non)
        baseline = nearest(x_non, x_mem)  # how far real rows naturally sit from each other
        share = dcr_share(t1, h1)
        full_train = sample_rows(data.train, st.privacy_train_rows, st.seed + 14)
        share_full = dcr_share(nearest(x_q, enc.transform(full_train)), h1)
        expected_full = full_train.height / (full_train.height + m)
        # When synthetic rows crowd around a few real records (mode collapse), both shares hang on
        # those few records and swing widely with the sample: say so rather than cry memorisation.
        hubs = len(np.unique(np.r_[t_idx, h_idx + m])) / min(2 * x_q.shape[0], 2 * m)
        ratio_t, ratio_h = nndr(t1, t2), nndr(h1, h2)
        out.metrics.update(
            {
                "dcr_share_closer_to_train": rounded(share),
                "dcr_share_full_train": rounded(share_full),
                "dcr_share_full_train_expected": rounded(expected_full),
                "dcr_train_median": rounded(float(np.median(t1))),
                "dcr_holdout_median": rounded(float(np.median(h1))),
                "dcr_train_p05": rounded(float(np.quantile(t1, 0.05))),
                "dcr_holdout_p05": rounded(float(np.quantile(h1, 0.05))),
                "dcr_real_to_real_median": rounded(float(np.median(baseline))),
                "dcr_distinct_nearest_share": rounded(hubs),
                "nndr_train_median": rounded(float(np.median(ratio_t))),
                "nndr_holdout_median": rounded(float(np.median(ratio_h))),
                "nndr_train_p05": rounded(float(np.quantile(ratio_t, 0.05))),
                "nndr_holdout_p05": rounded(float(np.quantile(ratio_h, 0.05))),
            }
        )

        # Exact matches against all training rows, and against equal-sized sets for a fair baseline.
        em_all = exact_match_rate(data.synthetic, data.train)
        em_mem = exact_match_rate(queries, members)
        em_non = exact_match_rate(queries, non_members)
        out.metrics.update(
            {
                "exact_match_rate": rounded(em_all),
                "exact_match_rate_train_sample": rounded(em_mem),
                "exact_match_rate_holdout": rounded(em_non),
            }
        )

        # Distance-based membership inference.
        from sklearn.metrics import roc_auc_score, roc_curve

        d_mem, d_non = nearest(x_mem, x_ref), nearest(x_non, x_ref)
        labels = np.r_[np.ones(m), np.zeros(m)]
        scores = -np.r_[d_mem, d_non]
        auc = float(roc_auc_score(labels, scores))
        fpr, tpr, _ = roc_curve(labels, scores)
        out.metrics["attack_auc"] = rounded(auc)
        out.metrics["attack_advantage"] = rounded(float(np.max(tpr - fpr)))
        out.metrics.update(
            {
                "members": m,
                "non_members": m,
                "synthetic_queries": queries.height,
                "synthetic_reference": reference.height,
            }
        )
        out.headline.update(
            {
                "dcr_share": out.metrics["dcr_share_closer_to_train"],
                "dcr_share_full": rounded(share_full),
                "attack_auc": rounded(auc),
                "exact_match_rate": rounded(em_all),
            }
        )

        if hubs < CROWDED_NEAREST:
            out.note(
                f"Synthetic rows crowd around few real records (distinct nearest records: {hubs:.1%} of"
                " the possible): the DCR shares depend on those few records and are unstable; the"
                " attack AUC is the steadier measure here."
            )
        if share > DCR_SHARE_ALERT:
            out.alerts.append(
                f"synthetic rows sit closer to training rows than to holdout rows (DCR share {share:.2f})"
            )
        elif share_full > expected_full + (1 - expected_full) * (2 * DCR_SHARE_ALERT - 1):
            # The same margin above chance as DCR_SHARE_ALERT, on the full-training scale.
            out.alerts.append(
                f"synthetic rows sit closer to training rows than chance predicts (full DCR share"
                f" {share_full:.2f}, expected {expected_full:.2f})"
            )
        if auc > ATTACK_AUC_ALERT:
            out.alerts.append(f"membership inference attack AUC {auc:.2f} (0.5 = no better than chance)")
        if em_mem > em_non + 0.01:
            out.alerts.append(
                f"exact copies of training rows: {em_mem:.1%} of synthetic rows match a training row,"
                f" {em_non:.1%} match a holdout row"
            )
        out.tables.append(
            Table(
                "Privacy risk at a glance (holdout = rows the model never saw)",
                ["measure", "vs training rows", "vs holdout rows", "no-memorisation expectation"],
                [
                    [
                        "median DCR",
                        out.metrics["dcr_train_median"],
                        out.metrics["dcr_holdout_median"],
                        "about equal",
                    ],
                    ["DCR share closer to training (equal sizes)", rounded(share), None, "about 0.5"],
                    [
                        f"DCR share closer to all {full_train.height} training rows",
                        rounded(share_full),
                        None,
                        f"about {expected_full:.2f}",
                    ],
                    [
                        "median NNDR",
                        out.metrics["nndr_train_median"],
                        out.metrics["nndr_holdout_median"],
                        "about equal",
                    ],
                    ["exact-match rate (equal-sized sets)", rounded(em_mem), rounded(em_non), "about equal"],
                    ["membership attack AUC", rounded(auc), None, "about 0.5"],
                ],
            )
        )
        out.message = (
            f"{queries.height} synthetic rows against {m} training rows and {m} holdout rows;"
            f" the attack measured distances to {reference.height} synthetic rows. {out.message}"
        ).strip()
        if ctx.privacy is None:
            out.note("No ledger entry was passed: the formal (ε, δ) guarantee is unknown.")
        elif guarantee["dp"] and guarantee["epsilon"] is not None:
            delta = "" if guarantee["delta"] is None else f", δ = {guarantee['delta']:.2g}"
            out.note(f"Formal guarantee: (ε = {guarantee['epsilon']:.3g}{delta})-DP training.")
        if st.plots:
            out.figures.append(
                Figure(
                    "Distance to closest record",
                    plots.distance_histograms(
                        [
                            ("synthetic → training sample", t1, plots.SYNTHETIC),
                            ("synthetic → holdout", h1, plots.HOLDOUT),
                            ("holdout → training sample (real baseline)", baseline, plots.REAL),
                        ],
                        xlabel="distance to closest record",
                    ),
                    "Synthetic rows much closer to training rows than to holdout rows point to memorisation.",
                )
            )
            out.figures.append(
                Figure(
                    "Membership inference attack",
                    plots.roc_curves([(f"distance attack (AUC {auc:.3f})", fpr, tpr)], title="attack ROC"),
                )
            )
