"""Report sections, in report order. A new section is a new module plus one line here."""

from __future__ import annotations

from synthgen.evaluate.sections.base import Section
from synthgen.evaluate.sections.bias import BiasSection
from synthgen.evaluate.sections.correlation import CorrelationSection
from synthgen.evaluate.sections.fidelity import FidelitySection
from synthgen.evaluate.sections.leakage import LeakageSection
from synthgen.evaluate.sections.privacy import PrivacySection
from synthgen.evaluate.sections.schema import SchemaSection
from synthgen.evaluate.sections.text import TextSection
from synthgen.evaluate.sections.utility import UtilitySection


def default_sections() -> list[Section]:
    # Bias reads the utility section's predictions, so it comes after it.
    return [
        SchemaSection(),
        FidelitySection(),
        CorrelationSection(),
        UtilitySection(),
        BiasSection(),
        PrivacySection(),
        LeakageSection(),
        TextSection(),
    ]
