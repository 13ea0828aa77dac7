"""Anonymize a snapshot part by part: plan once, map over parts, merge.

A snapshot is written as Parquet parts (``ingest.part_rows``). Anonymizing it in parts gives
the same output as anonymizing it in one go over the same parts, whatever the number of
workers or their order, because everything that couples parts is fixed before any part runs:

* the plan: column roles and operators decided once on the snapshot's head (the rows a
  single pass would sample), and the leak index of every identifier column over the whole
  snapshot (so a name seen in part 3's column is still found in part 0's notes);
* surrogates are keyed by the pipeline secret: one value gets one surrogate in every part.

Each part writes ``data.parquet``, ``report.json`` and ``leak_index.parquet`` into its own
directory, atomically (a temporary directory renamed onto ``part-NNNNN``): a worker killed
mid-part leaves only a temporary directory (swept as an orphan), never a partial part, and a
retried part replaces nothing but its own index. The merge reads exactly parts ``0..N-1``.

Everything here works on paths and plain values (picklable), so a part runs the same in a
spawned worker process, a Celery worker or the calling process.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from synthgen.anonymize.detect import ColumnDecision
from synthgen.anonymize.leak import LeakIndex
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.errors import AnonymizeError
from synthgen.schema import TableSchema

#: Same prefix as the zones' temporaries, so the orphan sweep collects a killed part's leftovers.
_TMP_PREFIX = ".tmp-"
PLAN_FILE = "plan.json"
PLAN_INDEX = "identifiers.parquet"


def part_name(index: int) -> str:
    return f"part-{index:05d}"


def write_plan(
    work: Path,
    parts: Sequence[Path] | Sequence[str],
    *,
    schema: TableSchema | None,
    settings: AnonymizeSettings,
    secret: bytes,
) -> dict[str, ColumnDecision]:
    """Decide the columns once and index the identifiers of all parts into ``work``."""
    from synthgen.anonymize.table import decide_columns, index_identifiers

    plan = work / PLAN_FILE
    if plan.is_file():
        return read_plan(work)
    lazy = pl.scan_parquet([str(p) for p in parts])
    decisions = decide_columns(lazy, schema=schema, settings=settings)
    work.mkdir(parents=True, exist_ok=True)
    index_identifiers(lazy, decisions, secret=secret, rows=settings.stream_rows).save(work / PLAN_INDEX)
    body = json.dumps({n: d.to_dict() for n, d in decisions.items()}, indent=1)
    _atomic_text(plan, body)  # last: a plan file means the index beside it is complete
    return decisions


def read_plan(work: Path) -> dict[str, ColumnDecision]:
    try:
        raw = json.loads((work / PLAN_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnonymizeError(f"{work}: no anonymization plan (run the plan step first)") from None
    return {n: ColumnDecision(**d) for n, d in raw.items()}


def anonymize_part_file(
    work: Path, part: Path | str, index: int, *, settings: AnonymizeSettings, secret: bytes
) -> Path:
    """Anonymize one snapshot part into ``work/part-NNNNN/`` (atomically); returns that directory.

    A part already complete is kept (a retry after the merge step failed redoes no part).
    """
    from synthgen.anonymize.table import anonymize_table

    final = work / part_name(index)
    if (final / "report.json").is_file():
        return final
    decisions = read_plan(work)
    seed = LeakIndex.load(work / PLAN_INDEX, secret=secret)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX + part_name(index) + "-", dir=work))
    try:
        result = anonymize_table(
            pl.scan_parquet(part),
            schema=None,
            settings=settings,
            secret=secret,
            sink=tmp / "data.parquet",
            decisions=decisions,
            leak_index=seed,
        )
        result.leak_index.save(tmp / "leak_index.parquet")
        (tmp / "report.json").write_text(json.dumps(result.report, default=str), encoding="utf-8")
        for f in tmp.iterdir():
            os.chmod(f, 0o600)  # real-zone files, whatever the worker's umask
        if final.exists():  # a retry racing a finished twin: keep one, never both
            shutil.rmtree(tmp)
            return final
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "report.json").exists():
                raise
            shutil.rmtree(tmp)  # the twin finished between the check and the rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def merge_parts(work: Path, n_parts: int, out: Path, *, secret: bytes) -> dict[str, Any]:
    """Write ``out/data.parquet`` (parts in index order), ``out/leak_index.parquet`` and return the report."""
    dirs = [work / part_name(i) for i in range(n_parts)]
    missing = [d.name for d in dirs if not (d / "report.json").is_file()]
    if missing:
        raise AnonymizeError(f"{work}: parts not anonymized yet: {', '.join(missing[:4])}")
    reports = [json.loads((d / "report.json").read_text(encoding="utf-8")) for d in dirs]
    writer: pq.ParquetWriter | None = None
    try:
        for d in dirs:
            pf = pq.ParquetFile(d / "data.parquet")
            if writer is None:
                writer = pq.ParquetWriter(out / "data.parquet", pf.schema_arrow)
            for batch in pf.iter_batches():
                writer.write_batch(batch.cast(writer.schema))
    finally:
        if writer is not None:
            writer.close()
    leak = LeakIndex(secret)
    for d in dirs:
        leak.update(LeakIndex.load(d / "leak_index.parquet", secret=secret))
    leak.save(out / "leak_index.parquet")
    report = merge_reports(reports)
    report["leak_index_size"] = len(leak)
    report["parts"] = n_parts
    return report


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from the parts' reports: counts summed, settings (the same in every part) kept."""
    first = reports[0]
    summed = ("rows", "identifier_values", "text", "entities", "skipped")
    out = {k: v for k, v in first.items() if k not in summed}
    out["rows"] = sum(int(r["rows"]) for r in reports)
    ids: Counter[str] = Counter()
    entities: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    text: dict[str, dict[str, Any]] = {}
    for r in reports:
        ids.update(r.get("identifier_values") or {})
        entities.update(r.get("entities") or {})
        skipped.update(r.get("skipped") or {})
        for col, st in (r.get("text") or {}).items():
            acc = text.setdefault(col, {"entities": Counter()})
            for k, v in st.items():
                if k == "entities":
                    acc["entities"].update(v)
                else:
                    acc[k] = acc.get(k, 0) + v
    out["identifier_values"] = dict(ids)
    out["text"] = {c: {**st, "entities": dict(sorted(st["entities"].items()))} for c, st in text.items()}
    out["entities"] = dict(sorted(entities.items()))
    out["skipped"] = {k: skipped.get(k, 0) for k in (first.get("skipped") or {})}
    return out


def _atomic_text(path: Path, body: str) -> None:
    fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.chmod(name, 0o600)
    os.replace(name, path)
