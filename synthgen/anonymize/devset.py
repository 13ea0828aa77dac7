"""A seeded generator of labelled multi-locale text, for measuring PII recall and precision.

Each record is ``{"text": ..., "spans": [{"start", "end", "type"}]}`` (character offsets, end
exclusive), the format ``synthgen eval-pii`` reads. The text comes from many registers (clinical
notes, e-mails, chat, forms, records with separators, letters), many Faker locales, and holds the
identifier shapes real data has: names in every case (lower-case, single tokens, non-ASCII,
"Surname, First"), national street formats (street then number, ``ul.``, ``-vej``, ``rue``),
PO and military boxes, national and ``+country`` phone formats, Luhn-valid cards of every brand
and length, IBANs, IP addresses, SSNs and driver licences, plus hard negatives: vague time
phrases, capitalised common nouns, job titles.

Two splits: ``dev`` (tune on it) and ``test`` (measure on it, never tune). They use different
seeds, and one template in five is used only by ``test``, so test figures also say how much the
tuning depends on the dev templates' wording. Company names are labelled ORGANIZATION, city and
country names LOCATION and dates DATE_TIME; none of those is a direct identifier.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from faker import Faker

LOCALES = [
    "en_US", "en_US", "en_US", "en_GB", "en_IE", "en_CA", "en_AU", "de_DE", "de_AT", "fr_FR", "fr_CH",
    "it_IT", "es_ES", "pl_PL", "da_DK", "no_NO", "fi_FI", "nl_NL", "pt_BR", "pt_PT", "sv_SE", "cs_CZ",
]  # fmt: skip
SPLIT_SEEDS = {"dev": 1_000, "test": 2_000}
CARD_TYPES = ["amex", "diners", "discover", "jcb15", "jcb16", "maestro", "mastercard", "visa13", "visa16", "visa19"]  # fmt: skip

# Hard negatives: phrases that look like entities to a model but identify nobody.
VAGUE_TIMES = [
    "this morning", "last night", "next week", "a few months ago", "yesterday evening", "recently",
    "in the afternoon", "for two weeks", "every day", "over the weekend", "later today", "soon",
    "twice a day", "at night", "a while back", "earlier this year", "tonight", "after lunch",
]  # fmt: skip
COMMON_CAPS = [
    "Pharmacy", "Patient", "Nurse", "Reception", "Billing", "Radiology", "Customer Service", "Support",
    "Emergency", "Discharge Summary", "Follow-Up", "Lab Results", "Ward", "Admin", "Security", "Triage",
]  # fmt: skip
TITLES = [
    "Head Nurse", "Chief Medical Officer", "Account Manager", "Senior Engineer", "Team Lead",
    "Office Manager", "Director of Operations", "Case Worker", "Physiotherapist", "Social Worker",
]  # fmt: skip


@lru_cache(maxsize=64)
def _locale_faker(locale: str) -> Faker:
    return Faker(locale)


def _faker(locale: str, seed: int) -> Faker:
    # Reseeded at every use: a record's values depend on its seed only, not on what came before.
    f = _locale_faker(locale)
    f.seed_instance(seed)
    return f


class _Doc:
    """Builds one text and its gold spans from literal pieces and labelled pieces."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.spans: list[dict[str, Any]] = []
        self.pos = 0

    def lit(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)

    def ent(self, s: str, typ: str) -> None:
        stripped = s.strip()
        lead = len(s) - len(s.lstrip())
        self.lit(s[:lead])
        if stripped:
            self.spans.append({"start": self.pos, "end": self.pos + len(stripped), "type": typ})
        self.lit(stripped)
        self.lit(s[lead + len(stripped) :])

    def record(self) -> dict[str, Any]:
        return {"text": "".join(self.parts), "spans": self.spans}


class _Values:
    """Entity values for one document, drawn from one locale (some from en_US, such as SSNs)."""

    def __init__(self, rng: random.Random, locale: str, seed: int) -> None:
        self.rng = rng
        self.f = _faker(locale, seed)
        self.us = self.f if locale == "en_US" else _faker("en_US", seed + 1)
        self.locale = locale

    def person(self, style: str | None = None) -> str:
        f, r = self.f, self.rng
        first, last = f.first_name(), f.last_name()
        style = (
            style
            or r.choices(
                ["full", "full", "full", "first", "last", "lower", "upper", "comma", "initial", "middle"],
                k=1,
            )[0]
        )
        if style == "first":
            return first
        if style == "last":
            return last
        if style == "lower":
            return r.choice([f"{first} {last}", first, last]).lower()
        if style == "upper":
            return f"{first} {last}".upper()
        if style == "comma":
            return f"{last}, {first}"
        if style == "initial":
            return f"{first[0]}. {last}"
        if style == "middle":
            return f"{first} {f.first_name()} {last}"
        return f"{first} {last}"

    def phone(self) -> str:
        r = self.rng
        if self.locale == "en_US" or r.random() < 0.15:
            return (
                self.us.phone_number()
                if r.random() < 0.7
                else r.choice(
                    [f"+1-{self.us.numerify('###-###-####')}", f"001-{self.us.numerify('###-###-####')}"]
                )
            )
        num = self.f.phone_number()
        if r.random() < 0.3:
            # The same number in E.164 or international form, when it parses.
            import phonenumbers

            try:
                p = phonenumbers.parse(num, self.locale.split("_")[1].replace("UK", "GB"))
                fmt = r.choice(
                    [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
                )
                num = phonenumbers.format_number(p, fmt)
            except phonenumbers.NumberParseException:
                pass
        return num

    def card(self) -> str:
        r = self.rng
        digits = self.us.credit_card_number(r.choice(CARD_TYPES))
        sep = r.choice(["", "", " ", "-"])
        if sep and len(digits) in (15, 14) and r.random() < 0.5:
            groups = [digits[:4], digits[4:10], digits[10:]]
        else:
            groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
        return sep.join(groups) if sep else digits

    def iban(self) -> str:
        try:
            code = self.f.iban()
        except AttributeError:
            code = self.us.iban()
        if self.rng.random() < 0.4:
            code = " ".join(code[i : i + 4] for i in range(0, len(code), 4))
        return code

    def ip(self) -> str:
        return self.us.ipv4_public() if self.rng.random() < 0.8 else self.us.ipv6()

    def ssn(self) -> str:
        s = self.us.ssn()
        return s if self.rng.random() < 0.85 else s.replace("-", " ")

    def licence(self) -> str:
        r = self.rng
        return r.choice(
            [
                self.us.bothify("?#######").upper(),
                self.us.bothify("?###-####-####").upper(),
                self.us.numerify("#########"),
                self.us.bothify("??######").upper(),
            ]
        )

    def street(self) -> str:
        r, f = self.rng, self.f
        if self.locale == "en_US" and r.random() < 0.25:
            return r.choice(
                [
                    f"P.O. Box {r.randint(10, 99999)}",
                    f"PO Box {r.randint(10, 9999)}",
                    self.us.military_apo(),
                    self.us.military_dpo(),
                    f"{self.us.military_ship()} {self.us.last_name()}",
                ]
            )
        s = f.street_address()
        if self.locale.startswith("en") and r.random() < 0.2:
            s = f"{s} {f.secondary_address()}" if hasattr(f, "secondary_address") else s
        return s

    def city(self) -> str:
        return self.f.city()

    def date(self) -> str:
        d = self.f.date_between("-5y", "today")
        return self.rng.choice(
            [d.strftime("%d.%m.%Y"), d.strftime("%Y-%m-%d"), d.strftime("%m/%d/%Y"), d.strftime("%d %B %Y")]
        )

    def email(self, name: str | None = None) -> str:
        if name and self.rng.random() < 0.5:
            user = re.sub(r"[^a-z0-9]+", ".", name.lower().encode("ascii", "ignore").decode()).strip(".")
            if user:
                return f"{user}@{self.f.free_email_domain()}"
        return self.f.email()

    def company(self) -> str:
        return self.f.company()


# A template is a string with slots: {PERSON}, {PERSON:first|last|lower|upper|comma|full},
# {EMAIL}, {PHONE}, {CARD}, {IBAN}, {IP}, {SSN}, {DL}, {STREET}, {CITY}, {DATE}, {ORG},
# {VAGUE} (a vague time phrase, unlabelled), {CAPS} (a capitalised common noun, unlabelled),
# {TITLE} (a job title, unlabelled), {NUM} (an unlabelled small number).
TEMPLATES: list[tuple[str, str]] = [
    ("clinical", "Pt {PERSON} seen {VAGUE} for follow-up. Lives at {STREET}, {CITY}. Contact: {PHONE}."),
    (
        "clinical",
        "{DATE}: {PERSON:first} reports chest pain since {VAGUE}. Daughter {PERSON:full} to call back on {PHONE}.",
    ),
    (
        "clinical",
        "Referred by Dr. {PERSON:last} ({TITLE}). Patient {PERSON} (SSN {SSN}) admitted {VAGUE}, {CAPS} notified.",
    ),
    ("clinical", "discharge summary - {PERSON:lower}, dob {DATE}, addr {STREET} {CITY}, tel {PHONE}"),
    ("clinical", "{CAPS}: {PERSON:upper} needs labs {VAGUE}. Insurance card on file, billing to {CARD}."),
    (
        "clinical",
        "Spoke with {PERSON:first} {VAGUE}; wife {PERSON:first} asked about {CAPS}. Next visit {DATE}.",
    ),
    (
        "email",
        "From: {PERSON} <{EMAIL}>\nTo: {EMAIL}\nSubject: invoice\n\nHi {PERSON:first},\nplease wire the balance to {IBAN} by {DATE}.\nThanks, {PERSON:first}",
    ),
    (
        "email",
        "Dear {PERSON:full},\n\nYour order ships {VAGUE} to {STREET}, {CITY}. Questions? Reply to {EMAIL} or call {PHONE}.\n\nKind regards,\n{PERSON}\n{TITLE}, {ORG}",
    ),
    (
        "email",
        "hello {PERSON:lower}, the login from {IP} {VAGUE} was flagged by {CAPS}. If it was not you write to {EMAIL}.",
    ),
    (
        "email",
        "Hi team, {PERSON:first} is out {VAGUE}. {PERSON} covers; reach them at {PHONE} or {EMAIL}. - {PERSON:first}",
    ),
    (
        "chat",
        "{PERSON:lower}: hey can u send me ur card number\n{PERSON:lower}: its {CARD} exp 09/27\n{PERSON:lower}: thx",
    ),
    ("chat", "[{DATE} 10:14] {PERSON:first}: moved to {STREET} {VAGUE}, new number {PHONE}"),
    (
        "chat",
        "<{PERSON:first}> ping {PERSON:lower} about the vpn, his box is {IP}\n<{PERSON:first}> ok {VAGUE}",
    ),
    ("chat", "{PERSON:first}: meet at {STREET}? {PERSON:first}: sure, {VAGUE}. call me {PHONE}"),
    (
        "form",
        "Name: {PERSON}\nAddress: {STREET}\nCity: {CITY}\nPhone: {PHONE}\nEmail: {EMAIL}\nDate of birth: {DATE}",
    ),
    (
        "form",
        "Surname: {PERSON:last}\nGiven name: {PERSON:first}\nStreet: {STREETNAME}\nNo.: {HOUSENO}\nTown: {CITY}\nIBAN: {IBAN}",
    ),
    ("form", "APPLICANT {PERSON:upper} | SSN {SSN} | DL {DL} | PHONE {PHONE}"),
    ("form", "card holder: {PERSON}\ncard no: {CARD}\nbilling address: {STREET}, {CITY}\nposition: {TITLE}"),
    ("record", "{PERSON};{EMAIL};{PHONE};{STREET};{CITY};{DATE}"),
    ("record", "id=4821 | name={PERSON:comma} | ip={IP} | iban={IBAN} | status={CAPS}"),
    ("record", "{PERSON:last},{PERSON:first},{SSN},{DL},{CITY}"),
    ("record", "{DATE}\t{PERSON}\t{CARD}\t{NUM} items\t{CAPS}"),
    (
        "letter",
        "{CITY}, {DATE}\n\n{PERSON}\n{STREET}\n{CITY}\n\nDear {PERSON:last}, we write about your account {IBAN}. Our {TITLE} will call you {VAGUE}.",
    ),
    (
        "letter",
        "To whom it may concern: {PERSON} has worked at {ORG} as {TITLE} since {DATE}. Contact me at {EMAIL} or {PHONE}.",
    ),
    (
        "support",
        "Ticket {NUM}: customer {PERSON:lower} says card {CARD} was charged twice {VAGUE}. {CAPS} escalated to {PERSON:first}.",
    ),
    ("support", "Caller gave driver's license {DL} and SSN {SSN}. Callback {PHONE}. Agent: {PERSON:first}"),
    ("support", "{CAPS} reset the password for {EMAIL} after a request from {IP} {VAGUE}."),
    ("note", "Met {PERSON:first} at the {CAPS} {VAGUE}. Told me {PERSON:first} moved to {CITY}."),
    (
        "note",
        "{TITLE} meeting {VAGUE}: {PERSON}, {PERSON}, {PERSON:first} attended. Notes by {PERSON:initial}.",
    ),
    ("note", "Delivery for {PERSON:full}, {STREET}, {CITY} - leave at {CAPS}, ring {PHONE}."),
    ("negative", "{CAPS} will review the {CAPS} results {VAGUE}. The {TITLE} approved {NUM} requests."),
    ("negative", "Please call {CAPS} {VAGUE} if symptoms persist for more than {NUM} days."),
    ("negative", "The {TITLE} and the {TITLE} met {VAGUE} to discuss {CAPS} and {CAPS}."),
    (
        "clinical",
        "Hx: {PERSON:first} {PERSON:last}, {NUM}y, from {CITY}. Brother {PERSON:first} donor. SSN {SSN}.",
    ),
    (
        "email",
        "Sent from {IP}: {PERSON:first} asked us to update the address to {STREET}, {CITY}. - {PERSON:lower}",
    ),
    ("form", "Mailing address: {PERSON}, {STREET}, {CITY}\nAlt phone: {PHONE}\nCard: {CARD}"),
    ("chat", "{PERSON:lower} said {PERSON:lower} lives on {STREET} now lol"),
    ("record", "{NUM}. {PERSON:upper} - {PHONE} - {EMAIL}"),
    ("support", "Refund to {IBAN} approved by {PERSON:initial} ({TITLE}) {VAGUE}."),
    ("note", "Visitor log: {PERSON} signed in {VAGUE}, badge for {ORG}, plate {DL}."),
]

_SLOT = re.compile(r"\{([A-Z]+)(?::([a-z]+))?\}")


def _fill(template: str, v: _Values) -> dict[str, Any]:
    d = _Doc()
    r = v.rng
    last_person: str | None = None
    pos = 0
    simple: dict[str, tuple[Callable[[], str], str]] = {
        "PHONE": (v.phone, "PHONE_NUMBER"),
        "CARD": (v.card, "CREDIT_CARD"),
        "IBAN": (v.iban, "IBAN_CODE"),
        "IP": (v.ip, "IP_ADDRESS"),
        "SSN": (v.ssn, "US_SSN"),
        "DL": (v.licence, "US_DRIVER_LICENSE"),
        "STREET": (v.street, "STREET_ADDRESS"),
        "CITY": (v.city, "LOCATION"),
        "DATE": (v.date, "DATE_TIME"),
        "ORG": (v.company, "ORGANIZATION"),
    }
    for m in _SLOT.finditer(template):
        d.lit(template[pos : m.start()])
        pos = m.end()
        slot, style = m.group(1), m.group(2)
        if slot == "PERSON":
            last_person = v.person(style)
            d.ent(last_person, "PERSON")
        elif slot == "EMAIL":
            d.ent(v.email(last_person), "EMAIL_ADDRESS")
        elif slot in simple:
            fn, typ = simple[slot]
            d.ent(fn(), typ)
        elif slot == "STREETNAME":
            d.ent(v.f.street_name(), "STREET_ADDRESS")
        elif slot == "HOUSENO":
            # A house number in its own form field: labelled on its own, as real forms have it.
            d.ent(v.f.building_number(), "STREET_ADDRESS")
        elif slot == "VAGUE":
            d.lit(r.choice(VAGUE_TIMES))
        elif slot == "CAPS":
            d.lit(r.choice(COMMON_CAPS))
        elif slot == "TITLE":
            d.lit(r.choice(TITLES))
        elif slot == "NUM":
            d.lit(str(r.randint(2, 90)))
        else:  # pragma: no cover - a typo in TEMPLATES
            raise ValueError(f"unknown slot {slot!r}")
    d.lit(template[pos:])
    return d.record()


def templates_for(split: str) -> list[tuple[str, str]]:
    """The templates a split draws from: ``test`` has all, ``dev`` lacks every fifth one."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_SEEDS)}")
    return [t for i, t in enumerate(TEMPLATES) if split == "test" or i % 5 != 4]


def generate(n: int, *, split: str = "dev", seed: int | None = None) -> Iterator[dict[str, Any]]:
    """``n`` labelled records of ``split`` (``dev`` or ``test``); the same arguments give the same records."""
    base = SPLIT_SEEDS[split] if seed is None else seed
    templates = templates_for(split)
    rng = random.Random(base)
    for i in range(n):
        _register, template = rng.choice(templates)
        locale = rng.choice(LOCALES)
        # One Faker seed per (locale, record): values differ across records and splits.
        yield _fill(template, _Values(random.Random(base * 1_000_003 + i), locale, base + i))


def write_jsonl(path: Path, n: int, *, split: str = "dev", seed: int | None = None) -> Path:
    """Write ``n`` records of ``split`` to ``path`` (one JSON object per line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for rec in generate(n, split=split, seed=seed):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path
