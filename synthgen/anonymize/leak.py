"""Leak scanner: find real identifier values in another dataset (P8, defence in depth).

The index keeps *keyed hashes* of the identifier values seen in the source, never the values:
``BLAKE2b-64(key, normalised value)`` where the key is derived from the pipeline secret and the
normalised value is the value's word tokens (NFKC, casefolded, punctuation dropped) joined by one
space. So "John  SMITH", "john smith" and "(503) 531-3101" / "503.531.3101" match. The file
belongs in the REAL zone: with the secret, anyone can test whether a guessed value was in the
source.

Scanning hashes every cell and every run of 1..k consecutive word tokens inside text (k = the
longest indexed value in tokens) and reports each exact match. With 64-bit hashes a false
match has probability about n_index * n_candidates / 2^64 (1e-7 for 1e6 x 1e5): negligible.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from synthgen.anonymize.surrogates import derive_key
from synthgen.errors import AnonymizeError

_TOKEN = re.compile(r"\w+")
#: Values of more tokens than this are indexed by their first MAX_NGRAM tokens only.
MAX_NGRAM = 8
#: Values shorter than this (normalised) are not indexed: they would match everywhere.
MIN_CHARS = 4
# Entity label of the first-word hashes in a saved index (see ``LeakIndex._first``).
_FIRST_TOKEN = "\x00first-token"


def tokens(text: str) -> list[str]:
    """Word tokens of ``text`` after NFKC normalisation and case folding."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass
class LeakHit:
    column: str
    row: int
    entity: str
    #: The matching text as found in the scanned dataset.
    text: str


@dataclass
class LeakReport:
    """Every exact occurrence of an indexed identifier in a scanned dataset."""

    rows_scanned: int = 0
    hits: list[LeakHit] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.hits)

    def by_column(self) -> dict[str, dict[str, int]]:
        out: dict[str, Counter[str]] = {}
        for h in self.hits:
            out.setdefault(h.column, Counter())[h.entity] += 1
        return {c: dict(v) for c, v in out.items()}

    def to_dict(self, *, include_text: bool = False) -> dict[str, object]:
        """JSON-able summary. ``include_text`` adds the matching texts: real identifiers, restricted."""
        d: dict[str, object] = {
            "rows_scanned": self.rows_scanned,
            "leaks": self.total,
            "by_column": self.by_column(),
        }
        if include_text:
            d["hits"] = [h.__dict__ for h in self.hits]
        return d


class LeakIndex:
    """Keyed hashes of real identifier values, for :meth:`scan`."""

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, "leak-index")
        self._parts: list[tuple[np.ndarray, str]] = []
        self._first_parts: list[np.ndarray] = []
        self._hashes = np.empty(0, dtype=np.uint64)
        # Hashes of the first word of every indexed value: a text position is only tried as the
        # start of a match when its word is one of these (most positions are not).
        self._first = np.empty(0, dtype=np.uint64)
        self._entities: list[str] = []
        self._entity_idx = np.empty(0, dtype=np.int32)
        self.max_ngram = 1
        self.min_ngram = MAX_NGRAM
        self._dirty = False

    # -- building --------------------------------------------------------------------------

    def _h(self, toks: list[str]) -> int:
        d = hashlib.blake2b(" ".join(toks).encode("utf-8", "surrogatepass"), digest_size=8, key=self._key)
        return int.from_bytes(d.digest(), "little")

    def add(self, values: Iterable[object], entity: str) -> int:
        """Index ``values`` (nulls and too-short values skipped). Returns how many were indexed."""
        hs: list[int] = []
        firsts: list[int] = []
        for v in values:
            if v is None:
                continue
            toks = tokens(str(v))[:MAX_NGRAM]
            if not toks or len(" ".join(toks)) < MIN_CHARS:
                continue
            # A single word from free text (a surname) is too common to call a leak.
            if entity == "PERSON" and len(toks) < 2:
                continue
            self.max_ngram = max(self.max_ngram, len(toks))
            self.min_ngram = min(self.min_ngram, len(toks))
            hs.append(self._h(toks))
            firsts.append(self._h(toks[:1]))
        if hs:
            self._parts.append((np.asarray(hs, dtype=np.uint64), entity))
            self._first_parts.append(np.asarray(firsts, dtype=np.uint64))
            self._dirty = True
        return len(hs)

    @classmethod
    def build(cls, frame: pl.DataFrame, columns: dict[str, str], *, secret: bytes) -> LeakIndex:
        """Index the values of ``columns`` (name -> entity type) of ``frame``."""
        idx = cls(secret)
        for col, entity in columns.items():
            idx.add(frame[col].drop_nulls().unique().to_list(), entity)
        return idx

    def update(self, other: LeakIndex) -> None:
        """Add every value of ``other`` (built with the same secret): the union of per-part indexes."""
        if other._key != self._key:
            raise AnonymizeError("cannot merge leak indexes built with different pipeline secrets")
        other._compact()
        for i, entity in enumerate(other._entities):
            hs = other._hashes[other._entity_idx == i]
            if len(hs):
                self._parts.append((hs, entity))
        self._first_parts.append(other._first)
        if len(other._hashes):
            self.max_ngram = max(self.max_ngram, other.max_ngram)
            self.min_ngram = min(self.min_ngram, other.min_ngram)
        self._dirty = True

    def _compact(self) -> None:
        if not self._dirty:
            return
        ents = sorted({e for _, e in self._parts} | set(self._entities))
        pos = {e: i for i, e in enumerate(ents)}
        remap = np.asarray([pos[e] for e in self._entities], dtype=np.int32)
        hs = [self._hashes] + [h for h, _ in self._parts]
        es = [remap[self._entity_idx] if len(remap) else self._entity_idx] + [
            np.full(len(h), pos[e], dtype=np.int32) for h, e in self._parts
        ]
        allh, alle = np.concatenate(hs), np.concatenate(es)
        uniq, first = np.unique(allh, return_index=True)
        self._hashes, self._entity_idx, self._entities = uniq, alle[first], ents
        self._first = np.unique(np.concatenate([self._first, *self._first_parts]))
        self._parts, self._first_parts = [], []
        self._dirty = False

    def __len__(self) -> int:
        self._compact()
        return len(self._hashes)

    def _lookup(self, h: int) -> int:
        """Position of hash ``h`` in the index, or -1."""
        j = int(np.searchsorted(self._hashes, np.uint64(h)))
        return j if j < len(self._hashes) and int(self._hashes[j]) == h else -1

    def _matches(self, toks: list[str]) -> list[tuple[int, int, str]]:
        """``(first token, token count, entity)`` of every run of ``toks`` that is an indexed value."""
        self._compact()
        if not toks or not len(self._hashes):
            return []
        firsts = np.fromiter((self._h([t]) for t in toks), dtype=np.uint64, count=len(toks))
        pos = np.minimum(np.searchsorted(self._first, firsts), len(self._first) - 1)
        out: list[tuple[int, int, str]] = []
        for i in np.nonzero(self._first[pos] == firsts)[0].tolist():
            for n in range(self.min_ngram, min(self.max_ngram, len(toks) - i) + 1):
                j = self._lookup(self._h(toks[i : i + n]))
                if j >= 0:
                    out.append((i, n, self._entities[int(self._entity_idx[j])]))
        return out

    def contains(self, value: str) -> bool:
        """Whether ``value`` (normalised) is an indexed identifier."""
        self._compact()
        toks = tokens(value)[:MAX_NGRAM]
        return bool(toks) and len(self._hashes) > 0 and self._lookup(self._h(toks)) >= 0

    def occurs_in(self, text: str) -> bool:
        """Whether any indexed value occurs in ``text`` (as a whole or as a run of its tokens)."""
        return bool(self._matches(tokens(text)))

    def find_spans(self, text: str) -> list[tuple[int, int, str]]:
        """Character spans ``(start, end, entity)`` of indexed values occurring in ``text``."""
        folded = unicodedata.normalize("NFKC", text).casefold()
        if len(folded) != len(text):  # offsets would not map back (rare: ligatures, "ß")
            return []
        found = list(_TOKEN.finditer(folded))
        return [
            (found[i].start(), found[i + n - 1].end(), ent)
            for i, n, ent in self._matches([m.group(0) for m in found])
        ]

    # -- persistence -----------------------------------------------------------------------

    def _fingerprint(self) -> str:
        return hashlib.sha256(b"fingerprint" + self._key).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write the index as Parquet (hashes and entity types only). Keep it in the REAL zone."""
        self._compact()
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        entities = [self._entities[i] for i in self._entity_idx] + [_FIRST_TOKEN] * len(self._first)
        table = pa.table(
            {
                "hash": pa.array(np.concatenate([self._hashes, self._first]), type=pa.uint64()),
                "entity": pa.array(entities, type=pa.string()),
            }
        )
        meta = {"max_ngram": self.max_ngram, "min_ngram": self.min_ngram, "key": self._fingerprint()}
        table = table.replace_schema_metadata({b"synthgen_leak_index": json.dumps(meta).encode()})
        # A name of its own: two processes may save the same index at once (concurrent runs).
        tmp = p.with_name(f".tmp-{uuid.uuid4().hex}-{p.name}")
        try:
            pq.write_table(table, tmp)
            tmp.replace(p)
        finally:
            tmp.unlink(missing_ok=True)
        return p

    @classmethod
    def load(cls, path: str | Path, *, secret: bytes) -> LeakIndex:
        """Read an index written by :meth:`save`; the secret must be the one it was built with."""
        p = Path(path)
        if not p.is_file():
            raise AnonymizeError(f"leak index not found: {p}")
        table = pq.read_table(p)
        raw = (table.schema.metadata or {}).get(b"synthgen_leak_index")
        if raw is None:
            raise AnonymizeError(f"{p}: not a synthgen leak index")
        meta = json.loads(raw)
        idx = cls(secret)
        if meta["key"] != idx._fingerprint():
            raise AnonymizeError(f"{p}: built with another pipeline secret; use the pipeline's own secret")
        hashes = table.column("hash").to_numpy().astype(np.uint64)
        ents = np.asarray(table.column("entity").to_pylist(), dtype=object)
        is_first = ents == _FIRST_TOKEN
        idx._first = np.unique(hashes[is_first])
        idx._entities = sorted(set(ents[~is_first].tolist()))
        pos = {e: i for i, e in enumerate(idx._entities)}
        idx._hashes = hashes[~is_first]
        idx._entity_idx = np.asarray([pos[e] for e in ents[~is_first].tolist()], dtype=np.int32)
        idx.max_ngram, idx.min_ngram = int(meta["max_ngram"]), int(meta["min_ngram"])
        return idx

    # -- scanning --------------------------------------------------------------------------

    def scan(
        self, frame: pl.DataFrame, *, columns: list[str] | None = None, chunk: int = 5_000
    ) -> LeakReport:
        """Report every exact occurrence of an indexed value in ``frame``'s cells or inside its text.

        Every column is read as text (numbers and dates too). A cell matches as a whole or through
        any run of consecutive word tokens; overlapping runs are each reported.
        """
        self._compact()
        report = LeakReport(rows_scanned=frame.height)
        if not len(self._hashes):
            return report
        for col in columns if columns is not None else frame.columns:
            s = frame[col]
            if s.dtype != pl.String:
                try:
                    s = s.cast(pl.String)
                except pl.exceptions.InvalidOperationError:
                    continue
            for off in range(0, len(s), chunk):
                for r, cell in enumerate(s.slice(off, chunk).to_list()):
                    if not cell:
                        continue
                    toks = tokens(cell)
                    for i, n, entity in self._matches(toks):
                        report.hits.append(LeakHit(col, off + r, entity, " ".join(toks[i : i + n])))
        return report
