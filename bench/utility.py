"""Utility of the synthetic data side by side in one run: synthgen's kinds, dpmm, ctgan's TVAE.

Methods: synthgen's kinds (``SYNTHGEN_BENCH_KINDS``, default ``dp_mst,dp_tvae``) and the peers
(``SYNTHGEN_BENCH_PEERS``, default ``dpmm_mst,dpmm_aim,dpmm_privbayes,ctgan_tvae``; see
``bench/peers.py``: dpmm 0.1.9 runs in its own venv, built on first use, at the same epsilon
and delta; ctgan's TVAE is the non-private reference). Every method's synthetic rows are scored
by the same code below. Tables (``SYNTHGEN_BENCH_TABLES``, default ``demo,adult,wide``):

* demo: ``synthgen.demo.data.generate_patients`` (10,000 visits, seed 0; the first 8,000 train,
  the last 2,000 are the real test rows), its 8 tabular columns with the demo spec's public
  category lists and bounds, at epsilon 1 and 3 (synthgen's kinds also at 2.1, the tabular
  share of epsilon 3 when ``make demo`` also trains the text model); target ``readmitted_30d``.
* adult: ``adult_train.csv`` / ``adult_test.csv`` with no schema declared (types inferred, as a
  new user gets them), at epsilon 1 and 3; target ``income``; also 2-way TVD and
  capital_gain's share of zeros.
* wide: :func:`wide_table`, 42 generated columns (10,000 rows, 8,000 train), no schema
  declared, at epsilon 3; target ``default.next``.

Figures for each method: the association of every pair (Cramer's V for two categoricals, the
correlation ratio for categorical x numeric, |Pearson r| for two numerics; booleans are
categorical, dates numeric), real vs synthetic, the four strongest real pairs and the mean gap
over all pairs; TSTR (HistGradientBoosting trained on as many synthetic rows as the train split,
ROC AUC on the real test rows) vs TRTR (trained on the real train rows); mean 1-way TVD; fit
seconds and the 1-minute load average around each fit (2 shared cores: seconds are inflated).
delta = 1/(10 n_train) for every DP method.

Bars (issue 13): demo's four strongest pairs within 0.15, mean gap <= 0.05, TSTR >= 0.9 TRTR;
Adult TSTR >= 0.88 at epsilon 1 and >= 0.90 at epsilon 3, 1-way TVD <= 0.03; at least as good
as dpmm's best method on each figure.

Run: ``python -m bench utility`` then ``python -m bench.utility`` (the side-by-side table into
``bench/notes/utility.md``) and ``python -m bench.render utility``. ``--quick``: 2,500 demo rows,
8,000 Adult rows, 4,000 wide rows, epsilon 3 only, DP-TVAE and TVAE 3 epochs.
Fits are cached in ``bench/out/utility-cache`` (peers by version and settings, synthgen's kinds by
the code of ``synthgen/``); ``SYNTHGEN_BENCH_REUSE_STALE=dp_tvae`` reuses a kind's fit made by
older code (the row says so), ``SYNTHGEN_BENCH_SKIP=dpmm_aim@adult,dpmm_aim@wide@3`` leaves runs
out (recorded as skipped), ``SYNTHGEN_BENCH_CACHED_ONLY=dpmm_aim`` runs a method only from the
cache (a fit not there is recorded as skipped), ``SYNTHGEN_BENCH_PEER_TIMEOUT`` (seconds) caps one dpmm fit.

Each synthgen kind is fitted ``--repeats`` times (default 3) with fresh DP noise, and its figures
are the means (each fit's figures and the min-max spread are in the JSON): one dp_mst fit's mean
gap on the demo moved by 0.01 between fits. The peers are fitted once (a single draw of the
same kind of noise: unbiased, with more spread). Each case also records what ``model.kind: auto``
picks for it (``auto_picks``).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import benchmark

DEMO_TARGET = "readmitted_30d"
DEMO_COLUMNS = [
    "sex",
    "insurance",
    "diagnosis_category",
    "length_of_stay",
    "total_charges",
    "readmitted_30d",
    "date_of_birth",
    "admission_date",
]


def _demo_schema() -> Any:
    """The demo spec's declarations for its tabular columns (public lists and bounds)."""
    from synthgen.schema import ColumnSchema, TableSchema

    diag = "cardiac respiratory orthopedic neurological gastrointestinal infectious oncology"
    diag += " maternity psychiatric"
    return TableSchema(
        columns=[
            ColumnSchema(name="sex", type="categorical", categories=["F", "M"], nullable=False),
            ColumnSchema(
                name="insurance",
                type="categorical",
                categories=["medicare", "medicaid", "private", "self-pay"],
                nullable=False,
            ),
            ColumnSchema(
                name="diagnosis_category", type="categorical", categories=diag.split(), nullable=False
            ),
            ColumnSchema(name="length_of_stay", type="numeric", bounds=(0, 60), integer=True, nullable=False),
            ColumnSchema(name="total_charges", type="numeric", bounds=(0, 250_000), nullable=False),
            ColumnSchema(name="readmitted_30d", type="boolean", nullable=False),
            ColumnSchema(name="date_of_birth", type="datetime", nullable=False),
            ColumnSchema(name="admission_date", type="datetime", nullable=False),
        ]
    )


# -- yardsticks ------------------------------------------------------------------------------


def _is_categorical(s: pl.Series) -> bool:
    return s.dtype in (pl.String, pl.Boolean, pl.Categorical)


def _numeric(s: pl.Series) -> np.ndarray:
    if s.dtype in (pl.Date, pl.Datetime):
        s = s.cast(pl.Datetime("us")).dt.epoch("s")
    return s.cast(pl.Float64).to_numpy()


def _cramers_v(a: np.ndarray, b: np.ndarray) -> float:
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(table, (ia, ib), 1.0)
    n = table.sum()
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = float(((table - expected) ** 2 / np.where(expected > 0, expected, 1.0)).sum())
    k = min(table.shape) - 1
    return float(np.sqrt(chi2 / (n * k))) if k > 0 else 0.0


def _eta(groups: np.ndarray, y: np.ndarray) -> float:
    _, g = np.unique(groups, return_inverse=True)
    total = ((y - y.mean()) ** 2).sum()
    if total == 0:
        return 0.0
    sums = np.bincount(g, weights=y)
    counts = np.bincount(g)
    means = sums / np.maximum(counts, 1)
    between = (counts * (means - y.mean()) ** 2).sum()
    return float(np.sqrt(between / total))


def association(frame: pl.DataFrame, a: str, b: str) -> float:
    """Cramer's V, correlation ratio or |Pearson r| of one pair (rows with a null dropped)."""
    f = frame.select(a, b).drop_nulls()
    sa, sb = f[a], f[b]
    if f.height < 3:
        return 0.0
    if _is_categorical(sa) and _is_categorical(sb):
        return _cramers_v(sa.cast(pl.String).to_numpy(), sb.cast(pl.String).to_numpy())
    if _is_categorical(sa) or _is_categorical(sb):
        cat, num = (sa, sb) if _is_categorical(sa) else (sb, sa)
        return _eta(cat.cast(pl.String).to_numpy(), _numeric(num))
    x, y = _numeric(sa), _numeric(sb)
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(abs(np.corrcoef(x, y)[0, 1]))


def associations(real: pl.DataFrame, synth: pl.DataFrame) -> dict[str, Any]:
    pairs = list(itertools.combinations(real.columns, 2))
    rows = [
        {"pair": f"{a} x {b}", "real": association(real, a, b), "synth": association(synth, a, b)}
        for a, b in pairs
    ]
    rows.sort(key=lambda r: -r["real"])
    gaps = [abs(r["real"] - r["synth"]) for r in rows]
    top4 = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in rows[:4]]
    return {
        "top4": top4,
        "top4_within_0.15": all(abs(r["real"] - r["synth"]) <= 0.15 for r in rows[:4]),
        "mean_gap": round(float(np.mean(gaps)), 4),
        "pairs": len(rows),
    }


def _features(frame: pl.DataFrame, target: str) -> pl.DataFrame:
    out = []
    for c in frame.columns:
        if c == target:
            continue
        s = frame[c]
        out.append(s.cast(pl.String) if _is_categorical(s) else pl.Series(c, _numeric(s)))
    return pl.DataFrame(out)


def tstr(train: pl.DataFrame, test: pl.DataFrame, target: str, positive: Any) -> float:
    """HistGradientBoosting (one-hot categoricals) trained on ``train``, ROC AUC on ``test``."""
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    def label(f: pl.DataFrame) -> np.ndarray:
        s = f[target]
        if s.dtype == pl.Boolean:
            return s.fill_null(False).to_numpy().astype(int)
        return (s.cast(pl.String) == positive).fill_null(False).to_numpy().astype(int)

    y = label(train)
    if y.min() == y.max():
        return 0.5
    both = pl.concat([_features(train, target), _features(test, target)], how="vertical_relaxed").to_pandas()
    cats = [c for c in both.columns if both[c].dtype == object]
    x = pd.get_dummies(both, columns=cats, dummy_na=True).astype(float)
    model = HistGradientBoostingClassifier(random_state=0).fit(x.iloc[: train.height], y)
    return float(roc_auc_score(label(test), model.predict_proba(x.iloc[train.height :])[:, 1]))


def tvd_1way(real: pl.DataFrame, synth: pl.DataFrame) -> float:
    """Mean 1-way total variation distance; numeric columns in the real data's deciles."""
    out = []
    for c in real.columns:
        r, s = real[c], synth[c]
        if _is_categorical(r):
            a = r.cast(pl.String).fill_null("<null>").value_counts()
            b = s.cast(pl.String).fill_null("<null>").value_counts()
            pa = dict(zip(a[c].to_list(), (a["count"] / real.height).to_list(), strict=True))
            pb = dict(zip(b[c].to_list(), (b["count"] / synth.height).to_list(), strict=True))
        else:
            rv, sv = _numeric(r), _numeric(s)
            edges = np.unique(np.nanquantile(rv, np.linspace(0, 1, 11))[1:-1])

            def hist(v: np.ndarray, edges: np.ndarray = edges) -> dict[int, float]:
                k = np.where(np.isnan(v), -1, np.searchsorted(edges, v, side="right"))
                keys, counts = np.unique(k, return_counts=True)
                return dict(zip(keys.tolist(), (counts / len(v)).tolist(), strict=True))

            pa, pb = hist(rv), hist(sv)
        out.append(0.5 * sum(abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in set(pa) | set(pb)))
    return round(float(np.mean(out)), 4)


# -- tables ----------------------------------------------------------------------------------


def wide_table(n: int, seed: int = 0) -> pl.DataFrame:
    """A 42-column table (no identifier): the credit and hospital generators of
    ``synthgen.demo.tables`` side by side, the credit table widened to the real UCI shape
    (PAY_0, PAY_2..6, BILL_AMT1..6, PAY_AMT1..6, each month driven by the one before) and
    nine more columns, most tied to the credit columns (segment by limit, cards by limit,
    tenure by age, a score from repayment and limit, a mortgage flag by age and marriage),
    a 30-value city and a channel independent of the rest. Seeded, nothing real.
    """
    from synthgen.demo.tables import credit_like, hospital_like

    rng = np.random.default_rng(seed + 1_000)
    credit = credit_like(n, seed=seed).drop("client id")
    hosp = hospital_like(n, seed=seed + 1).drop("ID")
    hosp = hosp.rename({c: f"h_{c}" for c in hosp.columns})
    cols: dict[str, Any] = {}
    pay = credit["PAY_2"].to_numpy()
    bill = credit["BILL_AMT2"].to_numpy().astype(float)
    for m in range(3, 7):
        pay = np.clip(pay + _pick(rng, [-1, 0, 1], [0.15, 0.7, 0.15], n), -2, 8).astype(np.int64)
        bill = np.round(bill * rng.normal(0.97, 0.08, n), 0)
        cols[f"PAY_{m}"] = pay
        cols[f"BILL_AMT{m}"] = bill
        cols[f"PAY_AMT{m}"] = np.where(
            rng.random(n) > 0.2, np.round(np.abs(bill) * rng.beta(0.6, 6.0, n)), 0.0
        )
    limit = credit["LIMIT_BAL"].to_numpy()
    age = credit["AGE"].to_numpy()
    marriage = credit["MARRIAGE"].to_numpy()
    seg_idx = np.clip(np.searchsorted([50_000, 150_000, 300_000], limit) + rng.integers(-1, 2, n), 0, 3)
    cols["segment"] = np.array(["basic", "standard", "gold", "platinum"])[seg_idx]
    cols["n_cards"] = np.clip(np.round(1 + limit / 150_000 + rng.normal(0, 0.7, n)), 1, 8).astype(np.int64)
    cols["tenure_months"] = np.clip(np.round((age - 20) * 6 * rng.beta(2, 2, n)), 0, 480).astype(np.int64)
    score = 700 - 40 * np.maximum(credit["PAY_0"].to_numpy(), 0) + limit / 10_000 + rng.normal(0, 30, n)
    cols["score"] = np.round(score, 1)
    cols["has_mortgage"] = rng.random(n) < 0.15 + 0.01 * np.clip(age - 25, 0, 30) + 0.1 * (marriage == 1)
    cols["channel"] = rng.choice(["branch", "web", "app", "phone"], size=n, p=[0.3, 0.35, 0.3, 0.05])
    cols["city"] = np.array([f"city_{i:02d}" for i in range(30)])[np.minimum(rng.zipf(1.6, n) - 1, 29)]
    extra = pl.DataFrame({k: pl.Series(k, v) for k, v in cols.items()})
    return pl.concat([credit, extra, hosp], how="horizontal")


def _pick(rng: np.random.Generator, values: list[int], p: list[float], n: int) -> np.ndarray:
    prob = np.asarray(p, dtype=np.float64)
    return rng.choice(np.asarray(values), size=n, p=prob / prob.sum())


@dataclass
class Case:
    """One table of the bench: its split, what synthgen is told, and what is scored."""

    name: str
    train: pl.DataFrame
    test: pl.DataFrame
    schema: Any
    target: str
    positive: Any
    epsilons: list[float]
    #: epsilons the synthgen kinds also run at (beyond ``epsilons``)
    extra_epsilons: list[float] = field(default_factory=list)
    described: str = ""


def _demo_case(quick: bool) -> Case:
    from synthgen.demo.data import generate_patients

    n = 2_500 if quick else 10_000
    real, _ = generate_patients(n, seed=0)
    real = real.select(DEMO_COLUMNS)
    cut = int(n * 0.8)
    return Case(
        "demo",
        real.head(cut),
        real.tail(n - cut),
        _demo_schema(),
        DEMO_TARGET,
        True,
        [3.0] if quick else [1.0, 3.0],
        [] if quick else [2.1],
        "generate_patients(n, seed 0), 8 tabular columns, the demo spec's public category lists and bounds",
    )


def _adult_case(data: Path, quick: bool) -> Case:
    from synthgen.sources import infer_schema

    train = pl.read_csv(data / "adult_train.csv")
    test = pl.read_csv(data / "adult_test.csv")
    if quick:
        train = train.head(8_000)
    schema = infer_schema(train.head(10_000))  # nothing declared: what a new user gets
    return Case(
        "adult",
        train,
        test,
        schema,
        "income",
        ">50K",
        [3.0] if quick else [1.0, 3.0],
        described="adult_train.csv / adult_test.csv, no schema declared (types inferred)",
    )


def _wide_case(quick: bool) -> Case:
    from synthgen.sources import infer_schema

    n = 4_000 if quick else 10_000
    real = wide_table(n, seed=0)
    cut = int(n * 0.8)
    train = real.head(cut)
    return Case(
        "wide",
        train,
        real.tail(n - cut),
        infer_schema(train),
        "default.next",
        1,
        [3.0],
        described=f"bench.utility.wide_table: {real.width} generated columns, no schema declared",
    )


# -- runs ------------------------------------------------------------------------------------


def _fit_sample(
    kind: str, train: pl.DataFrame, schema: Any, *, eps: float, delta: float, quick: bool
) -> tuple[pl.DataFrame, dict[str, Any]]:
    from synthgen.models import make_synthesizer
    from synthgen.models.settings import ModelSettings
    from synthgen.privacy.settings import PrivacySettings

    extra: dict[str, Any] = {"epochs": 3} if quick and kind == "dp_tvae" else {}
    model = ModelSettings(kind=kind, device="cpu", **extra)  # type: ignore[arg-type]
    privacy = PrivacySettings(epsilon=eps, delta=delta)
    synth = make_synthesizer(kind, schema=schema, model=model, privacy=privacy)
    t0 = time.perf_counter()
    synth.fit(train)
    fit_s = time.perf_counter() - t0
    out = synth.sample(train.height, seed=0)
    rec = synth.privacy_record_
    return out, {
        "fit_s": round(fit_s, 2),
        "spent_epsilon": round(rec.spent_epsilon, 4),
        "delta": rec.spent_delta,
        "given": "the schema (declared lists and bounds where the case has them); DP discovery of the rest",
    }


def score(case: Case, synth: pl.DataFrame, trtr: float) -> dict[str, Any]:
    """Every figure of one method's synthetic rows against the case's train and test split."""
    auc = tstr(synth, case.test, case.target, case.positive)
    row: dict[str, Any] = {
        **associations(case.train, synth),
        "tstr_auc": round(auc, 4),
        "tstr_over_trtr": round(auc / trtr, 3),
        "tvd_1way": tvd_1way(case.train, synth),
        "other_share": {
            c: round(float((synth[c] == "other").mean() or 0.0), 4)
            for c in synth.columns
            if synth[c].dtype == pl.String
            and (synth[c] == "other").any()
            and not (case.train[c] == "other").any()
        },
    }
    if case.name == "adult":
        from bench.dp_models import marginal_tvd

        row["tvd_2way"] = marginal_tvd(case.train, synth)["tvd_2way"]
        row["capital_gain_zero_share"] = round(float((synth["capital_gain"] == 0).mean() or 0.0), 4)
        row["capital_gain_max"] = float(synth["capital_gain"].max() or 0)
    return row


def _listed(env: str, default: str) -> list[str]:
    raw = os.environ.get(env, default)
    return [] if raw.strip() in ("", "none") else [x.strip() for x in raw.split(",") if x.strip()]


def _skipped(kind: str, case: str, eps: float | None, skips: list[str]) -> bool:
    keys = {kind, f"{kind}@{case}", f"{kind}@{case}@{eps:g}" if eps is not None else f"{kind}@{case}@-"}
    return any(s in keys for s in skips)


#: Figures averaged over a synthgen kind's fits (each fit draws fresh DP noise, unseeded).
_AVERAGED = (
    "mean_gap",
    "tstr_auc",
    "tstr_over_trtr",
    "tvd_1way",
    "tvd_2way",
    "capital_gain_zero_share",
    "fit_s",
)


def _repeated(
    first: dict[str, Any],
    case: Case,
    kind: str,
    eps: float | None,
    trtr: float,
    fits: int,
    code: str | None,
    quick: bool,
    stale: list[str],
    cached_only: list[str] | None,
) -> dict[str, Any]:
    """``first`` with its figures replaced by the mean over ``fits`` independent fits (the first
    included), each fit's figures under ``fits``, and the spread (min, max) of each."""
    from bench import peers

    assert eps is not None
    delta = 1 / (10 * case.train.height)  # as run_case
    epsilon = float(eps)

    def fit() -> tuple[pl.DataFrame, dict[str, Any]]:
        return _fit_sample(kind, case.train, case.schema, eps=epsilon, delta=delta, quick=quick)

    rows = [first]
    for i in range(1, fits):
        spec: dict[str, Any] = {"table": case.name, "data": peers.train_fingerprint(case.train), "kind": kind}
        spec |= {"epsilon": eps, "delta": delta, "quick": quick, "fit": i}
        synth, meta = peers.cached_fit(
            spec,
            code,
            case.train,
            fit,
            stale_ok=kind in stale,
            cache_only=kind in (cached_only or []),
        )
        meta.pop("spec", None)
        rows.append({**meta, **score(case, synth, trtr)})
    out = dict(first)
    out["fits"] = [{k: r[k] for k in _AVERAGED if k in r} for r in rows]
    for k in _AVERAGED:
        if k in first:
            vals = [float(r[k]) for r in rows]
            out[k] = round(float(np.mean(vals)), 4)
            out.setdefault("spread", {})[k] = [round(min(vals), 4), round(max(vals), 4)]
    out["top4"] = [
        {**p, "synth": round(float(np.mean([r["top4"][j]["synth"] for r in rows])), 3)}
        for j, p in enumerate(first["top4"])
    ]
    out["top4_within_0.15"] = all(abs(p["real"] - p["synth"]) <= 0.15 for p in out["top4"])
    out["averaged_over"] = f"{fits} fits (fresh DP noise each); figures are means, spread is min-max"
    return out


def run_case(
    case: Case,
    kinds: list[str],
    peer_kinds: list[str],
    *,
    quick: bool,
    skips: list[str],
    stale: list[str],
    cached_only: list[str] | None = None,
    fits: int = 1,
) -> dict[str, Any]:
    from bench import peers
    from synthgen.errors import SynthgenError

    trtr = tstr(case.train, case.test, case.target, case.positive)
    delta = 1 / (10 * case.train.height)
    kinds_, domain_given = (
        peers.column_kinds(case.schema, case.train),
        peers.dpmm_domain(case.schema, case.train)[2],
    )
    out: dict[str, Any] = {
        "table": case.described,
        "rows": {"train": case.train.height, "test": case.test.height},
        "columns": case.train.width,
        "target": case.target,
        "column_kinds": kinds_,
        "dpmm_given": domain_given,
        "delta": delta,
        "trtr_auc": round(trtr, 4),
        "real": associations(case.train, case.train)["top4"],
        "runs": [],
    }
    from synthgen.models.auto import choose_kind

    # What `model.kind: auto` would pick here (its DP row count is within a few rows of this).
    out["auto_picks"] = choose_kind(n_dp=case.train.height, columns=case.train.width, epsilon=3.0, dp=True)[0]
    if case.name == "adult":
        out["capital_gain_zero_share_real"] = round(float((case.train["capital_gain"] == 0).mean()), 4)
    code = peers.synthgen_code_id()
    timeout = float(os.environ.get("SYNTHGEN_BENCH_PEER_TIMEOUT", "0")) or None
    tvae_epochs = 3 if quick else int(os.environ.get("SYNTHGEN_BENCH_TVAE_EPOCHS", "300"))
    plan: list[tuple[str, float | None]] = []
    for eps in sorted(case.epsilons + case.extra_epsilons):
        plan += [(k, eps) for k in kinds]
        if eps in case.epsilons:
            plan += [(k, eps) for k in peer_kinds if k != "ctgan_tvae"]
    if "ctgan_tvae" in peer_kinds:
        plan.append(("ctgan_tvae", None))
    for kind, eps in plan:
        base = {"kind": kind, "family": kind.split("_")[0] if kind in peers.PEER_KINDS else "synthgen"}
        base["epsilon"] = eps
        if _skipped(kind, case.name, eps, skips):
            out["runs"].append({**base, "skipped": "left out for time (SYNTHGEN_BENCH_SKIP)"})
            print(f"{case.name} eps={eps} {kind}: skipped (SYNTHGEN_BENCH_SKIP)")
            continue
        try:
            if kind in peers.PEER_KINDS:
                synth, meta = peers.peer_fit(
                    kind,
                    case.name,
                    case.train,
                    case.schema,
                    epsilon=eps,
                    delta=delta if eps is not None else None,
                    tvae_epochs=tvae_epochs,
                    timeout_s=timeout,
                    cache_only=kind in (cached_only or []),
                )
            else:
                assert eps is not None
                spec = {"table": case.name, "data": peers.train_fingerprint(case.train), "kind": kind}
                spec |= {"epsilon": eps, "delta": delta, "quick": quick}
                synth, meta = peers.cached_fit(
                    spec,
                    code,
                    case.train,
                    lambda kind=kind, eps=eps: _fit_sample(
                        kind, case.train, case.schema, eps=eps, delta=delta, quick=quick
                    ),
                    stale_ok=kind in stale,
                    cache_only=kind in (cached_only or []),
                )
        except (peers.PeerTimeout, peers.NotCached) as e:
            out["runs"].append({**base, "skipped": str(e)})
            print(f"{case.name} eps={eps} {kind}: {e}")
            continue
        except (SynthgenError, peers.PeerFailed) as e:  # a refusal or a crash is a result too
            out["runs"].append({**base, "failed": f"{type(e).__name__}: {e}"})
            print(f"{case.name} eps={eps} {kind}: failed: {e}")
            continue
        meta.pop("spec", None)
        row = {**base, **meta, **score(case, synth, trtr)}
        if kind not in peers.PEER_KINDS and fits > 1:
            row = _repeated(row, case, kind, eps, trtr, fits, code, quick, stale, cached_only)
        out["runs"].append(row)
        print(
            f"{case.name} eps={eps} {kind}: gap {row['mean_gap']} tstr {row['tstr_auc']} "
            f"tvd1 {row['tvd_1way']} fit {row['fit_s']} s",
            flush=True,
        )
    return out


@benchmark("utility")
def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from bench import peers

    torch.set_num_threads(int(os.environ.get("SYNTHGEN_BENCH_THREADS", "2")))
    kinds = _listed("SYNTHGEN_BENCH_KINDS", "dp_mst,dp_tvae")
    peer_kinds = _listed("SYNTHGEN_BENCH_PEERS", ",".join(peers.PEER_KINDS))
    unknown = [k for k in peer_kinds if k not in peers.PEER_KINDS]
    if unknown:
        raise SystemExit(
            f"bench utility: unknown peer(s) {', '.join(unknown)}; known: {', '.join(peers.PEER_KINDS)}"
        )
    tables = _listed("SYNTHGEN_BENCH_TABLES", "demo,adult,wide")
    skips = _listed("SYNTHGEN_BENCH_SKIP", "")
    stale = _listed("SYNTHGEN_BENCH_REUSE_STALE", "")
    cached_only = _listed("SYNTHGEN_BENCH_CACHED_ONLY", "")
    if any(k in peers.DPMM_METHODS for k in peer_kinds):
        try:
            peers.dpmm_python()
        except peers.PeerUnavailable as e:
            raise SystemExit(f"bench utility: {e}") from e
    load0 = os.getloadavg()
    result: dict[str, Any] = {
        "kinds": kinds,
        "peers": peer_kinds,
        "baseline": (
            f"{', '.join(peer_kinds)} in the same run (dpmm 0.1.9 in its own venv at the same epsilon and "
            "delta; ctgan's TVAE non-private); cached peer fits are marked `cached`"
            if peer_kinds
            else "none in this run (SYNTHGEN_BENCH_PEERS=none)"
        ),
        "budget_split": "synthgen: all of epsilon through its own accounting; "
        "dpmm: 0.9 epsilon to the model, 0.1 epsilon to its DP discretisation and bounds "
        "(proc_epsilon), same delta = 1/(10 n_train)",
        "commit": peers.head_commit(),
        "synthgen_code": peers.synthgen_code_id(),
        "skip": skips,
        "reuse_stale": stale,
        "cached_only": cached_only,
    }
    cases = {
        "demo": lambda: _demo_case(args.quick),
        "adult": lambda: _adult_case(Path(args.data), args.quick),
    }
    cases["wide"] = lambda: _wide_case(args.quick)
    for name in tables:
        result[name] = run_case(
            cases[name](),
            kinds,
            peer_kinds,
            quick=args.quick,
            skips=skips,
            stale=stale,
            cached_only=cached_only,
            fits=max(1, getattr(args, "repeats", 1)),
        )
    result["fits_per_synthgen_kind"] = max(1, getattr(args, "repeats", 1))
    result["load_avg"] = {
        "start": [round(x, 2) for x in load0],
        "end": [round(x, 2) for x in os.getloadavg()],
        "note": "2 cores shared with other sessions: fit seconds are inflated by the load; "
        "each run also records the 1-minute load before and after its fit",
    }
    return result


# -- the side-by-side table --------------------------------------------------------------------


def side_by_side(results: dict[str, Any]) -> str:
    """Markdown: per table and epsilon, one column per method (TVAE, non-private, in each)."""
    lines: list[str] = []
    for name in ("demo", "adult", "wide"):
        case = results.get(name)
        if not case:
            continue
        runs = case["runs"]
        tvae = [r for r in runs if r["kind"] == "ctgan_tvae"]
        for eps in sorted({r["epsilon"] for r in runs if r["epsilon"] is not None}):
            cols = [r for r in runs if r["epsilon"] == eps] + tvae
            head = [
                r["kind"]
                + ("" if r["epsilon"] is not None else " (non-DP)")
                + (f" (mean of {len(r['fits'])} fits)" if r.get("fits") else "")
                for r in cols
            ]
            picks = f"; `auto` picks {case['auto_picks']}" if case.get("auto_picks") else ""
            lines += [
                f"**{name}, epsilon {eps:g}** ({case['rows']['train']} train / "
                f"{case['rows']['test']} test rows, {case['columns']} columns; "
                f"TRTR {case['trtr_auc']}{picks})",
                "",
                "| figure | real | " + " | ".join(head) + " |",
                "|---" * (len(cols) + 2) + "|",
            ]

            def cell(r: dict[str, Any], key: str) -> str:
                if "skipped" in r or "failed" in r:
                    return "skipped" if "skipped" in r else "failed"
                v = r.get(key)
                if key == "fit_s" and v is not None:
                    return f"{v:.1f}"
                if key == "load_avg_1m" and v:
                    return f"{v[0]:g} / {v[1]:g}"
                spread = (r.get("spread") or {}).get(key)
                if spread and key in ("mean_gap", "tstr_auc", "tvd_1way"):
                    return f"{v:.3f} ({spread[0]:.3f}-{spread[1]:.3f})"
                if key == "commit":
                    return f"{v}{' (stale)' if r.get('stale') else ''}"
                return "" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))

            for i, pair in enumerate(case["real"]):
                vals = []
                for r in cols:
                    hit = next((p for p in r.get("top4", []) if p["pair"] == pair["pair"]), None)
                    vals.append(cell(r, "") if not hit else f"{hit['synth']:.3f}")
                lines.append(f"| {pair['pair']} | {pair['real']:.3f} | " + " | ".join(vals) + " |")
                del i
            for key, label in [
                ("mean_gap", f"mean association gap ({case['runs'][0].get('pairs', '')} pairs)"),
                ("tstr_auc", f"TSTR ROC AUC, {case['target']}"),
                ("tstr_over_trtr", "TSTR / TRTR"),
                ("tvd_1way", "mean 1-way TVD"),
                ("tvd_2way", "mean 2-way TVD"),
                ("capital_gain_zero_share", "capital_gain share of zeros"),
                ("fit_s", "fit seconds (loaded machine)"),
                ("load_avg_1m", "1-min load average before / after the fit"),
                ("commit", "commit the fit ran at"),
            ]:
                if not any(key in r for r in cols):
                    continue
                real = {"tstr_auc": case["trtr_auc"], "tstr_over_trtr": 1.0}.get(key)
                if key == "capital_gain_zero_share":
                    real = case.get("capital_gain_zero_share_real")
                lines.append(
                    f"| {label} | {'' if real is None else real} | "
                    + " | ".join(cell(r, key) for r in cols)
                    + " |"
                )
            lines.append("")
    return "\n".join(lines)


NOTES = Path(__file__).resolve().parent / "notes" / "utility.md"


if __name__ == "__main__":
    import json

    from bench.harness import RESULTS_DIR

    data = json.loads((RESULTS_DIR / "utility.json").read_text())
    intro = NOTES.read_text().split("<!-- table -->")[0] if NOTES.is_file() else ""
    NOTES.write_text(intro + "<!-- table -->\n\n" + side_by_side(data["results"]) + "\n")
    print(f"wrote {NOTES}")
