"""Fidelity: SDMetrics' QualityReport plus the marginal distances of the DP-synthesis literature.

- Column shapes and column pair trends come from SDMetrics (KS / TV complements,
  correlation and contingency similarity); its overall score is their mean.
- 1-way and 2-way marginal total variation distance (TVD) on shared bins: numeric
  columns are cut at real quantiles, categories keep their values. TVD is 0 for equal
  distributions and 1 for disjoint ones; mean and max are reported.
"""

from __future__ import annotations

import itertools
import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from synthgen.evaluate import plots
from synthgen.evaluate.encoding import fit_binning, sample_rows
from synthgen.evaluate.sections.base import (
    EvaluationContext,
    Figure,
    Section,
    SectionError,
    SectionResult,
    Table,
    rounded,
)


def total_variation(a: np.ndarray, b: np.ndarray, n_levels: int) -> float:
    """TVD between the empirical distributions of two code arrays over ``n_levels`` levels."""
    p = np.bincount(a, minlength=n_levels) / max(1, a.size)
    q = np.bincount(b, minlength=n_levels) / max(1, b.size)
    return float(0.5 * np.abs(p - q).sum())


def _sdmetrics_quality(real: pl.DataFrame, synthetic: pl.DataFrame, kinds: Mapping[str, str]) -> Any:
    from sdmetrics.reports import QualityReport

    metadata = {
        "tables": {
            "table": {
                "columns": {
                    c: {"sdtype": "numerical" if k == "numeric" else "categorical"} for c, k in kinds.items()
                }
            }
        }
    }
    report = QualityReport()
    with warnings.catch_warnings():
        # SDMetrics warns about constant columns and NaN correlations; the scores say enough.
        warnings.simplefilter("ignore")
        report.generate(
            {"table": real.to_pandas()}, {"table": synthetic.to_pandas()}, metadata, verbose=False
        )
    return report


class FidelitySection(Section):
    name = "fidelity"
    title = "Fidelity"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data, st = ctx.data, ctx.settings
        if not data.kinds:
            raise SectionError("no comparable columns (see the schema check)")
        if data.synthetic.height == 0:
            raise SectionError("the synthetic data has no rows")
        if data.train.height == 0:
            raise SectionError("the real training data has no rows")
        real = sample_rows(data.train, st.max_rows, st.seed)
        syn = sample_rows(data.synthetic, st.max_rows, st.seed + 1)
        if real.height < data.train.height or syn.height < data.synthetic.height:
            out.note(f"Computed on {real.height} real and {syn.height} synthetic sampled rows.")

        self._sdmetrics(ctx, real, syn, out)
        self._marginals(ctx, real, syn, out)
        self._unseen(ctx, real, syn, out)
        if len(data.kinds) < 2:
            out.note(
                "Only one compared column: column pair trends and 2-way marginals are undefined"
                " and are reported as null."
            )
        if st.plots:
            dates = {c for c, info in data.column_info.items() if info[0] == "datetime"}
            out.figures.append(
                Figure(
                    "Per-column marginals, real vs synthetic",
                    plots.marginals(real, syn, data.kinds, dates=dates),
                    "Numeric columns: densities clipped to the central 99%. Categorical: the most"
                    " frequent real categories.",
                )
            )

    def _sdmetrics(
        self, ctx: EvaluationContext, real: pl.DataFrame, syn: pl.DataFrame, out: SectionResult
    ) -> None:
        kinds = dict(ctx.data.kinds)
        limit = ctx.settings.max_report_columns
        if len(kinds) > limit:
            keep = sorted(random.Random(ctx.settings.seed).sample(list(kinds), limit), key=list(kinds).index)
            kinds = {c: kinds[c] for c in keep}
            out.note(f"SDMetrics scores use {limit} of {len(ctx.data.kinds)} columns, sampled.")
        try:
            report = _sdmetrics_quality(real.select(list(kinds)), syn.select(list(kinds)), kinds)
        except Exception as exc:  # noqa: BLE001 - the distances below still stand without SDMetrics
            out.note(f"SDMetrics QualityReport failed ({type(exc).__name__}: {exc}); its scores are null.")
            out.metrics.update({"quality_score": None, "column_shapes": None, "column_pair_trends": None})
            out.headline.update(out.metrics)
            return
        table = report.get_properties()
        props = dict(zip(table["Property"], table["Score"], strict=True))
        shapes = rounded(props.get("Column Shapes"))
        pairs = rounded(props.get("Column Pair Trends")) if len(kinds) > 1 else None
        valid = [v for v in (shapes, pairs) if v is not None]
        overall = rounded(float(np.mean(valid))) if valid else None
        out.metrics.update({"quality_score": overall, "column_shapes": shapes, "column_pair_trends": pairs})
        out.headline.update({"quality_score": overall, "column_shapes": shapes, "column_pair_trends": pairs})

        details = report.get_details("Column Shapes")
        out.tables.append(
            Table(
                "Column shapes (SDMetrics; 1 = same distribution)",
                ["column", "metric", "score"],
                [[r["Column"], r["Metric"], rounded(r["Score"])] for r in details.to_dict("records")],
            )
        )
        if len(kinds) > 1:
            pair_details = report.get_details("Column Pair Trends")
            scored = pair_details.dropna(subset=["Score"])
            if len(scored) < len(pair_details):
                out.note(
                    f"{len(pair_details) - len(scored)} column pair(s) got no SDMetrics pair score"
                    " (a constant column or too few values) and are left out of the worst pairs."
                )
            worst = scored.sort_values("Score").head(10)
            out.tables.append(
                Table(
                    "Worst column pair trends (SDMetrics)",
                    ["column 1", "column 2", "metric", "score", "real correlation", "synthetic correlation"],
                    [
                        [
                            r["Column 1"],
                            r["Column 2"],
                            r["Metric"],
                            rounded(r["Score"]),
                            rounded(r.get("Real Correlation")),
                            rounded(r.get("Synthetic Correlation")),
                        ]
                        for r in worst.to_dict("records")
                    ],
                )
            )

    def _marginals(
        self, ctx: EvaluationContext, real: pl.DataFrame, syn: pl.DataFrame, out: SectionResult
    ) -> None:
        st = ctx.settings
        binnings = {
            c: fit_binning(real[c], k, bins=st.bins, max_categories=st.max_categories)
            for c, k in ctx.data.kinds.items()
        }
        codes_r = {c: b.codes(real[c]) for c, b in binnings.items()}
        codes_s = {c: b.codes(syn[c]) for c, b in binnings.items()}
        one_way = {c: total_variation(codes_r[c], codes_s[c], b.n_levels) for c, b in binnings.items()}
        out.metrics["tvd_1way_mean"] = rounded(float(np.mean(list(one_way.values()))))
        out.metrics["tvd_1way_max"] = rounded(max(one_way.values()))
        out.tables.append(
            Table(
                "1-way marginal total variation distance (0 = identical)",
                ["column", "bins", "tvd"],
                [
                    [c, binnings[c].n_levels, rounded(v)]
                    for c, v in sorted(one_way.items(), key=lambda kv: -kv[1])
                ],
            )
        )

        pairs = list(itertools.combinations(list(binnings), 2))
        if len(pairs) > st.max_pairs:
            pairs = random.Random(st.seed).sample(pairs, st.max_pairs)
            out.note(f"2-way marginals on {st.max_pairs} sampled column pairs.")
        two_way = {}
        for a, b in pairs:
            nb = binnings[b].n_levels
            joint_r = codes_r[a] * nb + codes_r[b]
            joint_s = codes_s[a] * nb + codes_s[b]
            two_way[(a, b)] = total_variation(joint_r, joint_s, binnings[a].n_levels * nb)
        if two_way:
            out.metrics["tvd_2way_mean"] = rounded(float(np.mean(list(two_way.values()))))
            out.metrics["tvd_2way_max"] = rounded(max(two_way.values()))
            worst = sorted(two_way.items(), key=lambda kv: -kv[1])[:10]
            out.tables.append(
                Table(
                    "Worst 2-way marginals (total variation distance)",
                    ["column 1", "column 2", "tvd"],
                    [[a, b, rounded(v)] for (a, b), v in worst],
                )
            )
        else:
            out.metrics["tvd_2way_mean"] = None
            out.metrics["tvd_2way_max"] = None
        for key in ("tvd_1way_mean", "tvd_1way_max", "tvd_2way_mean", "tvd_2way_max"):
            out.headline[key] = out.metrics[key]

    def _unseen(
        self, ctx: EvaluationContext, real: pl.DataFrame, syn: pl.DataFrame, out: SectionResult
    ) -> None:
        """Per categorical column, the share of synthetic values absent from the real rows.

        Under DP, categories that category discovery did not keep come out as the model's
        ``other`` label; a column where most synthetic values are such values has collapsed.
        """
        shares: dict[str, float] = {}
        labels: dict[str, str] = {}
        for c in ctx.data.categorical:
            values = syn[c].drop_nulls()
            if values.len() == 0:
                continue
            unseen = values.filter(~values.is_in(real[c].drop_nulls().unique()))
            share = unseen.len() / values.len()
            if share > 0:
                shares[c] = rounded(share) or 0.0
                labels[c] = str(unseen.mode().sort()[0])
        out.details["unseen_share"] = shares
        out.tables.append(
            Table(
                "Synthetic values never seen in the real data (such as 'other')",
                ["column", "share of synthetic values", "most common"],
                [[c, v, labels[c]] for c, v in sorted(shares.items(), key=lambda kv: -kv[1])],
            )
        )
