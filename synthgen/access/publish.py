"""Publishing: encrypt a staged Parquet file into the SYNTHETIC zone, wrapped for the roles the policy allows.

``publish_dataset`` encrypts with a fresh data key, wraps that key once per role the spec
asks for *and* the policy lets read the dataset, catalogues it and deletes the plaintext.
Every decision and key operation is appended to the audit trail, allowed or not.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
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

    eps = epsilon if epsilon is not None else _epsilon_from(manifest)
    resource = Resource("synthetic", name, classification, "synthetic", dp, eps)
    decide(svc, user, "publish", resource, f"synthetic:{name}")

    readers = svc.policy.readers(resource, list(dict.fromkeys(roles)))
    dropped = [r for r in roles if r not in readers]
    if not readers:
        raise PolicyError(
            f"none of the roles {list(roles)} may read {resource.describe()} under the policy; "
            "the dataset would be unreadable: change output.access.roles or the policy"
        )
    for role in readers:  # fail before writing anything if a KEK is missing
        svc.provider.current_kek_id(role)

    dataset_id = dataset_id or f"pub-{uuid.uuid4().hex[:24]}"
    if svc.catalog.get_dataset(dataset_id) is not None:
        raise CatalogError(f"dataset id {dataset_id} is already in the catalog")
    key_id = f"dk-{uuid.uuid4().hex}"
    schema = {f.name: str(f.type) for f in arrow_schema}
    full_manifest: dict[str, Any] = {
        **manifest,
        "format": ENVELOPE_FORMAT,
        "dataset_id": dataset_id,
        "name": name,
        "dp": dp,
        "epsilon": eps,
        "classification": classification,
        "access_tags": tags,
        "key_id": key_id,
        "rows": manifest.get("rows", meta.num_rows),
        "schema": manifest.get("schema", schema),
        "lineage": manifest.get("lineage", {"parents": list(parents)}),
        "published_by": user,
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        canonical_json(full_manifest)
    except ValueError as exc:
        raise SpecError(f"manifest for {name}: {exc}") from None

    with publish_lock(svc.zones):
        sweep_orphans(svc.catalog, svc.zones, svc.audit, user=user)
        record = _publish_locked(
            svc,
            src=src,
            name=name,
            dataset_id=dataset_id,
            key_id=key_id,
            readers=readers,
            dropped=dropped,
            full_manifest=full_manifest,
            dp=dp,
            classification=classification,
            tags=tags,
            parents=parents,
            eps=eps,
            user=user,
            segment_size=segment_size,
        )
    src.unlink(missing_ok=True)  # the plaintext staging file goes only after everything succeeded
    return record


def _publish_locked(
    svc: Services,
    *,
    src: Path,
    name: str,
    dataset_id: str,
    key_id: str,
    readers: list[str],
    dropped: list[str],
    full_manifest: dict[str, Any],
    dp: bool,
    classification: str,
    tags: dict[str, Any],
    parents: Sequence[str],
    eps: float | None,
    user: str,
    segment_size: int,
) -> Dataset:
    rel = f"{name}/{dataset_id}{ENVELOPE_SUFFIX}"
    ring_rel = f"{name}/{dataset_id}{KEYRING_SUFFIX}"
    zone = svc.zones.synthetic
    data_key = SecretKey.generate(label=key_id)
    ring = Keyring(dataset_id=dataset_id, key_id=key_id)
    for role in readers:
        ring.add(svc.provider, role, data_key)
    ring_bytes = ring.to_bytes()
    final = zone.resolve(rel)
    # Order: files under their final names first (unreadable: nothing catalogues them yet),
    # then ONE transaction holding the catalog row, its binding and both audit entries. A
    # kill before that commit leaves uncatalogued files that the next publish sweeps; a kill
    # after it leaves a complete, audited publication. Never a readable dataset unaudited.
    try:
        with open(src, "rb") as fin, zone.atomic_write(rel) as fout:
            hashed = HashingWriter(fout)
            info = encrypt_stream(
                fin,
                hashed,  # type: ignore[arg-type]
                data_key=data_key,
                manifest=full_manifest,
                segment_size=segment_size,
            )
        with zone.atomic_write(ring_rel) as fring:
            fring.write(ring_bytes)
        binding = make_binding(
            dataset_id=dataset_id,
            header_hash=info.header_hash,
            file_sha256=hashed.hexdigest(),
            keyring_generation=ring.generation,
            keyring_bytes=ring_bytes,
        )
        with svc.audit.batch() as batch:
            record = svc.catalog.add_dataset(
                Dataset(
                    id=dataset_id,
                    name=name,
                    zone="synthetic",
                    kind="synthetic",
                    format=ENVELOPE_FORMAT,
                    path=str(final),
                    rows=int(full_manifest["rows"]) if full_manifest["rows"] is not None else None,
                    schema_json=full_manifest["schema"],
                    content_hash=info.digest,
                    classification=classification,
                    dp=dp,
                    tags=dict(tags),
                    extra={
                        "epsilon": eps,
                        "roles": readers,
                        "envelope": {
                            "version": 1,
                            "key_id": key_id,
                            "header_hash": info.header_hash,
                            "segments": info.segments,
                            "bytes": info.ciphertext_bytes,
                            "keyring": str(zone.resolve(ring_rel)),
                        },
                        "binding": binding,
                    },
                    created_by=user,
                ),
                parents=list(parents),
                session=batch.session,
            )
            batch.record(
                actor=user,
                action="key.wrap",
                resource=f"synthetic:{name}",
                decision="ok",
                detail={
                    "dataset_id": dataset_id,
                    "key_id": key_id,
                    "kek_ids": {r: w.kek_id for r, w in ring.entries.items()},
                    "refused_roles": dropped,
                },
            )
            batch.record(
                actor=user,
                action="publication",
                resource=f"synthetic:{name}",
                decision="ok",
                detail={
                    "dataset_id": dataset_id,
                    "dp": dp,
                    "classification": classification,
                    "roles": readers,
                    "header_hash": info.header_hash,
                    "digest": info.digest,
                    "bytes": info.ciphertext_bytes,
                    "keyring_generation": ring.generation,
                },
            )
    except BaseException as exc:
        zone.remove(rel)
        zone.remove(ring_rel)
        if isinstance(exc, SynthgenError) or not isinstance(exc, Exception):
            raise
        raise CatalogError(
            f"publishing {name} failed and was rolled back: {type(exc).__name__}: {exc}"
        ) from exc
    return record
