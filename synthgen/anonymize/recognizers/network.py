"""IP addresses: Presidio's patterns, with IPv6 also found before a colon.

Presidio's IPv6 pattern ends with ``(?![\\w:]|\\.\\d)``, so an address followed by a colon
("Sent from 2001:db8::1: ...", "ip fe80::1ff:fe23:4567:890a: blocked") is never matched: the
greedy branches stop before the colon and the lookahead rejects them. Here a colon may follow
when it does not continue the address (no hex digit or colon after it). Every match is still
checked with :mod:`ipaddress` (Presidio's ``invalidate_result``).
"""

from __future__ import annotations

import re

from presidio_analyzer import Pattern
from presidio_analyzer.predefined_recognizers import IpRecognizer

_PRESIDIO_TAIL = r"(?![\w:]|\.\d)"
_TAIL = r"(?![\w]|\.\d|:[\w:])"


def _patterns() -> list[Pattern]:
    out = []
    for p in IpRecognizer.PATTERNS:
        regex = p.regex
        if p.name == "IPv6":
            if not regex.endswith(_PRESIDIO_TAIL):
                raise RuntimeError("Presidio's IPv6 pattern changed: review synthgen's IP recognizer")
            regex = regex[: -len(_PRESIDIO_TAIL)] + _TAIL
        out.append(Pattern(p.name, regex, p.score))
    return out


class SynthgenIpRecognizer(IpRecognizer):
    """IP_ADDRESS: Presidio's IPv4/IPv6 patterns and validation, IPv6 also before a colon."""

    #: IPv4 forms hold a digit, IPv6 forms a colon (see :mod:`synthgen.anonymize.analysis`).
    prefilter = re.compile(r"[\d:]")

    def __init__(self, language: str = "en") -> None:
        super().__init__(patterns=_patterns(), supported_language=language, name="SynthgenIpRecognizer")
