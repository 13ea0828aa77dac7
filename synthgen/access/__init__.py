"""Publishing and reading encrypted datasets, under the access policy, audited.

- :mod:`.publish`: ``publish_dataset`` encrypts a staged Parquet file into the SYNTHETIC zone
  with a fresh data key, wrapped once per role the spec asks for *and* the policy allows.
- :mod:`.read`: ``read_dataset`` / ``read_to_file`` (policy check, key unwrap, verification),
  ``read_report`` (restricted reports).
- :mod:`.keys`: role KEKs: ``init_keys``, ``rotate_role_key``, ``revoke_role``.
- :mod:`.services`: what they share (services, the audited policy decision, envelope names).

Every decision and key operation is appended to the audit trail, allowed or not.
"""

from synthgen.access.keys import RotationResult, init_keys, revoke_role, rotate_role_key
from synthgen.access.publish import publish_dataset
from synthgen.access.read import read_dataset, read_report, read_to_file
from synthgen.access.services import (
    ENVELOPE_FORMAT,
    ENVELOPE_SUFFIX,
    KEYRING_SUFFIX,
    Services,
    dataset_resource,
)

__all__ = [
    "ENVELOPE_FORMAT",
    "ENVELOPE_SUFFIX",
    "KEYRING_SUFFIX",
    "RotationResult",
    "Services",
    "dataset_resource",
    "init_keys",
    "publish_dataset",
    "read_dataset",
    "read_report",
    "read_to_file",
    "revoke_role",
    "rotate_role_key",
]
