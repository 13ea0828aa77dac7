"""synthgen: privacy-preserving synthetic data (Presidio, Opacus DP-TVAE/DP-CTGAN, encrypted publishing)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import polars as pl


def read_dataset(name: str, *, user: str, **kwargs: Any) -> pl.DataFrame:
    """Read a published synthetic dataset as ``user``: policy check, key unwrap, verify, decrypt (audited).

    Raises :class:`synthgen.errors.AccessDenied` when the policy or the keys refuse.
    """
    from synthgen.access import read_dataset as _read

    return _read(name, user=user, **kwargs)


__all__ = ["__version__", "read_dataset"]
