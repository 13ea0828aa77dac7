"""Differential privacy: preprocessing mechanisms, accountant glue, and the privacy record."""

from synthgen.privacy.accountant import planned_epsilon, resolve_delta
from synthgen.privacy.record import MechanismEntry, PrivacyRecord, compose

__all__ = ["MechanismEntry", "PrivacyRecord", "compose", "planned_epsilon", "resolve_delta"]
