"""What every access operation shares: the services it touches, the policy decision, the envelope names.

Identity: ``user`` is asserted by the caller (CLI flag, ``SYNTHGEN_USER``), not
authenticated here. What stops a user from claiming another role is that decryption
needs that role's KEK, which only its holders should have (see docs/policies.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthgen.catalog import Catalog, Dataset
from synthgen.crypto import KeyProvider, SecretKey, provider_from_env
from synthgen.errors import AccessDenied, CryptoError
from synthgen.policy import AuditLog, Decision, Policy, Resource
from synthgen.zones import Zones

#: ``Dataset.format`` of an encrypted Parquet dataset (envelope v1 around Parquet bytes).
ENVELOPE_FORMAT = "sgenc1+parquet"
ENVELOPE_SUFFIX = ".sgenc"
KEYRING_SUFFIX = ".keyring.json"


@dataclass
class Services:
    """Everything an access operation touches; defaults come from the environment."""

    catalog: Catalog
    zones: Zones
    policy: Policy
    provider: KeyProvider
    audit: AuditLog

    @classmethod
    def resolve(
        cls,
        catalog: Catalog | None = None,
        zones: Zones | None = None,
        policy: Policy | None = None,
        provider: KeyProvider | None = None,
    ) -> Services:
        catalog = catalog or Catalog.from_env()
        return cls(
            catalog=catalog,
            zones=zones or Zones.from_env(),
            policy=policy or Policy.load(),
            provider=provider or provider_from_env(),
            audit=AuditLog(catalog),
        )


def decide(svc: Services, user: str, action: str, resource: Resource, label: str) -> Decision:
    """Check, audit (allow or deny), and raise :class:`AccessDenied` on deny."""
    decision = svc.policy.check(user, action, resource)
    svc.audit.record(
        actor=user,
        action=action,
        resource=label,
        decision=decision.effect,
        rule=decision.rule,
        detail={"resource": resource.describe(), "role": decision.role, "source": decision.source},
    )
    if not decision.allowed:
        hint = ""
        if decision.rule == "unknown-user":
            hint = "; user not in any policy file (set --user / SYNTHGEN_USER)"
        elif resource.dp is False and resource.kind != "report":
            hint = (
                "; a non-DP output needs a policy rule with `dp: false` (the defaults allow it as restricted)"
            )
        raise AccessDenied(f"access denied: {user} may not {action} {label} (rule {decision.rule}{hint})")
    return decision


def dataset_resource(ds: Dataset) -> Resource:
    """The policy view of a catalogued dataset (zone, name, classification, kind, dp, epsilon)."""
    eps = (ds.extra or {}).get("epsilon")
    return Resource(
        zone=ds.zone,
        name=ds.name,
        classification=ds.classification,
        kind=ds.kind,
        dp=ds.dp,
        epsilon=float(eps) if eps is not None else None,
    )


def keyring_path(envelope: Path) -> Path:
    return envelope.with_name(envelope.name.removesuffix(ENVELOPE_SUFFIX) + KEYRING_SUFFIX)


def keyring_location(envelope: str) -> str:
    """:func:`keyring_path` for a catalogued location of either kind (a local path or a URL)."""
    return envelope.removesuffix(ENVELOPE_SUFFIX) + KEYRING_SUFFIX


def find(svc: Services, name: str) -> Dataset:
    from synthgen.lookup import published_dataset

    return published_dataset(svc.catalog, name)


class NoKeys(KeyProvider):
    """Placeholder provider for operations that never touch keys (reports)."""

    name = "none"

    def roles(self) -> list[str]:
        return []

    def kek_ids(self, role: str) -> list[str]:
        return []

    def wrap(self, role: str, data_key: SecretKey, context: dict[str, str]) -> Any:
        raise CryptoError("no key provider configured")

    def unwrap(self, wrapped: Any, context: dict[str, str]) -> SecretKey:
        raise CryptoError("no key provider configured")

    def create(self, role: str) -> str | None:
        raise CryptoError("no key provider configured")

    def new_version(self, role: str) -> str:
        raise CryptoError("no key provider configured")

    def retire(self, role: str, kek_ids: list[str]) -> list[str]:
        return []
