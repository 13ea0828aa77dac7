"""DP mechanisms for preprocessing: row count, numeric bins and bounds, category discovery, counts.

Adjacency is add/remove one row (P3): each row contributes to exactly one bucket
of every histogram below, so every histogram has L1 sensitivity 1 and discrete
Laplace noise with parameter ``epsilon`` makes it ``epsilon``-DP.

Each mechanism returns its result together with the :class:`MechanismEntry`
that must be charged to the budget ledger. Noise comes from the ``rng`` the
caller passes; callers pass :func:`noise_rng` (seeded from OS entropy), never a
user seed, so the noise cannot be recomputed from the spec.

Counts are integers and so is their noise (:mod:`synthgen.privacy.discrete`, sampled
exactly with integer arithmetic): no floating-point Laplace draw whose low-order bits
could reveal the true count (Mironov, 2012). Every threshold below is computed for the
integer noise's tails, which are slightly heavier than the continuous ones.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence

import numpy as np
import polars as pl

from synthgen.errors import PrivacyError
from synthgen.privacy.discrete import discrete_laplace, laplace_tail_level
from synthgen.privacy.record import MechanismEntry


def noise_rng() -> np.random.Generator:
    """A generator seeded from OS entropy, for DP noise only (never reproducible from a spec)."""
    return np.random.default_rng(secrets.randbits(128))


def count_noise(epsilon: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Integer noise for sensitivity-1 counts: discrete Laplace, ``epsilon``-DP."""
    return discrete_laplace(epsilon, size, rng=rng)


def _check_eps(epsilon: float, what: str) -> None:
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise PrivacyError(f"{what}: epsilon must be > 0, got {epsilon}; raise privacy.preprocessing_share")


def laplace_count(n: int, *, epsilon: float, rng: np.random.Generator) -> tuple[float, MechanismEntry]:
    """``epsilon``-DP count of rows (discrete Laplace, sensitivity 1): an integer, not clipped."""
    _check_eps(epsilon, "DP row count")
    noisy = float(n + int(count_noise(epsilon, 1, rng)[0]))
    return noisy, MechanismEntry(step="preprocessing", mechanism="laplace_count", epsilon=epsilon, delta=0.0)


def count_upper_bound(noisy: float, epsilon: float, *, failure: float = 1e-6) -> float:
    """Upper confidence bound on the true count: P(true > bound) <= ``failure``.

    Post-processing of the noisy count (free). Used where overestimating n is the
    safe side, e.g. the delta rule ``delta <= 1/(10 n)``.
    """
    return noisy + laplace_tail_level(epsilon, failure)


def count_lower_bound(noisy: float, epsilon: float, *, failure: float = 1e-6) -> float:
    """Lower confidence bound on the true count (the safe side for 'is there enough data')."""
    return noisy - laplace_tail_level(epsilon, failure)


# -- numeric bins ---------------------------------------------------------------


#: Log-grid resolutions (buckets per decade) to pick from; each divides the next (nested grids).
LOG_GRID_STEPS = (1, 2, 5, 10)


def log_grid_steps(n_public: float, epsilon: float) -> int:
    """Buckets per decade of the unbounded log grid for a column's DP histogram.

    The finest resolution at which data spread over two decades still puts about
    the range level's count (~19/epsilon, see :func:`dp_quantiles`) in a bucket:
    ``steps <= n epsilon / 40``. ``n_public`` is the DP row count, so the choice is
    post-processing of DP results. Small data or a small epsilon gets coarser
    buckets that rise above the noise (Adult at epsilon 3: 10 per decade; at
    epsilon 1: 2); the quantiles inside a bucket are then linear.
    """
    fit = n_public * epsilon / 40.0
    return max([s for s in LOG_GRID_STEPS if s <= fit], default=LOG_GRID_STEPS[0])


def signed_log_grid(
    *, integer: bool, lower: float | None = None, upper: float | None = None, steps_per_decade: int = 10
) -> np.ndarray:
    """Data-independent bucket edges for a DP histogram of a numeric column.

    Without public bounds: 0 and +-10^(k/steps) from 1e-3 (1 for integers) to 1e15;
    at 10 steps per decade, ~3 buckets per factor of 2 on both signs. With public bounds: 128 equal
    buckets between them merged with the log points inside, so that both a spike
    at 0 (``capital_gain``) and a wide spread (``fnlwgt``) get resolution.
    Depends on the schema and ``steps_per_decade`` only (a DP result at most), never on
    the raw data (P2).
    """
    if steps_per_decade not in LOG_GRID_STEPS:
        raise PrivacyError(f"steps_per_decade must be one of {LOG_GRID_STEPS}, got {steps_per_decade}")
    k_min = 0 if integer else -3 * steps_per_decade
    mags = 10.0 ** (np.arange(k_min, 15 * steps_per_decade + 1) / steps_per_decade)
    pts = np.concatenate([-mags[::-1], [0.0], mags])
    if lower is not None and upper is not None:
        inside = pts[(pts > lower) & (pts < upper)]
        pts = np.concatenate([np.linspace(lower, upper, 129), inside])
    if integer:
        pts = np.round(pts)
    return np.unique(pts)


#: Chance (per column) that noise alone lets one empty bucket set a range end, tried in
#: turn: the range is read at the first level some bucket passes (see :func:`dp_quantiles`).
RANGE_BETAS = (1e-6, 1e-3)
#: Same chance for the buckets that shape the quantiles inside the range.
SHAPE_BETA = math.exp(-3.0) / 2.0
#: A grid wider than this has no public bounds (the log grid reaches +-1e15).
UNBOUNDED_SPAN = 1e14


def survival_threshold(buckets: int, *, epsilon: float, beta: float) -> float:
    """Noisy count that any of ``buckets`` empty buckets passes with probability <= ``beta``.

    An empty bucket passes ``tau`` when its noise is ``>= tau``; the union over the buckets
    is ``beta`` at the ``tau`` returned (discrete Laplace tails).
    """
    return laplace_tail_level(epsilon, beta / max(buckets, 1))


def dp_quantiles(
    values: np.ndarray,
    *,
    grid: np.ndarray,
    quantiles: Sequence[float] | np.ndarray,
    epsilon: float,
    rng: np.random.Generator,
    column: str,
) -> tuple[np.ndarray, MechanismEntry]:
    """``epsilon``-DP quantiles of ``values`` from a noisy histogram over a public ``grid``.

    Values are clipped into the grid's range (a data-independent transformation),
    counted per bucket (sensitivity 1), and discrete Laplace noise (parameter epsilon) is
    added to every bucket, empty or not. The rest is post-processing of that one
    noisy histogram:

    - with public bounds (a bounded grid), the range runs from the first to the
      last bucket above the shape level below: a stray bucket stays inside the
      public bounds;
    - without them (the log grid reaches +-1e15), the range's core runs from the
      first to the last bucket whose noisy count passes :func:`survival_threshold`
      at ``beta`` = 1e-6 (else 1e-3), so an empty bucket far from the data sets a
      range end with probability about 1e-6 (1e-3 at worst), not a few percent;
      the range then grows over the buckets next to it above the shape level (a
      tail thinner than the core's level but joined to it);
    - inside the range, noisy counts below the shape level (``beta`` ~ 0.025) are
      zeroed so the many empty buckets do not pile up spurious mass;
    - quantiles are read off the noisy CDF with linear interpolation; 0 and 1 are
      the range's ends exactly.

    Values outside the range are clipped into it when encoded: the usual price of
    DP bounds (tails thinner than the noise are cut).

    Raises:
        PrivacyError: no bucket rose above the noise and the grid is unbounded (its
            own quantiles would span +-1e15): the column needs public bounds or
            more epsilon.
    """
    _check_eps(epsilon, f"DP quantiles of {column!r}")
    finite = values[np.isfinite(values)]
    clipped = np.clip(finite, grid[0], grid[-1])
    counts, _ = np.histogram(clipped, bins=grid)
    noisy = (counts + count_noise(epsilon, len(counts), rng)).astype(np.float64)
    entry = MechanismEntry(
        step="preprocessing", mechanism="dp_quantiles", column=column, epsilon=epsilon, delta=0.0
    )
    qs = np.clip(np.asarray(quantiles, dtype=np.float64), 0.0, 1.0)
    shape_tau = survival_threshold(len(counts), epsilon=epsilon, beta=SHAPE_BETA)
    kept = noisy >= shape_tau
    if grid[-1] - grid[0] <= UNBOUNDED_SPAN:
        if not kept.any():
            return np.quantile(grid, qs), entry  # public bounds: the grid's own quantiles are free
        first, last = int(np.argmax(kept)), len(kept) - 1 - int(np.argmax(kept[::-1]))
    else:
        levels = [survival_threshold(len(counts), epsilon=epsilon, beta=b) for b in RANGE_BETAS]
        core = next((p for p in (np.flatnonzero(noisy >= t) for t in levels) if len(p)), None)
        if core is None:
            raise PrivacyError(
                f"column {column!r}: no value range rose above the DP noise at epsilon={epsilon:.3g} "
                f"(a bucket needs about {levels[-1]:.0f} rows); give public bounds (columns.{column}.bounds: "
                "[lower, upper]), or raise privacy.epsilon / privacy.preprocessing_share"
            )
        first, last = int(core[0]), int(core[-1])
        while first > 0 and kept[first - 1]:
            first -= 1
        while last < len(noisy) - 1 and kept[last + 1]:
            last += 1
    mass = np.where(kept[first : last + 1], noisy[first : last + 1], 0.0)
    edges = grid[first : last + 2]
    cdf = np.concatenate([[0.0], np.cumsum(mass)])
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # exact: float sums must not push q = 1 past the last bucket
    # First edge where the CDF reaches q, interpolated inside that bucket.
    i = np.clip(np.searchsorted(cdf, qs, side="left"), 1, len(cdf) - 1)
    width = cdf[i] - cdf[i - 1]
    frac = np.clip((qs - cdf[i - 1]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
    out = edges[i - 1] + frac * (edges[i] - edges[i - 1])
    out[qs <= 0.0] = edges[0]
    out[qs >= 1.0] = edges[-1]
    return np.maximum.accumulate(out), entry


def edges_from_quantiles(q: np.ndarray, *, integer: bool) -> list[float]:
    """Bin edges from quantile values: rounded for integer columns, duplicates removed."""
    e = np.round(q) if integer else q
    e = np.unique(e)
    if integer and len(e) >= 1:
        # An integer column's last bin is closed: [e[-2], e[-1]]; make sure one bin exists.
        if len(e) == 1:
            e = np.array([e[0], e[0]])  # one closed bin holding the single value
    elif len(e) == 1:
        e = np.array([e[0], e[0] + 1e-9 * max(1.0, abs(e[0]))])
    return [float(x) for x in e]


# -- categories -----------------------------------------------------------------


def discovery_threshold(epsilon: float, delta: float) -> float:
    """Threshold on Laplace-noised counts that releases an unseen key with probability <= delta.

    A key held by a single row appears only if ``1 + Z > T`` for its discrete Laplace
    noise Z; this has probability at most ``delta`` for the T returned.
    """
    return 1.0 + laplace_tail_level(epsilon, delta)


def dp_categories(
    values: pl.Series,
    *,
    epsilon: float,
    delta: float,
    rng: np.random.Generator,
    column: str,
    max_categories: int,
) -> tuple[list[str], MechanismEntry]:
    """``(epsilon, delta)``-DP category discovery: noisy counts of observed values, thresholded.

    Only keys whose noisy count exceeds :func:`discovery_threshold` are released,
    most frequent first, at most ``max_categories``; the rest go to the caller's
    "other" bucket. Nulls are not counted (the null token is public schema).
    The order of the list is by noisy count, a post-processing of the noisy counts.
    """
    _check_eps(epsilon, f"DP category discovery of {column!r}")
    if not 0 < delta < 1:
        raise PrivacyError(f"DP category discovery of {column!r}: delta must be in (0, 1), got {delta}")
    vc = values.drop_nulls().cast(pl.String).value_counts()
    keys = vc.get_column(vc.columns[0]).to_list()
    counts = vc.get_column("count").to_numpy().astype(np.float64)
    noisy = (counts + count_noise(epsilon, len(counts), rng)).astype(np.float64)
    thr = discovery_threshold(epsilon, delta)
    keep = np.flatnonzero(noisy > thr)
    keep = keep[np.argsort(-noisy[keep], kind="stable")][:max_categories]
    entry = MechanismEntry(
        step="preprocessing", mechanism="dp_categories", column=column, epsilon=epsilon, delta=delta
    )
    return [str(keys[i]) for i in keep], entry


def dp_category_counts(
    codes: np.ndarray,
    *,
    n_categories: int,
    epsilon: float,
    rng: np.random.Generator,
    column: str,
) -> tuple[np.ndarray, MechanismEntry]:
    """``epsilon``-DP counts of integer codes ``0..n_categories-1`` over a *public* category list.

    Every category gets noise, including empty ones, so the list of categories
    must be public or itself DP (from :func:`dp_categories`). Counts are clipped
    at 0 (post-processing). Used, e.g., for DP-CTGAN's conditional vectors (P4).
    """
    _check_eps(epsilon, f"DP counts of {column!r}")
    counts = np.bincount(codes.astype(np.int64), minlength=n_categories)[:n_categories].astype(np.float64)
    noisy = np.maximum(counts + count_noise(epsilon, len(counts), rng), 0.0)
    entry = MechanismEntry(
        step="preprocessing", mechanism="dp_counts", column=column, epsilon=epsilon, delta=0.0
    )
    return noisy, entry
