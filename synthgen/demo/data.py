"""Seeded generator of a realistic patient-visit table, with ground truth for the PII in its notes.

The table has three kinds of columns:

* direct identifiers: ``name``, ``email``, ``phone``, ``ssn``, ``street_address``;
* quasi-identifiers: ``date_of_birth``, ``zip``, ``sex``;
* clinical fields with real correlations: ``diagnosis_category`` drives ``length_of_stay``
  and ``total_charges``; age (at ``admission_date``) drives ``readmitted_30d``.

``notes`` holds 1-3 sentences of free text mentioning the patient's or other people's names,
phone numbers, dates, places and e-mail addresses. Every identifier planted into a note is
recorded in the second frame (``visit_id, entity_type, value, start, end``; character offsets
into the note), so the anonymizer's recall can be measured exactly.

Everything is drawn from ``Faker`` (seeded per instance) and a ``numpy`` generator, so the
output is a pure function of ``(n, seed)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
from faker import Faker
from faker.providers.person import en_US as en_us_person

__all__ = ["DIRECT_IDENTIFIERS", "QUASI_IDENTIFIERS", "generate_patients", "truth_path", "write_demo_csv"]

#: Columns holding direct identifiers, and the Presidio entity each one carries.
DIRECT_IDENTIFIERS: dict[str, str] = {
    "name": "PERSON",
    "email": "EMAIL_ADDRESS",
    "phone": "PHONE_NUMBER",
    "ssn": "US_SSN",
    "street_address": "STREET_ADDRESS",
}
QUASI_IDENTIFIERS: tuple[str, ...] = ("date_of_birth", "zip", "sex")

# Diagnosis category -> (share of visits, median length of stay in days, base charge, charge per day,
# log-odds shift of 30-day readmission). Figures are plausible, not clinical data.
_DIAGNOSES: dict[str, tuple[float, float, float, float, float]] = {
    "cardiac": (0.18, 4.5, 9_000.0, 2_600.0, 0.45),
    "respiratory": (0.16, 3.8, 6_000.0, 2_100.0, 0.35),
    "orthopedic": (0.13, 3.2, 14_000.0, 1_900.0, -0.40),
    "neurological": (0.09, 5.5, 11_000.0, 2_800.0, 0.20),
    "gastrointestinal": (0.14, 3.0, 5_500.0, 1_800.0, 0.05),
    "infectious": (0.10, 5.0, 5_000.0, 2_000.0, 0.15),
    "oncology": (0.08, 7.5, 18_000.0, 3_400.0, 0.70),
    "maternity": (0.07, 2.2, 7_500.0, 1_500.0, -1.20),
    "psychiatric": (0.05, 9.0, 3_000.0, 1_100.0, 0.30),
}
_INSURANCE = ("medicare", "medicaid", "private", "self-pay")

# Real US places mentioned in notes (as a clinician would write them).
_CITIES = (
    "Boston", "Chicago", "Houston", "Phoenix", "Philadelphia", "San Antonio", "San Diego", "Dallas",
    "Austin", "Jacksonville", "Columbus", "Charlotte", "Indianapolis", "Seattle", "Denver", "Nashville",
    "Baltimore", "Milwaukee", "Albuquerque", "Tucson", "Fresno", "Sacramento", "Atlanta", "Miami",
    "Omaha", "Cleveland", "Minneapolis", "Tampa", "New Orleans", "Pittsburgh", "Cincinnati", "St. Louis",
    "Portland", "Detroit", "Memphis", "Louisville", "Richmond", "Buffalo", "Salt Lake City", "Orlando",
)  # fmt: skip
_STATES = (
    "Texas", "California", "Ohio", "Florida", "Georgia", "Michigan", "Oregon", "Arizona", "Maine",
    "Vermont", "Colorado", "Nevada", "Kentucky", "Tennessee", "Minnesota", "Iowa", "New Mexico",
)  # fmt: skip
# Real US area codes, so that generated numbers are valid under libphonenumber's rules.
_AREA_CODES = (
    201, 202, 205, 206, 212, 213, 214, 215, 216, 217, 301, 303, 304, 305, 309, 312, 313, 314, 317, 401,
    402, 404, 405, 407, 410, 412, 414, 415, 502, 503, 504, 505, 510, 512, 513, 515, 516, 602, 603, 608,
    612, 614, 615, 617, 702, 703, 704, 713, 714, 716, 718, 720, 801, 804, 808, 813, 816, 818, 901, 913,
)  # fmt: skip
# Relation -> is the relative a woman (so the generated name fits).
_RELATIONS = (
    ("daughter", True), ("son", False), ("wife", True), ("husband", False), ("sister", True),
    ("brother", False), ("mother", True), ("father", False), ("neighbor", True), ("neighbor", False),
)  # fmt: skip
_COMPLAINTS = {
    "cardiac": ("chest pain", "palpitations", "shortness of breath on exertion"),
    "respiratory": ("a productive cough", "wheezing", "shortness of breath"),
    "orthopedic": ("a fall with hip pain", "knee swelling", "lower back pain"),
    "neurological": ("headache and dizziness", "left arm weakness", "a witnessed seizure"),
    "gastrointestinal": ("abdominal pain", "nausea and vomiting", "rectal bleeding"),
    "infectious": ("fever and chills", "a urinary tract infection", "cellulitis of the leg"),
    "oncology": ("fatigue during chemotherapy", "weight loss", "neutropenic fever"),
    "maternity": ("contractions", "a scheduled delivery", "reduced fetal movement"),
    "psychiatric": ("worsening depression", "suicidal ideation", "an acute anxiety episode"),
}
_CLINICAL = (
    "Vitals stable overnight.",
    "Tolerating oral intake.",
    "Pain controlled with acetaminophen.",
    "Labs within normal limits except mild anemia.",
    "Ambulating with a walker.",
    "Wound clean and dry.",
    "Discussed medication changes at length.",
    "No acute distress noted.",
)


def _weighted(names: object) -> tuple[list[str], np.ndarray]:
    """Names and their cumulative weights (Faker lists are dicts name -> frequency, or plain)."""
    if isinstance(names, dict):
        keys = list(names)
        w = np.asarray(list(names.values()), dtype=float)
    else:
        keys = list(names)  # type: ignore[call-overload]
        w = np.ones(len(keys))
    cw = np.cumsum(w)
    return keys, cw / cw[-1]


def _pick(rng: np.random.Generator, pool: list[str], cw: np.ndarray) -> str:
    return pool[min(int(np.searchsorted(cw, rng.random(), side="right")), len(pool) - 1)]


class _Note:
    """Builds one note and records the offsets of every identifier planted into it."""

    def __init__(self, visit_id: str) -> None:
        self.visit_id = visit_id
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[str, str, str, int, int]] = []

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def pii(self, entity: str, value: str) -> None:
        self.spans.append((self.visit_id, entity, value, self.length, self.length + len(value)))
        self.text(value)

    def build(self) -> str:
        return "".join(self.parts)


def _fmt_date(d: dt.date, style: int) -> str:
    if style == 0:
        return f"{d.strftime('%B')} {d.day}, {d.year}"
    if style == 1:
        return f"{d.month:02d}/{d.day:02d}/{d.year}"
    if style == 2:
        return d.isoformat()
    return f"{d.day} {d.strftime('%b')} {d.year}"


def _fmt_phone(area: int, exchange: int, line: int, style: int) -> str:
    if style == 0:
        return f"({area}) {exchange}-{line:04d}"
    if style == 1:
        return f"{area}-{exchange}-{line:04d}"
    if style == 2:
        return f"{area}.{exchange}.{line:04d}"
    return f"+1 {area} {exchange} {line:04d}"


def generate_patients(n: int = 10_000, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Generate ``n`` patient visits and the ground truth of the PII planted in their notes.

    Returns ``(visits, truth)``. ``truth`` has one row per identifier written into a note:
    ``visit_id``, ``entity_type`` (PERSON, PHONE_NUMBER, DATE_TIME, LOCATION, EMAIL_ADDRESS),
    ``value`` and the ``start``/``end`` character offsets of ``value`` in that visit's note.
    The same ``(n, seed)`` always gives the same frames.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = np.random.default_rng(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    # Faker's US name lists with their census frequencies, sampled with our own generator.
    first_f, first_f_cw = _weighted(en_us_person.Provider.first_names_female)
    first_m, first_m_cw = _weighted(en_us_person.Provider.first_names_male)
    last_names, last_cw = _weighted(en_us_person.Provider.last_names)
    domains = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "aol.com", "icloud.com")

    diag_names = list(_DIAGNOSES)
    diag_p = np.array([v[0] for v in _DIAGNOSES.values()])
    diag_p = diag_p / diag_p.sum()
    diag_idx = rng.choice(len(diag_names), size=n, p=diag_p)
    sex = np.where(rng.random(n) < 0.52, "F", "M")
    # Maternity visits are women of child-bearing age; everyone else follows a skewed-old age mix.
    age = np.clip(rng.gamma(4.0, 13.0, size=n), 0, 99).astype(int)
    maternity = diag_idx == diag_names.index("maternity")
    sex[maternity] = "F"
    age[maternity] = rng.integers(18, 44, size=int(maternity.sum()))
    epoch = dt.date(2021, 1, 1)
    admit_offset = rng.integers(0, 4 * 365, size=n)
    birth_day_offset = rng.integers(0, 364, size=n)

    med_los = np.array([_DIAGNOSES[diag_names[i]][1] for i in diag_idx])
    los = np.maximum(1, np.round(rng.lognormal(np.log(med_los), 0.45))).astype(int)
    base = np.array([_DIAGNOSES[diag_names[i]][2] for i in diag_idx])
    per_day = np.array([_DIAGNOSES[diag_names[i]][3] for i in diag_idx])
    charges = np.round((base + per_day * los) * rng.lognormal(0.0, 0.15, size=n), 2)
    shift = np.array([_DIAGNOSES[diag_names[i]][4] for i in diag_idx])
    logit = -2.6 + 0.035 * (age - 50) + shift + 0.04 * (los - 4)
    readmitted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    insurance = np.where(
        age >= 65, "medicare", np.asarray(_INSURANCE)[rng.choice(4, size=n, p=[0.05, 0.25, 0.6, 0.1])]
    )

    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "visit_id", "name", "email", "phone", "ssn", "street_address", "date_of_birth", "zip", "sex",
            "admission_date", "diagnosis_category", "length_of_stay", "total_charges", "insurance",
            "readmitted_30d", "notes",
        )
    }  # fmt: skip
    truth: list[tuple[str, str, str, int, int]] = []

    def person(female: bool | None = None) -> tuple[str, str]:
        if female is None:
            female = bool(rng.random() < 0.5)
        pool, cw = (first_f, first_f_cw) if female else (first_m, first_m_cw)
        return _pick(rng, pool, cw), _pick(rng, last_names, last_cw)

    def phone() -> str:
        area = _AREA_CODES[int(rng.integers(len(_AREA_CODES)))]
        exchange = int(rng.integers(201, 999))
        if exchange == 555:  # 555 exchanges are reserved for fiction
            exchange = 556
        return _fmt_phone(area, exchange, int(rng.integers(0, 10_000)), int(rng.integers(4)))

    for i in range(n):
        visit_id = f"V{seed % 1000:03d}{i:07d}"
        female = sex[i] == "F"
        first, last = person(female)
        admit = epoch + dt.timedelta(days=int(admit_offset[i]))
        # Age at admission is age[i] whole years: go back that many years plus part of one more.
        dob = admit - dt.timedelta(days=int(age[i] * 365.25) + int(birth_day_offset[i]))
        email = f"{first.lower()}.{last.lower()}{int(rng.integers(1, 99))}@{domains[int(rng.integers(6))]}"
        own_phone = phone()
        diag = diag_names[int(diag_idx[i])]

        note = _Note(visit_id)
        sentences = _note_sentences(
            rng, note, first, last, female, own_phone, email, admit, diag, person, phone
        )
        for j, fn in enumerate(sentences):
            if j:
                note.text(" ")
            fn()
        truth.extend(note.spans)

        rows["visit_id"].append(visit_id)
        rows["name"].append(f"{first} {last}")
        rows["email"].append(email)
        rows["phone"].append(own_phone)
        rows["ssn"].append(fake.ssn())
        rows["street_address"].append(fake.street_address())
        rows["date_of_birth"].append(dob)
        rows["zip"].append(fake.zipcode())
        rows["sex"].append(str(sex[i]))
        rows["admission_date"].append(admit)
        rows["diagnosis_category"].append(diag)
        rows["length_of_stay"].append(int(los[i]))
        rows["total_charges"].append(float(charges[i]))
        rows["insurance"].append(str(insurance[i]))
        rows["readmitted_30d"].append(bool(readmitted[i]))
        rows["notes"].append(note.build())

    visits = pl.DataFrame(
        rows,
        schema={
            "visit_id": pl.String,
            "name": pl.String,
            "email": pl.String,
            "phone": pl.String,
            "ssn": pl.String,
            "street_address": pl.String,
            "date_of_birth": pl.Date,
            "zip": pl.String,
            "sex": pl.String,
            "admission_date": pl.Date,
            "diagnosis_category": pl.String,
            "length_of_stay": pl.Int64,
            "total_charges": pl.Float64,
            "insurance": pl.String,
            "readmitted_30d": pl.Boolean,
            "notes": pl.String,
        },
    )
    truth_df = pl.DataFrame(
        truth,
        schema={
            "visit_id": pl.String,
            "entity_type": pl.String,
            "value": pl.String,
            "start": pl.Int64,
            "end": pl.Int64,
        },
        orient="row",
    )
    return visits, truth_df


def _note_sentences(
    rng: np.random.Generator,
    note: _Note,
    first: str,
    last: str,
    female: bool,
    own_phone: str,
    email: str,
    admit: dt.date,
    diag: str,
    person: Callable[..., tuple[str, str]],
    phone: Callable[[], str],
) -> list[Callable[[], None]]:
    """Pick 1-3 sentence writers for one note; each appends text and PII spans to ``note``."""
    t, p = note.text, note.pii
    pron = "She" if female else "He"
    title = "Ms." if female else "Mr."
    complaint = _COMPLAINTS[diag][int(rng.integers(3))]

    def date(days: int) -> str:
        return _fmt_date(admit + dt.timedelta(days=days), int(rng.integers(4)))

    def city() -> str:
        return _CITIES[int(rng.integers(len(_CITIES)))]

    def s_seen() -> None:
        p("PERSON", f"{first} {last}")
        t(" was admitted on ")
        p("DATE_TIME", date(0))
        t(f" with {complaint}.")

    def s_title() -> None:
        t(f"{title} ")
        p("PERSON", last)
        t(f" reports {complaint} since ")
        p("DATE_TIME", date(-int(rng.integers(1, 20))))
        t(".")

    def s_relative() -> None:
        rel, rel_female = _RELATIONS[int(rng.integers(len(_RELATIONS)))]
        rf, rl = person(rel_female)
        t(f"{pron} lives with {'her' if female else 'his'} {rel} ")
        p("PERSON", f"{rf} {rl}")
        t(", reachable at ")
        p("PHONE_NUMBER", phone())
        t(".")

    def s_callback() -> None:
        t("Call the patient back at ")
        p("PHONE_NUMBER", own_phone)
        t(" before ")
        p("DATE_TIME", date(int(rng.integers(1, 14))))
        t(".")

    def s_moved() -> None:
        t(f"{pron} moved here from ")
        p("LOCATION", city())
        t(" in ")
        p("DATE_TIME", str(admit.year - int(rng.integers(1, 15))))
        t(".")

    def s_transfer() -> None:
        t("Transferred from a hospital in ")
        p("LOCATION", city())
        t(", ")
        p("LOCATION", _STATES[int(rng.integers(len(_STATES)))])
        t(".")

    def s_followup() -> None:
        _, dl = person()
        t("Follow-up with Dr. ")
        p("PERSON", dl)
        t(" on ")
        p("DATE_TIME", date(int(rng.integers(7, 45))))
        t(" in ")
        p("LOCATION", city())
        t(".")

    def s_email() -> None:
        t("Send the discharge summary to ")
        p("EMAIL_ADDRESS", email)
        t(".")

    def s_daughter_visit() -> None:
        rf, rl = person(female=True)
        t("Visited today by ")
        p("PERSON", f"{rf} {rl}")
        t(", who drove in from ")
        p("LOCATION", city())
        t(".")

    def s_clinical() -> None:
        t(_CLINICAL[int(rng.integers(len(_CLINICAL)))])

    with_pii = (
        s_seen, s_title, s_relative, s_callback, s_moved, s_transfer, s_followup, s_email,
        s_daughter_visit,
    )  # fmt: skip
    k = int(rng.integers(1, 4))
    picks = [with_pii[int(j)] for j in rng.choice(len(with_pii), size=k, replace=False)]
    # One note in five also carries a clinical sentence with no identifier in it.
    if rng.random() < 0.2 and k < 3:
        picks.insert(int(rng.integers(len(picks) + 1)), s_clinical)
    return picks


def truth_path(csv_path: str | Path) -> Path:
    """Where :func:`write_demo_csv` puts the ground truth for ``csv_path``."""
    p = Path(csv_path)
    return p.with_name(p.stem + ".pii_truth.parquet")


def write_demo_csv(path: str | Path, n: int = 10_000, seed: int = 0) -> tuple[Path, Path]:
    """Write the demo visits as CSV at ``path`` and the note ground truth as Parquet beside it.

    Returns ``(csv_path, truth_path)``; parent directories are created.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    visits, truth = generate_patients(n, seed)
    visits.write_csv(p)
    tp = truth_path(p)
    truth.write_parquet(tp)
    return p, tp
