"""Deprecated: the stages moved to :mod:`synthgen.stages` (one module per stage).

Kept for one deprecation period so that ``from synthgen.pipeline import ...`` and
``synthgen.pipeline.<stage>`` keep working; new code imports :mod:`synthgen.stages`.
"""

import warnings

from synthgen.stages import *  # noqa: F403
from synthgen.stages import __all__ as __all__

warnings.warn(
    "synthgen.pipeline is deprecated; import synthgen.stages instead",
    DeprecationWarning,
    stacklevel=2,
)
