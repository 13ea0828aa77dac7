"""synthgen's recognizers and result refinement: the shapes issue 15 found missed, and the
hard negatives that must stay unflagged."""

from __future__ import annotations

import polars as pl
import pytest
from faker import Faker

from synthgen.anonymize.engine import get_analyzer
from synthgen.anonymize.operators import OperatorContext, make_operator
from synthgen.anonymize.recognizers.cards import luhn_valid
from synthgen.anonymize.surrogates import Surrogates
from synthgen.anonymize.text import TextAnonymizer, merge_spans


def _spans(text: str) -> list[tuple[str, str]]:
    cfg, analyzer = get_analyzer()
    rs = analyzer.analyze(text, language="en", entities=cfg.text_entities, score_threshold=cfg.threshold)
    return [(text[s:e], t) for s, e, t in merge_spans(rs)]


@pytest.mark.parametrize(
    "brand",
    ["amex", "diners", "discover", "jcb15", "jcb16", "maestro", "mastercard", "visa13", "visa16", "visa19"],
)
def test_luhn_valid_cards_of_every_brand_are_found(brand: str) -> None:
    fake = Faker()
    fake.seed_instance(3)
    number = fake.credit_card_number(brand)
    assert luhn_valid(number)
    assert (number, "CREDIT_CARD") in _spans(f"Card: {number} exp 09/27")


def test_a_luhn_invalid_number_is_no_card() -> None:
    assert not any(t == "CREDIT_CARD" for _, t in _spans("Order 4111111111111112 shipped"))


@pytest.mark.parametrize(
    "street",
    ["Via Roma 5", "ul. Długa 3/4", "Hauptstraße 12", "Torvevej 9", "Urkurinkatu 1", "12, rue Éléonore Louis",
     "P.O. Box 1234", "PSC 3982, Box 5979", "Unit 1907 Box 4833", "150 Richard Run Apt. 3"],
)  # fmt: skip
def test_national_street_forms_and_boxes_are_addresses(street: str) -> None:
    found = _spans(f"Please send it to {street}, thanks.")
    assert any(street in s and t == "STREET_ADDRESS" for s, t in found), found


@pytest.mark.parametrize(
    "phone", ["+1-663-286-8780", "001-481-539-0662", "+49(0)6360837783", "07 88 35 33 74"]
)
def test_phones_outside_a_numbering_plan_are_found_and_replaced(phone: str) -> None:
    cfg, analyzer = get_analyzer()
    tag = make_operator("tag", OperatorContext(Surrogates(b"\0" * 32), b"\0" * 32))
    texter = TextAnonymizer(analyzer, operator=tag, entities=cfg.text_entities, threshold=cfg.threshold)
    out, _ = texter.anonymize(pl.Series("t", [f"Reach me at {phone} after five."]))
    assert phone not in out[0] and "<PHONE_NUMBER>" in out[0]


def test_names_in_lower_case_single_tokens_and_non_ascii_are_found() -> None:
    assert ("lars", "PERSON") in _spans("lars: its done\nmaria: thx")
    assert any("Bartošová" in s and t == "PERSON" for s, t in _spans("Hx: Mária Bartošová, 43y, from Brno."))
    assert ("Christine", "PERSON") in _spans("Kind regards,\nChristine")


def test_vague_times_and_role_words_are_not_pii_but_dates_are() -> None:
    found = _spans("The Head Nurse will call Pharmacy next week or a few months ago.")
    assert found == [], found
    assert any(t == "DATE_TIME" for _, t in _spans("Seen on 3 March 2022."))


def test_dotted_french_phones_are_found_and_dotted_dates_are_not_phones() -> None:
    assert ("01.42.68.53.00", "PHONE_NUMBER") in _spans("Appelez le 01.42.68.53.00 demain.")
    assert not any(t == "PHONE_NUMBER" for _, t in _spans("Seen on 01.02.2023 and 12.03.24 again."))


def test_a_spanish_mobile_after_a_phone_verb_is_found() -> None:
    assert ("612 345 678", "PHONE_NUMBER") in _spans("Ana llamó desde el 612 345 678 ayer.")


@pytest.mark.parametrize(
    ("text", "name", "title"),
    [
        ("Herr Schmidt called at noon.", "Schmidt", "Herr"),
        ("Mme Dubois was discharged today.", "Dubois", "Mme"),
        ("Paciente Juan Pérez refiere dolor.", "Juan Pérez", "Paciente"),
        ("Seen by Dott. Rossi on the ward.", "Rossi", "Dott"),
        ("Señora Ana Torres firmó.", "Ana Torres", "Señora"),
    ],
)
def test_a_title_before_a_name_is_trimmed_off_the_person_span(text: str, name: str, title: str) -> None:
    # The name is redacted, the title is not (it was: "Herr Schmidt" as one PERSON, "Dott" a LOCATION).
    found = _spans(text)
    assert (name, "PERSON") in found, found
    assert not any(title in s for s, _ in found), found


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Ihre Steuer-ID 46661507877 liegt vor.", "46661507877"),
        ("Steueridentifikationsnummer: 41 730 808 195", "41 730 808 195"),
        ("DNI 95904764P confirmado.", "95904764P"),
        ("Consta el NIE X2402332M.", "X2402332M"),
        ("BSN 971523046 bekend.", "971523046"),
        ("PESEL 78011490066 w aktach.", "78011490066"),
        ("Sort code 97-69-16, account number 31926819.", "97-69-16"),
        ("Sort code 97-69-16, account number 31926819.", "31926819"),
        ("MC387804A is on file.", "MC387804A"),
        ("Il suo codice fiscale è SFRTTE96R29E228U.", "SFRTTE96R29E228U"),
        ("MRN 2492329 admitted overnight.", "2492329"),
        ("pt ID 87-718546, bed 4", "87-718546"),
        ("vehicle plate 508 JYN seen", "508 JYN"),
        ("Kenteken 42-XB-PO", "42-XB-PO"),
        ("Insurance member ID 8981586", "8981586"),
    ],
)
def test_labelled_and_checked_identifier_numbers_are_found_whole(text: str, value: str) -> None:
    # Presidio registers its national-ID recognizers for their own language only; synthgen
    # analyzes as English, so these were left in the text (a blind probe: 7 of 8 Steuer-IDs).
    assert any(value in s for s, _ in _spans(text)), _spans(text)


@pytest.mark.parametrize(
    "text",
    [
        "Seen at 10:30, BP 120/80, dose 5 mg, ward B12.",
        "The plate was cold and the account is closed.",
        "reg 2 done; sin 20 mg de dosis",
        "DNI 95904764Q falso",  # fails the DNI check letter: not flagged as an ID
    ],
)
def test_numbers_without_an_identifier_label_or_check_are_not_id_numbers(text: str) -> None:
    assert not any(t == "ID_NUMBER" for _, t in _spans(text)), _spans(text)
