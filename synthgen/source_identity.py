"""What data a spec's source names, independent of how the spec spells it (P6, P11; review F1).

The ledger key (``id:<source.id>`` or the resolved location) comes from the spec, which its
author controls. :func:`claims` gives the location's canonical identities, which the budget
module binds to the first key that reserves on them (:func:`synthgen.privacy.budget.reserve`):

- files: the real path (symlinks and ``..`` resolved) and, when the file exists, its device
  and inode, so a hardlink or a second mount of the same file is the same source;
- SQL: the URL without user, password, driver suffix or query options, with the dialect's
  default port made explicit, plus the table, or the query with its whitespace collapsed.

A copy of a file, or an equivalent rewrite of a query, is not recognised: the README says so.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

#: Ports a URL may leave implicit, per dialect.
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


def _file_claims(path: str, suffix: str = "") -> list[str]:
    real = os.path.realpath(path)
    out = [f"path:{real}{suffix}"]
    try:
        st = os.stat(real)
    except OSError:  # gone since ingest: the real path still identifies it
        return out
    return [*out, f"inode:{st.st_dev}:{st.st_ino}{suffix}"]


def _sql_claims(spec: Any) -> list[str]:
    from synthgen.sources.sql import SqlSource

    src = spec.source
    url = SqlSource(spec)._url
    what = (
        f"#table:{src.table}"
        if src.table
        else "#query:" + hashlib.sha256(" ".join(str(src.query).split()).rstrip(";").encode()).hexdigest()
    )
    dialect = url.drivername.split("+", 1)[0].lower()
    dialect = "postgresql" if dialect == "postgres" else dialect
    if dialect == "sqlite":
        return _file_claims(str(url.database or ":memory:"), what)
    host = (url.host or "localhost").lower()
    port = url.port or _DEFAULT_PORTS.get(dialect, 0)
    return [f"sql:{dialect}://{host}:{port}/{url.database or ''}{what}"]


def claims(spec: Any) -> list[str]:
    """The canonical identities of the spec's source data (see the module docstring)."""
    if spec.source.kind == "sql":
        return _sql_claims(spec)
    return _file_claims(str(spec.source_path()))


def source_key(spec: Any) -> str:
    """The ledger's name for the spec's data source (P6: the budget is per source, not per pipeline).

    ``source.id`` when the spec gives one; else files are keyed by their resolved path, SQL
    sources by the redacted URL and the table (or a hash of the query), so renaming a
    pipeline does not reset its source's budget.
    """
    src = spec.source
    if src.id is not None:
        return f"id:{src.id}"
    if src.kind != "sql":
        return f"{src.kind}:{spec.source_path().resolve()}"
    from synthgen.ids import settings_hash
    from synthgen.sources.sql import SqlSource

    where = SqlSource(spec).describe().removeprefix("sql ")
    return f"sql:{where}" if src.table else f"sql:{where}#{settings_hash(src.query)}"
