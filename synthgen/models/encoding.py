"""Reversible table encoding: polars DataFrame <-> integer codes / torch-ready matrix, and back.

Every column becomes one *token* per row:

- categorical / boolean: its category (categories from the spec, or DP discovery
  with an ``<other>`` bucket for rare values);
- integer with a narrow range (at most :data:`SMALL_INTEGER_VALUES` integers between the
  ends of its DP range, or of its exact range in non-DP mode): one token per integer of that
  range, like a category (codes such as SEX 1/2 or a 0/1 target); decoding gives back only
  those integers, never a value outside the range or between two codes;
- numeric / datetime: the index of its bin (bin edges from DP quantiles, or from
  exact quantiles in non-DP mode). Datetimes are encoded as epoch seconds. On
  decoding a value is drawn uniformly inside its bin (or placed by a within-bin
  offset when the model produces one);
- null: an explicit ``<null>`` token for every nullable column.

The float matrix form (:meth:`TableEncoder.transform`) is the one-hot of all
tokens plus, per numeric column, one within-bin offset slot in [0, 1]; its
layout is described by :attr:`TableEncoder.spans` (used by DP-CTGAN).

Privacy (P2, P5): in DP mode the encoder reads raw rows only through the DP
mechanisms of :mod:`synthgen.privacy.mechanisms`; exact min/max, quantiles and
frequencies are computed only in non-DP mode, and only through
:func:`_raw_quantiles` / :func:`_raw_categories` (tests replace them with spies
that fail). The encoder holds bin edges and category lists, never rows, and
serialises to JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from synthgen.errors import ModelError, PrivacyError
from synthgen.privacy.mechanisms import (
    HistogramNoise,
    dp_categories,
    dp_quantiles,
    dp_range_quantiles,
    edges_from_quantiles,
    log_grid_steps,
    signed_log_grid,
)
from synthgen.privacy.record import MechanismEntry
from synthgen.schema import TEMPORAL_PARSERS, ColumnSchema, ColumnType, TableSchema

NULL_TOKEN = "<null>"
OTHER_TOKEN = "<other>"

#: Public default range (epoch seconds) of a datetime column the spec gives no bounds:
#: 1800-01-01 to 2200-01-01. Data-independent, so free under DP (P2).
DEFAULT_DATETIME_BOUNDS = (-5_364_662_400.0, 7_258_118_400.0)

#: An integer column whose range holds at most this many integers gets one token per integer (codes,
#: counts, 0/1 targets) instead of quantile bins: no bin ever spreads a 0/1 column over 0..2.
SMALL_INTEGER_VALUES = 30

#: A column keeps emitting nulls when the noisy null count of its DP histogram passes the level
#: that noise alone passes with this probability (Gaussian: ~4.3 sigma; post-processing).
NULL_BETA = 1e-4

#: Column types the tabular encoder models; ``text`` and ``id`` are left to other stages.
TABULAR_TYPES = (ColumnType.numeric, ColumnType.datetime, ColumnType.categorical, ColumnType.boolean)


class CategoricalCode(BaseModel):
    """A categorical or boolean column: token i is ``categories[i]``, then ``<other>``, then ``<null>``.

    ``dtype="int"``: a narrow integer column, ``categories`` are the consecutive integers of its
    range (as strings), no ``<other>``; a value outside the range is encoded as the nearest end.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["categorical"] = "categorical"
    name: str
    categories: list[str]
    other: bool
    null: bool
    #: How decoded values are typed: "str", "bool" or "int" (consecutive integers, see above).
    dtype: Literal["str", "bool", "int"] = "str"
    #: Value written for the ``<other>`` token.
    other_label: str = "other"
    #: False when the list is public (the spec's): ``<other>`` then only holds rows outside the
    #: declared list, and samplers never emit it (the list is the column's whole domain).
    emit_other: bool = True
    #: False when the column's DP histogram counted no null above the noise (:data:`NULL_BETA`):
    #: samplers never emit ``<null>`` (a column with no null got 0.03-0.45% nulls from DP-TVAE).
    emit_null: bool = True
    #: The DP discovery's noisy counts of ``categories`` (what it released), for
    #: :meth:`TableEncoder.calibrate`; None for a public list or a non-DP fit.
    counts: list[float] | None = None

    @property
    def tokens(self) -> int:
        return len(self.categories) + int(self.other) + int(self.null)


class NumericCode(BaseModel):
    """A numeric or datetime column: token k < K is bin ``[edges[k], edges[k+1])``, token K + i is the
    exact value ``points[i]`` (a spike: zeros of an amount), the last token is ``<null>``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["numeric"] = "numeric"
    name: str
    edges: list[float]
    integer: bool
    null: bool
    #: How decoded values are typed: "float", "int", "datetime" (epoch seconds -> Datetime(us)) or "date".
    dtype: Literal["float", "int", "datetime", "date"] = "float"
    #: Values that hold at least one quantile step of the rows (:func:`spike_points`): each its own
    #: token, encoded on equality and decoded exactly, so a spike at 0 stays at 0.
    points: list[float] = []
    #: See :attr:`CategoricalCode.emit_null`.
    emit_null: bool = True

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    @property
    def tokens(self) -> int:
        return self.bins + len(self.points) + int(self.null)


ColumnCode = Annotated[CategoricalCode | NumericCode, Field(discriminator="kind")]


@dataclass(frozen=True)
class Span:
    """Slots ``[start, end)`` of the float matrix belonging to one column."""

    column: str
    start: int
    end: int
    #: "softmax": a one-hot token block; "sigmoid": a within-bin offset in [0, 1].
    activation: Literal["softmax", "sigmoid"]


# -- raw statistics (non-DP mode only) ---------------------------------------------------


def _raw_quantiles(values: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Exact quantiles of raw values. NEVER called in DP mode (tests spy on it)."""
    return np.quantile(values, qs)


def _raw_categories(values: pl.Series, max_categories: int) -> list[str]:
    """Exact category list, most frequent first. NEVER called in DP mode (tests spy on it)."""
    vc = values.drop_nulls().cast(pl.String).value_counts(sort=True)
    return [str(v) for v in vc.get_column(vc.columns[0]).to_list()[:max_categories]]


#: A float quantile this close to 0 is 0: the DP grid's finest bucket at 0 is [0, 1e-3), so quantiles
#: interpolated inside it are a spike at 0 seen at the grid's resolution (zeros came out as 0.0003).
ZERO_SNAP = 1e-3


def spike_points(q: np.ndarray, *, integer: bool, snap: float = 0.0) -> tuple[np.ndarray, list[float]]:
    """Quantiles with spikes made exact, and the spikes: values two or more quantiles share.

    Two quantiles 1/B apart landing on one value mean that value holds at least 1/B of the rows.
    Post-processing of the (DP) quantiles only. Float quantiles within ``snap`` of 0 are snapped to
    0 first (:data:`ZERO_SNAP` for DP quantiles on a grid that cannot tell them apart); integer
    quantiles are rounded (as their edges are).
    """
    q = np.round(q) if integer else np.where(np.abs(q) < snap, 0.0, q)
    values, counts = np.unique(q, return_counts=True)
    if len(values) < 2:
        return q, []  # one value: its single closed bin is already exact
    return q, [float(v) for v in values[counts >= 2]]


# -- declared types on other dtypes ----------------------------------------------------------

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def _largest_remainder(weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` split in proportion to the non-negative ``weights`` (largest remainders; all equal
    when every weight is 0)."""
    w = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    base = np.floor(w * n).astype(np.int64)
    left = n - int(base.sum())
    if left > 0:
        base[np.argsort(-(w * n - base), kind="stable")[:left]] += 1
    return base


def _rebalanced(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``codes`` (values 0..len(counts)-1) with each value held as often as ``counts`` say, in
    proportion: random rows of a value in surplus take the values short of their count."""
    k = len(counts)
    target = _largest_remainder(counts, len(codes))
    have = np.bincount(codes, minlength=k)
    out = codes.copy()
    spare = np.concatenate(
        [
            rng.permutation(np.flatnonzero(codes == v))[: have[v] - target[v]]
            for v in range(k)
            if have[v] > target[v]
        ]
        or [np.zeros(0, dtype=np.int64)]
    )
    need = np.repeat(np.arange(k), np.clip(target - have, 0, None))
    out[rng.permutation(spare)[: len(need)]] = need
    return out


def as_boolean(s: pl.Series, name: str) -> pl.Series:
    """A column declared boolean as a Boolean series: true/false, yes/no, y/n, t/f or 1/0."""
    if s.dtype == pl.Boolean:
        return s
    if s.dtype.is_numeric():
        strs = s.cast(pl.Int64, strict=False).cast(pl.String)
    else:
        strs = s.cast(pl.String).str.strip_chars().str.to_lowercase()
    if not strs.drop_nulls().is_in(_TRUE + _FALSE).all():
        raise ModelError(
            f"column {name!r} is declared boolean but holds values other than true/false, yes/no, "
            "y/n, t/f or 1/0: fix its type in the spec"
        )
    return pl.select(pl.when(strs.is_null()).then(None).otherwise(strs.is_in(_TRUE))).to_series().alias(name)


def as_datetime(s: pl.Series, name: str) -> pl.Series:
    """A string column declared datetime, parsed strictly (offsets to naive UTC): no value is
    silently turned into a null."""
    for parse in TEMPORAL_PARSERS[1:]:  # datetimes (a date parses as one too)
        try:
            return parse(s)
        except (pl.exceptions.PolarsError, ValueError):
            continue
    raise ModelError(
        f"column {name!r} is declared datetime but not all its values parse as dates/times "
        "(ISO 8601 expected): fix its type in the spec or the data"
    )


# -- validation ------------------------------------------------------------------------------


def validate_frame(
    frame: pl.DataFrame, schema: TableSchema, *, max_categories: int, dp: bool = False
) -> None:
    """Refuse input the models cannot learn from, with one clear line per problem.

    Without DP these checks read the raw column (distinct count, null count, parsing) and
    refuse to run; a refusal reveals one bit about the data. With ``dp`` only the checks of
    the spec against the data's column names run: the value checks would be uncharged
    reads, and :mod:`synthgen.models.dp_input` makes them unnecessary.
    """
    for col in schema.columns:
        if col.type not in TABULAR_TYPES:
            continue
        if col.name not in frame.columns:
            raise ModelError(
                f"column {col.name!r} is in the schema but not in the data; fix the spec's columns"
            )
        if col.categories is not None and len(col.categories) > max_categories:
            raise ModelError(
                f"column {col.name!r} declares {len(col.categories)} categories (limit {max_categories}): "
                "raise model.max_categories or group the categories"
            )
        if dp:
            continue
        s = frame.get_column(col.name)
        if s.null_count() == len(s):
            raise ModelError(
                f"column {col.name!r} is entirely null: drop it from the spec (nothing to learn)"
            )
        distinct = s.drop_nulls().n_unique()
        if distinct == 1 and len(s) > 1:
            raise ModelError(
                f"column {col.name!r} is constant (one value): drop it from the spec "
                "or add it back after generation"
            )
        if col.type == ColumnType.categorical and col.categories is None and distinct > max_categories:
            raise ModelError(
                f"column {col.name!r} has more than {max_categories} distinct values: "
                "declare it as type id or text, give it a public category list, or raise model.max_categories"
            )
        if col.type == ColumnType.boolean:
            as_boolean(s, col.name)
        elif col.type == ColumnType.datetime and s.dtype == pl.String:
            as_datetime(s, col.name)


# -- the encoder ------------------------------------------------------------------------------


def code_dtype(cardinalities: list[int]) -> np.dtype[np.signedinteger]:
    """The smallest signed integer dtype that holds every token code (codes run 0..tokens-1)."""
    top = max(cardinalities, default=1) - 1
    for dtype in (np.int8, np.int16, np.int32):
        if top <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    dp: bool
    columns: list[ColumnCode]


def _numeric_values(s: pl.Series, col: ColumnSchema) -> tuple[np.ndarray, str]:
    """Float values (nulls as NaN) and the dtype to restore."""
    if col.type == ColumnType.datetime:
        if s.dtype == pl.Date or col.date:
            # Calendar dates: whole days (a time of day in a column declared `date` is dropped).
            if s.dtype == pl.String:
                s = as_datetime(s, col.name)
            secs = s.cast(pl.Datetime("us")).dt.truncate("1d").dt.epoch("s").cast(pl.Float64)
            return secs.fill_null(float("nan")).to_numpy(), "date"
        if s.dtype == pl.String:
            s = as_datetime(s, col.name)
        secs = s.dt.epoch("us").cast(pl.Float64) / 1e6
        return secs.fill_null(float("nan")).to_numpy(), "datetime"
    if not s.dtype.is_numeric():
        raise ModelError(
            f"column {col.name!r} is declared numeric but holds {s.dtype}; fix its type in the spec"
        )
    integer = col.integer or s.dtype.is_integer()
    vals = s.cast(pl.Float64).fill_null(float("nan")).fill_nan(float("nan")).to_numpy()
    return vals, "int" if integer else "float"


class TableEncoder:
    """Encodes the tabular columns of a schema to one token per column (see module docstring)."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config

    # -- fitting ----------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        frame: pl.DataFrame,
        schema: TableSchema,
        *,
        dp: bool,
        column_epsilon: float = 0.0,
        column_sigma: float | None = None,
        column_delta: float = 0.0,
        discovery_delta: float = 0.0,
        n_public: float | None = None,
        rng: np.random.Generator | None = None,
        numeric_bins: int = 20,
        max_categories: int = 1000,
    ) -> tuple[TableEncoder, list[MechanismEntry]]:
        """Fit the encoding; in DP mode every data-dependent choice is a DP mechanism.

        Args:
            dp: True reads raw values only through DP mechanisms (P2, P5). False
                fits exact quantiles and category lists (non-DP comparison mode, P7).
            column_epsilon: epsilon for each column that needs a DP mechanism:
                numeric/datetime columns (DP quantile bins, also giving bounds when
                the spec has none) and categorical columns without a public list.
            discovery_delta: delta for each DP category discovery.
            n_public: the DP row count: sets the log grid's resolution of a numeric column
                without public bounds (:func:`~synthgen.privacy.mechanisms.log_grid_steps`).
            rng: noise source for DP mechanisms (see :func:`synthgen.privacy.mechanisms.noise_rng`).

        Returns:
            The encoder and the mechanisms to charge (empty in non-DP mode).
        """
        if dp and rng is None:
            raise PrivacyError("DP encoding needs a noise generator")
        entries: list[MechanismEntry] = []
        codes: list[CategoricalCode | NumericCode] = []
        qs = np.linspace(0.0, 1.0, numeric_bins + 1)
        null_seen: dict[str, list[float]] = {}
        gaussian = column_sigma is not None and math.isfinite(column_sigma)
        noise = HistogramNoise(
            epsilon=column_epsilon,
            sigma=column_sigma if gaussian else None,
            delta=column_delta if gaussian else 0.0,
        )
        for col in schema.columns:
            if col.type not in TABULAR_TYPES:
                continue
            s = frame.get_column(col.name)
            null = col.nullable
            null_counts: list[float] = []  # filled by the column's DP histogram, if it has one
            null_seen[col.name] = null_counts
            if col.type == ColumnType.boolean:
                codes.append(
                    CategoricalCode(
                        name=col.name, categories=["false", "true"], other=False, null=null, dtype="bool"
                    )
                )
            elif col.type == ColumnType.categorical:
                counts: list[float] | None = None
                if col.categories is not None:
                    cats = list(col.categories)  # public: free
                elif dp:
                    assert rng is not None
                    counts = []
                    cats, entry = dp_categories(
                        s,
                        nulls=null_counts,
                        released=counts,
                        noise=noise,
                        delta=discovery_delta,
                        rng=rng,
                        column=col.name,
                        max_categories=max_categories,
                    )
                    entries.append(entry)
                else:
                    cats = _raw_categories(s, max_categories)
                codes.append(
                    CategoricalCode(
                        name=col.name,
                        categories=cats,
                        other=True,
                        null=null,
                        emit_other=col.categories is None,
                        counts=counts or None,
                    )
                )
            else:
                vals, dtype = _numeric_values(s, col)
                integer = dtype in ("int", "date")
                found: list[float] = []  # spikes the DP histogram shows (single-value buckets)
                if dp:
                    assert rng is not None
                    if col.bounds is not None:
                        lo, hi = col.bounds
                        steps = (
                            10 if n_public is None else log_grid_steps(n_public, column_epsilon, noise=noise)
                        )
                        grid = signed_log_grid(integer=integer, lower=lo, upper=hi, steps_per_decade=steps)
                        q, entry = dp_quantiles(
                            vals,
                            grid=grid,
                            quantiles=qs,
                            noise=noise,
                            rng=rng,
                            column=col.name,
                            spikes=found,
                            integer=integer,
                            nulls=null_counts,
                        )
                        top = grid[-1]
                    else:
                        # Without public bounds a datetime still has a public plausible range; the
                        # numeric log grid (up to 1e15 s) would let noise pick dates no calendar holds.
                        span = DEFAULT_DATETIME_BOUNDS if dtype in ("datetime", "date") else None
                        q, entry = dp_range_quantiles(
                            vals,
                            integer=integer,
                            quantiles=qs,
                            noise=noise,
                            rng=rng,
                            column=col.name,
                            n_public=n_public,
                            lower=None if span is None else span[0],
                            upper=None if span is None else span[1],
                            spikes=found,
                            nulls=null_counts,
                        )
                        top = math.inf if span is None else span[1]
                    entries.append(entry)
                    if integer and q[-1] < top:
                        # The range ends at its top bucket's end, which that bucket excludes (only the
                        # grid's last bucket is closed); the encoder's last bin is closed: without this a
                        # column of zeros whose tail fell under the noise became 0 or 1 half and half.
                        q = np.minimum(q, max(q[-1] - 1.0, q[0]))
                else:
                    finite = vals[np.isfinite(vals)]
                    q = _raw_quantiles(finite, qs)
                    if col.bounds is not None:
                        q = np.clip(q, *col.bounds)
                lo_i, hi_i = (int(np.round(q[0])), int(np.round(q[-1]))) if integer else (0, 0)
                if dtype == "int" and hi_i - lo_i < SMALL_INTEGER_VALUES:
                    # Post-processing of the (DP) range: each integer its own token.
                    ints = [str(v) for v in range(lo_i, hi_i + 1)]
                    codes.append(
                        CategoricalCode(name=col.name, categories=ints, other=False, null=null, dtype="int")
                    )
                    continue
                # Public bounds under a unit apart get a grid finer than ZERO_SNAP: no snapping there.
                fine = col.bounds is not None and col.bounds[1] - col.bounds[0] < 1.0
                q, points = spike_points(q, integer=integer, snap=ZERO_SNAP if dp and not fine else 0.0)
                points = sorted(set(points) | {p for p in found if q[0] <= p <= q[-1]})
                edges = edges_from_quantiles(q, integer=integer)
                codes.append(
                    NumericCode(
                        name=col.name,
                        edges=edges,
                        integer=integer,
                        null=null,
                        dtype=dtype,  # type: ignore[arg-type]
                        points=points,
                    )
                )
        if dp:
            # Post-processing of the noisy null counts: a column whose nulls stay under the noise
            # never samples one (its null token still encodes any null the data holds).
            null_level = noise.tail_level(NULL_BETA)
            for c in codes:
                seen = null_seen.get(c.name) or []
                if c.null and seen and seen[0] < null_level:
                    c.emit_null = False
        return cls(EncoderConfig(dp=dp, columns=codes)), entries

    # -- layout -----------------------------------------------------------------------------

    @property
    def columns(self) -> list[CategoricalCode | NumericCode]:
        return list(self.config.columns)

    @property
    def all_other(self) -> list[str]:
        """Categorical columns whose list is empty (DP discovery kept no value): every value is "other"."""
        return [
            c.name
            for c in self.config.columns
            if isinstance(c, CategoricalCode) and c.dtype == "str" and not c.categories
        ]

    @property
    def collapsed(self) -> list[str]:
        """Run-summary warnings for columns the DP results collapsed (post-processing of them only)."""
        out = []
        for c in self.config.columns:
            one = (isinstance(c, NumericCode) and c.edges[0] == c.edges[-1]) or (
                isinstance(c, CategoricalCode) and c.dtype == "int" and len(c.categories) == 1
            )
            if one:
                value = c.edges[0] if isinstance(c, NumericCode) else float(c.categories[0])
                out.append(
                    f"column {c.name!r}: its DP range holds one value ({value:g}); the rest was "
                    f"under the noise: give columns.{c.name}.bounds or raise privacy.epsilon"
                )
            elif (
                isinstance(c, CategoricalCode)
                and c.emit_other
                and c.dtype == "str"
                and len(c.categories) == 1
            ):
                out.append(
                    f"column {c.name!r}: DP category discovery kept one value ({c.categories[0]!r}), the "
                    f"rest is 'other': give columns.{c.name}.categories or raise privacy.epsilon"
                )
        return out

    @property
    def never_emitted(self) -> dict[int, list[int]]:
        """Tokens a sampler must not draw, by column index: ``<other>`` of a public category list,
        and ``<null>`` of a column whose DP null count stayed under the noise (``emit_null``)."""
        out: dict[int, list[int]] = {}
        for j, c in enumerate(self.config.columns):
            toks = []
            if isinstance(c, CategoricalCode) and c.other and not c.emit_other and c.categories:
                toks.append(len(c.categories))
            if c.null and not c.emit_null:
                toks.append(c.tokens - 1)
            if toks:
                out[j] = toks
        return out

    @property
    def optional_tokens(self) -> dict[int, list[int]]:
        """Tokens the data may not hold at all, by column index: ``<null>`` (every column has one
        under DP), a discovered list's ``<other>``, and every value of a narrow integer column (its
        DP range can reach past the data). A marginal-based sampler keeps one only where its noisy
        count rises above the noise (:mod:`synthgen.models.dp_mst`)."""
        out: dict[int, list[int]] = {}
        for j, c in enumerate(self.config.columns):
            if isinstance(c, CategoricalCode):
                toks = list(range(len(c.categories))) if c.dtype == "int" else []
                if c.other and c.emit_other:
                    toks.append(len(c.categories))
            else:
                toks = []
            if c.null:
                toks.append(c.tokens - 1)
            if toks:
                out[j] = toks
        return out

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.config.columns]

    @property
    def cardinalities(self) -> list[int]:
        """Number of tokens of each column, in order."""
        return [c.tokens for c in self.config.columns]

    @property
    def spans(self) -> list[Span]:
        """Layout of :meth:`transform`'s matrix: a softmax span per column, a sigmoid offset per numeric."""
        out: list[Span] = []
        pos = 0
        for c in self.config.columns:
            out.append(Span(c.name, pos, pos + c.tokens, "softmax"))
            pos += c.tokens
            if isinstance(c, NumericCode):
                out.append(Span(c.name, pos, pos + 1, "sigmoid"))
                pos += 1
        return out

    @property
    def width(self) -> int:
        sp = self.spans
        return sp[-1].end if sp else 0

    # -- encoding ---------------------------------------------------------------------------

    def _encode_column(
        self, c: CategoricalCode | NumericCode, s: pl.Series, col: ColumnSchema
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if isinstance(c, CategoricalCode) and c.dtype == "int":
            vals, _ = _numeric_values(s, col)
            is_null = ~np.isfinite(vals)
            if is_null.any() and not c.null:
                raise ModelError(f"column {c.name!r} holds nulls but the schema says it is not nullable")
            lo = int(c.categories[0])
            k = np.clip(np.round(np.where(is_null, lo, vals)) - lo, 0, len(c.categories) - 1)
            return np.where(is_null, len(c.categories), k).astype(np.int64), None
        if isinstance(c, CategoricalCode):
            if c.dtype == "bool":
                strs = as_boolean(s, c.name).cast(pl.String).str.to_lowercase()
            else:
                strs = s.cast(pl.String)
            mapping = pl.DataFrame(
                {"v": c.categories, "i": np.arange(len(c.categories), dtype=np.int64)},
                schema={"v": pl.String, "i": pl.Int64},
            )
            joined = pl.DataFrame({"v": strs}).join(mapping, on="v", how="left", maintain_order="left")
            idx = joined.get_column("i")
            other_code = len(c.categories) if c.other else -1
            null_code = len(c.categories) + int(c.other) if c.null else -1
            is_null = strs.is_null().to_numpy()
            out = idx.fill_null(-1).to_numpy().astype(np.int64)
            unknown = (out < 0) & ~is_null
            if unknown.any():
                if other_code < 0:
                    raise ModelError(f"column {c.name!r} holds values outside its category list")
                out[unknown] = other_code
            if is_null.any():
                if null_code < 0:
                    raise ModelError(f"column {c.name!r} holds nulls but the schema says it is not nullable")
                out[is_null] = null_code
            return out, None
        vals, _ = _numeric_values(s, col)
        edges = np.asarray(c.edges)
        is_null = ~np.isfinite(vals)
        x = np.clip(np.where(is_null, edges[0], vals), edges[0], edges[-1])
        k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, c.bins - 1)
        lo, hi = edges[k], edges[k + 1]
        width = np.where(hi > lo, hi - lo, 1.0)
        if c.integer:
            # Integer bins hold lo..hi-1 (the last bin also holds hi): offset over that range.
            width = np.where(k == c.bins - 1, width + 1.0, width)
        offset = np.clip((x - lo) / width, 0.0, 1.0)
        for i, p in enumerate(c.points):
            at = vals == p
            k = np.where(at, c.bins + i, k)
            offset = np.where(at, 0.5, offset)
        if is_null.any():
            if not c.null:
                raise ModelError(f"column {c.name!r} holds nulls but the schema says it is not nullable")
            k = np.where(is_null, c.bins + len(c.points), k)
            offset = np.where(is_null, 0.5, offset)
        return k.astype(np.int64), offset

    def encode(self, frame: pl.DataFrame, schema: TableSchema) -> tuple[np.ndarray, np.ndarray]:
        """Token codes ``(n, C)`` int64 and within-bin offsets ``(n, C)`` float32 (0.5 for non-numeric)."""
        n = frame.height
        codes = np.empty((n, len(self.config.columns)), dtype=np.int64)
        offsets = np.full((n, len(self.config.columns)), 0.5, dtype=np.float32)
        self._encode_into(frame, schema, codes, offsets)
        return codes, offsets

    def encode_codes(self, frame: pl.DataFrame, schema: TableSchema) -> np.ndarray:
        """Token codes ``(n, C)`` alone, in :func:`code_dtype` (int8 up to 128 tokens a column).

        The codes of :meth:`encode`, for a model that trains on tokens only (DP-TVAE): at 5,000,000
        rows of 6 columns, 30 MB instead of 240 MB of int64 codes and 120 MB of offsets.
        """
        codes = np.empty((frame.height, len(self.config.columns)), dtype=code_dtype(self.cardinalities))
        self._encode_into(frame, schema, codes, None)
        return codes

    def _encode_into(
        self, frame: pl.DataFrame, schema: TableSchema, codes: np.ndarray, offsets: np.ndarray | None
    ) -> None:
        for j, c in enumerate(self.config.columns):
            code, off = self._encode_column(c, frame.get_column(c.name), schema[c.name])
            codes[:, j] = code  # every code is below the column's token count: it fits codes.dtype
            if off is not None and offsets is not None:
                offsets[:, j] = off

    def transform(self, frame: pl.DataFrame, schema: TableSchema) -> np.ndarray:
        """Float32 matrix laid out as :attr:`spans` (one-hot tokens, numeric offsets)."""
        codes, offsets = self.encode(frame, schema)
        return self.to_matrix(codes, offsets)

    def to_matrix(self, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        n = codes.shape[0]
        out = np.zeros((n, self.width), dtype=np.float32)
        rows = np.arange(n)
        pos = 0
        for j, c in enumerate(self.config.columns):
            out[rows, pos + codes[:, j]] = 1.0
            pos += c.tokens
            if isinstance(c, NumericCode):
                out[:, pos] = offsets[:, j]
                pos += 1
        return out

    # -- calibration ------------------------------------------------------------------------

    def calibrate(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``codes`` of DP-discovered category columns moved to the noisy counts the discovery released.

        A sampler trained by DP-SGD gets the marginals only roughly (Adult at epsilon 3: a mean
        1-way TVD of 0.024, relationship 0.035, occupation 0.033, where the released counts were
        within 0.01). Among the rows on the released categories (not other, not null), each takes
        as many rows as its noisy count's share; the surplus of each over-represented category
        (rows drawn at random) moves to the short ones. Post-processing of DP results only.

        Numeric bins are left as sampled: their DP quantile shares are the noisy histogram's, read
        linearly inside its buckets, and the model's bin frequencies were closer to the data (moving
        Adult's to them took hours_per_week from 0.052 to 0.107). Public lists and non-DP fits
        have no released counts.
        """
        out = codes.copy()
        for j, c in enumerate(self.config.columns):
            if isinstance(c, CategoricalCode) and c.counts is not None and len(c.counts) == len(c.categories):
                col = out[:, j]
                rows = np.flatnonzero(col < len(c.categories))
                col[rows] = _rebalanced(col[rows], np.asarray(c.counts), rng)
        return out

    # -- decoding ---------------------------------------------------------------------------

    def decode(
        self, codes: np.ndarray, *, offsets: np.ndarray | None = None, rng: np.random.Generator
    ) -> pl.DataFrame:
        """Rows from token codes; numeric values sit at ``offsets`` in their bin (uniform when None)."""
        cols: dict[str, pl.Series] = {}
        n = codes.shape[0]
        for j, c in enumerate(self.config.columns):
            k = codes[:, j]
            if isinstance(c, CategoricalCode) and c.dtype == "int":
                is_null = k >= len(c.categories)
                ints = int(c.categories[0]) + np.minimum(k, len(c.categories) - 1)
                s = pl.Series(c.name, ints.astype(np.int64))
                cols[c.name] = s.scatter(np.flatnonzero(is_null), None) if is_null.any() else s
                continue
            if isinstance(c, CategoricalCode):
                labels = (
                    list(c.categories) + ([c.other_label] if c.other else []) + ([None] if c.null else [])
                )
                lut = pl.Series("lut", labels, dtype=pl.String)
                s = lut.gather(pl.Series(k, dtype=pl.UInt32)).alias(c.name)
                if c.dtype == "bool":
                    s = (s == "true").alias(c.name)
                cols[c.name] = s
                continue
            edges = np.asarray(c.edges)
            is_null = k >= c.bins + len(c.points)
            is_point = (k >= c.bins) & ~is_null
            kk = np.minimum(k, c.bins - 1)
            lo, hi = edges[kk], edges[kk + 1]
            u = rng.random(n) if offsets is None else np.clip(offsets[:, j].astype(np.float64), 0.0, 1.0)
            if c.integer:
                last = kk == c.bins - 1
                span = np.maximum(hi - lo, 1.0) + last.astype(np.float64)
                v = np.minimum(lo + np.floor(u * span + 1e-3), np.where(last, hi, np.maximum(hi - 1.0, lo)))
            else:
                v = lo + u * (hi - lo)
            if is_point.any():
                which = np.clip(k - c.bins, 0, len(c.points) - 1)
                v = np.where(is_point, np.asarray(c.points)[which], v)
            if c.dtype == "int" and not is_null.any():
                # The common case, without polars' null handling (sampling speed).
                cols[c.name] = pl.Series(c.name, np.round(v).astype(np.int64))
                continue
            v = np.where(is_null, np.nan, v)
            s = pl.Series(c.name, v, dtype=pl.Float64, nan_to_null=True)
            if c.dtype == "int":
                s = s.round(0).cast(pl.Int64)
            elif c.dtype == "datetime":
                s = (s * 1e6).round(0).cast(pl.Int64).cast(pl.Datetime("us"))
            elif c.dtype == "date":
                s = (s * 1e6).round(0).cast(pl.Int64).cast(pl.Datetime("us")).dt.date()
            cols[c.name] = s.alias(c.name)
        return pl.DataFrame(list(cols.values())) if cols else pl.DataFrame(height=n)  # type: ignore[call-arg]

    def inverse_transform(self, matrix: np.ndarray, *, rng: np.random.Generator) -> pl.DataFrame:
        """Rows from a float matrix laid out as :attr:`spans` (argmax per softmax span over the tokens
        a sampler may draw, :attr:`never_emitted`; offsets as given)."""
        n = matrix.shape[0]
        codes = np.empty((n, len(self.config.columns)), dtype=np.int64)
        offsets = np.full((n, len(self.config.columns)), 0.5, dtype=np.float64)
        never = self.never_emitted
        pos = 0
        for j, c in enumerate(self.config.columns):
            block = matrix[:, pos : pos + c.tokens]
            if j in never and len(never[j]) < c.tokens:
                block = block.copy()
                block[:, never[j]] = -np.inf
            codes[:, j] = block.argmax(axis=1)
            pos += c.tokens
            if isinstance(c, NumericCode):
                offsets[:, j] = matrix[:, pos]
                pos += 1
        return self.decode(codes, offsets=offsets, rng=rng)

    # -- persistence ------------------------------------------------------------------------

    def to_json(self) -> str:
        return self.config.model_dump_json(indent=1)

    @classmethod
    def from_json(cls, text: str) -> TableEncoder:
        return cls(EncoderConfig.model_validate(json.loads(text)))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> TableEncoder:
        return cls.from_json(path.read_text(encoding="utf-8"))
