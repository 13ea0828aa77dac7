"""Anonymize a table: identifier columns through their operators, PII spans in text replaced.

The output is still derived from real data without differential privacy: it belongs in the
REAL zone (P1). It comes with a report (what was found, what was done, config hash) and a
:class:`LeakIndex` of the identifier values seen, for scanning synthetic outputs later (P8).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from presidio_analyzer import AnalyzerEngine

from synthgen.anonymize.detect import ColumnDecision, detect_columns, integers, name_hint, numeric_vote
from synthgen.anonymize.engine import EngineConfig, get_analyzer
from synthgen.anonymize.leak import LeakIndex
from synthgen.anonymize.operators import Operator, OperatorContext, make_operator
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.anonymize.surrogates import Surrogates, derive_key
from synthgen.anonymize.text import TextAnonymizer, TextStats
from synthgen.errors import AnonymizeError
from synthgen.schema import TableSchema

#: Entity types whose values go through their operator but not into the leak index.
NOT_INDEXED = frozenset({"QUASI_IDENTIFIER"})

#: Rows read up front to decide the columns' roles.
DETECT_ROWS = 2_000


@dataclass
class AnonymizeResult:
    """The anonymized frame (``None`` when streamed to ``sink``), its report and the leak index."""

    frame: pl.DataFrame | None
    report: dict[str, Any]
    leak_index: LeakIndex
    decisions: dict[str, ColumnDecision] = field(default_factory=dict)
    sink: Path | None = None


def _batches(source: pl.LazyFrame | pl.DataFrame, rows: int) -> Iterator[pl.DataFrame]:
    if isinstance(source, pl.DataFrame):
        for off in range(0, source.height, rows):
            yield source.slice(off, rows)
        return
    # The streaming engine reads the source in chunks; memory stays bounded by a few batches.
    yield from source.collect_batches(chunk_size=rows)


def config_hash(settings: AnonymizeSettings, config_digest: str) -> str:
    """Hash of everything that decides the output besides the data and the secret."""
    blob = settings.model_dump_json() + "\x00" + config_digest
    return hashlib.sha256(blob.encode()).hexdigest()


def make_texter(
    settings: AnonymizeSettings,
    cfg: EngineConfig,
    analyzer: AnalyzerEngine,
    *,
    threshold: float,
    operator: Operator,
    leak_index: LeakIndex | None,
) -> TextAnonymizer:
    """The text anonymizer the pipeline uses (``synthgen eval-pii`` builds it here too)."""
    return TextAnonymizer(
        analyzer,
        operator=operator,
        entities=cfg.text_entities,
        threshold=threshold,
        language=cfg.language,
        batch_size=settings.batch_size,
        n_process=settings.n_process,
        max_doc_chars=settings.max_doc_chars,
        leak_index=leak_index,
        leak_entities=cfg.leak_entities,
        doc_cache=settings.doc_cache,
    )


def anonymize_table(
    source: pl.LazyFrame | pl.DataFrame,
    *,
    schema: TableSchema | None,
    settings: AnonymizeSettings,
    secret: bytes,
    sink: Path | None = None,
    decisions: dict[str, ColumnDecision] | None = None,
    leak_index: LeakIndex | None = None,
) -> AnonymizeResult:
    """Remove direct identifiers from ``source``.

    Identifier columns (decided by :func:`detect_columns`: spec, then name, then Presidio on a
    sample) go through their operator (``settings.operators[col]`` or ``default_operator``);
    text columns have every PII span replaced by ``settings.text_operator``. ``secret`` (>= 16
    bytes) keys surrogates, hashes and the leak index: keep it with the pipeline, never with the
    output. With ``sink``, batches of ``settings.stream_rows`` rows are written to that Parquet
    file as they are done (bounded memory) and ``frame`` is ``None``.

    ``decisions`` (from :func:`decide_columns`) skips detection: every part of one snapshot
    must use the decisions taken once on the whole snapshot's head, or parts would disagree on
    which columns are identifiers. ``leak_index`` seeds the index (the identifier values of the
    whole snapshot), so that a name seen in another part is still found in this part's text.

    Presidio is defence in depth, not a guarantee: a span the analyzer misses stays in the text.
    """
    cfg, analyzer = get_analyzer(settings.config)
    threshold = settings.threshold if settings.threshold is not None else cfg.threshold
    sample = read_sample(source.lazy() if isinstance(source, pl.DataFrame) else source, settings)
    if decisions is None:
        decisions = _detect(sample, schema=schema, settings=settings, cfg=cfg, analyzer=analyzer)
    else:  # copies: the caller's plan is shared by every part
        decisions = {n: ColumnDecision(**d.to_dict()) for n, d in decisions.items()}  # type: ignore[arg-type]
    _check_named_columns(settings, sample)
    leak = leak_index if leak_index is not None else LeakIndex(secret)
    ctx = OperatorContext(
        surrogates=Surrogates(secret, avoid=leak.occurs_in), hash_key=derive_key(secret, "hash")
    )
    col_ops = {}
    for name, d in decisions.items():
        _assign_operator(name, d, settings)
        if d.role == "identifier" and d.operator is not None:
            col_ops[name] = make_operator(d.operator, ctx)
    text_op = make_operator(settings.text_operator, ctx)
    text_cols = [n for n, d in decisions.items() if d.role == "text"]
    texter = make_texter(settings, cfg, analyzer, threshold=threshold, operator=text_op, leak_index=leak)

    rows = 0
    id_counts: Counter[str] = Counter()
    text_stats = {c: TextStats() for c in text_cols}
    frames: list[pl.DataFrame] = []
    writer: pq.ParquetWriter | None = None
    # A temporary name of its own (not a fixed one another writer of the same sink could share).
    tmp = sink.with_name(f".tmp-{uuid.uuid4().hex}-{sink.name}") if sink is not None else None
    try:
        for batch in _batches(source, settings.stream_rows):
            rows += batch.height
            out = batch
            # Index first (identifier columns, then spans found in text), so that no surrogate
            # drawn for this batch equals a real value in it.
            for name in col_ops:
                col = batch[name]
                id_counts[name] += col.drop_nulls().len()
                entity = decisions[name].entity or "UNKNOWN"
                # Quasi-identifiers (a zip, a birth year) are not identifying alone and are short
                # numbers that synthetic numeric cells match by chance: the leak scan is for
                # direct identifiers (P8), so they are transformed but not indexed.
                if entity not in NOT_INDEXED:
                    leak.add(col.drop_nulls().unique().to_list(), entity)
            for name in text_cols:
                new_text, st = texter.anonymize(batch[name])
                text_stats[name].merge(st)
                out = out.with_columns(new_text)
            for name, op in col_ops.items():
                new = op.column(batch[name], decisions[name].entity or "UNKNOWN")
                out = out.drop(name) if new is None else out.with_columns(new)
            if tmp is not None:
                table = out.to_arrow()
                if writer is None:
                    tmp.parent.mkdir(parents=True, exist_ok=True)
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
            else:
                frames.append(out)
        if tmp is not None and sink is not None:
            if writer is None:  # empty table: still write its (anonymized) schema
                empty = sample.head(0)
                for name, op in col_ops.items():
                    new = op.column(empty[name], decisions[name].entity or "UNKNOWN")
                    empty = empty.drop(name) if new is None else empty.with_columns(new)
                empty.write_parquet(tmp)
            else:
                writer.close()
                writer = None
            tmp.replace(sink)
    finally:
        if writer is not None:
            writer.close()
        if tmp is not None and tmp.exists():
            tmp.unlink()

    entities: Counter[str] = Counter()
    for name in col_ops:
        entities[decisions[name].entity or "UNKNOWN"] += id_counts[name]
    for st in text_stats.values():
        entities.update(st.entities)
    report: dict[str, Any] = {
        "rows": rows,
        "config_hash": config_hash(settings, cfg.digest),
        "config_source": cfg.source,
        "spacy_model": cfg.model_name,
        "threshold": threshold,
        "columns": {n: d.to_dict() for n, d in decisions.items()},
        "operators": {n: d.operator for n, d in decisions.items() if d.operator},
        "identifier_values": dict(id_counts),
        "text": {c: st.to_dict() for c, st in text_stats.items()},
        "entities": dict(sorted(entities.items())),
        "skipped": {
            "empty_text": sum(st.empty for st in text_stats.values()),
            "non_string_text": sum(st.non_string for st in text_stats.values()),
            "long_documents_split": sum(st.long_split for st in text_stats.values()),
            "binary_dropped": sum(st.binary_dropped for st in text_stats.values()),
        },
        "leak_index_size": len(leak),
    }
    frame = None
    if sink is None:
        frame = (
            pl.concat(frames, how="vertical_relaxed") if frames else _empty_output(sample, col_ops, decisions)
        )
    return AnonymizeResult(frame=frame, report=report, leak_index=leak, decisions=decisions, sink=sink)


def _detect(
    sample: pl.DataFrame,
    *,
    schema: TableSchema | None,
    settings: AnonymizeSettings,
    cfg: EngineConfig,
    analyzer: AnalyzerEngine,
) -> dict[str, ColumnDecision]:
    threshold = settings.threshold if settings.threshold is not None else cfg.threshold
    return detect_columns(
        sample,
        schema=schema,
        analyzer=analyzer,
        column_entities=cfg.column_entities,
        threshold=threshold,
        text_columns=settings.text_columns,
        sample_size=settings.sample_size,
        min_fraction=settings.min_fraction,
        name_hints=settings.name_hints,
        auto_text=settings.auto_text,
        max_doc_chars=settings.max_doc_chars,
        language=cfg.language,
    )


def _check_named_columns(settings: AnonymizeSettings, sample: pl.DataFrame) -> None:
    unknown = (set(settings.operators) | set(settings.text_columns)) - set(sample.columns)
    if unknown:
        raise AnonymizeError(
            f"anonymize settings name column {sorted(unknown)[0]!r}, which the table does not have"
        )


def read_sample(lazy: pl.LazyFrame, settings: AnonymizeSettings) -> pl.DataFrame:
    """The head rows that detection looks at (the same rows whether the table is one file or parts)."""
    try:
        return lazy.head(max(DETECT_ROWS, settings.sample_size)).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise AnonymizeError(
            f"cannot read the table to anonymize: {' '.join(str(exc).split())[:200]}"
        ) from None


def decide_columns(
    source: pl.LazyFrame, *, schema: TableSchema | None, settings: AnonymizeSettings
) -> dict[str, ColumnDecision]:
    """Each column's role and operator, decided once on the head of ``source``."""
    cfg, analyzer = get_analyzer(settings.config)
    sample = read_sample(source, settings)
    decisions = _detect(sample, schema=schema, settings=settings, cfg=cfg, analyzer=analyzer)
    _check_named_columns(settings, sample)
    for name, d in decisions.items():
        _assign_operator(name, d, settings)
    return decisions


def _assign_operator(name: str, d: ColumnDecision, settings: AnonymizeSettings) -> None:
    if d.role == "keep" and name in settings.operators:
        # Naming an operator for a column says it is an identifier, whatever detection found.
        d.role, d.source = "identifier", "spec"
        d.entity = d.entity or name_hint(name) or "ID"
    if d.role == "identifier":
        d.operator = settings.operators.get(name, settings.default_operator)
    elif d.role == "text":
        d.operator = settings.text_operator


def index_identifiers(
    source: pl.LazyFrame, decisions: dict[str, ColumnDecision], *, secret: bytes, rows: int = 200_000
) -> LeakIndex:
    """The leak index of every identifier column's values over all of ``source`` (no Presidio: cheap)."""
    leak = LeakIndex(secret)
    cols = [
        n
        for n, d in decisions.items()
        if d.role == "identifier" and (d.entity or "UNKNOWN") not in NOT_INDEXED
    ]
    if not cols:
        return leak
    for batch in source.select(cols).collect_batches(chunk_size=rows):
        for name in cols:
            leak.add(batch[name].drop_nulls().unique().to_list(), decisions[name].entity or "UNKNOWN")
    return leak


def _empty_output(
    sample: pl.DataFrame, col_ops: dict[str, Any], decisions: dict[str, ColumnDecision]
) -> pl.DataFrame:
    out = sample.head(0)
    for name, op in col_ops.items():
        new = op.column(out[name], decisions[name].entity or "UNKNOWN")
        out = out.drop(name) if new is None else out.with_columns(new)
    return out


def scan_pii(
    frame: pl.DataFrame, *, config: str | None = None, limit: int = 1_000, threshold: float | None = None
) -> dict[str, dict[str, int]]:
    """Entities Presidio finds in each string column (first ``limit`` non-empty values per column).

    Used by ``synthgen scan-pii FILE``. Whole-number columns are checked by value (card numbers,
    SSNs and phone numbers stored as numbers); other non-string columns report no entities.
    """
    cfg, analyzer = get_analyzer(config)
    th = threshold if threshold is not None else cfg.threshold
    texter = TextAnonymizer(
        analyzer,
        operator=make_operator("tag", OperatorContext(Surrogates(b"\0" * 32), b"\0" * 32)),
        entities=cfg.text_entities,
        threshold=th,
        language=cfg.language,
    )
    out: dict[str, dict[str, int]] = {}
    for col in frame.columns:
        s = frame[col]
        ints = integers(s) if s.dtype.is_numeric() else None
        if ints is not None:
            entity, frac = numeric_vote(ints[:limit])
            n = min(len(ints), limit)
            out[col] = {entity: round(frac * n)} if entity is not None and frac > 0 else {}
            continue
        if s.dtype not in (pl.String, pl.Categorical) and not isinstance(s.dtype, pl.Categorical | pl.Enum):
            out[col] = {}
            continue
        vals = [v for v in s.cast(pl.String).drop_nulls().head(limit * 4).to_list() if v.strip()][:limit]
        counts: Counter[str] = Counter()
        # spans(), not analyze(): it windows a value over max_doc_chars (spaCy refuses > 1M chars).
        for spans in texter.spans(list(vals)).values():
            counts.update(ent for _, _, ent in spans)
        out[col] = dict(sorted(counts.items()))
    return out
