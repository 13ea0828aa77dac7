"""Dates are not phone numbers: the demo's notes had 06/03/2023 and 03/2021 read as phones, whose
values then reached the leak index and were reported as real identifiers in synthetic text."""

import pytest

from synthgen.anonymize.recognizers.patterns import phone_recognizer


@pytest.mark.parametrize("text", ["Seen on 06/03/2023.", "Follow-up 01/2022", "on 06-03-2023", "03.2021"])
def test_a_date_is_not_a_trunk_prefix_phone(text: str) -> None:
    assert phone_recognizer().analyze(text, ["PHONE_NUMBER"], None) == []


@pytest.mark.parametrize("phone", ["0721 806 360", "030/1234567", "07 88 35 33 74"])
def test_national_trunk_phones_are_still_found(phone: str) -> None:
    text = f"Call {phone} now"
    found = [text[r.start : r.end] for r in phone_recognizer().analyze(text, ["PHONE_NUMBER"], None)]
    assert phone in found
