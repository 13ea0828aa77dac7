"""Identifier numbers in free text: national IDs, record, account and plate numbers (``ID_NUMBER``).

Presidio's national-ID recognizers (Spanish NIF, Italian fiscal code, Polish PESEL, ...) are
registered for their own language only, and synthgen analyzes text as English, so a DNI or a
BSN in a Spanish or Dutch note was found only when spaCy happened to tag it ORGANIZATION. Two
kinds of evidence here, neither tied to a language:

- **A label before the number** (``DNI 95904764P``, ``Steuer-ID: 41 730 808 195``, ``MRN
  2492329``, ``Sort code 97-69-16``, ``reg PX54 LFX``): an identifier word of one of the
  languages listed, then the number in groups of capitals and digits with at least two digits.
  Without the label such strings are amounts, codes or dates, so they are not flagged.
- **A form with a check digit or a fixed layout, label or not**: a Spanish DNI or NIE (the
  mod-23 letter), an Italian codice fiscale, a UK National Insurance number.

Every match is an identifier of one person, so it is replaced (layout-preserving surrogate) and
its value goes into the leak index.
"""

from __future__ import annotations

import re
from typing import Any

from presidio_analyzer import Pattern, PatternRecognizer

ENTITY = "ID_NUMBER"

#: Identifier labels (case-insensitive; a label may be followed by "number", "no.", "nr", "#", ":").
LABELS = (
    # national and tax IDs
    "dni|nie|nif|nie/nif|cif|nuss|bsn|burgerservicenummer|sofinummer|pesel|nip|regon|"
    "steuer-?id|steuer-?idnr|steueridentifikationsnummer|steuernummer|idnr|"
    "personalausweis(?:nummer)?|ausweis(?:nummer)?|sozialversicherungsnummer|"
    "codice fiscale|cod\\. fiscale|c\\.f\\.|tessera sanitaria|"
    "insee|num[ée]ro de s[ée]curit[ée] sociale|s[ée]curit[ée] sociale|carte vitale|"
    "nino|ni number|ni no|national insurance(?: number| no)?|nhs(?: number| no)?|"
    "ssn|social security(?: number| no)?|ein|itin|"
    "cpf|cartão de cidadão|nif/nipc|"
    "id card|identity card|national id|passport|pasaporte|passeport|reisepass|paszport|"
    "numer dowodu|dowód osobisty|"
    # records and accounts
    "mrn|medical record(?: number| no)?|patient id|patient number|patient no|pt id|patientennummer|"
    "n[ºo°]? (?:de )?paciente|numéro patient|numero paziente|patiëntnummer|"
    "member id|membership(?: number| no)?|policy(?: number| no)?|insurance id|"
    "case (?:number|no|id|ref)|claim (?:number|no)|client (?:number|id)|customer (?:number|id)|"
    "account(?: number| no)|acct(?: no)?|a/c|sort code|routing(?: number)?|kontonummer|"
    "numéro de compte|número de cuenta|numero di conto|rekeningnummer|numer konta|"
    # vehicles
    "plate|licen[cs]e plate|number plate|reg(?:istration)?|vrm|kennzeichen|kenteken|"
    "immatricul[ée]e?|immatriculation|matr[íi]cula|targa|tablica|nr rej\\.?(?: pojazdu)?|rejestracja"
)
_AFTER = r"(?:\s?(?i:number|no\.?|nr\.?|num\.?|n[ºo°]|#|id))?\s?[:#=]?\s{0,2}"
#: Groups of capitals and digits, joined by one space, dash, dot or slash (at least two digits in
#: all: :meth:`IdNumberRecognizer.validate_result`); never a lower-case word after the number
#: (``DNI 95904764P válido``).
_TOKEN = r"(?=[A-Z0-9 ./-]*\d)[A-Z0-9]{1,12}(?:[ ./-][A-Z0-9]{1,12}){0,5}(?![\w-])"
_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _dni_ok(value: str) -> bool:
    """A Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): the letter checks."""
    v = re.sub(r"[\s.-]", "", value.upper())
    if re.fullmatch(r"[XYZ]\d{7}[A-Z]", v):
        v = str("XYZ".index(v[0])) + v[1:]
    return bool(re.fullmatch(r"\d{8}[A-Z]", v)) and _LETTERS[int(v[:8]) % 23] == v[8]


class IdNumberRecognizer(PatternRecognizer):
    """Labelled identifier numbers and checked national forms (module docstring)."""

    def __init__(self, language: str = "en", **kwargs: Any) -> None:
        patterns = [
            Pattern("labelled", rf"(?<=(?<![\w-])(?i:{LABELS}){_AFTER}){_TOKEN}", 0.6),
            Pattern("dni_nie", r"(?<![\w-])(?:[XYZ][ -]?\d{7}|\d{8})[ -]?[A-Z](?![\w-])", 0.6),
            Pattern(
                "codice_fiscale", r"(?<![\w-])[A-Z]{6}\d{2}[A-EHLMPRST]\d{2}[A-Z]\d{3}[A-Z](?![\w-])", 0.7
            ),
            Pattern(
                "uk_nino",
                r"(?<![\w-])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w-])",
                0.6,
            ),
        ]
        super().__init__(
            supported_entity=ENTITY, name="IdNumberRecognizer", supported_language=language,
            patterns=patterns, global_regex_flags=re.DOTALL | re.MULTILINE, **kwargs,
        )  # fmt: skip
        #: Every match holds two digits: the batch analyzer skips texts without one.
        self.prefilter = re.compile(r"\d")

    def validate_result(self, pattern_text: str) -> bool | None:
        if sum(c.isdigit() for c in pattern_text) < 2:
            return False  # a word or a single digit after a label ("account ABC", "reg 2")
        # Only the DNI/NIE shape carries a check letter; a labelled number of that shape must pass it too.
        compact = re.sub(r"[\s.-]", "", pattern_text.upper())
        if re.fullmatch(r"(?:[XYZ]\d{7}|\d{8})[A-Z]", compact):
            return _dni_ok(compact)
        return None
