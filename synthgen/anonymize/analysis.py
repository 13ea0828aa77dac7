"""The text path's analysis of a batch of documents: the results of Presidio's
``AnalyzerEngine.analyze`` for each document, without the per-document work that cannot change them.

``BatchAnalyzerEngine`` runs spaCy's ``nlp.pipe`` over the batch, then calls
``AnalyzerEngine.analyze`` once per document. Once spaCy is batched, that per-document call
costs as much again as spaCy (measured: ``python -m bench anonymize``, devset section). Four
parts of it are skipped or narrowed here, each without changing a result:

* **Lazy NLP artifacts.** Lemmas, token offsets and keywords (one vocabulary lookup per token)
  are only read by Presidio's context enhancer; they are computed on first use. Lemmas are the
  lower-cased tokens, what the engine's ``synthgen_lower_lemma`` pipe writes (that pipe is
  skipped in the batch).
* **Prefilters.** A regex recognizer whose every pattern needs a character the text lacks
  (an ``@`` for e-mail addresses, a digit for card, phone and SSN patterns, a digit or ``:`` for
  IP addresses) cannot match and is not run. A prefilter applies only to a recognizer whose
  patterns are exactly those it was written for (:data:`PREFILTERS`); a config that changes a
  recognizer's patterns turns its prefilter off.
* **Context enhancement** runs only on the results it can change (from a recognizer with
  context words, not yet boosted by their recognizer), not on deep copies of every result.
* The decision-process bookkeeping (explanations) is not built per result a second time.

``tests/anonymize/test_analysis.py`` checks that the results equal ``BatchAnalyzerEngine``'s on
the labelled dev set and that no prefilter drops a match.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MedicalLicenseRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)
from spacy.tokens import Doc

_ID = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
_NAME = RecognizerResult.RECOGNIZER_NAME_KEY
_BOOSTED = RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY

DIGIT = re.compile(r"\d")
#: Presidio recognizers (with their default patterns) and a regex every match of every pattern
#: must contain, found by reading each pattern (presidio-analyzer 2.2.366). ``\d`` also matches
#: non-ASCII digits, so it is implied by both ``\d`` and ``[0-9]`` in a pattern.
PREFILTERS: dict[type[PatternRecognizer], re.Pattern[str]] = {
    EmailRecognizer: re.compile("@"),  # a literal [@]
    IpRecognizer: re.compile(r"[\d:]"),  # IPv4 forms hold digits, IPv6 forms a colon
    CreditCardRecognizer: re.compile(r"\d{4}"),  # (4\d{3})|(5[0-5]\d{2})|... first group
    DateRecognizer: re.compile(r"\d[-/.]|[-/.]\d"),  # every form has a digit by a - / or .
    IbanRecognizer: re.compile(r"\d{2}"),  # [A-Z]{2}[0-9]{2}
    MedicalLicenseRecognizer: re.compile(r"\d{7}"),  # both forms end in \d{7}
    UsLicenseRecognizer: DIGIT,  # [A-Z][0-9]{1,12}, [A-Z][0-9][A-Z][0-9][A-Z], [0-9]{6,14}, ...
    UsPassportRecognizer: re.compile(r"\d{8}"),  # [0-9]{9} or [A-Z][0-9]{8}
    UsSsnRecognizer: re.compile(r"\d{3}"),  # each of the five forms has 3+ digits in a row
}


def prefilter_of(recognizer: EntityRecognizer) -> re.Pattern[str] | None:
    """The regex a text must match for ``recognizer`` to find anything in it, or ``None``.

    synthgen's recognizers declare theirs (a ``prefilter`` attribute); a Presidio recognizer
    gets one from :data:`PREFILTERS` only while its patterns (and deny list) are the class
    defaults, since the prefilter was checked against those."""
    own = getattr(recognizer, "prefilter", None)
    if isinstance(own, re.Pattern):
        return own
    for cls, needs in PREFILTERS.items():
        if type(recognizer) is cls:
            patterns = [p.regex for p in getattr(recognizer, "patterns", [])]
            default = [p.regex for p in getattr(cls, "PATTERNS", [])]
            if patterns == default and not getattr(recognizer, "deny_list", None):
                return needs
    return None


class LazyNlpArtifacts(NlpArtifacts):
    """Presidio's NLP artifacts of one spaCy document, with lemmas, token offsets and keywords
    computed on first use (only the context enhancer reads them)."""

    def __init__(
        self, doc: Doc, entities: list[Any], scores: list[float], engine: SpacyNlpEngine, language: str
    ):
        # NlpArtifacts.__init__ would compute the keywords at once: not called on purpose.
        self.tokens = doc
        self.entities = entities
        self.scores = scores if scores else [0.85] * len(entities)
        self.nlp_engine = engine
        self._language = language

    @cached_property
    def _token_table(self) -> tuple[list[str], list[int], list[int]]:
        lemmas, starts, ends = [], [], []
        for t in self.tokens:
            lemmas.append(t.lower_)
            starts.append(t.idx)
            ends.append(t.idx + len(t))
        return lemmas, starts, ends

    @property
    def lemmas(self) -> list[str]:  # type: ignore[override]
        return self._token_table[0]

    @property
    def tokens_indices(self) -> list[int]:  # type: ignore[override]
        return self._token_table[1]

    @property
    def token_ends(self) -> list[int]:
        """End offset of each token (increasing: spaCy tokens do not overlap and are not empty)."""
        return self._token_table[2]

    @cached_property
    def keywords(self) -> list[str]:  # type: ignore[override]
        return NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self._language)


@dataclass(frozen=True)
class _Step:
    recognizer: EntityRecognizer
    prefilter: re.Pattern[str] | None
    has_context: bool
    own_enhancer: bool


class BatchTextAnalyzer:
    """Presidio results for many documents at once (see the module doc).

    ``post`` is applied to each document's results, as a :class:`~synthgen.anonymize.engine.
    RefiningAnalyzerEngine` does in ``analyze``; by default it is taken from ``analyzer``."""

    def __init__(
        self,
        analyzer: AnalyzerEngine,
        *,
        language: str,
        entities: list[str],
        threshold: float,
        post: Callable[[str, list[RecognizerResult]], list[RecognizerResult]] | None = None,
    ) -> None:
        engine = analyzer.nlp_engine
        if not isinstance(engine, SpacyNlpEngine):
            raise TypeError("BatchTextAnalyzer needs Presidio's spaCy NLP engine")
        self.analyzer = analyzer
        self.engine = engine
        self.language = language
        self.entities = entities
        self.threshold = threshold
        self.post = post if post is not None else getattr(analyzer, "post_process", None)
        recognizers = analyzer.registry.get_recognizers(
            language=language, entities=entities, all_fields=False
        )
        for rec in recognizers:
            if not rec.is_loaded:
                rec.load()
                rec.is_loaded = True
        self.recognizers = recognizers
        self.steps = [
            _Step(
                rec,
                prefilter_of(rec),
                bool(rec.context),
                type(rec).enhance_using_context is not EntityRecognizer.enhance_using_context,
            )
            for rec in recognizers
        ]
        self.by_id = {rec.id: s for rec, s in zip(recognizers, self.steps, strict=True)}
        self.own_enhancers = any(s.own_enhancer for s in self.steps)
        nlp = engine.nlp[language]  # type: ignore[index]
        self.nlp = nlp
        # The lower-case lemma pipe only feeds NlpArtifacts.lemmas, computed lazily here.
        self.skip_pipes = [p for p in ("synthgen_lower_lemma",) if p in nlp.pipe_names]

    def analyze(
        self, texts: Iterable[str], *, batch_size: int = 256, n_process: int = 1
    ) -> list[list[RecognizerResult]]:
        """Results per text, in order, as ``AnalyzerEngine.analyze(text, entities=..., score_threshold=...)``
        (then ``post``) would give them."""
        texts = [str(t) for t in texts]
        docs = self.nlp.pipe(texts, batch_size=batch_size, n_process=n_process, disable=self.skip_pipes)
        # The input text, not doc.text (which joins every token again).
        return [self.analyze_doc(doc, text) for doc, text in zip(docs, texts, strict=True)]

    def artifacts(self, doc: Doc) -> LazyNlpArtifacts:
        engine = self.engine
        ents = engine._get_entities(doc)
        entities, scores = engine._get_updated_entities(ents, engine._get_scores_for_entities(doc))
        return LazyNlpArtifacts(doc, entities, scores, engine, self.language)

    def analyze_doc(self, doc: Doc, text: str | None = None) -> list[RecognizerResult]:
        """Results for one spaCy document (``text``: its text, when the caller has it)."""
        text = doc.text if text is None else text
        nlp_artifacts = self.artifacts(doc)
        results: list[RecognizerResult] = []
        for step in self.steps:
            if step.prefilter is not None and step.prefilter.search(text) is None:
                continue
            rec: EntityRecognizer = step.recognizer
            found = rec.analyze(text=text, entities=self.entities, nlp_artifacts=nlp_artifacts)
            if found:
                for r in found:
                    meta = r.recognition_metadata
                    if not meta:
                        r.recognition_metadata = meta = {}
                    meta.setdefault(_ID, rec.id)
                    meta.setdefault(_NAME, rec.name)  # type: ignore[has-type]
                results.extend(found)
        if results:
            results = self._enhance(text, results, nlp_artifacts)
        results = [r for r in results if r.score >= self.threshold]
        results = EntityRecognizer.remove_duplicates(results)
        for r in results:
            r.analysis_explanation = None  # type: ignore[assignment]  # as Presidio returns them
        if self.post is not None:
            results = self.post(text, results)
        return results

    def _enhance(
        self, text: str, results: list[RecognizerResult], nlp_artifacts: LazyNlpArtifacts
    ) -> list[RecognizerResult]:
        """Presidio's two context steps (recognizer-level, then the engine's enhancer), on the
        results they can change only. The order of ``results`` is Presidio's: by recognizer."""
        if self.own_enhancers:
            grouped: list[RecognizerResult] = []
            for step in self.steps:
                rid = step.recognizer.id
                mine = [r for r in results if r.recognition_metadata[_ID] == rid]
                if step.own_enhancer:
                    others = [r for r in results if r.recognition_metadata[_ID] != rid]
                    mine = step.recognizer.enhance_using_context(
                        text=text, raw_recognizer_results=mine, other_raw_recognizer_results=others,
                        nlp_artifacts=nlp_artifacts, context=None,
                    )  # fmt: skip
                grouped.extend(mine)
            results = grouped
        todo = [
            (i, found)
            for i, r in enumerate(results)
            if (found := self.by_id.get(r.recognition_metadata[_ID])) is not None
            and found.has_context
            and not r.recognition_metadata.get(_BOOSTED)
        ]
        if not todo:
            return results
        enhancer = self.analyzer.context_aware_enhancer
        if type(enhancer) is not LemmaContextAwareEnhancer:
            # Another enhancer: Presidio's call, on the results it may change.
            enhanced = enhancer.enhance_using_context(
                text=text, raw_results=[results[i] for i, _ in todo], nlp_artifacts=nlp_artifacts,
                recognizers=self.recognizers, context=None,
            )  # fmt: skip
            results = list(results)
            for (i, _), r in zip(todo, enhanced, strict=True):
                results[i] = r
            return results
        # LemmaContextAwareEnhancer.enhance_using_context, on results this batch owns (no deep
        # copy), with the token under a match found by bisection instead of a scan of the Doc.
        for i, owner in todo:
            r = results[i]
            index = bisect_right(nlp_artifacts.token_ends, r.start)
            if index >= len(nlp_artifacts.token_ends):
                raise ValueError(f"no token under the match at {r.start}")
            words = list(
                {
                    *enhancer._add_n_words_backward(
                        index, enhancer.context_prefix_count, nlp_artifacts.lemmas, nlp_artifacts.keywords
                    ),
                    *enhancer._add_n_words_forward(
                        index, enhancer.context_suffix_count, nlp_artifacts.lemmas, nlp_artifacts.keywords
                    ),
                }
            )
            word = enhancer._find_supportive_word_in_context(
                words, owner.recognizer.context, enhancer.context_matching_mode
            )
            if word != "":
                score = max(
                    r.score + enhancer.context_similarity_factor, enhancer.min_score_with_context_similarity
                )
                r.score = min(score, ContextAwareEnhancer.MAX_SCORE)
                if r.analysis_explanation is not None:
                    r.analysis_explanation.set_supportive_context_word(word)
                    r.analysis_explanation.set_improved_score(r.score)
        return results
