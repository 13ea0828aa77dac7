"""Evaluation: fidelity, ML utility, privacy risk, bias and PII leakage of a synthetic table.

Pure library code over polars frames: :func:`split_holdout` before training, then
:func:`evaluate` after generation. The result (:class:`EvaluationResult`) has a JSON
``summary`` and a verdict; :func:`synthgen.evaluate.html.render` makes the HTML page. Both
are real-derived and restricted (P1).

Names load lazily: the pipeline spec imports :mod:`synthgen.evaluate.settings`, and DAG
files parse the spec, so importing this package must not pull in matplotlib or pandas.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synthgen.evaluate.evaluation import EvaluationResult, evaluate
    from synthgen.evaluate.holdout import split_holdout
    from synthgen.evaluate.settings import EvaluateSettings

_LAZY = {
    "EvaluateSettings": "synthgen.evaluate.settings",
    "EvaluationResult": "synthgen.evaluate.evaluation",
    "evaluate": "synthgen.evaluate.evaluation",
    "split_holdout": "synthgen.evaluate.holdout",
}

__all__ = ["EvaluateSettings", "EvaluationResult", "evaluate", "split_holdout"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)


class _CallablePackage(ModuleType):
    """``synthgen.evaluate(real, synthetic, ...)`` is the notebook call (:func:`synthgen.api.evaluate`).

    This package and that function share the name ``synthgen.evaluate``: once the package is
    imported, the import system binds the name to it, so the package itself forwards calls.
    """

    def __call__(self, real: Any, synthetic: Any, **kwargs: Any) -> Any:
        from synthgen.api import evaluate as notebook_evaluate

        return notebook_evaluate(real, synthetic, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
