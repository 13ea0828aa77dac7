"""Key administration: create role KEKs, rotate them (re-wrapping every data key), revoke a role."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthgen.access.services import (
    ENVELOPE_FORMAT,
    KEYRING_SUFFIX,
    NoKeys,
    Services,
    dataset_resource,
    decide,
    find,
    keyring_location,
    keyring_path,
)
from synthgen.binding import rebind_keyring
from synthgen.catalog import Catalog, Dataset
from synthgen.crypto import KeyProvider, Keyring
from synthgen.errors import CatalogError, SpecError, SynthgenError
from synthgen.policy import Policy, Resource
from synthgen.publication_orphans import publish_lock
from synthgen.zones import Zone, Zones


@dataclass
class RotationResult:
    role: str
    new_kek_id: str
    rewrapped: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _keyrings(zones: Zones) -> Iterator[Path | str]:
    zone = zones.synthetic
    if not isinstance(zone, Zone):  # publications are <name>/<id>.keyring.json
        base = zone.url.path.rstrip("/") + "/"
        found = zone.fs.glob(f"{base}*/*{KEYRING_SUFFIX}")
        yield from sorted(zone.uri(key.removeprefix(base)) for key in found if key.startswith(base))
        return
    root = zone.root
    if root.is_dir():
        yield from sorted(p for p in root.rglob(f"*{KEYRING_SUFFIX}") if not p.name.startswith(".tmp-"))


def _ring_location(zones: Zones, ds: Dataset) -> Path | str:
    zone = zones.synthetic
    if isinstance(zone, Zone):
        return keyring_path(zone.resolve(ds.path))
    return keyring_location(zone.uri(ds.path))


def _read_ring(zones: Zones, ring_file: Path | str) -> bytes:
    if isinstance(ring_file, Path):
        return ring_file.read_bytes()
    with zones.synthetic.open(ring_file, "rb") as fh:
        data: bytes = fh.read()
    return data


def _write_ring(zones: Zones, path: Path | str, ring: Keyring) -> None:
    with zones.synthetic.atomic_write(path) as fh:
        fh.write(ring.to_bytes())


def _known_role(svc: Services, role: str) -> None:
    """Refuse a role the policy does not define (a typo would otherwise get a KEK of its own)."""
    if role not in svc.policy.roles:
        known = ", ".join(sorted(svc.policy.roles))
        raise SpecError(f"unknown role {role!r}: the policy defines {known}")


def init_keys(
    *,
    user: str,
    roles: Sequence[str] | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
    catalog: Catalog | None = None,
) -> dict[str, str | None]:
    """Create a first KEK for each role (default: every role in the policy). Returns role -> new
    KEK id (None where one existed). Needs ``admin`` on ``keys:<role>``."""
    svc = Services.resolve(catalog, Zones.from_env(), policy, provider)
    for role in roles or ():
        _known_role(svc, role)  # all checked before any key is made
    created: dict[str, str | None] = {}
    for role in roles or sorted(svc.policy.roles):
        decide(svc, user, "admin", Resource("keys", role, kind="kek"), f"keys:{role}")
        created[role] = svc.provider.create(role)
        svc.audit.record(
            actor=user,
            action="key.create",
            resource=f"keys:{role}",
            decision="ok",
            detail={"kek_id": created[role], "existed": created[role] is None},
        )
    return created


def rotate_role_key(
    role: str,
    *,
    user: str,
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
) -> RotationResult:
    """Make a new KEK version for ``role`` and re-wrap every data key wrapped for it.

    No data is re-encrypted: only keyring sidecars change. Old KEK versions are
    destroyed once every keyring moved off them (kept, and reported, if any failed).
    """
    svc = Services.resolve(catalog, zones, policy, provider)
    _known_role(svc, role)
    decide(svc, user, "admin", Resource("keys", role, kind="kek"), f"keys:{role}")
    old_ids = svc.provider.kek_ids(role)
    new_id = svc.provider.new_version(role)
    result = RotationResult(role=role, new_kek_id=new_id)
    with publish_lock(svc.zones):
        for ring_file in _keyrings(svc.zones):
            try:
                ring = Keyring.from_bytes(_read_ring(svc.zones, ring_file), where=str(ring_file))
                wrapped = ring.entries.get(role)
                if wrapped is None or wrapped.kek_id == new_id:
                    continue
                ds = svc.catalog.get_dataset(ring.dataset_id)
                if ds is None:  # an orphan (publish killed before its catalog row): swept, not re-wrapped
                    continue
                data_key = ring.unwrap(svc.provider, role)
                ring.add(svc.provider, role, data_key)
                _commit_ring(svc, ds, ring, ring_file, audit=None)
                result.rewrapped.append(ring.dataset_id)
            except SynthgenError as exc:
                result.failed[str(ring_file)] = str(exc)
    if not result.failed:
        result.retired = svc.provider.retire(role, [k for k in old_ids if k != new_id])
    svc.audit.record(
        actor=user,
        action="key.rotate",
        resource=f"keys:{role}",
        decision="ok" if not result.failed else "error",
        detail={
            "new_kek_id": new_id,
            "rewrapped": result.rewrapped,
            "retired": result.retired,
            "failed": sorted(result.failed),
        },
    )
    return result


def revoke_role(
    name: str,
    role: str,
    *,
    user: str,
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
) -> bool:
    """Remove ``role``'s wrapped key from a dataset (needs ``admin`` on it). Returns whether one
    was there.

    Revocation stops future reads through that role's KEK. It cannot recall a data key
    or plaintext already obtained; for that, re-publish under a new data key.
    """
    svc = Services.resolve(catalog, zones, policy, provider=NoKeys())
    ds = find(svc, name)
    if ds.format != ENVELOPE_FORMAT:
        raise SpecError(f"dataset {ds.name} is not encrypted; nothing to revoke")
    decide(svc, user, "admin", dataset_resource(ds), f"{ds.zone}:{ds.name}")
    ring_file = _ring_location(svc.zones, ds)
    with publish_lock(svc.zones):
        ring = Keyring.from_bytes(_read_ring(svc.zones, ring_file), where=str(ring_file))
        removed = ring.revoke(role)
        audit: dict[str, Any] = {
            "actor": user,
            "action": "key.revoke",
            "resource": f"{ds.zone}:{ds.name}",
            "decision": "ok",
            "detail": {"dataset_id": ds.id, "role": role, "removed": removed},
        }
        if removed:
            _commit_ring(svc, ds, ring, ring_file, audit=audit)
        else:
            svc.audit.record(**audit)
    return removed


def _commit_ring(
    svc: Services, ds: Dataset, ring: Keyring, ring_file: Path | str, *, audit: dict[str, Any] | None
) -> None:
    """Rewrite a keyring under a new generation: the catalog binding first (with the audit
    entry, one transaction), then the file. A crash between the two leaves the old keyring,
    which the binding now refuses (fail closed); running the operation again converges."""
    binding = (ds.extra or {}).get("binding")
    recorded = int(binding["keyring_generation"]) if isinstance(binding, dict) else 0
    ring.generation = max(ring.generation, recorded) + 1
    ring_bytes = ring.to_bytes()
    extra = dict(ds.extra or {})
    extra["roles"] = ring.roles
    extra["binding"] = rebind_keyring(binding or {}, generation=ring.generation, keyring_bytes=ring_bytes)
    with svc.audit.batch() as batch:
        row = batch.session.get(Dataset, ds.id)
        if row is None:
            raise CatalogError(f"dataset {ds.id} is not in the catalog")
        row.extra = extra
        if audit is not None:
            batch.record(**audit)
    _write_ring(svc.zones, ring_file, ring)
