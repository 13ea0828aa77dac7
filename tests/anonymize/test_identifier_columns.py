"""No identifier column left behind: numbers checked by value, whole-address columns under any
name, and the report saying where each role came from."""

from __future__ import annotations

import random

import polars as pl
from faker import Faker

from synthgen.anonymize import anonymize_table, scan_pii
from synthgen.anonymize.detect import numeric_vote
from synthgen.anonymize.settings import AnonymizeSettings
from synthgen.schema import ColumnSchema, ColumnType, TableSchema

SECRET = b"test-secret-0123456789abcdef0123"


def _frame(n: int = 300) -> pl.DataFrame:
    fake = Faker("en_US")
    fake.seed_instance(5)
    rng = random.Random(5)
    cards = [int(fake.credit_card_number(rng.choice(["visa16", "mastercard", "discover"]))) for _ in range(n)]
    ssns = [int(fake.ssn().replace("-", "")) for _ in range(n)]
    homes = [fake.address().replace("\n", ", ") for _ in range(n)]
    return pl.DataFrame(
        {
            "card_no": cards,
            "ref_num": ssns,
            "home": homes,
            "visits": [rng.randint(0, 12) for _ in range(n)],
            "age": [rng.randint(18, 90) for _ in range(n)],
        }
    )


def _all_cells(frame: pl.DataFrame) -> str:
    return "\n".join(str(v) for c in frame.columns for v in frame[c].to_list())


def test_integer_cards_ssns_and_an_address_column_leave_no_raw_value() -> None:
    src = _frame()
    # The inferred schema calls the long, unique address strings "text": values still decide.
    schema = TableSchema(
        columns=[
            ColumnSchema(name="card_no", type=ColumnType.numeric, integer=True),
            ColumnSchema(name="ref_num", type=ColumnType.numeric, integer=True),
            ColumnSchema(name="home", type=ColumnType.text),
            ColumnSchema(name="visits", type=ColumnType.numeric, integer=True),
            ColumnSchema(name="age", type=ColumnType.numeric, integer=True),
        ]
    )
    for op in ("drop", "surrogate"):
        res = anonymize_table(
            src, schema=schema, settings=AnonymizeSettings(default_operator=op), secret=SECRET
        )
        cols = res.report["columns"]
        assert cols["card_no"]["role"] == "identifier" and cols["card_no"]["entity"] == "CREDIT_CARD"
        assert cols["ref_num"]["entity"] == "US_SSN" and cols["ref_num"]["source"] == "values"
        assert cols["home"]["role"] == "identifier" and cols["home"]["source"] == "values"
        assert cols["visits"]["role"] == "keep" and cols["age"]["role"] == "keep"
        assert res.frame is not None
        out = _all_cells(res.frame)
        for col in ("card_no", "ref_num", "home"):
            leaked = [v for v in src[col].to_list() if str(v) in out]
            assert leaked == [], (op, col, leaked[:3])
        assert res.frame["age"].to_list() == src["age"].to_list()


def test_scan_pii_checks_numeric_columns() -> None:
    found = scan_pii(_frame(100))
    assert found["card_no"] == {"CREDIT_CARD": 100}
    assert found["ref_num"].get("US_SSN", 0) >= 90
    assert found["visits"] == {} and found["age"] == {}


def test_numeric_vote_ignores_repeated_and_short_numbers() -> None:
    assert numeric_vote([20_000 + i for i in range(100)]) == (None, 0.0)
    assert numeric_vote([123_456_789] * 100) == (None, 0.0)
    ent, frac = numeric_vote([4_111_111_111_111_111, 5_555_555_555_554_444, 4_012_888_888_881_881])
    assert ent == "CREDIT_CARD" and frac == 1.0


def test_numeric_phones_are_identifiers_but_timestamps_and_amounts_are_not() -> None:
    fake = Faker("en_US")
    fake.seed_instance(7)
    rng = random.Random(7)
    n = 300
    nanp = [
        int(f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}{rng.randint(2, 9)}{rng.randint(0, 999_999):06d}")
        for _ in range(n)
    ]
    uk = [int(f"4420{rng.randint(7_000_0000, 8_999_9999)}") for _ in range(n)]  # +44 20 London numbers
    assert numeric_vote(nanp)[0] == "PHONE_NUMBER" and numeric_vote(nanp)[1] > 0.95
    assert numeric_vote(uk)[0] == "PHONE_NUMBER" and numeric_vote(uk)[1] > 0.8
    # Distinct measurements that merely have phone or SSN lengths keep their values.
    epoch_s = [1_600_000_000 + rng.randint(0, 200_000_000) for _ in range(n)]
    epoch_ms = [v * 1000 + rng.randint(0, 999) for v in epoch_s]
    cents = [rng.randint(1_000_000, 50_000_000) for _ in range(n)]
    for values in (epoch_s, epoch_ms, cents):
        entity, frac = numeric_vote(values)
        assert entity is None or frac < 0.5, (entity, frac, values[:3])
    frame = pl.DataFrame({"created": epoch_s, "amount_cents": cents, "tel": nanp})
    schema = TableSchema(
        columns=[ColumnSchema(name=c, type=ColumnType.numeric, integer=True) for c in frame.columns]
    )
    res = anonymize_table(frame, schema=schema, settings=AnonymizeSettings(), secret=SECRET)
    cols = res.report["columns"]
    assert cols["created"]["role"] == "keep" and cols["amount_cents"]["role"] == "keep"
    assert cols["tel"]["role"] == "identifier" and cols["tel"]["entity"] == "PHONE_NUMBER"
    assert res.frame is not None and res.frame["created"].to_list() == epoch_s


def _addresses(locales: list[str], n: int, sep: str, seed: int = 3) -> list[str]:
    fakes = [Faker(loc) for loc in locales]
    for i, fake in enumerate(fakes):
        fake.seed_instance(seed + i)
    rng = random.Random(seed)
    return [rng.choice(fakes).address().replace("\n", sep) for _ in range(n)]


def test_whole_address_columns_in_any_national_layout_are_identifiers() -> None:
    # Presidio's whole-value vote alone reached the bar for en_US and fr_FR only (pl_PL 0.06):
    # a column of Polish or German addresses under a neutral name was kept verbatim.
    cases = {
        "pl": (["pl_PL"], ", "),
        "de": (["de_DE"], "\n"),
        "gb": (["en_GB"], ", "),
        "cz": (["cs_CZ"], ", "),
        "mixed": (["en_US", "de_DE", "fr_FR", "pl_PL", "it_IT", "nl_NL", "da_DK", "pt_BR"], ", "),
    }
    frame = pl.DataFrame({name: _addresses(locs, 150, sep) for name, (locs, sep) in cases.items()})
    # Written by hand: one town with 40 streets, PO boxes (towns only), Japanese and Austrian forms.
    rng = random.Random(4)
    r, c = rng.randint, rng.choice
    streets = [f"{w} {k}" for w in ("Oak", "Elm", "Mill", "Park", "Hill", "Lake", "Main", "Cedar")
               for k in ("St", "Ave", "Rd", "Ln", "Dr")]  # fmt: skip
    towns = ["Columbus, OH", "Macon, GA", "Dover, DE", "Salem, OR", "Provo, UT", "Tulsa, OK", "Boise, ID"]
    wards = ["Jingumae", "Ebisu", "Umeda", "Sakae", "Tenjin"]
    hand = {
        "one_town": [f"{r(1, 999)} {c(streets)}, Millbrook, NY 12545" for _ in range(150)],
        "po_box": [f"PO Box {r(10, 9999)}, {c(towns)} {r(10000, 99999)}" for _ in range(150)],
        "jp": [
            f"{r(1, 9)}-{r(1, 30)}-{r(1, 20)} {c(wards)}, {c(['Shibuya-ku', 'Kita-ku'])}, "
            f"{c(['Tokyo', 'Osaka'])} {r(100, 999)}-{r(0, 9999):04d}"
            for _ in range(150)
        ],
        "at": [
            f"{c(['Kärntner', 'Linzer', 'Grazer'])}straße {r(1, 99)}/{r(1, 9)}/{r(1, 20)}, "
            f"{r(1010, 9999)} {c(['Wien', 'Graz', 'Linz'])}"
            for _ in range(150)
        ],
    }
    frame = frame.with_columns(pl.Series(k, v) for k, v in hand.items())
    names = [*cases, *hand]
    settings = AnonymizeSettings(default_operator="surrogate")
    res = anonymize_table(frame, schema=None, settings=settings, secret=SECRET)
    cols = res.report["columns"]
    for name in names:
        assert cols[name]["role"] == "identifier", (name, cols[name])
        assert cols[name]["entity"] == "STREET_ADDRESS" and cols[name]["source"] == "values"
    assert res.frame is not None
    out = _all_cells(res.frame)
    for name in names:
        leaked = [v for v in frame[name].to_list() if v in out]
        assert leaked == [], (name, leaked[:3])


def test_labelled_numbers_dates_and_doses_are_not_addresses() -> None:
    # Shaped like an address line (words, a short and a long number) but the same words in every
    # value, or a month name, or sentence words: kept as they are.
    rng = random.Random(9)
    r, c = rng.randint, rng.choice
    n = 150
    frame = pl.DataFrame(
        {
            "room": [f"Building {r(1, 20)}, Room {r(1000, 4999)}" for _ in range(n)],
            "invoice": [f"Invoice {r(10000, 99999)}, Item {r(1, 50)}" for _ in range(n)],
            "release": [f"Release {r(1, 9)}.{r(0, 20)}, build {r(1000, 99999)}" for _ in range(n)],
            "seen": [f"{rng.choice(['March', 'May'])} {r(1, 28)}, {r(1990, 2024)}" for _ in range(n)],
            "dose": [f"Metformin {rng.choice([250, 500, 1000])} mg, {r(1, 3)} times daily" for _ in range(n)],
            "flight": [
                f"Flight {c(['AF', 'KL'])} {r(1000, 9999)}, Gate {c('ABCD')}{r(1, 40)}, Terminal {r(1, 3)}"
                for _ in range(n)
            ],
            "course": [
                f"{c(['HIST', 'CS'])} {r(100, 399)}, Section {r(1, 9)}, {c(['Fall', 'Spring'])} "
                f"{r(2010, 2024)}, {c(['Baker', 'Smith'])} {c(['Building', 'Hall'])} {r(100, 300)}"
                for _ in range(n)
            ],
            "car": [f"{c(['Kia', 'BMW'])} {c(['Golf', 'Rio', 'X5'])} {r(2005, 2024)}, {r(1000, 99999)} km"
                    for _ in range(n)],
        }
    )  # fmt: skip
    res = anonymize_table(frame, schema=None, settings=AnonymizeSettings(), secret=SECRET)
    cols = res.report["columns"]
    for name, col in cols.items():
        assert col["role"] != "identifier", (name, col)
    assert cols["course"]["role"] == "text"  # long, many words: free text, not an address column
    kept = [name for name, col in cols.items() if col["role"] == "keep"]
    assert len(kept) == frame.width - 1
    assert res.frame is not None and res.frame.select(kept).equals(frame.select(kept))
