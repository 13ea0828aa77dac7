"""Peer synthesizers for ``python -m bench utility``: dpmm's MST, AIM and PrivBayes, ctgan's TVAE.

dpmm (PyPI ``dpmm``, pinned to :data:`DPMM_VERSION`) pins numpy 1.26.4, pandas 2.1.0 and
scikit-learn 1.5.0, which conflict with synthgen's, so it runs in a venv of its own under
``bench/.venv-dpmm`` (git-ignored; ``SYNTHGEN_BENCH_DPMM_VENV`` moves it). The harness creates
it on first use (``python -m venv`` + ``pip install dpmm==0.1.9``, from whatever index pip is
configured for) unless ``SYNTHGEN_BENCH_DPMM_CREATE=0``; a venv that is missing and may not be
created, or fails to build, is one line (:class:`PeerUnavailable`), never a silent skip.

Each dpmm fit runs ``bench/_dpmm_worker.py`` in a subprocess on a CSV of the train split and
writes a CSV of synthetic rows, read back here with the train split's dtypes, so one metric
code scores every method. What dpmm is given is only what synthgen is given as public
(:func:`dpmm_domain`): a declared category list becomes dpmm's ``categories``, declared bounds
its ``lower``/``upper``; nothing else. Where nothing is declared dpmm finds numeric bounds with
its own DP mechanism (inside ``proc_epsilon``) but has no DP category discovery: it reads the
category list off the data without noise (its own "PrivacyLeakage" warning), which favours
dpmm against synthgen's DP discovery; :func:`dpmm_domain` says so in what it returns.
The budget: ``epsilon_model = (1 - proc_share) * epsilon`` for the select-measure-generate
model and ``epsilon_proc = proc_share * epsilon`` for dpmm's DP discretisation and bounds
(default share 0.1, as in issue 13's table), the same delta as synthgen; total epsilon by
basic composition = synthgen's.

ctgan's TVAE is the non-private reference (no epsilon), in synthgen's venv.

Fits are cached under ``bench/out/utility-cache`` (git-ignored) by what determines them: the
train split's bytes, the method and its settings, epsilon, delta, seed and the peer's version
(for synthgen kinds: the tree of ``synthgen/`` at the commit, plus any uncommitted diff).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from bench.harness import BENCH_DIR

DPMM_VERSION = "0.1.9"
DPMM_METHODS = {"dpmm_mst": "mst", "dpmm_aim": "aim", "dpmm_privbayes": "priv_bayes"}
WORKER = BENCH_DIR / "_dpmm_worker.py"
CACHE_DIR = BENCH_DIR / "out" / "utility-cache"


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (its venv is missing and may not be built, or failed to build)."""


def dpmm_venv() -> Path:
    return Path(os.environ.get("SYNTHGEN_BENCH_DPMM_VENV", BENCH_DIR / ".venv-dpmm"))


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _dpmm_installed(python: Path) -> str | None:
    if not python.is_file():
        return None
    probe = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('dpmm'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() if probe.returncode == 0 else None


def dpmm_python(*, create: bool | None = None) -> Path:
    """The dpmm venv's interpreter; builds the venv first when it is missing and ``create``.

    ``create`` defaults to ``SYNTHGEN_BENCH_DPMM_CREATE`` (on unless ``0``). Raises
    :class:`PeerUnavailable` with one line that names the path and what to do.
    """
    if create is None:
        create = os.environ.get("SYNTHGEN_BENCH_DPMM_CREATE", "1") != "0"
    venv = dpmm_venv()
    python = _venv_python(venv)
    have = _dpmm_installed(python)
    if have == DPMM_VERSION:
        return python
    if not create:
        found = f"has dpmm {have}" if have else "is missing or has no dpmm"
        raise PeerUnavailable(
            f"dpmm venv {venv} {found} (need dpmm {DPMM_VERSION}) and SYNTHGEN_BENCH_DPMM_CREATE=0: "
            f"build it with `python -m venv {venv} && {python} -m pip install dpmm=={DPMM_VERSION}`, "
            "or leave dpmm_* out of SYNTHGEN_BENCH_PEERS"
        )
    print(f"bench: building dpmm's venv at {venv} (dpmm {DPMM_VERSION}; once, then cached)", file=sys.stderr)
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", f"dpmm=={DPMM_VERSION}"],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PeerUnavailable(
                f"could not build dpmm's venv at {venv}: `{' '.join(argv)}` exited {done.returncode}"
                f" ({tail[0]}); leave dpmm_* out of SYNTHGEN_BENCH_PEERS to run without it"
            )
    if _dpmm_installed(python) != DPMM_VERSION:
        raise PeerUnavailable(f"dpmm's venv at {venv} was built but does not import dpmm {DPMM_VERSION}")
    return python


# -- what each side is given -----------------------------------------------------------------


def column_kinds(schema: Any, frame: pl.DataFrame) -> dict[str, str]:
    """Each column's kind as synthgen's schema has it: categorical, boolean, integer, float, datetime."""
    kinds = {}
    for col in schema.columns:
        t = col.type.value
        if t in ("categorical", "text"):
            kinds[col.name] = "categorical"
        elif t == "boolean" or frame[col.name].dtype == pl.Boolean:
            kinds[col.name] = "boolean"
        elif t == "datetime" or frame[col.name].dtype in (pl.Date, pl.Datetime):
            kinds[col.name] = "datetime"
        else:
            kinds[col.name] = "integer" if col.integer or frame[col.name].dtype.is_integer() else "float"
    return kinds


def dpmm_domain(schema: Any, frame: pl.DataFrame) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """(column kinds, dpmm's ``domain`` argument, what each column was given, in words).

    Only the schema's public declarations go in: ``categories`` where synthgen has a declared
    category list (booleans: [False, True], public by type), ``lower``/``upper`` where synthgen
    has declared bounds.
    """
    kinds = column_kinds(schema, frame)
    domain: dict[str, Any] = {}
    given: dict[str, str] = {}
    for col in schema.columns:
        kind = kinds[col.name]
        if kind == "boolean":
            domain[col.name] = {"categories": [False, True]}
            given[col.name] = "categories [False, True] (public by type)"
        elif kind == "categorical":
            if col.categories:
                domain[col.name] = {"categories": list(col.categories)}
                given[col.name] = f"declared categories ({len(col.categories)})"
            else:
                given[col.name] = "none: dpmm reads the category list off the data without DP"
        elif col.bounds is not None:
            domain[col.name] = {"lower": col.bounds[0], "upper": col.bounds[1]}
            given[col.name] = f"declared bounds {list(col.bounds)}"
        else:
            given[col.name] = "none: dpmm's DP bounds (in proc_epsilon)"
    return kinds, domain, given


# -- moving frames across ----------------------------------------------------------------------


def write_csv(frame: pl.DataFrame, path: Path) -> str:
    """Write ``frame`` as CSV (nulls empty, booleans true/false, dates ISO); its sha256."""
    frame.write_csv(path, null_value="")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_back(path: Path, like: pl.DataFrame) -> pl.DataFrame:
    """A peer's synthetic CSV as a frame with ``like``'s columns and dtypes."""
    raw = pl.read_csv(path, infer_schema=False)
    cols = []
    for c in like.columns:
        s = raw[c] if c in raw.columns else pl.Series(c, [None] * raw.height, pl.String)
        s = s.replace({"": None, "nan": None, "NaN": None, "NaT": None, "None": None, "<NA>": None})
        dtype = like[c].dtype
        if dtype == pl.Boolean:
            s = s.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None)
        elif dtype == pl.Date:
            s = s.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
        elif dtype in (pl.Datetime,):
            s = s.str.to_datetime(strict=False).cast(dtype)
        elif dtype.is_integer():
            s = s.cast(pl.Float64, strict=False).round(0).cast(dtype, strict=False)
        elif dtype.is_float():
            s = s.cast(pl.Float64, strict=False)
        cols.append(s.alias(c).cast(dtype, strict=False))
    return pl.DataFrame(cols)


# -- cache ---------------------------------------------------------------------------------------


_CODE_ID: list[str | None] = []


def synthgen_code_id() -> str | None:
    """Tree hash of ``synthgen/`` at HEAD, plus a hash of any uncommitted change there; None off git.

    Read once per process: the modules a run has loaded do not change if the checkout does
    later (a rebase during a long run), so a later read would mislabel its fits.
    """
    if not _CODE_ID:
        _CODE_ID.append(_read_code_id())
    return _CODE_ID[0]


def _read_code_id() -> str | None:
    root = BENCH_DIR.parent

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    tree = git("rev-parse", "HEAD:synthgen")
    diff = git("diff", "HEAD", "--", "synthgen")
    if tree is None or diff is None:
        return None
    untracked = git("ls-files", "--others", "--exclude-standard", "--", "synthgen") or ""
    extra = diff + "".join((root / p).read_text(errors="replace") for p in untracked.split())
    return tree.strip() + ("+" + hashlib.sha256(extra.encode()).hexdigest()[:12] if extra else "")


def head_commit() -> str | None:
    """HEAD's short hash, read once per process (see :func:`synthgen_code_id`)."""
    if not _HEAD:
        _HEAD.append(_read_head())
    return _HEAD[0]


_HEAD: list[str | None] = []


def _read_head() -> str | None:
    done = subprocess.run(
        ["git", "-C", str(BENCH_DIR.parent), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _slot(spec: dict[str, Any]) -> Path:
    return CACHE_DIR / hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_fit(
    spec: dict[str, Any],
    code: str | None,
    like: pl.DataFrame,
    fit: Callable[[], tuple[pl.DataFrame, dict[str, Any]]],
    *,
    stale_ok: bool = False,
    cache_only: bool = False,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``fit()``'s (synthetic frame, meta), or the cached pair for ``spec``.

    A cached pair is used when it was made by the same ``code`` (or any code, if ``stale_ok``,
    and then its meta says ``stale``); ``code=None`` never reads the cache. The meta gets
    ``cached`` (when the cached fit ran) and ``code``. ``cache_only``: raise :class:`NotCached`
    rather than fit.
    """
    slot = _slot(spec)
    meta_path, data_path = slot.with_suffix(".json"), slot.with_suffix(".parquet")
    if code is not None and meta_path.is_file() and data_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("code") == code or stale_ok:
            meta["cached"] = meta.get("when")
            if meta.get("code") != code:
                meta["stale"] = (
                    f"made by {meta.get('commit')} (code {meta.get('code')}), not this code ({code})"
                )
            return pl.read_parquet(data_path).cast(like.schema, strict=False), meta  # type: ignore[arg-type]
    if cache_only:
        raise NotCached("not run: no cached fit, and SYNTHGEN_BENCH_CACHED_ONLY names it (left out for time)")
    load0 = os.getloadavg()[0]
    synth, meta = fit()
    meta = {
        **meta,
        "code": code,
        "commit": head_commit(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "load_avg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    if code is not None:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        synth.write_parquet(data_path)
        meta_path.write_text(json.dumps({**meta, "spec": spec}, indent=1, default=str))
    return synth, meta


# -- the peers -------------------------------------------------------------------------------------


def run_dpmm(
    kind: str,
    train: pl.DataFrame,
    schema: Any,
    *,
    epsilon: float,
    delta: float,
    seed: int = 0,
    proc_share: float = 0.1,
    timeout_s: float | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Fit dpmm's ``kind`` (a key of :data:`DPMM_METHODS`) in its venv; its synthetic rows, meta."""
    python = dpmm_python()
    kinds, domain, given = dpmm_domain(schema, train)
    with tempfile.TemporaryDirectory(prefix="synthgen-dpmm-") as tmp:
        d = Path(tmp)
        write_csv(train, d / "train.csv")
        job = {
            "train_csv": str(d / "train.csv"),
            "kinds": kinds,
            "domain": domain,
            "method": DPMM_METHODS[kind],
            "epsilon_model": (1 - proc_share) * epsilon,
            "epsilon_proc": proc_share * epsilon,
            "delta": delta,
            "seed": seed,
            "n_records": train.height,
            "out_csv": str(d / "synth.csv"),
            "out_json": str(d / "meta.json"),
        }
        (d / "job.json").write_text(json.dumps(job))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        env.pop("PYTHONPATH", None)
        t0 = time.perf_counter()
        try:
            done = subprocess.run(
                [str(python), str(WORKER), str(d / "job.json")],
                capture_output=True,
                text=True,
                env=env,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as e:
            raise PeerTimeout(f"{kind} ran past {timeout_s:.0f} s") from e
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PeerFailed(f"dpmm {kind} exited {done.returncode}: {' | '.join(tail)}")
        meta = json.loads((d / "meta.json").read_text())
        synth = read_back(d / "synth.csv", train)
    return synth, {
        "fit_s": round(meta["fit_s"], 2),
        "sample_s": round(meta["sample_s"], 2),
        "subprocess_wall_s": round(wall, 2),
        "spent_epsilon": epsilon,
        "epsilon_model": job["epsilon_model"],
        "epsilon_proc": job["epsilon_proc"],
        "delta": delta,
        "given": given,
        "version": f"dpmm {meta['dpmm']}",
    }


class PeerTimeout(RuntimeError):
    """A peer's fit ran past its time limit (``SYNTHGEN_BENCH_PEER_TIMEOUT``)."""


class NotCached(RuntimeError):
    """A fit asked for from the cache only is not there."""


class PeerFailed(RuntimeError):
    """A peer's fit exited with an error (its last lines are in the message)."""


def tvae_frames(train: pl.DataFrame, kinds: dict[str, str]) -> tuple[Any, list[str]]:
    """``train`` as the pandas frame ctgan's TVAE takes, and its discrete columns.

    Datetimes become epoch seconds; booleans and categoricals are discrete (a null is its own
    ``<null>`` value); a numeric column with nulls gets a discrete ``<col>__null`` flag and its
    nulls are filled with the column's median (restored by :func:`tvae_back`).
    """
    cols: list[pl.Series] = []
    discrete: list[str] = []
    for c, kind in kinds.items():
        s = train[c]
        if kind in ("categorical", "boolean"):
            cols.append(s.cast(pl.String).fill_null("<null>"))
            discrete.append(c)
            continue
        v = s.cast(pl.Datetime("us")).dt.epoch("s") if kind == "datetime" else s
        v = v.cast(pl.Float64)
        if v.null_count():
            cols.append(v.is_null().cast(pl.String).alias(f"{c}__null"))
            discrete.append(f"{c}__null")
            v = v.fill_null(v.median())
        cols.append(v)
    return pl.DataFrame(cols).to_pandas(), discrete


def tvae_back(sampled: Any, train: pl.DataFrame, kinds: dict[str, str]) -> pl.DataFrame:
    frame = pl.from_pandas(sampled)
    out = []
    for c, kind in kinds.items():
        dtype = train[c].dtype
        s = frame[c]
        if kind in ("categorical", "boolean"):
            s = s.cast(pl.String).replace({"<null>": None})
            if dtype == pl.Boolean:
                s = s.replace_strict({"true": True, "false": False}, default=None)
            out.append(s.cast(dtype).alias(c))
            continue
        s = s.cast(pl.Float64)
        if f"{c}__null" in frame.columns:
            s = pl.select(pl.when(frame[f"{c}__null"] == "true").then(None).otherwise(s)).to_series()
        if kind == "datetime":
            s = (s * 1_000_000).round(0).cast(pl.Int64).cast(pl.Datetime("us")).cast(dtype)
        elif dtype.is_integer():
            s = s.round(0).cast(dtype, strict=False)
        out.append(s.alias(c))
    return pl.DataFrame(out)


def run_tvae(
    train: pl.DataFrame, schema: Any, *, epochs: int, seed: int = 0
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """ctgan's TVAE (non-private), ctgan's defaults except ``epochs``; CPU."""
    from importlib import metadata

    import torch
    from ctgan import TVAE

    kinds = column_kinds(schema, train)
    frame, discrete = tvae_frames(train, kinds)
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = TVAE(epochs=epochs, enable_gpu=False)
    t0 = time.perf_counter()
    model.fit(frame, discrete_columns=discrete)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = tvae_back(model.sample(train.height), train, kinds)
    return synth, {
        "fit_s": round(fit_s, 2),
        "sample_s": round(time.perf_counter() - t0, 2),
        "spent_epsilon": None,
        "epochs": epochs,
        "given": "the train split as is (non-private reference); column kinds as synthgen's schema",
        "version": f"ctgan {metadata.version('ctgan')}",
    }


PEER_KINDS = [*DPMM_METHODS, "ctgan_tvae"]


def train_fingerprint(train: pl.DataFrame) -> str:
    with tempfile.TemporaryDirectory(prefix="synthgen-peers-") as tmp:
        return write_csv(train, Path(tmp) / "train.csv")


def peer_fit(
    kind: str,
    table: str,
    train: pl.DataFrame,
    schema: Any,
    *,
    epsilon: float | None,
    delta: float | None,
    seed: int = 0,
    tvae_epochs: int = 300,
    timeout_s: float | None = None,
    cache_only: bool = False,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """One peer's fit on ``train`` (cached; see the module docstring). TVAE ignores epsilon."""
    spec: dict[str, Any] = {"table": table, "data": train_fingerprint(train), "kind": kind, "seed": seed}
    if kind == "ctgan_tvae":
        from importlib import metadata

        spec |= {"epochs": tvae_epochs, "version": f"ctgan {metadata.version('ctgan')}"}
        code = spec["version"]
        return cached_fit(
            spec,
            code,
            train,
            lambda: run_tvae(train, schema, epochs=tvae_epochs, seed=seed),
            cache_only=cache_only,
        )
    if kind not in DPMM_METHODS:
        raise ValueError(f"unknown peer {kind!r}; known: {', '.join(PEER_KINDS)}")
    assert epsilon is not None and delta is not None
    spec |= {"epsilon": epsilon, "delta": delta, "proc_share": 0.1, "version": f"dpmm {DPMM_VERSION}"}
    return cached_fit(
        spec,
        spec["version"],
        train,
        lambda: run_dpmm(kind, train, schema, epsilon=epsilon, delta=delta, seed=seed, timeout_s=timeout_s),
        cache_only=cache_only,
    )
