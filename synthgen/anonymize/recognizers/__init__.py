"""synthgen's own Presidio recognizers, named in the analyzer config's ``synthgen.recognizers``."""

from __future__ import annotations

from collections.abc import Callable

from presidio_analyzer import EntityRecognizer

from synthgen.anonymize.recognizers.cards import LuhnCardRecognizer
from synthgen.anonymize.recognizers.ids import IdNumberRecognizer
from synthgen.anonymize.recognizers.names import GazetteerNameRecognizer
from synthgen.anonymize.recognizers.network import SynthgenIpRecognizer
from synthgen.anonymize.recognizers.patterns import licence_recognizer, phone_recognizer, street_recognizer

#: Name in the config -> factory taking the language.
RECOGNIZERS: dict[str, Callable[..., EntityRecognizer]] = {
    "GazetteerNameRecognizer": GazetteerNameRecognizer,
    "LuhnCardRecognizer": LuhnCardRecognizer,
    "StreetRecognizer": street_recognizer,
    "PhonePatternRecognizer": phone_recognizer,
    "LicenceRecognizer": licence_recognizer,
    "IpRecognizer": SynthgenIpRecognizer,
    "IdNumberRecognizer": IdNumberRecognizer,
}
