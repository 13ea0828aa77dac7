"""synthgen: privacy-preserving synthetic data (Presidio, Opacus DP-TVAE/DP-CTGAN, encrypted publishing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import polars as pl

    from synthgen.api import Synthesizer, anonymize


def read_dataset(name: str, *, user: str, **kwargs: Any) -> pl.DataFrame:
    """Read a published synthetic dataset as ``user``: policy check, key unwrap, verify, decrypt (audited).

    Raises :class:`synthgen.errors.AccessDenied` when the policy or the keys refuse.
    """
    from synthgen.access import read_dataset as _read

    return _read(name, user=user, **kwargs)


def __getattr__(name: str) -> Any:
    # The notebook API loads on first use: `import synthgen` stays cheap for the CLI and DAG files.
    if name in ("Synthesizer", "anonymize"):
        from synthgen import api

        return getattr(api, name)
    if name == "evaluate":
        # The package synthgen.evaluate, callable as the notebook's evaluate(real, synthetic).
        from importlib import import_module

        return import_module("synthgen.evaluate")
    raise AttributeError(f"module 'synthgen' has no attribute {name!r}")


__all__ = ["Synthesizer", "__version__", "anonymize", "evaluate", "read_dataset"]
