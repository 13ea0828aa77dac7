"""Publishing: encrypt a staged Parquet file into the SYNTHETIC zone, wrapped for the roles the policy allows.

``publish_dataset`` encrypts with a fresh data key, wraps that key once per role the spec
asks for *and* the policy lets read the dataset, catalogues it and deletes the plaintext.
Every decision and key operation is appended to the audit trail, allowed or not.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from synthgen.access.services import ENVELOPE_FORMAT, ENVELOPE_SUFFIX, KEYRING_SUFFIX, Services, decide
from synthgen.binding import HashingWriter, make_binding
from synthgen.catalog import Catalog, Dataset
from synthgen.crypto import DEFAULT_SEGMENT_SIZE, KeyProvider, Keyring, SecretKey
from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.envelope import encrypt_stream
from synthgen.errors import CatalogError, PolicyError, PrivacyError, SpecError, SynthgenError
from synthgen.manifest import check_shareable
from synthgen.policy import Policy, Resource
from synthgen.policy.model import CLASSIFICATIONS
from synthgen.publication_orphans import RESERVED_FOLDERS, publish_lock, sweep_orphans
from synthgen.zones import Zones

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Manifest keys that publish_dataset sets itself; a caller value that disagrees is an error.
_RESERVED = ("dataset_id", "name", "dp", "classification", "key_id")


def _epsilon_from(manifest: dict[str, Any]) -> float | None:
    privacy = manifest.get("privacy")
    if isinstance(privacy, dict):
        for key in ("epsilon", "epsilon_spent", "eps"):
            if isinstance(privacy.get(key), int | float):
                return float(privacy[key])
    return None


def publish_dataset(
    *,
    plaintext_parquet: Path,
    name: str,
    manifest: dict[str, Any],
    dp: bool,
    classification: str,
    roles: Sequence[str],
    tags: dict[str, Any],
    parents: Sequence[str],
    catalog: Catalog,
    zones: Zones,
    user: str,
    epsilon: float | None = None,
    dataset_id: str | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> Dataset:
    """Encrypt a staged Parquet file into the SYNTHETIC zone and catalogue it.

    Args:
        plaintext_parquet: the generated output; deleted once the publish succeeded.
        manifest: JSON metadata bound to the ciphertext (schema, rows, lineage, privacy
            record, anonymization summary...). Stored authenticated but NOT encrypted:
            never put real rows or secrets in it.
        dp: whether the output came from a DP model. ``dp=False`` outputs are published
            only where a policy rule explicitly allows ``dp: false`` (privacy contract P7).
        classification: shareable | internal | restricted.
        roles: roles the data key is wrapped for, *if* the policy lets them read it;
            requested roles the policy refuses are left out (and recorded in the audit).
        epsilon: the output's total epsilon (defaults to ``manifest["privacy"]["epsilon"]``);
            rules with ``max_epsilon`` need it.

    Raises:
        AccessDenied: the policy refuses ``publish`` to ``user``.
        PolicyError: no requested role may read the result (it would be unreadable).
        CryptoError: a reader role has no KEK (run ``synthgen keys init``).
    """
    svc = Services.resolve(catalog, zones, policy, provider)
    src = Path(plaintext_parquet)
    meta, arrow_schema = _check_request(
        svc, src, name=name, manifest=manifest, dp=dp, classification=classification
    )
    eps = epsilon if epsilon is not None else _epsilon_from(manifest)
    resource = Resource("synthetic", name, classification, "synthetic", dp, eps)
    decide(svc, user, "publish", resource, f"synthetic:{name}")
    readers = _readers(svc, resource, roles)
    dataset_id = dataset_id or f"pub-{uuid.uuid4().hex[:24]}"
    if svc.catalog.get_dataset(dataset_id) is not None:
        raise CatalogError(f"dataset id {dataset_id} is already in the catalog")
    pub = _Publication(
        src=src,
        name=name,
        dataset_id=dataset_id,
        key_id=f"dk-{uuid.uuid4().hex}",
        readers=readers,
        dropped=[r for r in roles if r not in readers],
        dp=dp,
        classification=classification,
        tags=tags,
        parents=parents,
        eps=eps,
        user=user,
        segment_size=segment_size,
    )
    pub.manifest.update(_full_manifest(pub, manifest, rows=meta.num_rows, arrow_schema=arrow_schema))
    with publish_lock(svc.zones):
        sweep_orphans(svc.catalog, svc.zones, svc.audit, user=user)
        record = _publish_locked(svc, pub)
    src.unlink(missing_ok=True)  # the plaintext staging file goes only after everything succeeded
    return record


@dataclass(frozen=True)
class _Publication:
    """One publish call's checked inputs: what the locked section writes, catalogues and audits."""

    src: Path
    name: str
    dataset_id: str
    key_id: str
    readers: list[str]
    dropped: list[str]  # requested roles the policy refused
    dp: bool
    classification: str
    tags: dict[str, Any]
    parents: Sequence[str]
    eps: float | None
    user: str
    segment_size: int
    #: The full manifest bound to the ciphertext (filled in once, before the lock).
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def rel(self) -> str:
        return f"{self.name}/{self.dataset_id}{ENVELOPE_SUFFIX}"

    @property
    def ring_rel(self) -> str:
        return f"{self.name}/{self.dataset_id}{KEYRING_SUFFIX}"


def _check_request(
    svc: Services, src: Path, *, name: str, manifest: dict[str, Any], dp: bool, classification: str
) -> tuple[Any, Any]:
    """Refuse a bad name, classification, manifest or input file; returns its Parquet metadata and schema."""
    if not _NAME.match(name) or name in RESERVED_FOLDERS:
        raise SpecError(
            f"dataset name {name!r}: use letters, digits, '_', '-', '.' (max 100), not staging or models"
        )
    if classification not in CLASSIFICATIONS:
        raise SpecError(f"classification {classification!r}: expected one of {', '.join(CLASSIFICATIONS)}")
    for key in _RESERVED:
        expected = {"name": name, "dp": dp, "classification": classification}.get(key)
        if key in manifest and expected is not None and manifest[key] != expected:
            raise PrivacyError(
                f"manifest says {key}={manifest[key]!r} but the publish call says {expected!r}"
            )
    check_shareable(manifest)  # P9: the header is readable by anyone holding the file
    if not src.is_file():
        raise SpecError(f"nothing to publish: {src} does not exist")
    try:
        meta = pq.read_metadata(src)
        arrow_schema = pq.read_schema(src)
    except (OSError, ValueError) as exc:
        raise SpecError(f"{src} is not a readable Parquet file: {exc}") from None
    if svc.zones.synthetic.contains(src) and not src.name.startswith(".tmp-"):
        raise SpecError(f"{src} is already in the synthetic zone; publish from a staging file")
    return meta, arrow_schema


def _readers(svc: Services, resource: Resource, roles: Sequence[str]) -> list[str]:
    """The requested roles the policy lets read ``resource``; each must have a KEK already."""
    readers = svc.policy.readers(resource, list(dict.fromkeys(roles)))
    if not readers:
        raise PolicyError(
            f"none of the roles {list(roles)} may read {resource.describe()} under the policy; "
            "the dataset would be unreadable: change output.access.roles or the policy"
        )
    for role in readers:  # fail before writing anything if a KEK is missing
        svc.provider.current_kek_id(role)
    return readers


def _full_manifest(
    pub: _Publication, manifest: dict[str, Any], *, rows: int, arrow_schema: Any
) -> dict[str, Any]:
    """The caller's manifest with the publication's own facts; refused unless it is canonical JSON."""
    schema = {f.name: str(f.type) for f in arrow_schema}
    full: dict[str, Any] = {
        **manifest,
        "format": ENVELOPE_FORMAT,
        "dataset_id": pub.dataset_id,
        "name": pub.name,
        "dp": pub.dp,
        "epsilon": pub.eps,
        "classification": pub.classification,
        "access_tags": pub.tags,
        "key_id": pub.key_id,
        "rows": manifest.get("rows", rows),
        "schema": manifest.get("schema", schema),
        "lineage": manifest.get("lineage", {"parents": list(pub.parents)}),
        "published_by": pub.user,
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        canonical_json(full)
    except ValueError as exc:
        raise SpecError(f"manifest for {pub.name}: {exc}") from None
    return full


def _publish_locked(svc: Services, pub: _Publication) -> Dataset:
    zone = svc.zones.synthetic
    data_key = SecretKey.generate(label=pub.key_id)
    ring = Keyring(dataset_id=pub.dataset_id, key_id=pub.key_id)
    for role in pub.readers:
        ring.add(svc.provider, role, data_key)
    ring_bytes = ring.to_bytes()
    # Order: files under their final names first (unreadable: nothing catalogues them yet),
    # then ONE transaction holding the catalog row, its binding and both audit entries. A
    # kill before that commit leaves uncatalogued files that the next publish sweeps; a kill
    # after it leaves a complete, audited publication. Never a readable dataset unaudited.
    try:
        with open(pub.src, "rb") as fin, zone.atomic_write(pub.rel) as fout:
            hashed = HashingWriter(fout)
            info = encrypt_stream(
                fin,
                hashed,  # type: ignore[arg-type]
                data_key=data_key,
                manifest=pub.manifest,
                segment_size=pub.segment_size,
            )
        with zone.atomic_write(pub.ring_rel) as fring:
            fring.write(ring_bytes)
        binding = make_binding(
            dataset_id=pub.dataset_id,
            header_hash=info.header_hash,
            file_sha256=hashed.hexdigest(),
            keyring_generation=ring.generation,
            keyring_bytes=ring_bytes,
        )
        return _catalogue(svc, pub, info=info, ring=ring, binding=binding)
    except BaseException as exc:
        zone.remove(pub.rel)
        zone.remove(pub.ring_rel)
        if isinstance(exc, SynthgenError) or not isinstance(exc, Exception):
            raise
        raise CatalogError(
            f"publishing {pub.name} failed and was rolled back: {type(exc).__name__}: {exc}"
        ) from exc


def _catalogue(svc: Services, pub: _Publication, *, info: Any, ring: Keyring, binding: Any) -> Dataset:
    """The catalog row, its binding and the key.wrap and publication audit entries: one transaction."""
    resource = f"synthetic:{pub.name}"
    with svc.audit.batch() as batch:
        record = svc.catalog.add_dataset(
            _dataset_row(svc, pub, info=info, binding=binding),
            parents=list(pub.parents),
            session=batch.session,
        )
        batch.record(
            actor=pub.user,
            action="key.wrap",
            resource=resource,
            decision="ok",
            detail={
                "dataset_id": pub.dataset_id,
                "key_id": pub.key_id,
                "kek_ids": {r: w.kek_id for r, w in ring.entries.items()},
                "refused_roles": pub.dropped,
            },
        )
        batch.record(
            actor=pub.user,
            action="publication",
            resource=resource,
            decision="ok",
            detail={
                "dataset_id": pub.dataset_id,
                "dp": pub.dp,
                "classification": pub.classification,
                "roles": pub.readers,
                "header_hash": info.header_hash,
                "digest": info.digest,
                "bytes": info.ciphertext_bytes,
                "keyring_generation": ring.generation,
            },
        )
    return record


def _dataset_row(svc: Services, pub: _Publication, *, info: Any, binding: Any) -> Dataset:
    zone = svc.zones.synthetic
    rows = pub.manifest["rows"]
    return Dataset(
        id=pub.dataset_id,
        name=pub.name,
        zone="synthetic",
        kind="synthetic",
        format=ENVELOPE_FORMAT,
        path=zone.uri(pub.rel),
        rows=int(rows) if rows is not None else None,
        schema_json=pub.manifest["schema"],
        content_hash=info.digest,
        classification=pub.classification,
        dp=pub.dp,
        tags=dict(pub.tags),
        extra={
            "epsilon": pub.eps,
            "roles": pub.readers,
            "envelope": {
                "version": 1,
                "key_id": pub.key_id,
                "header_hash": info.header_hash,
                "segments": info.segments,
                "bytes": info.ciphertext_bytes,
                "keyring": zone.uri(pub.ring_rel),
            },
            "binding": binding,
        },
        created_by=pub.user,
    )
