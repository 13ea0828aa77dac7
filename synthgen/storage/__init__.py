"""Zones on object storage (fsspec URLs): normalised roots and their separation
(:mod:`~synthgen.storage.urls`), credentials from the provider chains
(:mod:`~synthgen.storage.credentials`), the staged-commit zone (:mod:`~synthgen.storage.zone`)
and streaming Parquet (:mod:`~synthgen.storage.parquet`)."""

from synthgen.storage.urls import StoreURL, check_separate, is_url, parse_store_url

__all__ = ["StoreURL", "check_separate", "is_url", "parse_store_url"]
