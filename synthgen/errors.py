"""Errors that reach the user as one line.

Each carries an exit code: 2 for usage and spec errors, 3 for access denied,
1 for any other failure. The CLI prints ``str(err)`` and exits with ``err.exit_code``.
"""

from __future__ import annotations


class SynthgenError(Exception):
    exit_code = 1


class SpecError(SynthgenError):
    """The pipeline spec or a CLI argument is wrong."""

    exit_code = 2


class NotFoundError(SynthgenError):
    """What a command names does not exist (a dataset, a report): exit 1, as a missing file.

    Told apart from :class:`AccessDenied` (exit 3). Published dataset names are listed to every
    user (``catalog list``), so saying one does not exist discloses nothing; see docs/access.md
    for reports.
    """


class SourceError(SynthgenError):
    """A source cannot be read (missing, unreadable, empty, unreachable)."""


class SecretsError(SourceError):
    """The secrets file is missing, unsafe or malformed: configuration, exit 2.

    Its message names the file, the line and column, and the key, never a value or a quote of
    the file (the file holds passwords).
    """

    exit_code = 2


class ZoneError(SynthgenError):
    """A write would cross the real/synthetic separation, or zones are misconfigured."""


class ZoneConfigError(ZoneError):
    """Zone roots are misconfigured (overlapping, malformed, missing bucket or credentials)."""

    exit_code = 2


class StorageUnreachable(ZoneError):
    """An object store does not answer (wrong endpoint, network down): exit 1, retry later."""


class CatalogError(SynthgenError):
    pass


class BudgetError(SynthgenError):
    """A run would exceed the source's privacy budget cap."""


class PrivacyError(SynthgenError):
    """A request that would break the privacy contract (for example, a raw statistic in DP mode)."""


class ModelError(SynthgenError):
    pass


class AnonymizeError(SynthgenError):
    pass


class CryptoError(SynthgenError):
    """Decryption, key unwrapping or integrity verification failed."""


class AuditError(SynthgenError):
    """The audit trail fails verification (an entry edited, deleted, inserted, or the log cut)."""


class PolicyError(SynthgenError):
    """A policy file is invalid."""

    exit_code = 2


class AccessDenied(SynthgenError):
    exit_code = 3
