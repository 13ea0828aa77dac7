"""Built-in demo: a seeded patient-visit table with PII ground truth (:mod:`synthgen.demo.data`)."""

from synthgen.demo.data import DIRECT_IDENTIFIERS, QUASI_IDENTIFIERS, generate_patients, write_demo_csv

__all__ = ["DIRECT_IDENTIFIERS", "QUASI_IDENTIFIERS", "generate_patients", "write_demo_csv"]
