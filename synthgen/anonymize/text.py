"""Free-text anonymization: Presidio's recognizers over spaCy ``nlp.pipe`` batches
(:class:`~synthgen.anonymize.analysis.BatchTextAnalyzer`), then span replacement with one operator
(by default a consistent surrogate of the same entity type)."""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import polars as pl
from presidio_analyzer import AnalyzerEngine, RecognizerResult

from synthgen.anonymize.analysis import BatchTextAnalyzer
from synthgen.anonymize.leak import LeakIndex
from synthgen.anonymize.operators import Operator
from synthgen.anonymize.windows import shifted, windows

# Control characters other than tab/newline/carriage return, and the replacement character
# left by undecodable bytes: their share tells binary garbage from text.
_GARBAGE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
GARBAGE_SHARE = 0.1


@dataclass
class TextStats:
    """What happened to the documents of one text column (merged across batches)."""

    docs: int = 0
    analyzed: int = 0
    empty: int = 0
    non_string: int = 0
    long_split: int = 0
    binary_dropped: int = 0
    entities: Counter[str] = field(default_factory=Counter)

    def merge(self, other: TextStats) -> None:
        for name in ("docs", "analyzed", "empty", "non_string", "long_split", "binary_dropped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.entities.update(other.entities)

    def to_dict(self) -> dict[str, object]:
        return {
            "docs": self.docs,
            "analyzed": self.analyzed,
            "empty": self.empty,
            "non_string": self.non_string,
            "long_split": self.long_split,
            "binary_dropped": self.binary_dropped,
            "entities": dict(sorted(self.entities.items())),
        }


# Entities that come from the statistical NER model. When such a span overlaps one found by a
# validated pattern (a phone number that spaCy calls a DATE), the pattern's type wins.
_NER_TYPES = frozenset({"PERSON", "LOCATION", "DATE_TIME", "NRP", "ORGANIZATION"})


def merge_spans(results: list[RecognizerResult]) -> list[tuple[int, int, str]]:
    """Overlapping spans become one span covering them all. Its type is the pattern-based one if
    any (see ``_NER_TYPES``), then the highest score, then the longest span: an e-mail address
    (score 1.0) beats the URL found inside it."""

    def rank(r: RecognizerResult) -> tuple[int, float, int]:
        return (r.entity_type not in _NER_TYPES, r.score, r.end - r.start)

    out: list[tuple[int, int, RecognizerResult]] = []
    for r in sorted(results, key=lambda r: (r.start, -r.end)):
        if out and r.start < out[-1][1]:
            s, e, best = out[-1]
            out[-1] = (s, max(e, r.end), r if rank(r) > rank(best) else best)
        else:
            out.append((r.start, r.end, r))
    return [(s, e, best.entity_type) for s, e, best in out]


class TextAnonymizer:
    """Find PII spans in documents and replace them.

    ``leak_index`` (optional) receives every value found of the ``leak_entities`` types, so
    that synthetic outputs can later be scanned for them. With ``known_values``, values already in
    the index (identifier columns of the same rows, earlier documents) are also replaced wherever
    they occur in the text, even when the analyzer misses them.
    """

    def __init__(
        self,
        analyzer: AnalyzerEngine,
        *,
        operator: Operator,
        entities: list[str],
        threshold: float,
        language: str = "en",
        batch_size: int = 256,
        n_process: int = 1,
        max_doc_chars: int = 100_000,
        leak_index: LeakIndex | None = None,
        leak_entities: list[str] | None = None,
        known_values: bool = True,
        doc_cache: int = 10_000,
    ) -> None:
        self.batch = BatchTextAnalyzer(analyzer, language=language, entities=entities, threshold=threshold)
        self.operator = operator
        self.entities = entities
        self.threshold = threshold
        self.language = language
        self.batch_size = batch_size
        self.n_process = n_process
        self.max_doc_chars = max_doc_chars
        self.leak_index = leak_index
        self.leak_entities = set(leak_entities or [])
        self.known_values = known_values
        # Analyzer results of recent documents: repeated boilerplate notes are analysed once.
        self._memo: OrderedDict[str, list[RecognizerResult]] = OrderedDict()
        self._memo_size = doc_cache

    def analyze(self, texts: list[str]) -> list[list[RecognizerResult]]:
        """Presidio results for each text, batched through spaCy ``nlp.pipe``."""
        if not texts:
            return []
        return self.batch.analyze(texts, batch_size=self.batch_size, n_process=self.n_process)

    def _remember(self, text: str, results: list[RecognizerResult]) -> None:
        if self._memo_size <= 0:
            return
        self._memo[text] = results
        self._memo.move_to_end(text)
        while len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)

    def spans(
        self, docs: list[str | None], stats: TextStats | None = None
    ) -> dict[int, list[tuple[int, int, str]]]:
        """Merged PII spans ``(start, end, entity)`` per document index: what :meth:`anonymize`
        replaces. Empty documents and binary garbage have none (garbage is set to ``None`` in
        ``docs``); ``stats`` counts them. ``synthgen eval-pii`` measures exactly this."""
        stats = stats if stats is not None else TextStats(docs=len(docs))
        # Distinct pieces to analyse: (doc index, offset, piece). Duplicated documents are analysed once.
        pieces: dict[str, list[tuple[int, int]]] = {}
        for i, doc in enumerate(docs):
            if doc is None or not doc.strip():
                stats.empty += 1
                continue
            if len(_GARBAGE.findall(doc)) > GARBAGE_SHARE * len(doc):
                # Binary garbage cannot be analysed reliably, and might still hold identifiers.
                docs[i] = None
                stats.binary_dropped += 1
                continue
            stats.analyzed += 1
            if len(doc) > self.max_doc_chars:
                stats.long_split += 1
                for off, piece in windows(doc, self.max_doc_chars):
                    pieces.setdefault(piece, []).append((i, off))
            else:
                pieces.setdefault(doc, []).append((i, 0))

        texts = list(pieces)
        # Read cached results before remembering new ones (remembering may evict them).
        analysed = {t: self._memo[t] for t in texts if t in self._memo}
        todo = [t for t in texts if t not in analysed]
        analysed.update(zip(todo, self.analyze(todo), strict=True))
        found: dict[int, list[RecognizerResult]] = {}
        for text in texts:
            results = analysed[text]
            self._remember(text, results)
            if self.known_values and self.leak_index is not None:
                # Defence in depth: identifier values already known (from identifier columns and
                # earlier texts) are replaced wherever they occur, even where the analyzer missed them.
                results = results + [
                    RecognizerResult(ent, st, en, 1.0) for st, en, ent in self.leak_index.find_spans(text)
                ]
            for i, off in pieces[text]:
                found.setdefault(i, []).extend(shifted(results, off))
        # Merged per document, not per window: windows overlap, and a name cut at one window's
        # edge ("John") and found whole in the next ("John Smith") must become one span.
        return {i: merge_spans(results) for i, results in found.items()}

    def anonymize(self, values: pl.Series) -> tuple[pl.Series, TextStats]:
        """Anonymize one text column. Bad input never raises: it is processed or counted."""
        stats = TextStats(docs=len(values))
        s = values
        if s.dtype == pl.Binary:
            stats.non_string = s.drop_nulls().len()
            s = pl.Series(s.name, [None if b is None else b.decode("utf-8", "replace") for b in s.to_list()])
        elif s.dtype != pl.String:
            stats.non_string = s.drop_nulls().len()
            try:
                s = s.cast(pl.String)
            except pl.exceptions.InvalidOperationError:
                s = pl.Series(s.name, [None if v is None else str(v) for v in s.to_list()], dtype=pl.String)
        docs: list[str | None] = s.to_list()
        spans = self.spans(docs, stats)

        # Index every value found before drawing any replacement, so that no surrogate can be a
        # real identifier mentioned anywhere in this batch.
        if self.leak_index is not None:
            found: dict[str, list[str]] = {}
            for i, sp in spans.items():
                doc = docs[i]
                assert doc is not None
                for st, en, ent in sp:
                    if ent in self.leak_entities:
                        found.setdefault(ent, []).append(doc[st:en])
            for ent, vals in found.items():
                self.leak_index.add(vals, ent)

        out: list[str | None] = list(docs)
        for i, sp in spans.items():
            doc = docs[i]
            assert doc is not None
            parts: list[str] = []
            last = 0
            for st, en, ent in sorted(sp):
                if st < last:  # overlap across window edges: keep the first span
                    continue
                stats.entities[ent] += 1
                parts.append(doc[last:st])
                parts.append(self.operator.span(doc[st:en], ent))
                last = en
            parts.append(doc[last:])
            out[i] = "".join(parts)
        return pl.Series(values.name, out, dtype=pl.String), stats
