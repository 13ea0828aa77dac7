"""Evaluation: fidelity, ML utility, privacy risk, bias and PII leakage of a synthetic table.

Pure library code over polars frames: :func:`split_holdout` before training, then
:func:`evaluate` after generation. The result (:class:`EvaluationResult`) has a JSON
``summary`` and ``to_html()``; both are real-derived and restricted (P1).
"""

from synthgen.evaluate.evaluation import EvaluationResult, evaluate
from synthgen.evaluate.holdout import split_holdout
from synthgen.evaluate.settings import EvaluateSettings

__all__ = ["EvaluateSettings", "EvaluationResult", "evaluate", "split_holdout"]
