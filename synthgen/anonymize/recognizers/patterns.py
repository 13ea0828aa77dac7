"""Pattern recognizers for national street, phone and licence formats (Presidio ships no
English address recognizer and its phone recognizer rejects numbers that fail a region's
numbering plan, such as ``+1-663-...`` or ``001-481-...``).

Street suffixes come from Faker's English address providers (327 suffixes); the continental
forms are listed here: a street word before the number (``Via Roma 5``, ``ul. Długa 3``, ``rue
X`` after ``12,``) or a compound ending in a street word (``Hauptstraße 5``, ``Torvevej 12``,
``Urkurinkatu 1``). Weak patterns score below the threshold and count only next to a context
word (``address``, ``phone``, ``licence``...), which Presidio's context enhancer adds.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

_FLAGS = re.DOTALL | re.MULTILINE  # case-sensitive: capitals are evidence here

# A street word that comes before the name (Romance, Slavic, Czech, Portuguese forms).
STREET_PREFIXES = (
    "rue|avenue|av\\.?|bd|boulevard|chemin|allée|impasse|quai|route|cours|place|square|"
    "via|viale|piazza|piazzale|piazzetta|corso|largo|vicolo|contrada|strada|stradella|borgo|canale|rotonda|"
    "calle|avenida|avda\\.?|plaza|paseo|camino|carrer|ronda|travesía|rambla|urbanización|cañada|glorieta|"
    "pasaje|vía|callejón|acceso|"
    "rua|travessa|praça|alameda|estrada|ladeira|largo|beco|feira|favela|conjunto|área|vereda|viela|"
    "jardim|lagoa|quadra|residencial|setor|sítio|trecho|vale|via|núcleo|morro|loteamento|passarela|"
    "av|ul\\.|al\\.|pl\\.|os\\.|ulica|aleja|plac|osiedle|skwer|rondo|"
    "náměstí|nám\\.|třída|nábřeží|"
    "strada|calea|bulevardul|aleea|splaiul|piața|intrarea"
)
# A street word that ends a compound name (German, Nordic, Dutch, Finnish forms).
STREET_ENDINGS = (
    "straße|strasse|str\\.|gasse|weg|platz|allee|ring|damm|ufer|chaussee|steig|pfad|markt|berg|hof|"
    "vej|gade|allé|stræde|vænget|parken|plads|torv|gyde|boulevarden|"
    "gata|gatan|vägen|väg|gränd|torget|stigen|backen|plan|leden|"
    "veien|vei|veg|vegen|gaten|gata|stien|bakken|lia|svingen|"
    "tie|katu|kuja|polku|tori|kaari|rinne|raitti|väylä|puistikko|katu|"
    "laan|straat|gracht|singel|plein|kade|dreef|pad|lei|dijk|hof|park|weg|steeg|"
    "utca|út|körút|tér|köz"
)
NUMBER = r"\d{1,5}(?:\s?[a-zA-Z](?![\w]))?(?:\s?[/-]\s?\d{1,5}[a-zA-Z]?)?"
_CAP = r"[A-ZÀ-ÖØ-Þ\u0100-\u017F]"
#: Every phone, licence and house-number pattern holds a digit.
DIGIT = re.compile(r"\d")
_WORDCH = r"[\w'’.-]"


class ContextPatternRecognizer(PatternRecognizer):
    """A pattern recognizer whose weak matches are lifted by a context word in the 40 characters
    before them (``Phone: 45 87 24 51``). Checked here on the raw text, so it needs no lemmas."""

    BOOST = 0.35
    WINDOW = 40

    def __init__(self, *args: Any, prefilter: re.Pattern[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: A regex that every match needs to find in the text (``None``: no such test). The
        #: batch analyzer (:mod:`synthgen.anonymize.analysis`) skips texts that lack it.
        self.prefilter = prefilter
        self._words = re.compile(
            r"(?i)(?<![^\W\d_])(?:" + "|".join(map(re.escape, self.context or [])) + r")(?![^\W\d_])"
        )

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:  # fmt: skip
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        words = self._words
        for r in results:
            if words.search(text, max(0, r.start - self.WINDOW), r.start):
                r.score = min(1.0, max(r.score + self.BOOST, 0.5))
            if r.recognition_metadata is not None:
                r.recognition_metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
        return results


@lru_cache(maxsize=1)
def english_street_suffixes() -> str:
    import faker.providers.address.en_AU as au
    import faker.providers.address.en_GB as gb
    import faker.providers.address.en_US as us

    sfx: set[str] = set()
    for mod in (us, gb, au):
        sfx.update(getattr(mod.Provider, "street_suffixes", ()))
    sfx.update(["St", "Ave", "Rd", "Blvd", "Ln", "Dr", "Ct", "Pl", "Sq", "Pkwy", "Hwy", "Cir", "Trl", "Ter"])
    return "|".join(re.escape(s) for s in sorted(sfx, key=len, reverse=True))


def street_recognizer(language: str = "en") -> PatternRecognizer:
    en = english_street_suffixes()
    secondary = (
        r"(?:,?\s+(?:Apt\.?|Suite|Unit|Flat|Studio|#|Piso|Puerta|Piano|Esc\.|Int\.|Stiege|Tür)\s*\w+)*"
    )
    patterns = [
        # 12 Oak Street, 150 Richard Run Apt. 3, Flat 6 Hilary Ranch (en_US, en_GB, en_AU, ...)
        Pattern(
            "number_street_suffix",
            rf"\b\d{{1,6}}[A-Za-z]?\s+(?:{_CAP}{_WORDCH}*\s+){{1,4}}(?:{en})\b\.?{secondary}",
            0.6,
        ),
        Pattern(
            "flat_number_street",
            rf"\b(?:Flat|Apartment|Studio|Suite)\s+\w+\s+(?:{_CAP}{_WORDCH}*\s+){{1,3}}(?:{en})\b",
            0.6,
        ),
        # Via Roma 5, ul. Długa 3/4, Calle Mayor, 12, Rua X, 9
        Pattern(
            "prefix_street_number",
            rf"(?<!\w)(?i:{STREET_PREFIXES})\s+(?:[\w'’.-]+\s+){{0,5}}?[\w'’.-]+,?\s+{NUMBER}{secondary}(?!\w)",
            0.6,
        ),
        # 12, rue Éléonore Louis / 406 rue X / 10 boulevard Bonvin
        Pattern(
            "number_prefix_street",
            rf"\b\d{{1,5}}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|boulevard|bd|chemin|allée|impasse|quai|route|cours|place|via|calle)\s+(?:[\w'’.-]+)(?:\s+{_CAP}[\w'’.-]*|\s+(?:de|du|des|la|le|d'|del|di|da|dos|das)(?=\s)){{0,4}}",
            0.6,
        ),
        # Hauptstraße 5, Torvevej 12, Urkurinkatu 1, Jellinge Allé 3, Bäckgatan 640
        Pattern(
            "compound_street_number",
            # The lookahead (a word, spaces, a digit) is implied by the rest; it only spares the
            # regex engine from trying every ending inside every word (4x faster, same matches).
            rf"(?<!\w)(?:{_CAP}[\w'’.-]*\s+){{0,3}}(?=[\w'’.-]*\s+\d)[\w'’-]*(?i:{STREET_ENDINGS})\s+{NUMBER}{secondary}(?!\w)",
            0.6,
        ),
        # boulevard Bonvin 10 (prefix form with the number after the name, lower-case start)
        # Nad Zámečkem 945, Šůrova 9: capitalised words then a number; weak without context.
        Pattern(
            "capitalised_words_number",
            rf"(?<![\w.])(?:{_CAP}[\w'’-]+\s+){{0,3}}{_CAP}[\w'’-]+\s+\d{{1,4}}(?:/\d{{1,4}})?(?![\w/.:-])",
            0.3,
        ),
        # P.O. Box 123, PO Box 12, Postfach 12
        Pattern(
            "po_box",
            r"\b(?i:p\.?\s?o\.?\s?box|post\s?office\s?box|postfach|boîte postale|apartado(?: de correos)?)\s+\d{1,6}\b",
            0.7,
        ),
        # PSC 3982, Box 5979 / Unit 1907 Box 4833 (+ APO AE 12345) / USNS Smith (FPO AP 12345)
        Pattern(
            "military_box",
            r"\b(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{3,5}(?:,?\s+(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5})?\b",
            0.8,
        ),
        Pattern(
            "military_ship",
            r"\b(?:USNS|USNV|USS|USCGC)\s+[A-Z][a-z]+(?:,?\s+(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5})?\b",
            0.7,
        ),
        Pattern("apo_fpo", r"\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b", 0.7),
        # A house number in its own form field: "No.: 51", "Nr. 12", "House number: 3a"
        Pattern(
            "house_number_field",
            r"(?<=\b(?i:no|nr|house number|hausnummer|numéro|número|numero|num|husnummer)\.?:\s)\d{1,5}[a-zA-Z]?\b",
            0.6,
        ),
        Pattern(
            "street_field",
            r"(?<=\b(?i:street|straße|strasse|rue|calle|via|gade|gata|katu|ulica|rua)\s?:\s)[^\W\d_][^\n;|,]{2,60}",
            0.6,
        ),
    ]
    return ContextPatternRecognizer(
        supported_entity="STREET_ADDRESS", name="SynthgenStreetRecognizer", supported_language=language,
        patterns=patterns, global_regex_flags=_FLAGS,
        context=["address", "addr", "street", "lives", "live", "living", "home", "resides", "moved", "billing",
                 "mailing", "deliver", "delivery", "adresse", "anschrift", "dirección", "indirizzo", "endereço",
                 "adres"],
    )  # fmt: skip


#: A trunk-prefix phone must not be a date: 06/03/2023, 03/2021, 06-03-2023 (the demo's notes
#: read as phones, and their surrogates then showed up as "leaks" of dates in synthetic text).
_NOT_A_DATE = r"(?!\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?!\d))(?!\d{1,2}[/.-](?:19|20)\d{2}(?!\d))"


def phone_recognizer(language: str = "en") -> PatternRecognizer:
    ext = r"(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?"
    patterns = [
        # +49 30 1234567, +44(0)1632 960 482, 0049 ..., +1-663-286-8780, 001-481-539-0662
        Pattern(
            "international",
            rf"(?<![\w+])(?:\+|00)[1-9]\d{{0,2}}(?:[ .-]?\(0\))?[ .-]?\(?\d{{1,5}}\)?(?:[ .-]?\d{{2,5}}){{1,4}}{ext}(?![\w-])",
            0.6,
        ),
        # (310)392-4834x3526, 674-699-5252, 398.668.3078
        Pattern(
            "north_american",
            rf"(?<![\w+.-])(?:1[ .-])?\(?\d{{3}}\)?[ .-]?\d{{3}}[ .-]\d{{4}}{ext}(?![\w-])",
            0.5,
        ),
        # 0123 456789, 07 88 35 33 74, 0721 806 360 (a trunk prefix 0, national groupings)
        Pattern(
            "national_trunk",
            r"(?<![\w+./-])"
            + _NOT_A_DATE
            + r"0\d{1,4}(?:[ /-]?\(?\d{2,4}\)?)(?:[ -]?\d{2,4}){1,3}(?![\w/-])(?!\.\d)",
            0.45,
        ),
        # 01.42.68.53.00 (FR): five dotted pairs, which no date has (a date has at most three groups)
        Pattern("dotted_pairs", r"(?<![\w+./-])0[1-9](?:\.\d{2}){4}(?![\w.-])", 0.5),
        # 62 4272-8671 (BR)
        Pattern("br_mobile", r"(?<![\w+.-])\(?\d{2}\)?\s?\d{4,5}-\d{4}(?![\w-])", 0.5),
        # 727 783 533, 20 06 93 96, 45872451, 7834592451: digits alone, only with a phone word.
        Pattern("grouped_digits", r"(?<![\w+.-])\d{2,4}(?: \d{2,4}){2,4}(?![\w-])(?!\.\d)", 0.15),
        Pattern("plain_digits", r"(?<![\w+.-])\d{8,11}(?![\w-])(?!\.\d)", 0.15),
    ]
    return ContextPatternRecognizer(
        supported_entity="PHONE_NUMBER", name="SynthgenPhoneRecognizer", supported_language=language,
        patterns=patterns, global_regex_flags=_FLAGS, prefilter=DIGIT,
        context=["phone", "tel", "telephone", "call", "mobile", "cell", "ring", "fax", "contact", "callback",
                 "number", "tlf", "telefon", "puh", "tél", "téléphone", "teléfono", "telefono", "whatsapp", "sms",
                 "llamó", "llamar", "móvil", "portable", "appeler", "cellulare", "handy", "mobil"],
    )  # fmt: skip


def licence_recognizer(language: str = "en") -> PatternRecognizer:
    patterns = [
        Pattern("letter_groups", r"\b[A-Z]\d{3}-\d{4}-\d{4}\b", 0.6),
        Pattern("letters_digits", r"\b[A-Z]{1,2}\d{6,7}\b", 0.4),
        Pattern("nine_digits", r"(?<![\w-])\d{9}(?![\w-])", 0.1),
    ]
    return ContextPatternRecognizer(
        supported_entity="US_DRIVER_LICENSE", name="SynthgenLicenceRecognizer", supported_language=language,
        patterns=patterns, global_regex_flags=_FLAGS, prefilter=DIGIT,
        context=["driver", "license", "licence", "dl", "permit", "driving"],
    )  # fmt: skip
