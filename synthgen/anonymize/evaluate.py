"""Measure the text analysis on labelled text: character-level precision and recall per entity.

Input: JSON Lines, one object per document, ``{"text": "...", "spans": [{"start": 0, "end": 5,
"type": "PERSON"}]}`` (character offsets into ``text``, end exclusive, gold spans may not overlap).

Scores count characters, whitespace excluded (a name labelled as two words or as one span scores
the same):

* recall of type T: share of T's gold characters inside *any* predicted span (a name found as a
  LOCATION is still replaced, which is what anonymization needs);
* precision of type T: share of characters predicted as T that lie inside *any* gold span;
* ``direct_identifiers``: the same over the direct-identifier types (:data:`DIRECT`), the figure
  that says how many identifying characters survive anonymization;
* ``all``: the same over every type.

The analysis is the pipeline's own (same config, batching, span merging: see
:func:`synthgen.anonymize.table.make_texter`); only the replacement of values already known from
identifier columns is left out, since a labelled file has no such columns.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.errors import SpecError

DIRECT = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS",
    "STREET_ADDRESS", "US_DRIVER_LICENSE", "ID_NUMBER",
)  # fmt: skip
#: Types a labelled file may use besides those the analyzer supports.
EXTRA_TYPES = frozenset({*DIRECT, "LOCATION", "DATE_TIME", "ORGANIZATION", "NRP", "URL"})

Span = tuple[int, int, str]


def read_labelled(path: Path, known_types: set[str]) -> tuple[list[str], list[list[Span]]]:
    """Texts and gold spans of a labelled file; :class:`SpecError` naming the line otherwise."""
    if not path.is_file():
        raise SpecError(f"labelled file not found: {path}")
    texts: list[str] = []
    gold: list[list[Span]] = []
    try:
        # JSON Lines end at "\n" only: str.splitlines() would also split at U+2028, U+0085 and
        # other breaks that JSON strings may hold raw (the predictions file writes them so).
        lines = [ln.removesuffix("\r") for ln in path.read_text("utf-8").split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for no, line in enumerate(lines, 1):
        where = f"{path} line {no}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise SpecError(f'{where}: expected an object with a string "text"')
        text = rec["text"]
        raw = rec.get("spans", [])
        if not isinstance(raw, list):
            raise SpecError(f'{where}: "spans" must be a list')
        spans: list[Span] = []
        for j, sp in enumerate(raw):
            if not isinstance(sp, dict) or not all(k in sp for k in ("start", "end", "type")):
                raise SpecError(f"{where}: span {j} must have start, end and type")
            st, en, typ = sp["start"], sp["end"], sp["type"]
            if not (type(st) is int and type(en) is int) or not 0 <= st < en <= len(text):
                raise SpecError(
                    f"{where}: span {j} offsets [{st!r}, {en!r}) are outside the text "
                    f"(0..{len(text)}, start < end, integers)"
                )
            if not isinstance(typ, str) or typ not in known_types:
                raise SpecError(
                    f"{where}: span {j} has unknown type {typ!r}; known: {', '.join(sorted(known_types))}"
                )
            spans.append((st, en, typ))
        spans.sort()
        for a, b in itertools.pairwise(spans):
            if b[0] < a[1]:
                raise SpecError(f"{where}: gold spans [{a[0]}, {a[1]}) and [{b[0]}, {b[1]}) overlap")
        texts.append(text)
        gold.append(spans)
    if not texts:
        raise SpecError(f"{path}: no labelled lines (the file is empty)")
    return texts, gold


def _chars(text: str, spans: list[Span]) -> dict[int, str]:
    """Non-whitespace character positions covered by ``spans``, with their type."""
    out: dict[int, str] = {}
    for st, en, typ in spans:
        for i in range(st, min(en, len(text))):
            if not text[i].isspace():
                out[i] = typ
    return out


def score(texts: list[str], gold: list[list[Span]], pred: list[list[Span]]) -> dict[str, Any]:
    """Character-level precision and recall per type, for direct identifiers and for all types."""
    g_tot: Counter[str] = Counter()
    g_hit: Counter[str] = Counter()
    g_typed: Counter[str] = Counter()
    p_tot: Counter[str] = Counter()
    p_hit: Counter[str] = Counter()
    for text, gs, ps in zip(texts, gold, pred, strict=True):
        gc, pc = _chars(text, gs), _chars(text, ps)
        for i, typ in gc.items():
            g_tot[typ] += 1
            if i in pc:
                g_hit[typ] += 1
                g_typed[typ] += pc[i] == typ
        for i, typ in pc.items():
            p_tot[typ] += 1
            p_hit[typ] += i in gc

    def block(types: set[str]) -> dict[str, Any]:
        gt, gh = sum(g_tot[t] for t in types), sum(g_hit[t] for t in types)
        pt, ph = sum(p_tot[t] for t in types), sum(p_hit[t] for t in types)
        return {
            "precision": round(ph / pt, 4) if pt else None,
            "recall": round(gh / gt, 4) if gt else None,
            "gold_chars": gt,
            "predicted_chars": pt,
        }

    by_type = {}
    for t in sorted(set(g_tot) | set(p_tot)):
        b = block({t})
        b["recall_same_type"] = round(g_typed[t] / g_tot[t], 4) if g_tot[t] else None
        by_type[t] = b
    return {
        "direct_identifiers": block(set(DIRECT)),
        "all": block(set(g_tot) | set(p_tot)),
        "by_type": by_type,
    }


def evaluate_file(
    path: Path,
    *,
    settings: AnonymizeSettings | None = None,
    predictions: Path | None = None,
) -> dict[str, Any]:
    """Run the pipeline's text analysis on a labelled file and score it (see the module doc).

    With ``predictions``, the predicted spans are written there (same format, one line per input
    line, in order), atomically and only once the whole file has been read and analysed.
    """
    from synthgen.anonymize.engine import get_analyzer, load_config
    from synthgen.anonymize.operators import OperatorContext, make_operator
    from synthgen.anonymize.surrogates import Surrogates
    from synthgen.anonymize.table import make_texter

    settings = settings or AnonymizeSettings()
    if predictions is not None and not predictions.parent.is_dir():
        raise SpecError(f"--predictions: folder {predictions.parent} does not exist")
    # The file is checked before the model loads: a bad line fails in a fraction of a second.
    plain = load_config(settings.config)
    texts, gold = read_labelled(path, set(plain.text_entities) | set(plain.column_entities) | EXTRA_TYPES)
    cfg, analyzer = get_analyzer(settings.config)
    threshold = settings.threshold if settings.threshold is not None else cfg.threshold
    tag = make_operator("tag", OperatorContext(Surrogates(b"\0" * 32), b"\0" * 32))
    # No document cache: every line is analysed, so docs/s is the analysis speed.
    texter = make_texter(
        settings.model_copy(update={"doc_cache": 0}), cfg, analyzer, threshold=threshold, operator=tag,
        leak_index=None,
    )  # fmt: skip
    t0 = time.perf_counter()
    found = texter.spans(list(texts))
    seconds = time.perf_counter() - t0
    pred = [sorted(found.get(i, [])) for i in range(len(texts))]
    result = score(texts, gold, pred)
    result = {
        "docs": len(texts),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(texts) / seconds, 1) if seconds > 0 else None,
        "config": cfg.source,
        "spacy_model": cfg.model_name,
        "threshold": threshold,
        **result,
    }
    if predictions is not None:
        _write_predictions(predictions, texts, pred)
    return result


def _write_predictions(path: Path, texts: list[str], pred: list[list[Span]]) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for text, spans in zip(texts, pred, strict=True):
                rec = {"text": text, "spans": [{"start": s, "end": e, "type": t} for s, e, t in spans]}
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
