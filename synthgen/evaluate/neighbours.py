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


def nearest_two(queries: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each query row to its nearest and second-nearest reference row.

    With a single reference row the second distance is ``inf``.
    """
    if references.shape[0] == 0:
        raise ValueError("no reference rows")
    q = queries.astype(np.float64, copy=False)
    r = references.astype(np.float64, copy=False)
    r_sq = np.einsum("ij,ij->i", r, r)
    step = max(1, _BLOCK_BYTES // (8 * r.shape[0]))
    first = np.empty(q.shape[0], dtype=np.float64)
    second = np.full(q.shape[0], np.inf, dtype=np.float64)
    for start in range(0, q.shape[0], step):
        block = q[start : start + step]
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + r_sq[None, :] - 2.0 * (block @ r.T)
        np.maximum(d2, 0.0, out=d2)
        if r.shape[0] >= 2:
            part = np.partition(d2, 1, axis=1)[:, :2]
            first[start : start + step] = part[:, 0]
            second[start : start + step] = part[:, 1]
        else:
            first[start : start + step] = d2[:, 0]
    # Cancellation leaves tiny positives for identical rows; snap them to 0 so that exact
    # copies count as distance 0 (ties matter for the DCR share).
    first[first < 1e-9] = 0.0
    second[second < 1e-9] = 0.0
    return np.sqrt(first), np.sqrt(second)


def nearest(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Euclidean distance of each query row to its nearest reference row."""
    return nearest_two(queries, references)[0]
