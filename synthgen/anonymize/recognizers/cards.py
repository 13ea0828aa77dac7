"""Payment card numbers of every brand and length (12-19 digits), checked with the Luhn sum.

Presidio's CreditCardRecognizer only knows some prefixes and lengths (no 2-series Mastercard,
15-digit JCB, Maestro, 12- or 19-digit cards). Any run of 12-19 digits, plain or in groups
separated by one space or dash, whose first digit is an issuer's (1-6) and whose Luhn sum is
valid is reported. One random digit run in ten passes the Luhn test, so the score stays below
the default threshold unless the run is at least 15 digits, grouped, or next to a card word.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

_CARD = re.compile(r"(?<![\w+.-])[1-6]\d{1,5}(?:[ -]?\d{1,6}){1,6}(?![\w.-]?\d)")
CONTEXT = (
    "card", "credit", "debit", "visa", "mastercard", "amex", "maestro", "jcb", "cc", "pan", "charged",
    "kort", "karte", "carte", "tarjeta", "carta",
)  # fmt: skip


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class LuhnCardRecognizer(EntityRecognizer):
    """CREDIT_CARD: 12-19 Luhn-valid digits (see the module doc for the scores)."""

    #: Every candidate starts with an issuer digit (see :mod:`synthgen.anonymize.analysis`).
    prefilter = re.compile(r"[1-6]")

    def __init__(self, language: str = "en") -> None:
        super().__init__(
            supported_entities=["CREDIT_CARD"], name="LuhnCardRecognizer",
            supported_language=language, context=list(CONTEXT),
        )  # fmt: skip

    def load(self) -> None:
        return None

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if "CREDIT_CARD" not in entities:
            return []
        out = []
        for m in _CARD.finditer(text):
            raw = m.group()
            digits = re.sub(r"\D", "", raw)
            if not 12 <= len(digits) <= 19 or not luhn_valid(digits) or len(set(digits)) < 3:
                continue
            seps = set(re.findall(r"[ -]", raw))
            if len(seps) > 1:
                continue
            grouped = bool(seps) and all(len(g) >= 3 for g in re.split(r"[ -]", raw))
            before = text[max(0, m.start() - 30) : m.start()].lower()
            near = any(w in before for w in CONTEXT)
            score = 0.3 + 0.2 * (len(digits) >= 15 or grouped) + 0.3 * near
            out.append(
                RecognizerResult(
                    "CREDIT_CARD",
                    m.start(),
                    m.end(),
                    min(score, 0.9),
                    analysis_explanation=None,  # type: ignore[arg-type]
                    recognition_metadata={
                        RecognizerResult.RECOGNIZER_NAME_KEY: "LuhnCardRecognizer",
                        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        # Context was applied here: Presidio's enhancer must not add it again.
                        RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY: True,
                    },
                )
            )
        return out
