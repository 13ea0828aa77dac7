"""Publishing and reading encrypted datasets, under the access policy, audited.

``publish_dataset`` encrypts a staged Parquet file into the SYNTHETIC zone with a
fresh data key, wraps that key once per role the spec asks for *and* the policy
lets read the dataset, catalogues it and deletes the plaintext. ``read_dataset``
checks the policy, unwraps the data key with one of the reader's roles' KEKs,
verifies every segment and returns the frame. Every decision and key operation is
appended to the audit trail, allowed or not.

Identity: ``user`` is asserted by the caller (CLI flag, ``SYNTHGEN_USER``), not
authenticated here. What stops a user from claiming another role is that decryption
needs that role's KEK, which only its holders should have (see docs/policies.md).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow.parquet as pq

from synthgen.binding import (
    HashingReader,
    HashingWriter,
    check_binding,
    check_file,
    check_keyring,
    make_binding,
    rebind_keyring,
)
from synthgen.catalog import Catalog, Dataset
from synthgen.crypto import DEFAULT_SEGMENT_SIZE, KeyProvider, Keyring, SecretKey, provider_from_env
from synthgen.crypto.canonical import canonical_json
from synthgen.crypto.envelope import decrypt_stream, encrypt_stream
from synthgen.errors import (
    AccessDenied,
    CatalogError,
    CryptoError,
    PolicyError,
    PrivacyError,
    SpecError,
    SynthgenError,
    ZoneError,
)
from synthgen.manifest import check_shareable
from synthgen.policy import AuditLog, Decision, Policy, Resource
from synthgen.policy.model import CLASSIFICATIONS
from synthgen.publication_orphans import RESERVED_FOLDERS, publish_lock, sweep_orphans
from synthgen.zones import Zones

#: ``Dataset.format`` of an encrypted Parquet dataset (envelope v1 around Parquet bytes).
ENVELOPE_FORMAT = "sgenc1+parquet"
ENVELOPE_SUFFIX = ".sgenc"
KEYRING_SUFFIX = ".keyring.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
#: Manifest keys that publish_dataset sets itself; a caller value that disagrees is an error.
_RESERVED = ("dataset_id", "name", "dp", "classification", "key_id")


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


def _decide(svc: Services, user: str, action: str, resource: Resource, label: str) -> Decision:
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


def _epsilon_from(manifest: dict[str, Any]) -> float | None:
    privacy = manifest.get("privacy")
    if isinstance(privacy, dict):
        for key in ("epsilon", "epsilon_spent", "eps"):
            if isinstance(privacy.get(key), int | float):
                return float(privacy[key])
    return None


def _keyring_path(envelope: Path) -> Path:
    return envelope.with_name(envelope.name.removesuffix(ENVELOPE_SUFFIX) + KEYRING_SUFFIX)


# -- publish -------------------------------------------------------------------------


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
    _decide(svc, user, "publish", resource, f"synthetic:{name}")

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


# -- read ----------------------------------------------------------------------------


def _find(svc: Services, name: str) -> Dataset:
    from synthgen.lookup import published_dataset

    return published_dataset(svc.catalog, name)


def _open_key(svc: Services, user: str, ds: Dataset, resource: Resource) -> tuple[SecretKey, Path]:
    """Unwrap the dataset's data key with a KEK of one of ``user``'s allowed roles. Audited."""
    envelope = svc.zones.synthetic.resolve(ds.path)
    ring_file = _keyring_path(envelope)
    binding = check_binding((ds.extra or {}).get("binding"), dataset_id=ds.id)
    try:
        ring_bytes = ring_file.read_bytes()
    except FileNotFoundError:
        raise CryptoError(f"keyring {ring_file} is missing; the dataset cannot be decrypted") from None
    ring = Keyring.from_bytes(ring_bytes, where=str(ring_file))
    if ring.dataset_id != ds.id:
        raise CryptoError(f"keyring {ring_file} belongs to dataset {ring.dataset_id}, not {ds.id}")
    check_keyring(binding, generation=ring.generation, keyring_bytes=ring_bytes, where=str(ring_file))
    allowed = [r for r in svc.policy.roles_of(user) if svc.policy.role_check(r, "read", resource).allowed]
    usable = [r for r in allowed if r in ring.entries]
    label = f"{ds.zone}:{ds.name}"
    if not usable:
        svc.audit.record(
            actor=user,
            action="key.unwrap",
            resource=label,
            decision="deny",
            rule="no-wrapped-key",
            detail={"dataset_id": ds.id, "roles": allowed},
        )
        raise AccessDenied(
            f"access denied: none of {user}'s roles ({', '.join(allowed) or 'none'}) holds a key "
            f"for {ds.name} (revoked or never granted)"
        )
    errors: list[str] = []
    for role in usable:
        try:
            key = ring.unwrap(svc.provider, role)
        except CryptoError as exc:
            errors.append(str(exc))
            continue
        svc.audit.record(
            actor=user,
            action="key.unwrap",
            resource=label,
            decision="ok",
            detail={"dataset_id": ds.id, "role": role, "kek_id": ring.entries[role].kek_id},
        )
        return key, envelope
    svc.audit.record(
        actor=user,
        action="key.unwrap",
        resource=label,
        decision="error",
        detail={"dataset_id": ds.id, "roles": usable, "error": errors[-1]},
    )
    raise CryptoError(errors[-1])


@contextmanager
def _decrypted_parquet(svc: Services, user: str, name: str, workdir: Path | None) -> Iterator[Path | bytes]:
    """Policy check + unwrap + full verification; yields plaintext (bytes, or a temp file in ``workdir``).

    A temp file is created 0600 and deleted on exit; nothing is yielded unless every
    segment verified and the manifest names this dataset.
    """
    ds = _find(svc, name)
    resource = dataset_resource(ds)
    _decide(svc, user, "read", resource, f"{ds.zone}:{ds.name}")
    if ds.format != ENVELOPE_FORMAT:
        if ds.zone == "real" and ds.format == "parquet":
            yield svc.zones.real.resolve(ds.path)  # stewards reading a real snapshot: plaintext by design
            return
        raise SpecError(f"dataset {ds.name} has format {ds.format!r}; read it with the tool that wrote it")
    key, envelope = _open_key(svc, user, ds, resource)
    if workdir is None:
        buf = io.BytesIO()
        with open(envelope, "rb") as fh:
            hashed = HashingReader(fh)
            manifest = decrypt_stream(hashed, buf, data_key=key)  # type: ignore[arg-type]
            digest = hashed.hexdigest()
        _check_manifest(manifest, ds, digest)
        yield buf.getvalue()
        return
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-read-", suffix=".parquet", dir=workdir)
    tmp = Path(tmp_name)
    try:
        with open(envelope, "rb") as fh, os.fdopen(fd, "wb") as out:
            hashed = HashingReader(fh)
            manifest = decrypt_stream(hashed, out, data_key=key)  # type: ignore[arg-type]
            digest = hashed.hexdigest()
        _check_manifest(manifest, ds, digest)
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _check_manifest(manifest: dict[str, Any], ds: Dataset, file_sha256: str) -> None:
    # The envelope verified under the data key; a holder of that key could have written it, so
    # it must also be the very file the platform published (the catalog binding's hash).
    check_file((ds.extra or {})["binding"], file_sha256=file_sha256, name=ds.name)
    if manifest.get("dataset_id") != ds.id:
        raise CryptoError(
            f"the encrypted file for {ds.name} carries dataset id {manifest.get('dataset_id')!r}, "
            f"not {ds.id!r}: files were swapped"
        )


def read_dataset(
    name: str,
    *,
    user: str,
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
) -> pl.DataFrame:
    """Policy-checked, audited, verified read of a published dataset into memory.

    Raises :class:`AccessDenied` (exit code 3) when the policy or the keyring refuses,
    :class:`CryptoError` when the file or a key fails verification (nothing returned).
    """
    svc = Services.resolve(catalog, zones, policy, provider)
    with _decrypted_parquet(svc, user, name, None) as plain:
        return pl.read_parquet(io.BytesIO(plain) if isinstance(plain, bytes) else plain)


def read_to_file(
    name: str,
    *,
    user: str,
    out: Path,
    format: Literal["parquet", "csv"] = "parquet",
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
) -> Path:
    """Decrypt a dataset to ``out`` (Parquet or CSV) in bounded memory.

    ``out`` appears only once the whole file verified; it must lie outside both zones
    (a plaintext copy is the reader's, not the platform's).
    """
    if format not in ("parquet", "csv"):
        raise SpecError(f"--format {format!r}: expected parquet or csv")
    svc = Services.resolve(catalog, zones, policy, provider)
    out = Path(out).absolute()
    for zone in (svc.zones.real, svc.zones.synthetic):
        if zone.contains(out):
            raise SpecError(f"--out {out} is inside the {zone.name} zone; write plaintext copies elsewhere")
    out.parent.mkdir(parents=True, exist_ok=True)
    with _decrypted_parquet(svc, user, name, out.parent) as plain:
        assert isinstance(plain, Path)
        fd, staged_name = tempfile.mkstemp(prefix=".tmp-out-", suffix=f".{format}", dir=out.parent)
        os.close(fd)
        staged = Path(staged_name)
        try:
            if format == "csv":
                pl.scan_parquet(plain).sink_csv(staged)
            else:
                shutil.copyfile(plain, staged)
            os.replace(staged, out)
        finally:
            staged.unlink(missing_ok=True)
    return out


def read_report(
    name: str,
    *,
    user: str,
    out: Path | None = None,
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
) -> Path:
    """Policy-checked access to a restricted report (HTML in the REAL zone). Audited.

    The report must be catalogued as a dataset of kind ``report`` (the evaluate stage
    does this); its classification (``restricted`` by default) decides who may read it.
    Returns the report's path, or ``out`` after copying it there.
    """
    svc = Services.resolve(catalog, zones, policy, provider=_NoKeys())
    from synthgen.lookup import report_dataset

    ds = report_dataset(svc.catalog, name)
    # A report is not a model output: its dp flag does not apply (P7 concerns published outputs).
    resource = Resource(ds.zone, ds.name, ds.classification, "report", None, None)
    _decide(svc, user, "read", resource, f"{ds.zone}:{ds.name} report {ds.id}")
    path = svc.zones.real.resolve(ds.path)
    if not path.is_file():
        raise SpecError(f"report file {path} is missing")
    if out is None:
        return path
    out = Path(out).absolute()
    if svc.zones.synthetic.contains(out):
        raise ZoneError(f"--out {out} is inside the synthetic zone; a restricted report never goes there")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(prefix=".tmp-report-", dir=out.parent)  # 0600 from the start
    try:
        with os.fdopen(fd, "wb") as dst, open(path, "rb") as src_fh:
            shutil.copyfileobj(src_fh, dst)
        os.chmod(staged, 0o600)
        os.replace(staged, out)
    finally:
        Path(staged).unlink(missing_ok=True)
    return out


class _NoKeys(KeyProvider):
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


# -- key administration ----------------------------------------------------------------


@dataclass
class RotationResult:
    role: str
    new_kek_id: str
    rewrapped: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _keyrings(zones: Zones) -> Iterator[Path]:
    root = zones.synthetic.root
    if root.is_dir():
        yield from sorted(p for p in root.rglob(f"*{KEYRING_SUFFIX}") if not p.name.startswith(".tmp-"))


def _write_ring(zones: Zones, path: Path, ring: Keyring) -> None:
    with zones.synthetic.atomic_write(path) as fh:
        fh.write(ring.to_bytes())


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
    created: dict[str, str | None] = {}
    for role in roles or sorted(svc.policy.roles):
        _decide(svc, user, "admin", Resource("keys", role, kind="kek"), f"keys:{role}")
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
    _decide(svc, user, "admin", Resource("keys", role, kind="kek"), f"keys:{role}")
    old_ids = svc.provider.kek_ids(role)
    new_id = svc.provider.new_version(role)
    result = RotationResult(role=role, new_kek_id=new_id)
    with publish_lock(svc.zones):
        for ring_file in _keyrings(svc.zones):
            try:
                ring = Keyring.from_bytes(ring_file.read_bytes(), where=str(ring_file))
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
    svc = Services.resolve(catalog, zones, policy, provider=_NoKeys())
    ds = _find(svc, name)
    if ds.format != ENVELOPE_FORMAT:
        raise SpecError(f"dataset {ds.name} is not encrypted; nothing to revoke")
    _decide(svc, user, "admin", dataset_resource(ds), f"{ds.zone}:{ds.name}")
    ring_file = _keyring_path(svc.zones.synthetic.resolve(ds.path))
    with publish_lock(svc.zones):
        ring = Keyring.from_bytes(ring_file.read_bytes(), where=str(ring_file))
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
    svc: Services, ds: Dataset, ring: Keyring, ring_file: Path, *, audit: dict[str, Any] | None
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
