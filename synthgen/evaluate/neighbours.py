"""Exact nearest-neighbour distances by brute force, in bounded memory.

Brute force in BLAS beats tree indexes on the ~100-dimensional one-hot vectors used here,
and it is exact: a privacy metric should not depend on an approximate index. float64,
because float32 cancellation in ``|q|^2 + |r|^2 - 2 q.r`` blurs distances below ~1e-3,
which is where copies of real rows live.
"""

from __future__ import annotations

import numpy as np

#: Bytes of the distance block computed at once (queries x references x 8).
_BLOCK_BYTES = 128 * 2**20


def _squared_blocks(queries: np.ndarray, references: np.ndarray):  # type: ignore[no-untyped-def]
    q = queries.astype(np.float64, copy=False)
    r = references.astype(np.float64, copy=False)
    r_sq = np.einsum("ij,ij->i", r, r)
    step = max(1, _BLOCK_BYTES // (8 * max(1, r.shape[0])))
    for start in range(0, q.shape[0], step):
        block = q[start : start + step]
        d2 = block @ r.T
        d2 *= -2.0
        d2 += r_sq[None, :]
        d2 += np.einsum("ij,ij->i", block, block)[:, None]
        yield slice(start, start + block.shape[0]), d2


def _clean(d2: np.ndarray) -> np.ndarray:
    # Cancellation leaves tiny positives (or negatives) for identical rows; snap them to 0 so
    # that exact copies count as distance 0 (ties matter for the DCR share).
    d2[d2 < 1e-9] = 0.0
    return np.sqrt(d2)


def nearest_two(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distances of each query row to its nearest and second-nearest reference row, and the nearest's index.

    Euclidean distances; with a single reference row the second distance is ``inf``.
    """
    if references.shape[0] == 0:
        raise ValueError("no reference rows")
    first = np.empty(queries.shape[0], dtype=np.float64)
    index = np.empty(queries.shape[0], dtype=np.int64)
    second = np.full(queries.shape[0], np.inf, dtype=np.float64)
    for where, d2 in _squared_blocks(queries, references):
        idx = np.argmin(d2, axis=1)
        rows = np.arange(d2.shape[0])
        first[where] = d2[rows, idx]
        index[where] = idx
        if d2.shape[1] >= 2:
            d2[rows, idx] = np.inf
            second[where] = d2.min(axis=1)
    return _clean(first), _clean(second), index


def nearest(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distance of each query row to its nearest reference row."""
    if references.shape[0] == 0:
        raise ValueError("no reference rows")
    out = np.empty(queries.shape[0], dtype=np.float64)
    for where, d2 in _squared_blocks(queries, references):
        out[where] = d2.min(axis=1)
    return _clean(out)
