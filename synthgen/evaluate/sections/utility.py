"""ML utility: train on synthetic, test on real (TSTR) against train on real, test on real (TRTR).

Both regimes test on the holdout, which neither the synthesizer nor the real-trained
model has seen. Two model families show whether the synthetic data carries simple
(linear) and interaction (gradient boosting) structure: HistGradientBoosting with native
categorical support, and a linear model (logistic regression or ridge) on one-hot
categoricals and standardised numerics.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import polars as pl

from synthgen.evaluate import plots
from synthgen.evaluate.encoding import MISSING, sample_rows
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

Task = Literal["classification", "regression"]
MODELS = ("hgb", "linear")
MODEL_NAMES = {"hgb": "HistGradientBoosting", "linear": "linear"}

#: A numeric target with at most this many distinct values is treated as classes under task=auto.
_MAX_AUTO_CLASSES = 10


@dataclass
class Predictions:
    """What one fitted model says about the holdout rows."""

    #: Predicted labels (classification) or values (regression).
    predicted: np.ndarray
    #: Class probabilities aligned to ``UtilityOutcome.labels`` (classification only).
    proba: np.ndarray | None = None


@dataclass
class UtilityOutcome:
    """Handed to the bias section: the holdout truth and each model's predictions."""

    task: Task
    target: str
    #: Holdout rows used (non-null target), as a mask over the aligned holdout.
    rows: np.ndarray
    y_true: np.ndarray
    labels: list[str] = field(default_factory=list)
    positive: str | None = None
    predictions: dict[tuple[str, str], Predictions] = field(default_factory=dict)


def _labels(series: pl.Series) -> pl.Series:
    """Class labels as text; integer-valued floats written without ``.0``."""
    if series.dtype.is_float():
        as_int = series.cast(pl.Int64, strict=False)
        if bool((as_int.cast(pl.Float64) == series).fill_null(True).all()):
            return as_int.cast(pl.String)
    return series.cast(pl.String)


def _frame(frame: pl.DataFrame, cats: list[str], nums: list[str]) -> pd.DataFrame:
    cols = [pl.col(c).fill_null(MISSING) for c in cats] + [pl.col(c).cast(pl.Float64) for c in nums]
    return frame.select(cols).to_pandas()


def _model(kind: str, task: Task, cats: list[str], nums: list[str], seed: int, max_categories: int) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if kind == "hgb":
        if cats:
            # Unknown categories (seen in the test rows only) become missing, which HGB handles.
            enc = OrdinalEncoder(
                handle_unknown="use_encoded_value", unknown_value=np.nan, max_categories=max_categories
            )
            parts.append(("cat", enc, cats))
        if nums:
            parts.append(("num", "passthrough", nums))
        mask = [True] * len(cats) + [False] * len(nums)
        est: Any = (
            HistGradientBoostingClassifier(categorical_features=mask, random_state=seed)
            if task == "classification"
            else HistGradientBoostingRegressor(categorical_features=mask, random_state=seed)
        )
    else:
        if cats:
            parts.append(
                (
                    "cat",
                    OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=max_categories),
                    cats,
                )
            )
        if nums:
            parts.append(
                (
                    "num",
                    Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                    nums,
                )
            )
        est = LogisticRegression(max_iter=500) if task == "classification" else Ridge(alpha=1.0)
    return Pipeline([("prep", ColumnTransformer(parts, sparse_threshold=0.3)), ("model", est)])


def _aligned_proba(model: Any, x: pd.DataFrame, labels: list[str]) -> np.ndarray:
    proba = model.predict_proba(x)
    out = np.zeros((len(x), len(labels)))
    for j, cls in enumerate(model.classes_):
        if str(cls) in labels:
            out[:, labels.index(str(cls))] = proba[:, j]
    return out


def classification_scores(
    y_true: np.ndarray, pred: Predictions, labels: list[str], positive: str | None
) -> dict[str, float | None]:
    """ROC AUC, accuracy and F1 (binary: of the positive class; multiclass: macro)."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    present = [c for c in labels if c in set(y_true.tolist())]
    scores: dict[str, float | None] = {"accuracy": float(accuracy_score(y_true, pred.predicted))}
    auc: float | None = None
    assert pred.proba is not None
    if len(present) == 2 and positive in present and len(labels) == 2:
        auc = float(roc_auc_score(y_true == positive, pred.proba[:, labels.index(positive)]))
        scores["f1"] = float(f1_score(y_true == positive, pred.predicted == positive, zero_division=0))
    else:
        if len(present) >= 2:
            idx = [labels.index(c) for c in present]
            p = pred.proba[:, idx]
            sums = p.sum(axis=1, keepdims=True)
            p = np.where(sums > 0, p / np.where(sums > 0, sums, 1), 1.0 / len(idx))
            if len(present) == 2:
                auc = float(roc_auc_score(y_true == present[1], p[:, 1]))
            else:
                auc = float(roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=present))
        scores["f1"] = float(
            f1_score(y_true, pred.predicted, labels=present, average="macro", zero_division=0)
        )
    scores["roc_auc"] = auc
    return scores


def regression_scores(y_true: np.ndarray, pred: Predictions) -> dict[str, float | None]:
    from sklearn.metrics import mean_absolute_error, r2_score

    r2 = float(r2_score(y_true, pred.predicted)) if y_true.size >= 2 and np.var(y_true) > 0 else None
    return {"r2": r2, "mae": float(mean_absolute_error(y_true, pred.predicted))}


def primary_metric(task: Task) -> str:
    return "roc_auc" if task == "classification" else "r2"


class UtilitySection(Section):
    name = "utility"
    title = "ML utility (TSTR vs TRTR)"

    def compute(self, ctx: EvaluationContext, out: SectionResult) -> None:
        data, st = ctx.data, ctx.settings
        target = st.target
        if target is None:
            raise SectionSkipped("no target column set: set evaluate.target to a column to predict")
        if target not in data.column_info:
            names = ", ".join(list(data.column_info)[:12])
            raise SectionError(
                f"target column {target!r} is not in the real data; set evaluate.target to one of: {names}"
            )
        if target not in data.kinds:
            why = data.excluded.get(target, "not comparable")
            raise SectionError(f"target column {target!r} cannot be used: {why}")
        if data.holdout.height == 0:
            raise SectionError("no holdout rows to test on: set evaluate.holdout above 0")
        features = [c for c in data.kinds if c != target]
        if not features:
            raise SectionError(
                f"no feature columns besides the target {target!r}: utility needs at least one"
            )
        cats = [c for c in features if data.kinds[c] == "categorical"]
        nums = [c for c in features if data.kinds[c] == "numeric"]

        train = data.train.filter(pl.col(target).is_not_null())
        hold_mask = data.holdout[target].is_not_null().to_numpy()
        holdout = data.holdout.filter(pl.Series(hold_mask))
        syn = data.synthetic.filter(pl.col(target).is_not_null())
        if train[target].n_unique() < 2:
            raise SectionError(
                f"target column {target!r} has a single value in the real training rows: nothing to"
                " predict; choose another evaluate.target"
            )
        if holdout.height == 0:
            raise SectionError(f"every holdout row has a null {target!r}: nothing to test on")

        task: Task
        if st.task != "auto":
            task = st.task
        elif data.kinds[target] == "categorical" or train[target].n_unique() <= _MAX_AUTO_CLASSES:
            task = "classification"
        else:
            task = "regression"
        if task == "regression" and data.kinds[target] != "numeric":
            raise SectionError(f"task is regression but target {target!r} is categorical; set evaluate.task")

        train = sample_rows(train, st.utility_rows, st.seed)
        syn = sample_rows(syn, st.utility_rows, st.seed + 1)
        y = {
            "trtr": train[target],
            "tstr": syn[target],
            "test": holdout[target],
        }
        if task == "classification":
            y = {k: _labels(v) for k, v in y.items()}
        y_true = y["test"].to_numpy()
        outcome = UtilityOutcome(task=task, target=target, rows=hold_mask, y_true=y_true)
        if task == "classification":
            seen = set(y["trtr"].to_list()) | set(y["test"].to_list())
            outcome.labels = sorted(str(v) for v in seen)
            if len(outcome.labels) == 2:
                counts = y["trtr"].value_counts(name="n").sort(["n", target])
                outcome.positive = str(counts[target][0])  # the rarer class in the real training rows
        x_test = _frame(holdout, cats, nums)

        order = ["roc_auc", "accuracy", "f1"] if task == "classification" else ["r2", "mae"]
        rows = []
        for regime, frame in (("trtr", train), ("tstr", syn)):
            y_fit = y[regime]
            problem = None
            if frame.height == 0:
                problem = "no synthetic rows with a target value"
            elif task == "classification" and y_fit.n_unique() < 2:
                problem = f"the {'synthetic' if regime == 'tstr' else 'real'} target has a single value"
            if problem:
                out.note(f"{regime.upper()} not computed: {problem}.")
                out.alerts.append(f"{regime.upper()} utility not computed: {problem}")
                continue
            x_fit = _frame(frame, cats, nums)
            for kind in MODELS:
                model = _model(kind, task, cats, nums, st.seed, st.max_categories)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(x_fit, y_fit.to_numpy())
                    predicted = model.predict(x_test)
                    pred = Predictions(
                        predicted=np.asarray(predicted).astype(str)
                        if task == "classification"
                        else predicted,
                        proba=_aligned_proba(model, x_test, outcome.labels)
                        if task == "classification"
                        else None,
                    )
                outcome.predictions[(kind, regime)] = pred
                scores = (
                    classification_scores(y_true, pred, outcome.labels, outcome.positive)
                    if task == "classification"
                    else regression_scores(y_true.astype(float), pred)
                )
                rows.append([MODEL_NAMES[kind], regime.upper(), *(rounded(scores[k]) for k in order)])
                for metric, value in scores.items():
                    out.metrics[f"{kind}_{regime}_{metric}"] = rounded(value)
        ctx.shared["utility"] = outcome
        if rows:
            out.tables.append(
                Table(f"Scores on {holdout.height} holdout rows", ["model", "regime", *order], rows)
            )
        out.metrics.update({"task": task, "target": target, "test_rows": holdout.height})
        if outcome.positive is not None:
            out.metrics["positive_class"] = outcome.positive
        main = primary_metric(task)
        trtr = out.metrics.get(f"hgb_trtr_{main}")
        tstr = out.metrics.get(f"hgb_tstr_{main}")
        out.headline.update({"utility_metric": f"hgb {main}", "utility_trtr": trtr, "utility_tstr": tstr})
        if trtr is not None and tstr is not None and trtr != 0:
            out.metrics["hgb_ratio"] = rounded(tstr / trtr)
            out.headline["utility_ratio"] = out.metrics["hgb_ratio"]
        out.note(
            f"{task.capitalize()} of {target!r}; models trained on {train.height} real / {syn.height}"
            f" synthetic rows, tested on the holdout. Metrics: {', '.join(order)}."
        )
        if task == "classification" and st.plots and outcome.predictions:
            self._roc(outcome, out)

    def _roc(self, outcome: UtilityOutcome, out: SectionResult) -> None:
        from sklearn.metrics import roc_curve
        from sklearn.preprocessing import label_binarize

        curves = []
        for (kind, regime), pred in outcome.predictions.items():
            assert pred.proba is not None
            if outcome.positive is not None:
                truth = outcome.y_true == outcome.positive
                score = pred.proba[:, outcome.labels.index(outcome.positive)]
            else:
                # Multiclass: micro-average over one-vs-rest problems.
                truth = label_binarize(outcome.y_true, classes=outcome.labels).ravel().astype(bool)
                score = pred.proba.ravel()
            if truth.all() or not truth.any():
                continue
            fpr, tpr, _ = roc_curve(truth, score)
            auc = out.metrics.get(f"{kind}_{regime}_roc_auc")
            curves.append((f"{MODEL_NAMES[kind]} {regime.upper()} (AUC {auc})", fpr, tpr))
        if curves:
            what = f"positive class {outcome.positive!r}" if outcome.positive is not None else "micro-average"
            out.figures.append(
                Figure(
                    f"ROC curves on the holdout ({what})",
                    plots.roc_curves(curves, title=f"ROC: {outcome.target}"),
                )
            )
