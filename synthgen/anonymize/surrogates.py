"""Consistent, keyed surrogates and hashes.

A surrogate is a realistic fake value of the same entity type (a name for a name, a phone
number for a phone number). It is derived from ``HMAC-SHA256(key, entity || value)``: the same
input gives the same surrogate everywhere in a pipeline (joins and repeated mentions stay
consistent), and without the key the mapping cannot be recomputed or inverted by brute force
over likely inputs. Different keys give unrelated surrogates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import random
import re
import unicodedata
from collections.abc import Callable

from faker import Faker

from synthgen.errors import AnonymizeError

MIN_SECRET_BYTES = 16


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A sub-key for one purpose, so that surrogates, hashes and the leak index never share a key."""
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise AnonymizeError(
            f"the anonymization secret must be at least {MIN_SECRET_BYTES} bytes; "
            "set a longer pipeline secret (for example 32 random bytes)"
        )
    return hmac.new(bytes(secret), f"synthgen/anonymize/{purpose}".encode(), hashlib.sha256).digest()


def normalize(value: str) -> str:
    """Case-, width- and whitespace-insensitive form of a value (NFKC, casefold, single spaces)."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def keyed_hash(key: bytes, value: str, *, length: int = 32) -> str:
    """Hex HMAC-SHA256 of ``value`` under ``key``, cut to ``length`` hex characters (128 bits)."""
    return hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:length]


_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
    "November", "December",
)  # fmt: skip
_DATE_FORMATS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], dt.date], Callable[[dt.date], str]]] = [
    (
        re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
        lambda m: dt.date(int(m[1]), int(m[2]), int(m[3])),
        lambda d: d.isoformat(),
    ),
    (
        re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$"),
        lambda m: dt.date(int(m[3]), int(m[1]), int(m[2])),
        lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",
    ),
    (
        re.compile(r"^([A-Z][a-z]+) (\d{1,2}), (\d{4})$"),
        lambda m: dt.date(int(m[3]), _month(m[1]), int(m[2])),
        lambda d: f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
    ),
    (
        re.compile(r"^(\d{1,2}) ([A-Z][a-z]{2,8})\.? (\d{4})$"),
        lambda m: dt.date(int(m[3]), _month(m[2]), int(m[1])),
        lambda d: f"{d.day} {_MONTHS[d.month - 1][:3]} {d.year}",
    ),
]


def _month(name: str) -> int:
    for i, m in enumerate(_MONTHS, 1):
        if m.lower().startswith(name.lower()[:3]):
            return i
    raise ValueError(name)


class Surrogates:
    """Consistent keyed surrogates per entity type.

    ``avoid`` (optional) says whether a candidate is itself a real identifier (for example,
    membership in the leak index); such candidates are redrawn so that a surrogate never
    re-introduces a real person's name or number.
    """

    def __init__(
        self, secret: bytes, *, avoid: Callable[[str], bool] | None = None, cache_size: int = 200_000
    ):
        self._key = derive_key(secret, "surrogate")
        self._avoid = avoid
        self._cache: dict[tuple[str, str], str] = {}
        self._cache_size = cache_size
        self._faker = Faker("en_US")

    def __call__(self, entity: str, value: str) -> str:
        key = (entity, value)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = value
        for attempt in range(8):
            digest = hmac.new(
                self._key, f"{entity}\x00{normalize(value)}\x00{attempt}".encode(), hashlib.sha256
            ).digest()
            out = self._make(entity, value, digest)
            if out != value and not (self._avoid and self._avoid(out)):
                break
        if len(self._cache) >= self._cache_size:
            self._cache.clear()  # bounded memory on long streams; consistency holds (pure function)
        self._cache[key] = out
        return out

    def _make(self, entity: str, value: str, digest: bytes) -> str:
        seed = int.from_bytes(digest[:8], "big")
        f = self._faker
        f.seed_instance(seed)
        if entity == "PERSON":
            n_tokens = len(value.split())
            if n_tokens <= 1:
                return str(f.last_name())
            if n_tokens == 2:
                return f"{f.first_name()} {f.last_name()}"
            return f"{f.first_name()} {f.first_name()} {f.last_name()}"
        if entity == "EMAIL_ADDRESS":
            return f"{f.first_name().lower()}.{f.last_name().lower()}{seed % 97}@{f.free_email_domain()}"
        if entity == "PHONE_NUMBER":
            return _digits_like(value, digest, keep_prefix=value.lstrip().startswith("+"))
        if entity == "US_SSN":
            return str(f.ssn())
        if entity == "STREET_ADDRESS":
            return str(f.street_address())
        if entity == "LOCATION":
            return str(f.city())
        if entity == "DATE_TIME":
            return _shift_date(value, digest, f)
        if entity == "CREDIT_CARD":
            return str(f.credit_card_number())
        if entity == "IBAN_CODE":
            return str(f.iban())
        if entity == "IP_ADDRESS":
            return str(f.ipv6() if ":" in value else f.ipv4())
        if entity == "URL":
            return str(f.url())
        return _chars_like(value, digest)


def _stream(digest: bytes) -> random.Random:
    return random.Random(int.from_bytes(digest, "big"))


def _digits_like(value: str, digest: bytes, *, keep_prefix: bool) -> str:
    """Same layout, new digits (an area code / exchange never starts with 0 or 1)."""
    rnd = _stream(digest)
    out: list[str] = []
    seen_digits = 0
    skip = 0
    if keep_prefix:  # keep "+1" and the like: the country says little about the person
        m = re.match(r"^\s*\+\d{1,3}", value)
        if m:
            out.append(m.group(0))
            skip = m.end()
    for ch in value[skip:]:
        if ch.isdigit():
            first_of_group = seen_digits in (0, 3)
            out.append(str(rnd.randint(2, 9) if first_of_group else rnd.randint(0, 9)))
            seen_digits += 1
        else:
            out.append(ch)
    return "".join(out)


def _chars_like(value: str, digest: bytes) -> str:
    """Format-preserving replacement: digits by digits, letters by letters of the same case."""
    rnd = _stream(digest)
    out = []
    for ch in value:
        if ch.isdigit():
            out.append(str(rnd.randint(0, 9)))
        elif ch.isalpha():
            c = chr(rnd.randint(0, 25) + ord("a"))
            out.append(c.upper() if ch.isupper() else c)
        else:
            out.append(ch)
    return "".join(out)


_MONTH_WORD = re.compile(
    r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(mon|tues|wednes|thurs|fri|satur|sun)day\b",
    re.IGNORECASE,
)


def _shift_date(value: str, digest: bytes, f: Faker) -> str:
    """A date in the same format, shifted by a keyed offset of 30-365 days either way.

    Relative expressions with no digit, month or weekday ("today", "last week") are kept: they
    point at no calendar date, and replacing them reads badly.
    """
    s = value.strip()
    if not any(ch.isdigit() for ch in s) and not _MONTH_WORD.search(s):
        return value
    days = (int.from_bytes(digest[8:12], "big") % 336 + 30) * (1 if digest[12] & 1 else -1)
    for pattern, parse, fmt in _DATE_FORMATS:
        m = pattern.match(s)
        if m:
            try:
                return fmt(parse(m) + dt.timedelta(days=days))
            except (ValueError, OverflowError):
                break
    if re.fullmatch(r"(19|20)\d{2}", s):  # a bare year moves 1-6 years
        return str(int(s) + (digest[13] % 6 + 1) * (1 if digest[12] & 1 else -1))
    return str(f.date(pattern="%B %d, %Y"))
