"""Schema check: which columns are compared, and how the synthetic schema differs from the real one."""

from __future__ import annotations

from synthgen.evaluate.sections.base import EvaluationContext, Section, SectionError, SectionResult, Table


class SchemaSection(Section):
    name = "schema"
    title = "Schema check"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data = ctx.data
        rows = []
        for col, (ctype, real_dtype, syn_dtype) in data.column_info.items():
            used = data.kinds.get(col)
            rows.append(
                [
                    col,
                    ctype,
                    real_dtype,
                    syn_dtype or "(missing)",
                    used or "not compared",
                    data.excluded.get(col, ""),
                ]
            )
        out.tables.append(
            Table("Columns", ["column", "type", "real dtype", "synthetic dtype", "compared as", "note"], rows)
        )
        out.metrics.update(
            {
                "columns_real": len(data.column_info),
                "columns_compared": len(data.kinds),
                "numeric_columns": len(data.numeric),
                "categorical_columns": len(data.categorical),
                "rows_train": data.train.height,
                "rows_holdout": data.holdout.height,
                "rows_synthetic": data.synthetic.height,
            }
        )
        out.headline["schema_matches"] = not data.issues
        if data.issues:
            out.alerts.extend(data.issues)
            raise SectionError(
                "synthetic schema differs from the real one: "
                + "; ".join(data.issues)
                + ". The other sections compare the columns both share; regenerate from a model"
                " trained on this source to compare all columns."
            )
        if not data.kinds:
            raise SectionError("no column can be compared (all are text, identifiers or missing)")
        out.message = f"{len(data.kinds)} of {len(data.column_info)} real columns compared."
        if data.excluded:
            out.note("Not compared: " + "; ".join(f"{c} ({why})" for c, why in data.excluded.items()) + ".")
