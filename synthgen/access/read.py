"""Reading: policy-checked, audited, verified decryption of published datasets, and restricted reports.

``read_dataset`` checks the policy, unwraps the data key with one of the reader's roles'
KEKs, verifies every segment and returns the frame. Every decision and key operation is
appended to the audit trail, allowed or not.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import polars as pl

from synthgen.access.out_path import check_out_path, place_new_file
from synthgen.access.services import (
    ENVELOPE_FORMAT,
    NoKeys,
    Services,
    dataset_resource,
    decide,
    find,
    keyring_location,
    keyring_path,
)
from synthgen.binding import HashingReader, check_binding, check_file, check_keyring
from synthgen.catalog import Catalog, Dataset
from synthgen.crypto import KeyProvider, Keyring, SecretKey
from synthgen.crypto.envelope import decrypt_stream
from synthgen.errors import AccessDenied, CryptoError, SpecError, ZoneError
from synthgen.policy import Policy, Resource
from synthgen.zones import Zone, Zones


def _open_key(svc: Services, user: str, ds: Dataset, resource: Resource) -> tuple[SecretKey, Path | str]:
    """Unwrap the dataset's data key with a KEK of one of ``user``'s allowed roles. Audited."""
    zone = svc.zones.synthetic
    envelope: Path | str
    if isinstance(zone, Zone):
        envelope = zone.resolve(ds.path)
        ring_file: Path | str = keyring_path(envelope)
    else:
        envelope = zone.uri(ds.path)  # refuses a URL outside the synthetic zone
        ring_file = keyring_location(envelope)
    binding = check_binding((ds.extra or {}).get("binding"), dataset_id=ds.id)
    try:
        if isinstance(ring_file, Path):
            ring_bytes = ring_file.read_bytes()
        else:
            with zone.open(ring_file, "rb") as ring_fh:
                ring_bytes = ring_fh.read()
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
    ds = find(svc, name)
    resource = dataset_resource(ds)
    decide(svc, user, "read", resource, f"{ds.zone}:{ds.name}")
    if ds.format != ENVELOPE_FORMAT:
        if ds.zone == "real" and ds.format == "parquet":
            real = svc.zones.real
            if isinstance(real, Zone):
                yield real.resolve(ds.path)  # stewards reading a real snapshot: plaintext by design
            else:
                with real.fetch(ds.path) as copy:
                    yield copy
            return
        raise SpecError(f"dataset {ds.name} has format {ds.format!r}; read it with the tool that wrote it")
    key, envelope = _open_key(svc, user, ds, resource)
    if workdir is None:
        buf = io.BytesIO()
        with svc.zones.synthetic.open(envelope, "rb") as fh:  # streamed: ranged reads on a store
            hashed = HashingReader(fh)
            manifest = decrypt_stream(hashed, buf, data_key=key)  # type: ignore[arg-type]
            digest = hashed.hexdigest()
        _check_manifest(manifest, ds, digest)
        yield buf.getvalue()
        return
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-read-", suffix=".parquet", dir=workdir)
    tmp = Path(tmp_name)
    try:
        with svc.zones.synthetic.open(envelope, "rb") as fh, os.fdopen(fd, "wb") as out:
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
    out: Path | str,
    format: Literal["parquet", "csv"] = "parquet",
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
    provider: KeyProvider | None = None,
) -> Path:
    """Decrypt a dataset to ``out`` (Parquet or CSV) in bounded memory.

    ``out`` appears only once the whole file verified; it must be a new file in an existing
    folder (:func:`check_out_path`, checked before the policy and before any decryption) and lie
    outside both zones (a plaintext copy is the reader's, not the platform's).
    """
    if format not in ("parquet", "csv"):
        raise SpecError(f"--format {format!r}: expected parquet or csv")
    out = check_out_path(out)
    svc = Services.resolve(catalog, zones, policy, provider)
    for zone in (svc.zones.real, svc.zones.synthetic):
        if zone.contains(out):
            raise SpecError(f"--out {out} is inside the {zone.name} zone; write plaintext copies elsewhere")
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
            place_new_file(staged, out)
        finally:
            staged.unlink(missing_ok=True)
    return out


def read_report(
    name: str,
    *,
    user: str,
    out: Path | str | None = None,
    catalog: Catalog | None = None,
    zones: Zones | None = None,
    policy: Policy | None = None,
) -> Path | str:
    """Policy-checked access to a restricted report (HTML in the REAL zone). Audited.

    The report must be catalogued as a dataset of kind ``report`` (the evaluate stage
    does this); its classification (``restricted`` by default) decides who may read it.
    Returns the report's path (its URL in an object-store zone), or ``out`` after copying it there
    (a new file in an existing folder outside the synthetic zone: :func:`check_out_path`).
    """
    if out is not None:
        out = check_out_path(out)  # before the policy check: a refused path leaves no trace
    svc = Services.resolve(catalog, zones, policy, provider=NoKeys())
    if out is not None and svc.zones.synthetic.contains(out):
        raise ZoneError(f"--out {out} is inside the synthetic zone; a restricted report never goes there")
    from synthgen.lookup import report_dataset

    ds = report_dataset(svc.catalog, name)
    # A report is not a model output: its dp flag does not apply (P7 concerns published outputs).
    resource = Resource(ds.zone, ds.name, ds.classification, "report", None, None)
    decide(svc, user, "read", resource, f"{ds.zone}:{ds.name} report {ds.id}")
    real = svc.zones.real
    path: Path | str
    if isinstance(real, Zone):
        path = real.resolve(ds.path)
        if not path.is_file():
            raise SpecError(f"report file {path} is missing")
    else:
        path = real.uri(ds.path)
        if not real.exists(path):
            raise SpecError(f"report file {path} is missing")
    if out is None:
        return path
    fd, staged = tempfile.mkstemp(prefix=".tmp-report-", dir=out.parent)  # 0600 from the start
    try:
        with os.fdopen(fd, "wb") as dst, real.open(path, "rb") as src_fh:
            shutil.copyfileobj(src_fh, dst)
        os.chmod(staged, 0o600)
        place_new_file(Path(staged), out)
    finally:
        Path(staged).unlink(missing_ok=True)
    return out
