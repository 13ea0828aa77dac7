"""Who sees which catalog fields (privacy contract P9).

A catalog row of a real-zone dataset (snapshot, anonymized table, model, report) holds
figures computed on real rows without noise: exact row counts, evaluation headlines, the
anonymization findings. Those fields are *restricted*: shown only to users the policy lets
read a restricted report of that pipeline (the shipped policy: data stewards and auditors).
Everyone else sees the row's identity (id, name, zone, kind, lineage) and nothing more.
Synthetic rows carry only DP-derived or public facts and are shown in full.
"""

from __future__ import annotations

from typing import Any

from synthgen.catalog import Dataset
from synthgen.policy import Policy, Resource


def has_restricted_fields(ds: Dataset) -> bool:
    """Real-zone rows (and any non-DP row) hold real-derived figures; DP synthetic rows do not."""
    return ds.zone != "synthetic" or ds.dp is not True


def may_see_restricted(policy: Policy, user: str, ds: Dataset) -> bool:
    """Whether ``user`` may read a restricted report of ``ds``'s pipeline under ``policy``."""
    report = Resource("real", ds.name, "restricted", "report", None, None)
    return policy.check(user, "read", report).allowed


def catalog_row(ds: Dataset, *, restricted_ok: bool) -> dict[str, Any]:
    """The JSON view of one catalog row for a user; restricted fields are ``None`` when withheld."""
    shown = restricted_ok or not has_restricted_fields(ds)
    return {
        "id": ds.id,
        "name": ds.name,
        "zone": ds.zone,
        "kind": ds.kind,
        "format": ds.format,
        "rows": ds.rows if shown else None,
        "dp": ds.dp,
        "classification": ds.classification,
        "content_hash": ds.content_hash if shown else None,  # a hash of real bytes confirms guesses
        "created_at": ds.created_at.isoformat(),
        "created_by": ds.created_by,
        "path": ds.path,
        "restricted_fields": "shown" if shown else "withheld",
    }
