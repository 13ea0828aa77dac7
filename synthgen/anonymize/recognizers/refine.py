"""Post-processing of the analyzer's results, in one place: what the NER model says is checked
against cheap evidence before a span counts.

* DATE_TIME without a digit or a month/day name ("this morning", "next week", "a few months
  ago") identifies no one: dropped.
* Spans of the statistical model (PERSON, LOCATION) are cut at line breaks (a name at the end
  of a line is not one with the next line's first word), lose leading role and kinship words
  ("Daughter Ana Ruiz" -> "Ana Ruiz"), and are dropped when every word is a common English word
  and none is a known name ("Head Nurse", "Discharge Summary", "Billing").
"""

from __future__ import annotations

import re

from presidio_analyzer import RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from synthgen.anonymize.recognizers.names import MONTHS_DAYS, ROLE_WORDS, _fold, english_words, gazetteer

_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_MONTH_ABBR = re.compile(
    r"\b(?:jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)\b\.?"
)
_NER = frozenset({"PERSON", "LOCATION"})
# What may stand between two words of one name: spaces, an initial's dot, a comma, a hyphen.
_GAP = re.compile(r"[ \t]*[,.]?[ \t]*|-")
_DURATION = re.compile(
    r"(?:(?:more|less) than|about|over|under|for|within|up to|around)?\s*\d+\s*"
    r"(?:y|yo|yrs?|years?|months?|weeks?|wks?|days?|hours?|hrs?|minutes?|mins?)(?:\s+(?:old|ago))?",
    re.IGNORECASE,
)


def _vague_time(span: str) -> bool:
    if any(ch.isdigit() for ch in span):
        return False
    low = span.lower()
    return not (any(w in MONTHS_DAYS for w in _WORD.findall(low)) or _MONTH_ABBR.search(low))


def _from_model(r: RecognizerResult) -> bool:
    meta = r.recognition_metadata or {}
    return meta.get(RecognizerResult.RECOGNIZER_NAME_KEY) == "SpacyRecognizer"


def _pieces(text: str, start: int, end: int, words: frozenset[str]) -> list[list[tuple[int, int, str]]]:
    """Word tokens of ``text[start:end]``, split at line breaks and at lower-case common words
    ("freeman said chris" -> "freeman", "chris")."""
    pieces: list[list[tuple[int, int, str]]] = [[]]
    last = start
    for m in _WORD.finditer(text, start, end):
        w = m.group()
        if not _GAP.fullmatch(text[last : m.start()]) and pieces[-1]:
            pieces.append([])
        last = m.end()
        if w.islower() and _fold(w) in words:
            if pieces[-1]:
                pieces.append([])
            continue
        pieces[-1].append((m.start(), m.end(), w))
    return [p for p in pieces if p]


def refine(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """The results worth keeping (see the module doc); pattern and list results pass unchanged."""
    names, words = gazetteer(), english_words()
    patterns = [r for r in results if not _from_model(r) and r.entity_type not in _NER]
    out: list[RecognizerResult] = []
    for r in results:
        span = text[r.start : r.end]
        if r.entity_type == "DATE_TIME" and _from_model(r):
            if _vague_time(span) or _DURATION.fullmatch(span.strip()):
                continue
            # "82 this morning" where 82 ends an IP address: the pattern's span wins.
            if any(
                p.start < r.end and r.start < p.end and not (p.start <= r.start and r.end <= p.end)
                for p in patterns
            ):
                continue
        if r.entity_type not in _NER or not _from_model(r):
            out.append(r)
            continue
        for toks in _pieces(text, r.start, r.end, words):
            while toks and (_fold(toks[0][2]) in ROLE_WORDS or _fold(toks[0][2]) in STOP_WORDS):
                toks.pop(0)
            if not toks:
                continue
            folded = [_fold(t[2]) for t in toks]
            # Words only: dropped unless a name list knows one of them and none is a role word
            # ("Rose Hall" stays, "Head Nurse" goes although Head is a surname somewhere).
            if all(f in words for f in folded) and (
                not any(f in names for f in folded) or any(f in ROLE_WORDS for f in folded)
            ):
                continue
            out.append(
                RecognizerResult(
                    r.entity_type,
                    toks[0][0],
                    toks[-1][1],
                    r.score,
                    r.analysis_explanation,
                    r.recognition_metadata,
                )
            )
    return out
