"""The text path's batch analysis: the same results as Presidio's own batch engine, prefilters
that never drop a match, and IPv6 addresses before a colon."""

from __future__ import annotations

import re

import polars as pl
import pytest
from faker import Faker
from presidio_analyzer import BatchAnalyzerEngine, Pattern, RecognizerResult
from presidio_analyzer.predefined_recognizers import EmailRecognizer, UsSsnRecognizer

from synthgen.anonymize import devset
from synthgen.anonymize.analysis import BatchTextAnalyzer, prefilter_of
from synthgen.anonymize.engine import get_analyzer
from synthgen.anonymize.operators import OperatorContext, make_operator
from synthgen.anonymize.surrogates import Surrogates
from synthgen.anonymize.text import TextAnonymizer, merge_spans

# One positive example (at least) for every recognizer that has a prefilter, non-ASCII digits,
# and texts that hold none of the characters a prefilter looks for.
CRAFTED = [
    "Mail ana.ruiz@example.org or j.o'neil+tag@sub.mail.co.uk today.",
    "SSN 123-45-6789, also 078-05-1120 and 219 09 9999; old id 12345-6789.",
    "Card 4111 1111 1111 1111, amex 378282246310005, mc 5555-5555-5555-4444, 2223003122003222.",
    "Seen 03/14/2023, 14.03.2023, 2023-03-14, 2023-03-14T10:30:00Z, 14-MAR-2023, MAR-23, 3/2023.",
    "IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432 (ES91 2100 0418 4502 0005 1332).",
    "Hosts 192.168.0.1, 10.0.0.255/24, ::ffff:192.0.2.128, 2001:db8::1, fe80::1ff:fe23:4567:890a, ::1.",
    "DEA number AB1234563, licence BJ7654321; passport 912803456 and C03005988.",
    "Driver licence D123-4567-8901, DL A1234567, F4567890, number 123456789.",
    "Phone +49 30 1234567, (310) 392-4834, 0721 806 360, 62 4272-8671; tel 727 783 533, 45872451.",
    "Arabic-Indic digits ٠١٢-٣٤-٥٦٧٨ and full-width １２３４５６７８９.",
    "No digits, no at sign, no colon here: just Ana Ruiz from Valencia.",
    "Only a colon: see below",
    "",
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts = [r["text"] for split in ("dev", "test") for r in devset.generate(150, split=split)]
    return texts + CRAFTED


def _key(results: list[RecognizerResult]) -> list[tuple[str, int, int, float]]:
    return sorted((r.entity_type, r.start, r.end, round(r.score, 9)) for r in results)


def test_batch_analysis_gives_the_results_of_presidios_batch_engine(corpus: list[str]) -> None:
    cfg, analyzer = get_analyzer()
    presidio = BatchAnalyzerEngine(analyzer).analyze_iterator(
        corpus, language="en", batch_size=64, entities=cfg.text_entities, score_threshold=cfg.threshold
    )
    ours = BatchTextAnalyzer(
        analyzer, language="en", entities=cfg.text_entities, threshold=cfg.threshold
    ).analyze(corpus, batch_size=64)
    assert len(ours) == len(corpus)
    differ = [t for t, a, b in zip(corpus, presidio, ours, strict=True) if _key(a) != _key(b)]
    assert differ == []
    # The comparison means something only if results were found, context-boosted ones among them.
    assert sum(map(len, ours)) > 1_000


def test_no_prefilter_drops_a_match(corpus: list[str]) -> None:
    """Every raw match (before any threshold) of a prefiltered recognizer contains what its
    prefilter looks for, so a text without it can have no match."""
    cfg, analyzer = get_analyzer()
    analyzer_nlp = analyzer.nlp_engine
    gated = [
        (rec, gate)
        for rec in analyzer.registry.get_recognizers(language="en", entities=cfg.text_entities)
        if (gate := prefilter_of(rec)) is not None
    ]
    assert {rec.name for rec, _ in gated} >= {
        "EmailRecognizer", "UsSsnRecognizer", "CreditCardRecognizer", "DateRecognizer", "IbanRecognizer",
        "SynthgenIpRecognizer", "MedicalLicenseRecognizer", "UsPassportRecognizer", "UsLicenseRecognizer",
        "SynthgenPhoneRecognizer", "SynthgenLicenceRecognizer", "LuhnCardRecognizer",
    }  # fmt: skip
    matched: dict[str, int] = {}
    for text in corpus:
        artifacts = analyzer_nlp.process_text(text, "en")
        for rec, gate in gated:
            for r in rec.analyze(text=text, entities=cfg.text_entities, nlp_artifacts=artifacts):
                matched[rec.name] = matched.get(rec.name, 0) + 1
                assert gate.search(text[r.start : r.end]), (rec.name, text[r.start : r.end])
    # Each prefilter was tested against real matches of its recognizer.
    assert {name for name, n in matched.items() if n > 0} == {rec.name for rec, _ in gated}


def test_a_prefilter_is_off_when_the_config_changes_a_recognizers_patterns() -> None:
    assert prefilter_of(EmailRecognizer()) is not None
    custom = UsSsnRecognizer(patterns=[Pattern("letters", r"\bSSN-[A-Z]{4}\b", 0.6)])
    assert prefilter_of(custom) is None
    deny = EmailRecognizer()
    deny.deny_list = ["nobody"]
    assert prefilter_of(deny) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Sent from 2001:db8::1: Ana asked us to call back.", "2001:db8::1"),
        ("IPv6 fe80::1ff:fe23:4567:890a: port 80 blocked", "fe80::1ff:fe23:4567:890a"),
        ("ip=2001:0db8:85a3:0000:0000:8a2e:0370:7334: timeout", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
        ("host 2001:db8::1 down", "2001:db8::1"),
        ("his box is fe80::1ff:fe23:4567:890a", "fe80::1ff:fe23:4567:890a"),
        ("login from [2001:db8::1]:443 flagged", "2001:db8::1"),
    ],
)
def test_ipv6_addresses_are_found_also_before_a_colon(text: str, address: str) -> None:
    cfg, analyzer = get_analyzer()
    rs = analyzer.analyze(text, language="en", entities=cfg.text_entities, score_threshold=cfg.threshold)
    assert (address, "IP_ADDRESS") in [(text[s:e], t) for s, e, t in merge_spans(rs)]
    texter = TextAnonymizer(
        analyzer,
        operator=make_operator("tag", OperatorContext(Surrogates(b"k" * 32), b"h" * 32)),
        entities=cfg.text_entities,
        threshold=cfg.threshold,
    )
    out = texter.anonymize(pl.Series("t", [text]))[0][0]
    assert address not in out and "<IP_ADDRESS>" in out


@pytest.mark.parametrize(
    "text", ["Meeting 10:30:45: ok", "ratio 3:2:1: fine", "see a:b:c: below", "::: done"]
)
def test_colon_runs_that_are_no_address_stay_unflagged(text: str) -> None:
    cfg, analyzer = get_analyzer()
    rs = analyzer.analyze(text, language="en", entities=["IP_ADDRESS"], score_threshold=cfg.threshold)
    assert rs == []


def test_faker_ipv6_addresses_followed_by_a_colon_are_found() -> None:
    fake = Faker()
    fake.seed_instance(15)
    cfg, analyzer = get_analyzer()
    for _ in range(50):
        ip = fake.ipv6()
        text = f"Blocked {ip}: too many attempts"
        rs = analyzer.analyze(text, language="en", entities=["IP_ADDRESS"], score_threshold=cfg.threshold)
        assert [(text[r.start : r.end]) for r in rs] == [ip], ip
    assert re.fullmatch(r"[0-9a-f:]+", ip)
