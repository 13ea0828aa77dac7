"""Decide, per column, whether it is a direct identifier, free text, or neither.

Order of evidence: the spec (``ColumnSchema.pii``, ``pii: none`` to clear a column), then the
column's name, then Presidio on a sample of distinct values. Only string columns are sampled:
numbers, dates and booleans are never flagged by their values (presidio-structured labels Adult's
fnlwgt and capital_gain DATE_TIME with threshold 0; we never ask Presidio about them). Only
direct-identifier entities count for a column (names, contacts, national ids): dates and places
are quasi-identifiers, kept for the model and protected by differential privacy.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

import polars as pl
from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine

from synthgen.anonymize.recognizers.cards import luhn_valid
from synthgen.anonymize.recognizers.patterns import STREET_ENDINGS, STREET_PREFIXES
from synthgen.anonymize.windows import shifted, windows
from synthgen.schema import ColumnType, TableSchema

Role = Literal["identifier", "text", "keep"]

# Normalised column name -> entity. EXACT names only match whole; SUFFIX names also match as the
# end of a longer name (patient_email, home_phone) because they cannot mean anything else.
_EXACT = {
    "name": "PERSON", "full_name": "PERSON", "fullname": "PERSON", "first_name": "PERSON",
    "firstname": "PERSON", "last_name": "PERSON", "lastname": "PERSON", "surname": "PERSON",
    "given_name": "PERSON", "family_name": "PERSON", "patient_name": "PERSON", "customer_name": "PERSON",
    "person_name": "PERSON", "contact_name": "PERSON", "middle_name": "PERSON",
    "address": "STREET_ADDRESS", "street": "STREET_ADDRESS", "street_address": "STREET_ADDRESS",
    "home_address": "STREET_ADDRESS", "address_line_1": "STREET_ADDRESS", "address1": "STREET_ADDRESS",
    "address_line1": "STREET_ADDRESS", "mail": "EMAIL_ADDRESS", "tel": "PHONE_NUMBER",
    "cell": "PHONE_NUMBER", "fax": "PHONE_NUMBER", "ip": "IP_ADDRESS", "iban": "IBAN_CODE",
}  # fmt: skip
_SUFFIX = {
    "email": "EMAIL_ADDRESS", "e_mail": "EMAIL_ADDRESS", "email_address": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER", "phone_number": "PHONE_NUMBER", "telephone": "PHONE_NUMBER",
    "mobile": "PHONE_NUMBER", "cellphone": "PHONE_NUMBER", "ssn": "US_SSN",
    "social_security_number": "US_SSN", "ip_address": "IP_ADDRESS", "credit_card": "CREDIT_CARD",
    "credit_card_number": "CREDIT_CARD", "card_number": "CREDIT_CARD", "passport_number": "US_PASSPORT",
    "first_name": "PERSON", "last_name": "PERSON", "full_name": "PERSON",
}  # fmt: skip
_NOT_PII = {"none", "false", "no", ""}
# A string column whose sampled values average this many characters and words is free text.
TEXT_MIN_CHARS = 40
TEXT_MIN_WORDS = 5
#: A value is "whole" identifier when identifier and place spans cover this share of its characters.
WHOLE_VALUE_SHARE = 0.7


def name_hint(column: str) -> str | None:
    """The entity a column's name announces, if any (``patient_email`` -> EMAIL_ADDRESS)."""
    n = re.sub(r"[^0-9a-z]+", "_", re.sub(r"([a-z])([A-Z])", r"\1_\2", column).lower()).strip("_")
    if n in _EXACT:
        return _EXACT[n]
    for hint, entity in _SUFFIX.items():
        if n == hint or n.endswith("_" + hint):
            return entity
    return None


@dataclass
class ColumnDecision:
    """What the anonymizer will do with one column, and why."""

    name: str
    role: Role
    entity: str | None = None
    #: spec (pii:, text_columns, operators) | name (column-name hint) | values (Presidio on sampled
    #: strings, or the shape of whole numbers) | schema (typed text) | auto_text | type
    source: str = "type"
    operator: str | None = None
    #: Share of sampled values detected as ``entity`` (Presidio evidence only).
    fraction: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _is_stringish(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Enum) or isinstance(dtype, pl.Categorical | pl.Enum)


def _chars(v: str) -> int:
    return sum(not c.isspace() for c in v) or 1


def _covered(v: str, results: list[Any]) -> int:
    pos = {i for r in results for i in range(r.start, r.end) if not v[i].isspace()}
    return len(pos)


def looks_like_text(values: list[str]) -> bool:
    """Long multi-word values: a notes or comments column."""
    if not values:
        return False
    chars = sum(len(v) for v in values) / len(values)
    words = sum(len(v.split()) for v in values) / len(values)
    return chars >= TEXT_MIN_CHARS and words >= TEXT_MIN_WORDS


def _numeric_shape(v: int) -> str | None:
    """The identifier a whole number looks like: a Luhn-valid card number (12-19 digits), an SSN
    (9 digits, zero-padded, a valid area/group/serial), or a phone number (10 digits in the
    North American plan's shape, or 11-15 digits a valid international number once a ``+`` is
    put in front). Timestamps in seconds or milliseconds start with 1 and fit neither plan."""
    if v < 0:
        return None
    d = str(v)
    if 12 <= len(d) <= 19 and d[0] in "23456" and luhn_valid(d):
        return "CREDIT_CARD"
    if len(d) <= 9 and v >= 1_000_000:
        p = d.zfill(9)
        if p[:3] not in ("000", "666") and p[0] != "9" and p[3:5] != "00" and p[5:] != "0000":
            return "US_SSN"
    if 10 <= len(d) <= 15 and _phone_digits(d):
        return "PHONE_NUMBER"
    return None


def _nanp(d: str) -> bool:
    """Ten digits in the North American plan's shape: area and exchange codes start with 2-9."""
    return len(d) == 10 and d[0] in "23456789" and d[3] in "23456789"


def _phone_digits(d: str) -> bool:
    if _nanp(d) or (len(d) == 11 and d[0] == "1" and _nanp(d[1:])):
        return True
    if len(d) == 10:
        return False
    import phonenumbers

    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse("+" + d, None)))
    except phonenumbers.NumberParseException:
        return False


def numeric_vote(values: list[int]) -> tuple[str | None, float]:
    """The identifier shape most sampled whole numbers have, and its share. Identifiers are
    nearly all distinct: a column with many repeats (counts, codes, amounts) never votes.
    SSNs stored as numbers lose leading zeros, but most keep all 9 digits (areas 100-899): a
    column of mostly 7-8 digit numbers is amounts or counters, not SSNs."""
    if not values or len(set(values)) < 0.8 * len(values):
        return None, 0.0
    votes = Counter(s for s in map(_numeric_shape, values) if s is not None)
    if not votes:
        return None, 0.0
    entity, count = votes.most_common(1)[0]
    if entity == "US_SSN" and sum(len(str(v)) == 9 for v in values) < 0.5 * len(values):
        return None, 0.0
    return entity, count / len(values)


def integers(s: pl.Series) -> list[int] | None:
    """The non-null values of an integer column, or of a float column holding only whole numbers."""
    vals = s.drop_nulls()
    if s.dtype.is_integer():
        return [int(v) for v in vals.to_list()]
    if s.dtype.is_float() and vals.len() and bool((vals == vals.round(0)).all()) and vals.abs().max() < 1e19:  # type: ignore[operator]
        return [int(v) for v in vals.to_list()]
    return None


# A postcode: digits (48337, 5833, 23286-0129, 9483-378, 02-931, 507 48) or the letter forms of
# the UK (W88 6FJ), Canada (K1A 0B6), the Netherlands (5907 JO), Ireland (F83 7022) and
# country-prefixed ones (H-2907); after a hyphen only when glued to a city (Nandyal-833788).
_POSTCODE = re.compile(
    r"(?:(?<![\w/:.-])|(?<=[a-z]-))(?:\d{4,8}(?:-\d{3,4})?|\d{2}-\d{3}|\d{3}-\d{4}|\d{3} \d{2}"
    r"|\d{4} ?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|[A-Z]\d{2} ?[A-Z\d]{4}"
    r"|[A-Z]{1,2}-\d{4,5})"
    r"(?![\w/:-])"
)
# A house number: 12, 12a, 3/4, 9b/1, 22-15, 54/1/4 (stair and door), 1-2-3 (Japan), 149.
_HOUSE_NUMBER = re.compile(r"(?<![\w/:.-])\d{1,5}[a-zA-Z]?(?:[/-]\d{1,5}[a-zA-Z]?){0,2}(?![\w/:-]|\.\d)")
_WORD = re.compile(r"[^\W\d_][\w'’.-]*")
_LETTERS = re.compile(r"[^\W\d_]{3,}")
_MONTHS = frozenset(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
     "sept", "oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday",
     "saturday", "sunday", "spring", "summer", "fall", "autumn", "winter"]
)  # fmt: skip
# A number with a unit (65815 km, 500 mg, 12 %): a measurement, not a house number or postcode.
_MEASURE = re.compile(
    r"\d\s?(?:km|kg|mg|ml|cm|mm|mi|lbs?|kwh|mph|kph|sq|pcs|%|°)(?![^\W\d_])|[$€£¥]\s?\d", re.I
)
#: Lower-case words an address line may hold (street words, particles); other lower-case words
#: of four letters or more are sentence words.
_ADDRESS_LOWER = frozenset(
    w.replace("\\.?", "").replace("\\.", "")
    for w in (
        STREET_PREFIXES + "|" + STREET_ENDINGS + "|ulica|utca|altos|bajos|straße|della|delle|degli|dello|"
        "dalla|nella|sulla|alla|int|piso|planta|puerta|bajo|dcha|izda|vorm|unter|ober|sankt|sous"
    ).split("|")
)


def address_line(value: str, *, street_found: bool = False) -> bool:
    """``value`` is one whole postal address in any country's layout: short, made of capitalised
    words, particles and numbers, with a house number and a postcode, or a street (``street_found``:
    the street recognizer matched) and at least one more comma- or line-separated part. Sentences
    (lower-case words), dates (months, days, seasons, times), measurements (``65815 km``) and bare
    numbers are not. Values all in lower case are not read as addresses (no capitals to tell a
    town from a sentence word)."""
    v = value.strip()
    if not 8 <= len(v) <= 160 or re.search(r"\d:\d", v) or _MEASURE.search(v):
        return False
    words = _WORD.findall(v)
    if len(words) > 20 or not any(w[0].isupper() and len(w) >= 3 for w in words):
        return False
    lower = [
        w for w in words if w[0].islower() and len(w) >= 4 and w.lower().rstrip(".") not in _ADDRESS_LOWER
    ]
    if len(lower) > max(1, len(words) // 5):
        return False
    if not street_found and any(w.lower().rstrip(".") in _MONTHS for w in words):
        return False
    codes = [m.span() for m in _POSTCODE.finditer(v)]
    numbers = [m.span() for m in _HOUSE_NUMBER.finditer(v)]
    if any(n[1] <= c[0] or c[1] <= n[0] for c in codes for n in numbers):
        return True
    return street_found and bool(numbers) and len([p for p in re.split(r"[,\n]", v) if p.strip()]) >= 2


def varied_names(values: list[str]) -> bool:
    """The values' words differ from value to value (streets, towns): a column of labelled
    numbers (``Building 4, Room 2034``, ``Flight AF 5901, Gate D21, Terminal 2``) has one wording
    for every value, the numbers and short codes aside. Counted as distinct wordings (words of
    three letters or more, in order), so one town's addresses with a few dozen streets pass."""
    wordings = {" ".join(_LETTERS.findall(v.lower())) for v in values}
    return len(wordings) >= max(4.0, 0.03 * len(values))


def presidio_vote(
    analyzer: AnalyzerEngine,
    values: list[str],
    *,
    entities: list[str],
    threshold: float,
    language: str = "en",
    batch_size: int = 256,
    max_chars: int = 100_000,
) -> tuple[str | None, float]:
    """The entity most sampled values *are* (a span covering >= 80% of the value), and its share.

    A value over ``max_chars`` characters is analysed in overlapping windows
    (:mod:`synthgen.anonymize.windows`): spaCy refuses a text over ``nlp.max_length``."""
    if not values:
        return None, 0.0
    pieces: list[tuple[int, int, str]] = []  # (value index, offset, piece)
    for i, v in enumerate(values):
        if len(v) > max_chars:
            pieces.extend((i, off, piece) for off, piece in windows(v, max_chars))
        else:
            pieces.append((i, 0, v))
    analysed = BatchAnalyzerEngine(analyzer).analyze_iterator(
        [p for _, _, p in pieces], language=language, batch_size=batch_size,
        entities=[*entities, "LOCATION"], score_threshold=threshold,
    )  # fmt: skip
    results: list[list[Any]] = [[] for _ in values]
    for (i, off, _), rs in zip(pieces, analysed, strict=True):
        results[i].extend(shifted(rs, off))
    votes: Counter[str] = Counter()
    shaped: list[str] = []  # values voted addresses by their layout alone
    for v, rs in zip(values, results, strict=True):
        core = len(v.strip()) or 1
        best = {r.entity_type for r in rs if (r.end - r.start) >= 0.8 * core and r.entity_type in entities}
        if not best and "STREET_ADDRESS" in entities:
            street = any(r.entity_type == "STREET_ADDRESS" for r in rs)
            if address_line(v, street_found=street):
                best = {"STREET_ADDRESS"}
                shaped.append(v)
        if not best:
            # A whole address or contact line: identifier spans (with the places in it) cover
            # most of the value, whatever its length ("12 Oak St, Springfield, IL 62704").
            direct = [r for r in rs if r.entity_type in entities]
            covered = _covered(v, rs)
            if (
                direct
                and covered >= WHOLE_VALUE_SHARE * _chars(v)
                and _covered(v, direct) >= 0.25 * _chars(v)
            ):
                best = {max(direct, key=lambda r: r.end - r.start).entity_type}
        votes.update(best)
    if shaped and not varied_names(shaped):
        votes["STREET_ADDRESS"] -= len(shaped)
    votes = +votes
    if not votes:
        return None, 0.0
    entity, count = votes.most_common(1)[0]
    return entity, count / len(values)


def detect_columns(
    sample: pl.DataFrame,
    *,
    schema: TableSchema | None,
    analyzer: AnalyzerEngine | None,
    column_entities: list[str],
    threshold: float,
    text_columns: list[str] = (),  # type: ignore[assignment]
    sample_size: int = 200,
    min_fraction: float = 0.6,
    name_hints: bool = True,
    auto_text: bool = True,
    language: str = "en",
    max_doc_chars: int = 100_000,
) -> dict[str, ColumnDecision]:
    """Decide each column's role from ``sample`` (a few thousand rows are plenty); values over
    ``max_doc_chars`` characters are analysed in overlapping windows of that size."""
    out: dict[str, ColumnDecision] = {}
    declared = {c.name: c for c in schema.columns} if schema is not None else {}
    for col in sample.columns:
        dtype = sample.schema[col]
        cs = declared.get(col)
        if cs is not None and cs.pii is not None:
            if cs.pii.strip().lower() in _NOT_PII:
                out[col] = ColumnDecision(col, "keep", source="spec")
            else:
                out[col] = ColumnDecision(col, "identifier", cs.pii.strip().upper(), source="spec")
            continue
        if col in text_columns:
            out[col] = ColumnDecision(col, "text", source="spec")
            continue
        hint = name_hint(col) if name_hints else None
        # A name says "identifier" for strings and integers (phone numbers stored as numbers),
        # never for floats, booleans or dates.
        if hint is not None and (_is_stringish(dtype) or dtype.is_integer()):
            out[col] = ColumnDecision(col, "identifier", hint, source="name")
            continue
        ints = integers(sample[col]) if dtype.is_numeric() else None
        if ints is not None:
            # Card numbers, SSNs and phones stored as numbers: checked by value, not by Presidio.
            entity, frac = numeric_vote(ints[: sample_size * 5])
            if entity is not None and frac >= min_fraction:
                out[col] = ColumnDecision(col, "identifier", entity, source="values", fraction=round(frac, 3))
            else:
                out[col] = ColumnDecision(col, "keep", source="type")
            continue
        if not _is_stringish(dtype):
            out[col] = ColumnDecision(col, "keep", source="type")
            continue
        values = sample[col].cast(pl.String).drop_nulls().unique(maintain_order=True).head(sample_size)
        vals = [v for v in values.to_list() if v.strip()]
        schema_text = cs is not None and cs.type == ColumnType.text
        if analyzer is not None and vals:
            # Values first: a column of whole addresses or names is an identifier however long
            # its values are and whatever the inferred schema calls it.
            entity, frac = presidio_vote(
                analyzer,
                vals,
                entities=column_entities,
                threshold=threshold,
                language=language,
                max_chars=max_doc_chars,
            )
            # Names come from a statistical model: also ask that they be many (a column of 12
            # distinct categories is not a list of people, whatever spaCy thinks of one value).
            distinct_ok = entity != "PERSON" or len(vals) >= min(sample_size, 20)
            if entity is not None and frac >= min_fraction and distinct_ok:
                out[col] = ColumnDecision(col, "identifier", entity, source="values", fraction=round(frac, 3))
                continue
        else:
            entity, frac = None, 0.0
        if schema_text:
            out[col] = ColumnDecision(col, "text", source="schema")
        elif auto_text and looks_like_text(vals):
            out[col] = ColumnDecision(col, "text", source="auto_text")
        elif analyzer is None or not vals:
            out[col] = ColumnDecision(col, "keep", source="type")
        else:
            out[col] = ColumnDecision(col, "keep", source="values", fraction=round(frac, 3))
    return out
