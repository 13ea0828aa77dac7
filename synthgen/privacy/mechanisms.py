"""DP mechanisms: row count, numeric bins and bounds, category discovery, counts, a clipped mean.

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

The per-column histograms (quantile bins, category discovery) take either noise, described
by a :class:`HistogramNoise`: discrete Laplace at ``epsilon`` (pure DP, epsilons add up), or
discrete Gaussian at ``sigma`` (``1/(2 sigma^2)``-zCDP; the columns' rhos add up and are
converted to (epsilon, delta) once, :func:`synthgen.privacy.accountant.split_budget`). The
Gaussian is what the models' preprocessing uses: over k columns its noise grows as sqrt(k),
not k, and its tails are sub-Gaussian, so the levels a bucket or a category must pass (which
decide what survives: tails, rare categories) are 2-4 times lower than the Laplace ones at
the same budget (measured, ``bench/results/marginal_tails.json``).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from synthgen.errors import PrivacyError
from synthgen.privacy.discrete import (
    discrete_gaussian,
    discrete_laplace,
    laplace_tail_level,
    sampled_epsilon,
    sampled_variance,
)
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


@dataclass(frozen=True)
class HistogramNoise:
    """The noise of one column's sensitivity-1 histogram and what the record charges for it.

    ``sigma`` None: discrete Laplace with parameter ``epsilon`` (``epsilon``-DP). ``sigma`` set:
    discrete Gaussian of scale ``sigma`` (``1/(2 sigma^2)``-zCDP); ``epsilon`` and ``delta`` are
    then this column's share of the (epsilon, delta) its group of Gaussian histograms converts
    to (:func:`synthgen.privacy.accountant.split_budget`), written to the record as they are.
    """

    epsilon: float
    sigma: float | None = None
    delta: float = 0.0

    def check(self, what: str) -> None:
        _check_eps(self.epsilon, what)
        if self.sigma is not None and not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise PrivacyError(f"{what}: sigma must be > 0, got {self.sigma}")

    def draw(self, size: int, rng: np.random.Generator) -> np.ndarray:
        if self.sigma is None:
            return count_noise(self.epsilon, size, rng)
        return discrete_gaussian(self.sigma, size, rng=rng)

    def tail_level(self, probability: float, *, terms: int = 1) -> float:
        """A level ``k`` with ``P[Z_1 + ... + Z_terms >= k] <= probability`` for this noise.

        Gaussian: the discrete Gaussian is sub-Gaussian with variance parameter ``sigma^2``
        (Canonne, Kamath and Steinke 2020), so the sum's tail is below ``exp(-k^2 / (2 terms
        sigma^2))``, at the variance the sampler draws with (:func:`sampled_variance`, rounded up).
        Laplace: one term is exact (:func:`laplace_tail_level`); a sum takes the Chernoff bound
        of its moment generating function, minimised over a grid of its argument.
        """
        if self.sigma is not None:
            return math.sqrt(sampled_variance(self.sigma) * 2.0 * terms * math.log(1.0 / probability))
        if terms == 1:
            return laplace_tail_level(self.epsilon, probability)
        eps = sampled_epsilon(self.epsilon)
        p = math.exp(-eps)
        lam = eps * np.linspace(0.01, 0.99, 99)
        log_mgf = 2.0 * math.log(1.0 - p) - np.log(1.0 - p * np.exp(lam)) - np.log(1.0 - p * np.exp(-lam))
        return float(np.min((terms * log_mgf + math.log(1.0 / probability)) / lam))


def _noise(epsilon: float | None, noise: HistogramNoise | None, what: str) -> HistogramNoise:
    if noise is None:
        if epsilon is None:
            raise PrivacyError(f"{what}: give epsilon or noise")
        noise = HistogramNoise(epsilon=epsilon)
    noise.check(what)
    return noise


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


# -- a clipped mean ---------------------------------------------------------------


#: Fixed-point resolution of :func:`dp_clipped_mean`: values are counted in 1/100ths.
MEAN_RESOLUTION = 100


@dataclass(frozen=True)
class ClippedMean:
    """What :func:`dp_clipped_mean` released: a noisy sum and a noisy count, and their ratio.

    ``mean`` is post-processing of the two (None when the noisy count is below 1); the noise
    scales are public (functions of epsilon and the clipping bound only).
    """

    noisy_sum: float
    noisy_count: float
    sum_scale: float
    count_scale: float

    @property
    def mean(self) -> float | None:
        if self.noisy_count < 1:
            return None
        return self.noisy_sum / self.noisy_count


def clipped_units(values: np.ndarray, *, upper: float) -> np.ndarray:
    """Each row's term of :func:`dp_clipped_mean`'s sum: its value clipped into ``[0, upper]``,
    in whole ``1/MEAN_RESOLUTION`` units (floored), so never more than :func:`clipped_sensitivity`.

    A NaN (a value the caller could not compute) counts as the bound: clipped, never dropped,
    so the row still counts once and its term stays within the sensitivity.
    """
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), upper, v)
    units = np.floor(np.clip(v, 0.0, upper) * MEAN_RESOLUTION).astype(np.int64)
    return np.minimum(units, clipped_sensitivity(upper))


def clipped_sensitivity(upper: float) -> int:
    """Most one row can move the integer sum of :func:`clipped_units` (add/remove one row): the
    largest term, ``floor(upper * MEAN_RESOLUTION)`` (at least 1)."""
    return max(1, math.floor(upper * MEAN_RESOLUTION))


def dp_clipped_mean(
    values: np.ndarray,
    *,
    upper: float,
    epsilon: float,
    rng: np.random.Generator,
    sum_share: float = 0.6,
    mechanism: str = "dp_clipped_mean",
    column: str | None = None,
) -> tuple[ClippedMean, MechanismEntry]:
    """``epsilon``-DP mean of ``values`` (one value per row), each clipped into ``[0, upper]``.

    Sensitivity (add/remove one row, P3): a row contributes one value, clipped to
    ``[0, upper]`` and floored to an integer number of ``1/MEAN_RESOLUTION`` units, so the
    integer sum changes by at most ``floor(upper * MEAN_RESOLUTION)`` units and the count by 1.
    The sum gets discrete Laplace noise of parameter ``sum_share * epsilon / that bound``
    (``sum_share * epsilon``-DP), the count discrete Laplace of parameter
    ``(1 - sum_share) * epsilon`` (the rest); by composition the pair is ``epsilon``-DP, and
    so is their ratio (post-processing). ``upper`` must be public (chosen without the data):
    the clipping is what bounds the sensitivity. Integer noise, as for every count here, so
    no floating-point low bits reveal the sum.

    ``values`` must come from a 1-stable selection of rows (P10): the holdout split by keyed
    hash is one. The mean is biased towards 0 where values exceed ``upper`` (clipped).
    """
    _check_eps(epsilon, f"DP clipped mean ({mechanism})")
    if not (upper > 0 and math.isfinite(upper)):
        raise PrivacyError(f"DP clipped mean: the clipping bound must be a finite number > 0, got {upper}")
    if not 0 < sum_share < 1:
        raise PrivacyError(f"DP clipped mean: sum_share must be in (0, 1), got {sum_share}")
    units = clipped_units(values, upper=upper)
    bound = clipped_sensitivity(upper)
    eps_sum, eps_count = epsilon * sum_share, epsilon * (1 - sum_share)
    if eps_sum / bound < 2.0**-20:
        raise PrivacyError(
            f"DP clipped mean: epsilon {epsilon:g} is too small for a clipping bound of {upper:g}"
        )
    total = int(units.sum()) + int(discrete_laplace(eps_sum / bound, 1, rng=rng)[0])
    count = len(units) + int(count_noise(eps_count, 1, rng)[0])
    released = ClippedMean(
        noisy_sum=total / MEAN_RESOLUTION,
        noisy_count=float(count),
        sum_scale=bound / MEAN_RESOLUTION / eps_sum,
        count_scale=1.0 / eps_count,
    )
    entry = MechanismEntry(step="evaluation", mechanism=mechanism, column=column, epsilon=epsilon, delta=0.0)
    return released, entry


# -- numeric bins ---------------------------------------------------------------


#: Log-grid resolutions (buckets per decade) to pick from; each divides the next (nested grids).
LOG_GRID_STEPS = (1, 2, 5, 10)


def log_grid_steps(n_public: float, epsilon: float, *, noise: HistogramNoise | None = None) -> int:
    """Buckets per decade of the unbounded log grid for a column's DP histogram.

    The finest resolution at which data spread over two decades still puts about
    the range level's count (~19/epsilon, see :func:`dp_quantiles`) in a bucket:
    ``steps <= n epsilon / 40``. ``n_public`` is the DP row count, so the choice is
    post-processing of DP results. Small data or a small epsilon gets coarser
    buckets that rise above the noise (Adult at epsilon 3: 10 per decade; at
    epsilon 1: 2); the quantiles inside a bucket are then linear.

    With Gaussian ``noise`` the same rule reads its range level (a bucket passes it with
    probability 1e-6 over ~300 buckets): ``steps <= n / (2 level)``.
    """
    if noise is not None and noise.sigma is not None:
        fit = n_public / (2.0 * noise.tail_level(RANGE_BETAS[0] / 300))
    else:
        fit = n_public * epsilon / 40.0
    return max([s for s in LOG_GRID_STEPS if s <= fit], default=LOG_GRID_STEPS[0])


def signed_log_grid(
    *,
    integer: bool,
    lower: float | None = None,
    upper: float | None = None,
    steps_per_decade: int = 10,
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


def survival_threshold(
    buckets: int, *, epsilon: float = 0.0, beta: float, noise: HistogramNoise | None = None, terms: int = 1
) -> float:
    """Noisy count that any of ``buckets`` empty buckets passes with probability <= ``beta``.

    An empty bucket passes ``tau`` when its noise is ``>= tau``; the union over the buckets
    is ``beta`` at the ``tau`` returned (discrete Laplace tails at ``epsilon``, or ``noise``'s
    tails; a block of ``terms`` buckets summed has the tail of the sum of their noises).
    """
    noise = noise or HistogramNoise(epsilon=epsilon)
    return noise.tail_level(beta / max(buckets, 1), terms=terms)


#: Buckets per block of the finest coarse view of a DP histogram (post-processing): a thin tail spread
#: over many buckets, each under the noise, passes as a block (m buckets: m times the mass, sqrt(m)
#: times the Gaussian noise). About half a decade of the log grid at most (see :func:`_block_size`).
MAX_BLOCK = 8
#: Coarse views tried: blocks of m, 2m, 4m buckets. The coarser ones only join a tail to the range
#: (range ends come back to the finest view's passing blocks).
COARSE_LEVELS = 3


def _block_size(grid: np.ndarray) -> int:
    """Buckets per block: 1 when the grid is coarse (1 or 2 buckets per decade), else up to
    :data:`MAX_BLOCK` and about half a decade of the log grid (public: the grid)."""
    pos = grid[grid > 0]
    if len(pos) < 3:
        return 1
    per_decade = 1.0 / max(float(np.median(np.diff(np.log10(pos)))), 1e-9)
    return int(max(1, min(MAX_BLOCK, 2 ** math.floor(math.log2(max(per_decade / 2.0, 1.0))))))


def dp_quantiles(
    values: np.ndarray,
    *,
    grid: np.ndarray,
    quantiles: Sequence[float] | np.ndarray,
    epsilon: float | None = None,
    rng: np.random.Generator,
    column: str,
    noise: HistogramNoise | None = None,
    spikes: list[float] | None = None,
    integer: bool = False,
    nulls: list[float] | None = None,
) -> tuple[np.ndarray, MechanismEntry]:
    """DP quantiles of ``values`` from a noisy histogram over a public ``grid``.

    Values are clipped into the grid's range (a data-independent transformation),
    counted per bucket (sensitivity 1), and ``noise`` (default: discrete Laplace at
    ``epsilon``) is added to every bucket, empty or not. The rest is post-processing of
    that one noisy histogram:

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
    - a coarser view (blocks of :func:`_block_size` buckets, summed) runs the same two tests
      at the block's own levels: a thin tail under the noise bucket by bucket extends the
      range as a block, and its mass is spread over the block's buckets the fine test dropped;
    - with ``spikes`` (a list the caller gets filled), a bucket that holds one value only
      (an ``integer`` column's bucket of width 1, or a float column's bucket [0, 1e-3), read
      as 0) and at least one quantile step of
      the mass is a spike: its value is appended to ``spikes`` and its mass left out of the
      quantiles, so the bins spread over the rest (an amount 90% zeros keeps its tail's shape);
    - quantiles are read off the noisy CDF with linear interpolation; 0 and 1 are
      the range's ends exactly.

    With ``nulls`` (a list the caller gets filled) the histogram has one more bucket, the
    non-finite values (nulls), whose noisy count is appended to ``nulls``: each row is still
    in exactly one bucket, so the sensitivity stays 1 and the count costs nothing more.

    Values outside the range are clipped into it when encoded: the usual price of
    DP bounds (tails thinner than the noise are cut).

    Raises:
        PrivacyError: no bucket rose above the noise and the grid is unbounded (its
            own quantiles would span +-1e15): the column needs public bounds or
            more epsilon.
    """
    hn = _noise(epsilon, noise, f"DP quantiles of {column!r}")
    noisy = noisy_histogram(values, grid=grid, noise=hn, rng=rng, nulls=nulls)
    entry = _quantiles_entry(column, hn)
    q = quantiles_from_noisy(
        noisy,
        grid=grid,
        quantiles=quantiles,
        noise=hn,
        column=column,
        spikes=spikes,
        integer=integer,
    )
    return q, entry


def _quantiles_entry(column: str, noise: HistogramNoise) -> MechanismEntry:
    """The record entry of one column's DP quantiles: what its histogram noise charges."""
    return MechanismEntry(
        step="preprocessing",
        mechanism="dp_quantiles",
        column=column,
        epsilon=noise.epsilon,
        delta=noise.delta,
    )


def noisy_histogram(
    values: np.ndarray,
    *,
    grid: np.ndarray,
    noise: HistogramNoise,
    rng: np.random.Generator,
    nulls: list[float] | None = None,
) -> np.ndarray:
    """Counts of ``values`` clipped into ``grid``'s buckets, plus ``noise`` in every bucket (the DP
    mechanism of :func:`dp_quantiles`; sensitivity 1). With ``nulls``, the non-finite values' count
    is one more bucket, its noisy count appended to ``nulls`` and left out of what is returned."""
    is_finite = np.isfinite(values)
    clipped = np.clip(values[is_finite], grid[0], grid[-1])
    counts, _ = np.histogram(clipped, bins=grid)
    if nulls is not None:
        counts = np.append(counts, int((~is_finite).sum()))
    noisy = (counts + noise.draw(len(counts), rng)).astype(np.float64)
    if nulls is not None:
        nulls.append(float(noisy[-1]))
        noisy = noisy[:-1]
    return noisy


def quantiles_from_noisy(
    noisy: np.ndarray,
    *,
    grid: np.ndarray,
    quantiles: Sequence[float] | np.ndarray,
    noise: HistogramNoise,
    column: str,
    spikes: list[float] | None = None,
    integer: bool = False,
) -> np.ndarray:
    """The post-processing of :func:`dp_quantiles`: quantiles read off one noisy histogram whose
    buckets took ``noise`` (its tails set every level), reading nothing else."""
    hn = noise
    qs = np.clip(np.asarray(quantiles, dtype=np.float64), 0.0, 1.0)
    nb = len(noisy)
    m0 = _block_size(grid) if hn.sigma is not None else 1
    sizes = [m0 * 2**k for k in range(COARSE_LEVELS)] if m0 > 1 else []
    split = max(len(sizes), 1)  # each level's tests take an equal share of beta
    shape_tau = survival_threshold(nb, beta=SHAPE_BETA, noise=hn)
    kept = noisy >= shape_tau
    fine = np.where(kept, noisy, 0.0)
    assigned = kept.copy()

    def blocks(m: int, beta: float, done: np.ndarray, mass: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Buckets of the m-blocks whose residual (noisy mass beyond the buckets ``done``) passes the
        level of a sum of that many noises, and that residual spread over the block's other buckets."""
        nblocks = -(-nb // m)
        pad = nblocks * m - nb
        resid = (np.pad(noisy, (0, pad)) - np.pad(np.where(done, mass, 0.0), (0, pad))).reshape(nblocks, m)
        resid = resid.sum(axis=1)
        others = np.pad(~done, (0, pad)).reshape(nblocks, m).sum(axis=1)
        level = np.array(
            [survival_threshold(nblocks, beta=beta, noise=hn, terms=max(int(k), 1)) for k in others]
        )
        ok = np.repeat((others > 0) & (resid >= level), m)[:nb] & ~done
        rest = np.repeat(np.maximum(resid, 0.0) / np.maximum(others, 1), m)[:nb]
        return ok, rest

    # Shape: finest blocks first, each coarser level only over the buckets still unassigned.
    trim = kept.copy()
    for m in sizes:
        ok, rest = blocks(m, SHAPE_BETA / split, assigned, fine)
        fine = np.where(ok, rest, fine)
        assigned |= ok
        if m == m0:
            trim |= ok
    either = assigned
    if grid[-1] - grid[0] <= UNBOUNDED_SPAN:
        if not either.any():
            return np.quantile(grid, qs)  # public bounds: the grid's own quantiles are free
        first, last = int(np.argmax(either)), nb - 1 - int(np.argmax(either[::-1]))
    else:
        core = None
        for b in RANGE_BETAS:
            hit = noisy >= survival_threshold(nb, beta=b, noise=hn)
            for m in sizes:
                hit |= blocks(m, b / split, kept, noisy)[0]
            if hit.any():
                core = np.flatnonzero(hit)
                break
        for m in () if core is not None or sizes else (2, 4):
            # A coarse grid (1 or 2 buckets per decade) has no block views; before giving up, pairs
            # and fours of its buckets (a block may reach one empty bucket past the data).
            hit = blocks(m, RANGE_BETAS[-1], kept, noisy)[0]
            if hit.any():
                core = np.flatnonzero(hit)
                break
        if core is None:
            need = survival_threshold(nb, beta=RANGE_BETAS[-1], noise=hn)
            raise PrivacyError(
                f"column {column!r}: no value range rose above the DP noise at epsilon={hn.epsilon:.3g} "
                f"(a bucket needs about {need:.0f} rows); give public bounds (columns.{column}.bounds: "
                "[lower, upper]), or raise privacy.epsilon / privacy.preprocessing_share"
            )
        first, last = int(core[0]), int(core[-1])
        while first > 0 and either[first - 1]:
            first -= 1
        while last < nb - 1 and either[last + 1]:
            last += 1
    if sizes:
        # A coarse block joins a thin tail to the range; its ends come back to the outermost bucket
        # kept or in a passing finest block, so a block wider than the tail does not stretch them.
        inside = np.flatnonzero(trim[first : last + 1])
        if len(inside):
            first, last = first + int(inside[0]), first + int(inside[-1])
    if not fine[first : last + 1].any():
        fine[first : last + 1] = np.maximum(noisy[first : last + 1], 0.0)
    mass = fine[first : last + 1]
    edges = grid[first : last + 2]
    if spikes is not None and mass.sum() > 0:
        if integer:
            single = edges[1:] - edges[:-1] == 1.0
        else:
            single = (edges[:-1] == 0.0) & (edges[1:] <= 1e-3)  # the float grid's bucket at 0
        step = mass.sum() / max(len(qs) - 1, 1)
        spike = single & (mass >= step)
        rest_mass = np.where(spike, 0.0, mass)
        if spike.any() and rest_mass.sum() > 0:
            spikes.extend(float(v) for v in edges[:-1][spike])
            mass = rest_mass
    return _read_cdf(mass, edges, qs)


def _read_cdf(mass: np.ndarray, edges: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles ``qs`` of the bucket masses ``mass`` over ``edges``: the first edge where the CDF
    reaches q, interpolated linearly inside that bucket; 0 and 1 are the ends exactly."""
    cdf = np.concatenate([[0.0], np.cumsum(mass)])
    cdf /= cdf[-1]
    cdf[-1] = 1.0  # exact: float sums must not push q = 1 past the last bucket
    i = np.clip(np.searchsorted(cdf, qs, side="left"), 1, len(cdf) - 1)
    width = cdf[i] - cdf[i - 1]
    frac = np.clip((qs - cdf[i - 1]) / np.where(width > 0, width, 1.0), 0.0, 1.0)
    out = edges[i - 1] + frac * (edges[i] - edges[i - 1])
    out[qs <= 0.0] = edges[0]
    out[qs >= 1.0] = edges[-1]
    return np.maximum.accumulate(out)


#: Share of a column's histogram budget (rho under Gaussian noise, epsilon under Laplace) that
#: :func:`dp_range_quantiles` spends finding the range on the coarse grid; the rest reads the shape
#: on a fine grid over that range.
RANGE_SHARE = 0.5
#: A coarse range of more buckets than this is resolved well enough by them (an age over 20-63 in
#: buckets of 25%, an amount over five decades): the second histogram goes on the coarse grid too.
REFINE_BUCKETS = 3
#: Buckets of the fine grid over a refined range when the DP row count supports them (as a public
#: range gets, :func:`signed_log_grid`); fewer on small data (:func:`fine_buckets`).
FINE_BUCKETS = 128
#: Fewest fine buckets over a refined range, and the noise scales of rows each should average
#: (:func:`fine_buckets`). Measured (``python -m bench small_tables`` / ``dp_ranges``, 12 fits): at
#: 2 and 4 scales the 1-way TVD of a 400-1,500-row lab panel rose by 0.01-0.03 and a year column
#: at 10,000 rows left its range in 2-7% of rows; at 1 neither.
MIN_FINE_BUCKETS = 4
FINE_ROWS_SIGMAS = 1.0
#: Mass a refined range's ends may cut on each side: fine buckets the noise or the even spread of
#: an unexplained remainder filled far from the data.
TAIL_TRIM = 0.005


def fine_buckets(n_public: float | None, noise: HistogramNoise) -> int:
    """Buckets of a refined range's fine grid: :data:`FINE_BUCKETS`, fewer when the DP row count
    spread over them would hold under :data:`FINE_ROWS_SIGMAS` of the noise scale each (400 rows in
    128 buckets are 3 each under a noise scale of 20: no shape rose, and a blood pressure over 59-126
    came out over 32-312). Post-processing of the DP count and the public noise."""
    if n_public is None or noise.sigma is None:
        return FINE_BUCKETS
    return int(min(FINE_BUCKETS, max(MIN_FINE_BUCKETS, n_public / (FINE_ROWS_SIGMAS * noise.sigma))))


def _fine_grid(edges: np.ndarray, lo: float, hi: float, buckets: int) -> np.ndarray:
    """``buckets`` buckets over the range ``lo``..``hi``, at the same size over the rest of ``edges``,
    and ``edges`` themselves: equal widths, or equal ratios where the range spans over a decade on
    one side of 0 (a blood pressure in [10, 1000) reads in buckets of 1.67x, not of 165)."""
    if lo * hi > 0 and abs(hi / lo) > 10.0:
        ratio = abs(hi / lo) ** (1.0 / buckets)
        a, b = sorted((abs(float(edges[0])), abs(float(edges[-1]))))
        k = np.arange(math.floor(math.log(a / abs(lo), ratio)), math.ceil(math.log(b / abs(lo), ratio)) + 1)
        pts = math.copysign(1.0, lo) * abs(lo) * ratio**k
    else:
        step = (hi - lo) / buckets
        pts = np.arange(edges[0], edges[-1] + step / 2, step)
    pts = pts[(pts > edges[0]) & (pts < edges[-1])]
    return np.unique(np.concatenate([pts, edges]))


def split_noise(noise: HistogramNoise, share: float) -> tuple[HistogramNoise, HistogramNoise]:
    """Two histograms' noise that together cost what ``noise`` costs: ``share`` and ``1 - share`` of
    its rho (Gaussian: scale ``sigma / sqrt(share)``) or of its epsilon (Laplace, sequential
    composition). Their record fields split the same way, so the two entries would add back to one."""
    if not 0.0 < share < 1.0:
        raise PrivacyError(f"a noise split needs a share in (0, 1), got {share}")
    parts = []
    for f in (share, 1.0 - share):
        sigma = None if noise.sigma is None else noise.sigma / math.sqrt(f)
        parts.append(HistogramNoise(epsilon=noise.epsilon * f, sigma=sigma, delta=noise.delta * f))
    return parts[0], parts[1]


def _refined_masses(
    coarse: np.ndarray,
    edges: np.ndarray,
    keep: np.ndarray,
    shape: np.ndarray,
    grid: np.ndarray,
    wide: float,
    fine: float,
) -> np.ndarray:
    """Masses on the fine ``grid``: each coarse bucket's (``edges``, noisy counts ``coarse`` at scale
    ``wide``) total from both histograms, its shape inside from the fine one (``shape``, scale ``fine``).

    A coarse bucket's total is the inverse-variance mean of its coarse count and the sum of its ``k``
    fine buckets (``k`` noises); one under the shape level of that mean's noise is empty unless
    ``keep`` says it passed the coarse range test. Inside it, the fine buckets above their shape level
    hold the share ``s`` of the total they explain; of the rest, ``s`` is spread evenly between the
    first and last of them and ``1 - s`` over the whole bucket (all of it where none rose, as one
    coarse bucket read alone would be): a year column's 30 years fill 5 of 128 buckets and keep to
    them, an age's spread over every one.
    Post-processing of the two noisy histograms only.
    """
    out = np.zeros(len(grid) - 1)
    fine_level = survival_threshold(len(out), beta=SHAPE_BETA, noise=HistogramNoise(epsilon=1.0, sigma=fine))
    for b in range(len(coarse)):
        inside = (grid[:-1] >= edges[b]) & (grid[1:] <= edges[b + 1])
        k = int(inside.sum())
        if k == 0:
            continue
        counts = shape[inside]
        var_c, var_f = wide**2, k * fine**2
        total = (coarse[b] / var_c + counts.sum() / var_f) / (1.0 / var_c + 1.0 / var_f)
        pooled = HistogramNoise(epsilon=1.0, sigma=math.sqrt(1.0 / (1.0 / var_c + 1.0 / var_f)))
        level = survival_threshold(len(coarse), beta=SHAPE_BETA, noise=pooled)
        if total <= 0 or (total < level and not keep[b]):
            continue
        kept = np.where(counts >= fine_level, counts, 0.0)
        explained = min(float(kept.sum()), total)
        width = np.diff(grid)[inside]
        even = width / width.sum()
        between = width.copy()
        span = np.flatnonzero(kept)
        if len(span):
            between[: span[0]] = 0.0
            between[span[-1] + 1 :] = 0.0
        share = explained / total  # how much of the bucket the fine peaks account for
        rest = share * between / between.sum() + (1.0 - share) * even
        peaks = kept / kept.sum() if kept.sum() > 0 else even
        out[inside] = explained * peaks + (total - explained) * rest
    return out


def dp_range_quantiles(
    values: np.ndarray,
    *,
    integer: bool,
    quantiles: Sequence[float] | np.ndarray,
    noise: HistogramNoise,
    rng: np.random.Generator,
    column: str,
    n_public: float | None = None,
    lower: float | None = None,
    upper: float | None = None,
    spikes: list[float] | None = None,
    nulls: list[float] | None = None,
) -> tuple[np.ndarray, MechanismEntry]:
    """DP quantiles of a column whose range is not public: two Gaussian histograms, one entry.

    On the signed log grid (or the public plausible range ``lower``..``upper`` of a datetime) a
    bucket spans from 26% of its values to a whole decade, and quantiles read linearly inside
    ``[1585, 1995)`` and ``[1995, 2512)`` put a year column's values (1990-2020) from 1868 to 2048.
    So:

    1. the range: a noisy histogram over that coarse grid at :data:`RANGE_SHARE` of ``noise``;
    2. where that range is on the log grid, at most :data:`REFINE_BUCKETS` buckets, and does not
       touch 0 (an amount's spike and thin tail keep the log grid), a second over a fine grid of
       the range and one coarse bucket on each side (:func:`fine_buckets` buckets over the range,
       equal, or of equal ratio over more than a decade, and the coarse edges), read by
       :func:`_refined_masses`: the
       coarse masses from both histograms, the fine shape where the fine buckets rise above the
       noise;
    3. otherwise the second over the coarse grid, the two averaged by inverse variance: that is one
       histogram at ``noise`` (Gaussian noise adds; the tails keep ``noise``'s sub-Gaussian scale),
       read as :func:`dp_quantiles` reads it. A datetime's plausible range always takes this: its
       three-year buckets are equal, and refining them put more of two years of admissions before
       the first (4.3% against 1.5% at epsilon 3).

    The second grid is a function of the first noisy histogram only, and the two compose to
    ``noise``'s rho (:func:`split_noise`; zCDP composes adaptively), which the one entry charges, as
    :func:`dp_quantiles` would: the record, the budget split and its checks are unchanged. Each row
    is in one bucket of each histogram (nulls in the second's extra bucket). Laplace ``noise`` (no
    sigma) takes :func:`dp_quantiles` on the coarse grid.
    """
    noise.check(f"DP quantiles of {column!r}")
    steps = 10 if n_public is None else log_grid_steps(n_public, noise.epsilon, noise=noise)
    coarse = signed_log_grid(integer=integer, lower=lower, upper=upper, steps_per_decade=steps)
    if noise.sigma is None:
        return dp_quantiles(
            values,
            grid=coarse,
            quantiles=quantiles,
            noise=noise,
            rng=rng,
            column=column,
            spikes=spikes,
            integer=integer,
            nulls=nulls,
        )
    entry = _quantiles_entry(column, noise)
    wide, fine = split_noise(noise, RANGE_SHARE)
    assert wide.sigma is not None and fine.sigma is not None
    first = noisy_histogram(values, grid=coarse, noise=wide, rng=rng)
    try:
        ends = quantiles_from_noisy(first, grid=coarse, quantiles=[0.0, 1.0], noise=wide, column=column)
        at = [int(x) for x in np.searchsorted(coarse, ends)]
    except PrivacyError:
        at = None
    refine = (
        at is not None
        and lower is None
        and not ends[0] <= 0.0 <= ends[-1]
        and at[1] - at[0] <= REFINE_BUCKETS
    )
    if at is None or not refine:
        second = noisy_histogram(values, grid=coarse, noise=fine, rng=rng, nulls=nulls)
        w = wide.sigma**-2 / (wide.sigma**-2 + fine.sigma**-2)
        pooled = w * first + (1.0 - w) * second
        q = quantiles_from_noisy(
            pooled,
            grid=coarse,
            quantiles=quantiles,
            noise=noise,
            column=column,
            spikes=spikes,
            integer=integer,
        )
        return q, entry
    # One more coarse bucket each side (the coarse test at its share of the noise can miss one the
    # whole noise finds: a score over 400-850 read as 631-1000), never across 0.
    a0 = at[0] - 1 if at[0] > 0 and coarse[at[0] - 1] * coarse[at[1]] > 0 else at[0]
    a1 = at[1] + 1 if at[1] < len(coarse) - 1 and coarse[at[0]] * coarse[at[1] + 1] > 0 else at[1]
    edges = coarse[a0 : a1 + 1]
    grid = _fine_grid(edges, float(coarse[at[0]]), float(coarse[at[1]]), fine_buckets(n_public, fine))
    grid = np.unique(np.round(grid) if integer else np.clip(grid, edges[0], edges[-1]))
    shape = noisy_histogram(values, grid=grid, noise=fine, rng=rng, nulls=nulls)
    keep = (np.arange(a0, a1) >= at[0]) & (np.arange(a0, a1) < at[1])
    mass = _refined_masses(first[a0:a1], edges, keep, shape, grid, wide.sigma, fine.sigma)
    # The outermost buckets holding under TAIL_TRIM of the mass together, on either side, are cut: an
    # equal-mass top bin would otherwise stretch over them (2026-2512 for years ending at 2020).
    cum = np.cumsum(mass) / max(float(mass.sum()), 1e-12)
    lo_b = int(np.searchsorted(cum, TAIL_TRIM, side="right"))
    hi_b = min(max(int(np.searchsorted(cum, 1.0 - TAIL_TRIM)), lo_b), len(mass) - 1)
    mass, grid = mass[lo_b : hi_b + 1], grid[lo_b : hi_b + 2]
    return _read_cdf(mass, grid, np.clip(np.asarray(quantiles, dtype=np.float64), 0.0, 1.0)), entry


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
    epsilon: float | None = None,
    delta: float,
    rng: np.random.Generator,
    column: str,
    max_categories: int,
    noise: HistogramNoise | None = None,
    nulls: list[float] | None = None,
    released: list[float] | None = None,
) -> tuple[list[str], MechanismEntry]:
    """DP category discovery: noisy counts of observed values, thresholded at ``delta``.

    Only keys whose noisy count exceeds the threshold are released, most frequent first,
    at most ``max_categories``; the rest go to the caller's "other" bucket. Nulls are not
    counted (the null token is public schema). The order of the list is by noisy count, a
    post-processing of the noisy counts.

    Privacy: a key held by a single row is released with probability at most ``delta``
    (:func:`discovery_threshold`; for Gaussian noise ``1 + sigma sqrt(2 ln(1/delta))``, its
    sub-Gaussian tail); on the keys both neighbours hold, the noisy counts are a histogram of
    sensitivity 1 (Laplace: ``epsilon``-DP; Gaussian: ``1/(2 sigma^2)``-zCDP, so the group is
    delta-approximate zCDP, Bun and Steinke 2016). The entry charges ``delta`` beside the
    noise's own share. With ``nulls``, the nulls' count is one more cell of the same histogram
    (a public key: noised, never thresholded) and its noisy value is appended to ``nulls``. With
    ``released``, the released keys' noisy counts are appended to it in the list's order: they are
    what the thresholded histogram releases (its guarantee covers them), not a new measurement.
    """
    hn = _noise(epsilon, noise, f"DP category discovery of {column!r}")
    if not 0 < delta < 1:
        raise PrivacyError(f"DP category discovery of {column!r}: delta must be in (0, 1), got {delta}")
    vc = values.drop_nulls().cast(pl.String).value_counts()
    keys = vc.get_column(vc.columns[0]).to_list()
    counts = vc.get_column("count").to_numpy().astype(np.float64)
    if nulls is not None:
        counts = np.append(counts, float(values.null_count()))
    noisy = (counts + hn.draw(len(counts), rng)).astype(np.float64)
    if nulls is not None:
        nulls.append(float(noisy[-1]))
        noisy = noisy[:-1]
    thr = 1.0 + hn.tail_level(delta)
    keep = np.flatnonzero(noisy > thr)
    keep = keep[np.argsort(-noisy[keep], kind="stable")][:max_categories]
    if released is not None:
        released.extend(float(noisy[i]) for i in keep)
    entry = MechanismEntry(
        step="preprocessing",
        mechanism="dp_categories",
        column=column,
        epsilon=hn.epsilon,
        delta=delta + hn.delta,
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
