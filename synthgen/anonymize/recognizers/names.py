"""Person names beyond what the small spaCy model finds: a gazetteer of first and last names from
Faker's person providers (86 locales, ~56k names, shipped in the package, read offline).

The gazetteer is evidence, not a verdict, because many names are also words ("Will", "Hall"):

* a run of two or more gazetteer tokens ("Mária Bartošová", "liliane chapuis", "SMITH, ANNA") is
  a name in any case;
* a single capitalised token is a name when it is in the gazetteer and not a common English
  word (a first name opening a sentence, a surname alone, a signature line);
* a single lower-case token is a name only when it is in the gazetteer, is no English word, and
  stands where people's names stand in chat and notes: first in a line before ``:`` or ``said``,
  after a greeting, or before ``said``/``says``;
* a span spaCy labels ORG or NORP becomes PERSON when every word of it is a gazetteer name
  (the small model calls many foreign names organisations).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import unicodedata
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# Words that look like names to a model or a list but are roles, departments or documents.
ROLE_WORDS = frozenset(
    """patient patients nurse nurses doctor dr physician surgeon pharmacy pharmacist reception billing
    radiology emergency discharge summary follow-up follow up lab labs results result ward admin
    administrator security triage support customer service services team lead head senior junior chief
    officer manager director operations office case worker social physiotherapist engineer account staff
    clinic hospital department dept unit desk agent caller client user guest visitor applicant holder
    card name surname given street address addr city town phone tel email mail dear hi hello hey thanks
    regards kind best sincerely cheers from to cc subject re fw fwd dob sn mr mrs ms miss mx sir madam
    brother sister mother father wife husband daughter son friend cousin aunt uncle partner neighbour
    neighbor caregiver parent child baby mom dad alt pt hx said says told asked wrote sent called
    replied thx thanks lol ok okay yes yeah sure ping hey meet met moved lives call spoke""".split()  # noqa: SIM905
) | frozenset(
    # Titles and role nouns that lead a name in other languages (case-folded; accented forms too): trimmed
    # off a PERSON span like "mr", so "Herr Schmidt" redacts Schmidt and leaves the title.
    """herr frau hr fr fraulein mme mmes mlle monsieur messieurs mademoiselle madame mr. sr sra srta
    senor senora senorita senhor senhora dra dr. sig sigra signor signora signorina dott dottore
    dottoressa doktor prof professor professora professeur mevrouw mevr meneer dhr paciente patiente
    patientin enfermera enfermero infirmiere infirmier medico arzt arztin señor señora señorita fräulein
    infirmière médico ärztin doña""".split()  # noqa: SIM905
)
MONTHS_DAYS = frozenset(
    """january february march april may june july august september october november december monday tuesday
    wednesday thursday friday saturday sunday""".split()  # noqa: SIM905
)
_TOKEN = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")
_NAME_LEAD = re.compile(
    r"(?:^|\n)\s*[<\[(]?$|(?:\b(?:hi|hello|hey|dear|thanks|thx|cc|ping|ask|tell|with|from|by|to|for)[ ,]+)$",
    re.IGNORECASE,
)
_NAME_TRAIL = re.compile(
    r"^\s*(?:[:>\])]|said\b|says\b|wrote\b|asked\b|is\b|was\b|will\b|and\b|,)", re.IGNORECASE
)


_JOIN = re.compile(r"[ \t]+|\.[ \t]*|[ \t]+(?:van|von|de|da|di|du|del|der|den|dos|das|le|la|ter|ten)[ \t]+")


_INITIAL = re.compile(r"(?<![\w.])[A-Z]\.[ \t]?$")


def _fold(word: str) -> str:
    return unicodedata.normalize("NFKC", word).casefold()


def _collect(package: str, attrs: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    pkg = importlib.import_module(package)
    for mod_info in pkgutil.iter_modules(pkg.__path__):
        try:
            mod = importlib.import_module(f"{package}.{mod_info.name}")
        except ImportError:  # pragma: no cover - a locale module needing an optional package
            continue
        provider = getattr(mod, "Provider", None)
        for attr in attrs:
            v = provider.__dict__.get(attr) if provider is not None else None
            if isinstance(v, dict | list | tuple | set | frozenset):
                out.update(str(k) for k in v)
    return out


@lru_cache(maxsize=1)
def gazetteer() -> frozenset[str]:
    """Case-folded first and last names of every Faker locale (built once, ~1.5 s)."""
    names = _collect(
        "faker.providers.person",
        ("first_names", "first_names_male", "first_names_female", "first_names_nonbinary",
         "last_names", "last_names_male", "last_names_female"),
    )  # fmt: skip
    folded = set()
    for n in names:
        for part in _TOKEN.findall(n):
            if len(part) >= 2:
                folded.add(_fold(part))
    return frozenset(folded)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Common English words (Faker's English lorem, company and job vocabularies, spaCy's stop
    words, role words): a name-list hit on one of these alone is not a name."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words: set[str] = set()
    for package, attrs in (
        ("faker.providers.lorem.en_US", ("word_list",)),
        ("faker.providers.company.en_US", ("catch_phrase_words", "bsWords")),
        ("faker.providers.job.en_US", ("jobs",)),
        ("faker.providers.color.en_US", ("all_colors",)),
    ):
        provider = importlib.import_module(package).Provider
        for attr in attrs:
            v = provider.__dict__.get(attr) or getattr(provider, attr, None)
            for item in _flatten(v):
                words.update(_fold(w) for w in _TOKEN.findall(item))
    return frozenset(words | set(STOP_WORDS) | ROLE_WORDS | MONTHS_DAYS)


def _flatten(v: object) -> list[str]:
    if isinstance(v, str):
        return [v]
    if isinstance(v, dict):
        return [str(k) for k in v]
    if isinstance(v, list | tuple | set | frozenset):
        return [s for item in v for s in _flatten(item)]
    return []


class GazetteerNameRecognizer(EntityRecognizer):
    """PERSON spans from the name gazetteer and from ORG/NORP spans made of names (see module doc)."""

    def __init__(self, language: str = "en", *, score: float = 0.6) -> None:
        self.score = score
        super().__init__(
            supported_entities=["PERSON"], name="GazetteerNameRecognizer", supported_language=language
        )

    def load(self) -> None:
        self.names = gazetteer()
        self.words = english_words()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if "PERSON" not in entities:
            return []
        out: list[RecognizerResult] = []
        toks = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
        i = 0
        while i < len(toks):
            if not self._is_name(toks[i][2]):
                i += 1
                continue
            # A run of name tokens separated only by spaces, a comma or an initial's dot.
            j = i
            while (
                j + 1 < len(toks)
                and self._is_name(toks[j + 1][2])
                and _JOIN.fullmatch(text[toks[j][1] : toks[j + 1][0]])
            ):
                j += 1
            # An unknown capitalised word after a name is its surname ("Artur Błażejczak").
            while (
                j + 1 < len(toks)
                and j - i < 3
                and self._capitalised_word(toks[j + 1][2])
                and toks[j][2][:1].isupper()
                and re.fullmatch(r"[ \t]+", text[toks[j][1] : toks[j + 1][0]])
            ):
                j += 1
            self._emit(text, toks[i : j + 1], out)
            i = j + 1
        if nlp_artifacts is not None:
            for ent in nlp_artifacts.entities:
                if ent.label_ in ("ORGANIZATION", "NRP", "ORG", "NORP"):
                    words = _TOKEN.findall(ent.text)
                    if words and all(_fold(w) in self.names for w in words):
                        out.append(self._result(ent.start_char, ent.end_char, self.score, "org_norp_names"))
        return out

    def _is_name(self, tok: str) -> bool:
        f = _fold(tok)
        # A lower-case common word ("said", "will", "may") is a word, whatever the name lists say.
        return len(tok) >= 2 and f in self.names and not (tok.islower() and f in self.words)

    def _capitalised_word(self, tok: str) -> bool:
        return len(tok) >= 2 and tok[0].isupper() and _fold(tok) not in self.words

    def _emit(self, text: str, run: list[tuple[int, int, str]], out: list[RecognizerResult]) -> None:
        start, end = run[0][0], run[-1][1]
        initial = _INITIAL.search(text, max(0, start - 4), start)
        if initial is not None and run[0][2][:1].isupper():
            start = initial.start()  # "J. Cooke": the initial belongs to the name
        common = sum(_fold(t[2]) in self.words for t in run)
        if common == len(run):
            return  # "May Will", "Hall Park": words first
        lower = all(t[2].islower() for t in run)
        if len(run) >= 2:
            if not lower or common == 0 or self._name_position(text, start, end):
                out.append(self._result(start, end, self.score + 0.1, "name_run"))
            return
        tok = run[0][2]
        if not lower:
            out.append(self._result(start, end, self.score - 0.1, "single_name"))
        elif len(tok) >= 3 and self._name_position(text, start, end):
            out.append(self._result(start, end, self.score - 0.1, "lower_name"))

    @staticmethod
    def _name_position(text: str, start: int, end: int) -> bool:
        before = text[max(0, start - 12) : start]
        after = text[end : end + 8]
        return bool(_NAME_LEAD.search(before) or _NAME_TRAIL.match(after))

    def _result(self, start: int, end: int, score: float, how: str) -> RecognizerResult:
        return RecognizerResult(
            "PERSON",
            start,
            end,
            score,
            analysis_explanation=None,  # type: ignore[arg-type]
            recognition_metadata={
                RecognizerResult.RECOGNIZER_NAME_KEY: "GazetteerNameRecognizer",
                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                "synthgen_rule": how,
            },
        )
