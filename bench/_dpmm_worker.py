"""Fit one dpmm pipeline and write its synthetic rows: run by bench/peers.py in dpmm's own venv.

``python bench/_dpmm_worker.py JOB.json``. The job names the train CSV, the column kinds
(``categorical``, ``boolean``, ``integer``, ``float``, ``datetime``), the domain dpmm is given
(``categories`` and ``lower``/``upper`` per column, only what was declared public), the method
(``mst``, ``aim``, ``priv_bayes``), epsilon for the model and for dpmm's DP discretisation,
delta, the seed and the rows to sample. It writes ``out_csv`` and ``out_json`` (fit and sample
seconds, dpmm's version, its discretisation's per-column spent epsilon).

This file imports only the standard library, pandas and dpmm: it never runs in synthgen's venv
(dpmm pins numpy 1.26.4 and pandas 2.1.0).
"""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata


def _load(path: str, kinds: dict[str, str]):  # type: ignore[no-untyped-def]
    import pandas as pd

    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col, kind in kinds.items():
        s = frame[col]
        if kind == "datetime":
            frame[col] = pd.to_datetime(s)
        elif kind == "boolean":
            frame[col] = s.map({"true": True, "false": False, True: True, False: False}).astype("boolean")
            if not frame[col].isna().any():
                frame[col] = frame[col].astype(bool)
        elif kind == "integer":
            frame[col] = s.astype("float64") if s.isna().any() else s.astype("int64")
        elif kind == "float":
            frame[col] = s.astype("float64")
        else:
            frame[col] = s.astype("object").where(s.notna(), None).astype("category")
    return frame


def main(job_path: str) -> int:
    from dpmm.pipelines import AIMPipeline, MSTPipeline, PrivBayesPipeline

    with open(job_path) as f:
        job = json.load(f)
    pipelines = {"mst": MSTPipeline, "aim": AIMPipeline, "priv_bayes": PrivBayesPipeline}
    frame = _load(job["train_csv"], job["kinds"])
    domain = {}
    for col, d in job["domain"].items():
        d = dict(d)
        if job["kinds"][col] == "boolean" and "categories" in d:
            d["categories"] = [bool(v) for v in d["categories"]]
        domain[col] = d
    model = pipelines[job["method"]](
        epsilon=job["epsilon_model"],
        delta=job["delta"],
        proc_epsilon=job["epsilon_proc"],
        n_jobs=1,
    )
    t0 = time.perf_counter()
    model.fit(frame, domain, random_state=job["seed"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    synth = model.generate(n_records=job["n_records"], random_state=job["seed"])
    sample_s = time.perf_counter() - t0
    synth.to_csv(job["out_csv"], index=False)
    proc = getattr(model, "proc", None)
    spent = {k: v for k, v in (proc.spent_epsilon if proc is not None else {}).items()}
    with open(job["out_json"], "w") as f:
        json.dump(
            {
                "fit_s": fit_s,
                "sample_s": sample_s,
                "dpmm": metadata.version("dpmm"),
                "proc_spent_epsilon": spent,
            },
            f,
            default=str,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
